//! Following call records as they change, for `GET /system/calls/{id}/events`. However many calls are
//! watched, the gateway holds one watch on KV `sluice_calls` (its changes arrive once, and each is handed to
//! the watchers of that call only); with no watcher it holds none, so a gateway nobody watches through pays
//! nothing.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::kv;
use futures::StreamExt;
use sluice_contracts::CallRecord;
use sluice_jetstream::store::StoreError;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Changes one watcher may fall behind by before it reads the record afresh instead.
const WATCHER_BACKLOG: usize = 16;
/// How often an idle relay checks whether anyone still watches.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// One change of a watched call's record.
#[derive(Clone, Debug)]
pub enum Change {
    /// The record at this KV revision; `None` when it was deleted or expired.
    Record(u64, Option<Arc<CallRecord>>),
    /// Changes may have been missed (the watch restarted): read the record again.
    Resync,
}

/// Every call watched through this gateway.
pub struct CallWatch {
    kv: kv::Store,
    watchers: Mutex<HashMap<String, broadcast::Sender<Change>>>,
    /// Whether the relay runs; a lock of its own, held while it starts or stops.
    relay: tokio::sync::Mutex<bool>,
    stop: CancellationToken,
}

/// A watcher of one call; stops watching when dropped.
pub struct Subscription {
    pub changes: broadcast::Receiver<Change>,
    watch: Arc<CallWatch>,
    call_id: String,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut watchers = self.watch.watchers.lock().expect("watchers lock");
        // Ours is counted until this drop ends.
        if watchers.get(&self.call_id).is_some_and(|sender| sender.receiver_count() <= 1) {
            watchers.remove(&self.call_id);
        }
        metrics::gauge!("sluice_call_watchers").decrement(1.0);
    }
}

impl CallWatch {
    pub fn new(kv: kv::Store, stop: CancellationToken) -> Arc<Self> {
        Arc::new(Self { kv, watchers: Mutex::default(), relay: tokio::sync::Mutex::new(false), stop })
    }

    /// Starts watching `call_id`: every change stored after this returns is delivered.
    pub async fn subscribe(self: &Arc<Self>, call_id: &str) -> Result<Subscription, StoreError> {
        let changes = {
            let mut watchers = self.watchers.lock().expect("watchers lock");
            watchers.entry(call_id.to_owned()).or_insert_with(|| broadcast::channel(WATCHER_BACKLOG).0).subscribe()
        };
        metrics::gauge!("sluice_call_watchers").increment(1.0);
        let subscription = Subscription { changes, watch: self.clone(), call_id: call_id.to_owned() };
        let mut running = self.relay.lock().await;
        if !*running {
            let entries = self.kv.watch_all().await.map_err(StoreError::unavailable)?;
            *running = true;
            tokio::spawn(self.clone().relay(entries));
        }
        Ok(subscription)
    }

    /// Hands each change to the watchers of its call, until nobody watches or the gateway stops.
    async fn relay(self: Arc<Self>, mut entries: kv::Watch) {
        loop {
            let next = tokio::select! {
                _ = self.stop.cancelled() => None,
                next = tokio::time::timeout(IDLE_CHECK, entries.next()) => Some(next),
            };
            match next {
                None => break,
                Some(Ok(Some(Ok(entry)))) => self.hand_over(entry),
                Some(Ok(None | Some(Err(_)))) => {
                    tracing::warn!("the call record watch ended; starting it again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    match self.kv.watch_all().await {
                        Ok(fresh) => entries = fresh,
                        Err(err) => tracing::warn!(%err, "cannot watch call records"),
                    }
                    self.broadcast(Change::Resync);
                }
                Some(Err(_idle)) => {}
            }
            let mut running = self.relay.lock().await;
            if self.watchers.lock().expect("watchers lock").is_empty() {
                *running = false;
                return;
            }
        }
        *self.relay.lock().await = false;
    }

    fn hand_over(&self, entry: kv::Entry) {
        let watchers = self.watchers.lock().expect("watchers lock");
        let Some(sender) = watchers.get(&entry.key) else { return };
        let record = match entry.operation {
            kv::Operation::Put => serde_json::from_slice::<CallRecord>(&entry.value).ok().map(Arc::new),
            kv::Operation::Delete | kv::Operation::Purge => None,
        };
        let _ = sender.send(Change::Record(entry.revision, record));
    }

    fn broadcast(&self, change: Change) {
        for sender in self.watchers.lock().expect("watchers lock").values() {
            let _ = sender.send(change.clone());
        }
    }
}
