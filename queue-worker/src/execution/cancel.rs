//! Cancelling calls: the gateway records the cancellation, then publishes `sluice.cancel.{call id}` to every
//! worker. The worker running that call stops it (its process group is killed, its HTTP request dropped); every
//! worker also remembers the notice for a while, which is what lets a call's first delivery start without
//! reading its record (`Cancels::unheard`).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use sluice_contracts::names;
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError, notices};

/// How long a notice is remembered, and so how young a call must be to start without its record being read.
/// A call older than this (one that waited behind others) has its record read, as every redelivery does.
const REMEMBERED: Duration = Duration::from_secs(120);
/// Room for the clocks of gateway and worker to differ, and for a notice to travel.
const SKEW: Duration = Duration::from_secs(2);
/// Most notices remembered: past this, the oldest are forgotten early and calls as young as them are read.
const MOST: usize = 100_000;

/// The cancellation notices this worker heard lately.
#[derive(Default)]
pub struct Cancels(Mutex<Heard>);

#[derive(Default)]
struct Heard {
    /// Since when the subscription has been in place with its connection unbroken (as far as this listener
    /// knows); `None` before it is.
    listening_since: Option<DateTime<Utc>>,
    /// The oldest notice still remembered: calls queued before it may have had theirs forgotten.
    forgotten_before: Option<DateTime<Utc>>,
    ids: HashMap<String, DateTime<Utc>>,
    order: VecDeque<(DateTime<Utc>, String)>,
}

impl Cancels {
    fn listening(&self) {
        self.0.lock().expect("cancels lock").listening_since = Some(Utc::now());
    }

    fn heard(&self, call_id: String) {
        let now = Utc::now();
        let mut heard = self.0.lock().expect("cancels lock");
        let keep = chrono::Duration::from_std(REMEMBERED).expect("a short duration");
        while let Some((at, _)) = heard.order.front()
            && (*at + keep < now || heard.order.len() >= MOST)
        {
            let (at, id) = heard.order.pop_front().expect("checked");
            if heard.ids.get(&id) == Some(&at) {
                heard.ids.remove(&id);
            }
            heard.forgotten_before = Some(at);
        }
        heard.ids.insert(call_id.clone(), now);
        heard.order.push_back((now, call_id));
    }

    /// Whether a call queued at `queued_at` can have been cancelled without this worker hearing of it. No,
    /// only when this worker was listening, connected without a break, since before the call was queued, no
    /// notice for it came, and none that may have come was forgotten. Then its first delivery need not read
    /// its record; a cancellation this misses all the same (a lost notice) still wins: the outcome is written
    /// over the revision the call was queued at, and finding a cancelled record there, is dropped.
    pub fn unheard(&self, call_id: &str, queued_at: DateTime<Utc>) -> bool {
        self.unheard_while(call_id, queued_at, sluice_jetstream::topology::connected_since())
    }

    /// [`Cancels::unheard`], with the connection unbroken since `connected`.
    fn unheard_while(&self, call_id: &str, queued_at: DateTime<Utc>, connected: Option<DateTime<Utc>>) -> bool {
        let skew = chrono::Duration::from_std(SKEW).expect("a short duration");
        let young = chrono::Duration::from_std(REMEMBERED - SKEW).expect("a short duration");
        let heard = self.0.lock().expect("cancels lock");
        let since = match (heard.listening_since, connected) {
            (Some(listening), Some(connected)) => listening.max(connected),
            _ => return false,
        };
        since + skew < queued_at
            && Utc::now() - queued_at < young
            && heard.forgotten_before.is_none_or(|before| before + skew < queued_at)
            && !heard.ids.contains_key(call_id)
    }
}

/// Listens for cancellations until `shutdown`.
pub async fn listen(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let subscription = notices::subscribe(&worker, names::CANCEL_PREFIX).await?;
    worker.cancels.listening();
    notices::handle_each(subscription, names::CANCEL_PREFIX, &shutdown, |call_id, _| {
        // Noted before the running calls are looked at: an attempt registers itself before it asks whether a
        // notice came, so it either is found running here or finds the notice.
        worker.cancels.heard(call_id.clone());
        if worker.running.cancel(&call_id) {
            tracing::info!(call_id, "cancelling running call");
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_vouched_for_only_when_queued_while_listening_and_no_notice_came() {
        let cancels = Cancels::default();
        let now = Utc::now();
        let ago = |seconds| Some(now - chrono::Duration::seconds(seconds));
        assert!(!cancels.unheard_while("a", now, ago(60)), "not listening yet");
        cancels.0.lock().unwrap().listening_since = ago(60);
        assert!(cancels.unheard_while("a", now, ago(60)));
        assert!(!cancels.unheard_while("a", now, None), "disconnected");
        assert!(!cancels.unheard_while("a", now, ago(1)), "reconnected just before the call was queued");
        assert!(!cancels.unheard_while("a", now - chrono::Duration::seconds(59), ago(60)), "queued as listening began");
        cancels.0.lock().unwrap().listening_since = ago(600);
        assert!(!cancels.unheard_while("a", now - chrono::Duration::seconds(300), ago(600)), "too old to vouch for");
        cancels.heard("a".into());
        assert!(!cancels.unheard_while("a", now, ago(600)), "its cancellation was heard");
        assert!(cancels.unheard_while("b", now, ago(600)), "another call's was");
    }

    #[test]
    fn calls_as_old_as_a_forgotten_notice_are_not_vouched_for() {
        let cancels = Cancels::default();
        let now = Utc::now();
        cancels.0.lock().unwrap().listening_since = Some(now - chrono::Duration::seconds(600));
        for n in 0..=MOST {
            cancels.heard(n.to_string());
        }
        let heard = cancels.0.lock().unwrap();
        assert_eq!(heard.ids.len(), MOST);
        assert!(heard.forgotten_before.is_some());
        drop(heard);
        assert!(!cancels.unheard_while("x", now, Some(now - chrono::Duration::seconds(600))), "its notice may be gone");
    }
}
