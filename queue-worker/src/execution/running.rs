//! The calls running on this worker, by call id: what stops one (a cancellation) and what it hears from its
//! function (progress reports and a fan-out, through the secret that only this attempt's URLs carry).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use sluice_contracts::{FunctionRef, ProgressReport, fanout::FanOut};
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
    function: FunctionRef,
    /// The fan-out the attempt declared, started if the call succeeds.
    fan_out: Option<FanOut>,
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

impl Registration {
    /// The fan-out this attempt declared, if any.
    pub fn take_fan_out(&self) -> Option<FanOut> {
        let mut calls = self.running.calls.lock().expect("running calls lock");
        calls.get_mut(&self.call_id).filter(|entry| entry.secret == self.secret).and_then(|entry| entry.fan_out.take())
    }
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
    pub fn register(self: &Arc<Self>, call_id: &str, function: &FunctionRef) -> Registration {
        let token = CancellationToken::new();
        let secret = format!("{:032x}", rand::random::<u128>());
        let (sender, reports) = watch::channel(None);
        let entry = Entry {
            cancel: token.clone(),
            secret: secret.clone(),
            reports: sender,
            function: function.clone(),
            fan_out: None,
        };
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
        self.with_attempt(call_id, secret, |entry| {
            entry.reports.send_replace(Some(Arrived { report, at: Utc::now() }));
        })
    }

    /// The function the attempt of `call_id` running here calls, if `secret` is that attempt's.
    pub fn function(&self, call_id: &str, secret: &str) -> Result<FunctionRef, Refusal> {
        self.with_attempt(call_id, secret, |entry| entry.function.clone())
    }

    /// Keeps `fan_out` as the fan-out of the attempt of `call_id` running here, replacing any it declared
    /// before, if `secret` is that attempt's.
    pub fn declare_fan_out(&self, call_id: &str, secret: &str, fan_out: FanOut) -> Result<(), Refusal> {
        self.with_attempt(call_id, secret, |entry| entry.fan_out = Some(fan_out))
    }

    fn with_attempt<T>(&self, call_id: &str, secret: &str, act: impl FnOnce(&mut Entry) -> T) -> Result<T, Refusal> {
        let mut calls = self.calls.lock().expect("running calls lock");
        let entry = calls.get_mut(call_id).ok_or(Refusal::NotRunning)?;
        if !constant_time_eq(entry.secret.as_bytes(), secret.as_bytes()) {
            return Err(Refusal::WrongSecret);
        }
        Ok(act(entry))
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
        let function = FunctionRef::new("ns", "f");
        let first = running.register("c1", &function);
        let report = ProgressReport { percent: Some(10.0), message: None };
        assert_eq!(running.report("c1", "guess", report.clone()), Err(Refusal::WrongSecret));
        assert_eq!(running.report("c2", &first.secret, report.clone()), Err(Refusal::NotRunning));
        running.report("c1", &first.secret, report.clone()).unwrap();
        assert_eq!(first.reports.borrow().as_ref().unwrap().report, report);
        // A later attempt of the same call gets its own secret; the first one's no longer works.
        let second = running.register("c1", &function);
        assert_ne!(first.secret, second.secret);
        assert_eq!(running.report("c1", &first.secret, report.clone()), Err(Refusal::WrongSecret));
        let stale = first.secret.clone();
        drop(first);
        running.report("c1", &second.secret, report).unwrap();
        let fan_out = FanOut::parse(br#"{"calls":[{"function":"g"}]}"#).unwrap();
        assert_eq!(running.declare_fan_out("c1", &stale, fan_out.clone()), Err(Refusal::WrongSecret));
        running.declare_fan_out("c1", &second.secret, fan_out.clone()).unwrap();
        assert_eq!(running.function("c1", &second.secret), Ok(function));
        assert_eq!(second.take_fan_out(), Some(fan_out));
        assert_eq!(second.take_fan_out(), None);
        drop(second);
        assert_eq!(running.len(), 0);
    }
}
