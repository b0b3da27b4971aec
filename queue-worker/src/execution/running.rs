//! The calls running on this worker, by call id: what stops one (a cancellation) and what it hears from its
//! function (progress reports, through the secret that only this attempt's progress URL carries).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use sluice_contracts::ProgressReport;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A report as it reached the worker.
#[derive(Clone, Debug)]
pub struct Arrived {
    pub report: ProgressReport,
    pub at: DateTime<Utc>,
}

struct Entry {
    cancel: CancellationToken,
    secret: String,
    /// The latest report only: a function that reports faster than the record is written loses nothing that
    /// matters, as the newest report replaces the ones before it.
    reports: watch::Sender<Option<Arrived>>,
}

/// The calls running on this worker.
#[derive(Default)]
pub struct Running {
    calls: Mutex<HashMap<String, Entry>>,
}

/// One running attempt's hold on [`Running`]; removes the call when the attempt ends.
pub struct Registration {
    running: Arc<Running>,
    call_id: String,
    /// Cancelled when the call is cancelled on request.
    pub token: CancellationToken,
    /// This attempt's progress secret: part of the URL the function is given, and of no other attempt's.
    pub secret: String,
    /// The function's latest report.
    pub reports: watch::Receiver<Option<Arrived>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut calls = self.running.calls.lock().expect("running calls lock");
        // A second delivery of the same call on this worker may have registered since; leave its entry.
        if calls.get(&self.call_id).is_some_and(|entry| entry.secret == self.secret) {
            calls.remove(&self.call_id);
        }
    }
}

/// Why a report was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such call runs here (unknown, finished, or running on another worker).
    NotRunning,
    /// The call runs here, but the secret is not its current attempt's.
    WrongSecret,
}

impl Running {
    pub fn register(self: &Arc<Self>, call_id: &str) -> Registration {
        let token = CancellationToken::new();
        let secret = format!("{:032x}", rand::random::<u128>());
        let (sender, reports) = watch::channel(None);
        let entry = Entry { cancel: token.clone(), secret: secret.clone(), reports: sender };
        self.calls.lock().expect("running calls lock").insert(call_id.to_owned(), entry);
        Registration { running: self.clone(), call_id: call_id.to_owned(), token, secret, reports }
    }

    /// Stops `call_id` if it runs here.
    pub fn cancel(&self, call_id: &str) -> bool {
        match self.calls.lock().expect("running calls lock").get(call_id) {
            Some(entry) => {
                entry.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Hands `report` to the attempt of `call_id` running here, if `secret` is that attempt's.
    pub fn report(&self, call_id: &str, secret: &str, report: ProgressReport) -> Result<(), Refusal> {
        let calls = self.calls.lock().expect("running calls lock");
        let entry = calls.get(call_id).ok_or(Refusal::NotRunning)?;
        if !constant_time_eq(entry.secret.as_bytes(), secret.as_bytes()) {
            return Err(Refusal::WrongSecret);
        }
        entry.reports.send_replace(Some(Arrived { report, at: Utc::now() }));
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.calls.lock().expect("running calls lock").len()
    }
}

/// Compares without stopping at the first difference, so the time taken says nothing about the secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_reach_only_the_attempt_whose_secret_they_carry() {
        let running = Arc::new(Running::default());
        let first = running.register("c1");
        let report = ProgressReport { percent: Some(10.0), message: None };
        assert_eq!(running.report("c1", "guess", report.clone()), Err(Refusal::WrongSecret));
        assert_eq!(running.report("c2", &first.secret, report.clone()), Err(Refusal::NotRunning));
        running.report("c1", &first.secret, report.clone()).unwrap();
        assert_eq!(first.reports.borrow().as_ref().unwrap().report, report);
        // A later attempt of the same call gets its own secret; the first one's no longer works.
        let second = running.register("c1");
        assert_ne!(first.secret, second.secret);
        assert_eq!(running.report("c1", &first.secret, report.clone()), Err(Refusal::WrongSecret));
        drop(first);
        running.report("c1", &second.secret, report).unwrap();
        drop(second);
        assert_eq!(running.len(), 0);
    }
}
