//! Finished invocations per function in KV `sluice_invocations` (keyed `{namespace}.{function}`): each process counts in memory and adds its
//! counts to the shared totals every [`FLUSH_EVERY`], so `invocationCount` covers every worker without a
//! KV write per call. Counts a process has not flushed when it dies are lost (at most one interval's).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use async_nats::jetstream::kv;
use tokio_util::sync::CancellationToken;

use super::{
    StoreError,
    follow::{Applied, Followed},
};
use sluice_contracts::FunctionRef;

/// How often a process adds what it counted to the shared totals.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Tries of one compare-and-set addition before the count waits for the next flush.
const CAS_TRIES: usize = 8;

/// One process's invocation counts, and the shared totals.
#[derive(Clone)]
pub struct InvocationTally {
    kv: kv::Store,
    /// Counts not yet added to the totals, by function key.
    pending: Arc<std::sync::Mutex<HashMap<String, u64>>>,
}

impl InvocationTally {
    pub fn new(kv: kv::Store) -> Self {
        Self { kv, pending: Default::default() }
    }

    /// Counts one finished invocation of `function`.
    pub fn count(&self, function: &FunctionRef) {
        let slot = &mut *self.pending.lock().expect("tally lock");
        let n = slot.entry(function.key()).or_default();
        *n = n.saturating_add(1);
    }

    /// The shared total of `function` (what has been flushed, by every process).
    pub async fn total(&self, function: &FunctionRef) -> Result<u64, StoreError> {
        if !function.is_valid() {
            return Ok(0);
        }
        let value = self.kv.get(function.key()).await.map_err(StoreError::unavailable)?;
        Ok(value.as_deref().map(parse).unwrap_or(0))
    }

    /// The shared total of every function in `namespace`, by function name; one pass over its keys.
    pub async fn totals(&self, namespace: &str) -> Result<HashMap<String, u64>, StoreError> {
        read_totals(&self.kv, namespace).await
    }

    /// Drops `function`'s total (it was removed); a redeployed function starts again from zero.
    pub async fn forget(&self, function: &FunctionRef) -> Result<(), StoreError> {
        self.pending.lock().expect("tally lock").remove(&function.key());
        self.kv.purge(function.key()).await.map_err(StoreError::unavailable)
    }

    /// Adds every pending count to the shared totals; a count that could not be added stays pending.
    pub async fn flush(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().expect("tally lock"));
        for (function, n) in pending {
            if let Err(err) = self.add(&function, n).await {
                tracing::debug!(%err, function, "invocation count kept for the next flush");
                let mut kept = self.pending.lock().expect("tally lock");
                let slot = kept.entry(function).or_default();
                *slot = slot.saturating_add(n);
            }
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until `stop`, then once more.
    pub async fn flush_every(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(FLUSH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticks.tick() => self.flush().await,
            }
        }
        self.flush().await;
    }

    /// Adds `n` to `function`'s total with compare-and-set, so concurrent processes never lose each other's.
    async fn add(&self, function: &str, n: u64) -> Result<(), String> {
        for _ in 0..CAS_TRIES {
            let entry = self.kv.entry(function).await.map_err(|e| e.to_string())?;
            let written = match entry {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    let total = parse(&entry.value).saturating_add(n);
                    self.kv
                        .update(function, total.to_string().into(), entry.revision)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
                _ => self.kv.create(function, n.to_string().into()).await.map(drop).map_err(|e| e.to_string()),
            };
            if written.is_ok() {
                return Ok(());
            }
        }
        Err(format!("{function}: the total kept changing underneath"))
    }
}

/// The shared totals kept in memory from a watch of the bucket, for a process that lists them often (the
/// gateway): a listing then costs one request, for the bucket's latest revision, which the copy must have.
pub struct TotalsCopy {
    kv: kv::Store,
    totals: RwLock<HashMap<String, u64>>,
    applied: Applied,
}

impl TotalsCopy {
    /// A copy that follows the bucket until `stop`.
    pub fn start(kv: kv::Store, stop: CancellationToken) -> Arc<Self> {
        let copy = Arc::new(Self { kv: kv.clone(), totals: RwLock::default(), applied: Applied::default() });
        let mut followed = super::follow::follow(kv, stop);
        let following = copy.clone();
        tokio::spawn(async move {
            while let Some(followed) = followed.recv().await {
                match followed {
                    Followed::Entry(entry) => {
                        let mut totals = following.totals.write().expect("totals lock");
                        if entry.operation == kv::Operation::Put {
                            totals.insert(entry.key, parse(&entry.value));
                        } else {
                            totals.remove(&entry.key);
                        }
                    }
                    Followed::Applied(revision) => following.applied.advance(revision),
                }
            }
        });
        copy
    }

    /// The total of every function in `namespace`, by function name: from memory once the copy has every
    /// change the bucket has now, else read from it.
    pub async fn totals(&self, namespace: &str) -> Result<HashMap<String, u64>, StoreError> {
        if !self.applied.caught_up(&self.kv).await? {
            return read_totals(&self.kv, namespace).await;
        }
        let totals = self.totals.read().expect("totals lock");
        Ok(totals
            .iter()
            .filter_map(|(key, total)| {
                let name = key.strip_prefix(namespace)?.strip_prefix('.')?;
                Some((name.to_owned(), *total))
            })
            .collect())
    }
}

/// The totals of `namespace`'s functions, by name, read in one pass over its keys.
async fn read_totals(kv: &kv::Store, namespace: &str) -> Result<HashMap<String, u64>, StoreError> {
    let entries = super::latest_under(kv, Some(namespace), true).await?;
    Ok(entries
        .into_iter()
        .filter_map(|entry| Some((FunctionRef::from_key(&entry.key)?.name, parse(&entry.value))))
        .collect())
}

/// A stored total; anything unreadable counts as zero rather than failing a listing.
fn parse(value: &[u8]) -> u64 {
    std::str::from_utf8(value).ok().and_then(|text| text.parse().ok()).unwrap_or(0)
}
