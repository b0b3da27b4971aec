//! Following a KV bucket: every entry as it stands, then each change, resuming by itself after a NATS outage
//! (replaying the entries as they stand, so nothing missed meanwhile is lost); and how far a copy built from it
//! has got, so a reader is served from the copy only once it has every change the bucket had when the read
//! began.

use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::StoreError;

/// How long a reader waits for a copy to catch up with its bucket before reading the bucket itself.
const CATCH_UP: Duration = Duration::from_millis(500);

/// What following a bucket gives.
#[derive(Debug)]
pub enum Followed {
    /// An entry: a value, or the marker of its removal.
    Entry(kv::Entry),
    /// Every change up to this revision of the bucket has been given: sent once the entries as they stood
    /// have all been given, then after each change.
    Applied(u64),
}

/// Follows every key of `kv` until `stop` (or until the receiver is dropped).
pub fn follow(kv: kv::Store, stop: CancellationToken) -> mpsc::Receiver<Followed> {
    let (sender, received) = mpsc::channel(256);
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            let mut watch = match kv.watch_with_history(">").await {
                Ok(watch) => watch,
                Err(err) => {
                    tracing::warn!(%err, bucket = kv.name, "cannot watch the bucket; retrying");
                    tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => continue }
                }
            };
            // Revisions are only vouched for once the replay of the entries as they stand is over.
            let mut replayed = false;
            loop {
                let entry = tokio::select! {
                    _ = stop.cancelled() => return,
                    entry = watch.next() => entry,
                };
                let entry = match entry {
                    Some(Ok(entry)) => entry,
                    Some(Err(err)) => {
                        tracing::warn!(%err, bucket = kv.name, "watch interrupted; resuming");
                        break;
                    }
                    None => break,
                };
                replayed |= entry.delta == 0;
                let applied = replayed.then_some(Followed::Applied(entry.revision));
                for followed in std::iter::once(Followed::Entry(entry)).chain(applied) {
                    if sender.send(followed).await.is_err() {
                        return; // nobody listens any more
                    }
                }
            }
        }
    });
    received
}

/// How far a copy of a bucket has applied the changes [`follow`] gave.
pub struct Applied(watch::Sender<u64>);

impl Default for Applied {
    fn default() -> Self {
        Self(watch::Sender::new(0))
    }
}

impl Applied {
    /// Every change up to `revision` is in the copy.
    pub fn advance(&self, revision: u64) {
        self.0.send_if_modified(|applied| {
            let later = revision > *applied;
            *applied = (*applied).max(revision);
            later
        });
    }

    /// Whether the copy has every change `kv` has now (one request for its latest revision), waiting for it
    /// briefly.
    pub async fn caught_up(&self, kv: &kv::Store) -> Result<bool, StoreError> {
        // A fresh stream info: the store's own status is the one read when it was opened.
        let mut stream = kv.stream.clone();
        let latest = stream.info().await.map_err(StoreError::unavailable)?.state.last_sequence;
        let mut applied = self.0.subscribe();
        let reached = tokio::time::timeout(CATCH_UP, applied.wait_for(|&applied| applied >= latest)).await;
        Ok(matches!(reached, Ok(Ok(_))))
    }
}
