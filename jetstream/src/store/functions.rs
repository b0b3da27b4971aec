//! Function specs in KV `sluice_functions`, keyed `{namespace}.{function}`.

use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::StoreError;
use sluice_contracts::{FunctionRef, FunctionSpec};

/// The desired state of every function; workers reconcile their runtimes to it.
#[derive(Clone)]
pub struct FunctionStore {
    kv: kv::Store,
}

impl FunctionStore {
    pub fn new(kv: kv::Store) -> Self {
        Self { kv }
    }

    pub fn kv(&self) -> &kv::Store {
        &self.kv
    }

    pub async fn get(&self, function: &FunctionRef) -> Result<Option<FunctionSpec>, StoreError> {
        Ok(self.get_deployed(function).await?.map(|deployed| deployed.spec))
    }

    /// A function's spec with the time it was last deployed.
    pub async fn get_deployed(&self, function: &FunctionRef) -> Result<Option<Deployed>, StoreError> {
        if !function.is_valid() {
            return Ok(None); // not a key that can exist, nor a valid KV key
        }
        let name = function.key();
        let Some(entry) = self.kv.entry(&name).await.map_err(StoreError::unavailable)? else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None); // a removal marker
        }
        let deployed_at = chrono::DateTime::from_timestamp(entry.created.unix_timestamp(), entry.created.nanosecond())
            .unwrap_or_default();
        Ok(Some(Deployed { spec: decode(&name, &entry.value)?, deployed_at }))
    }

    /// Stores `spec` under its namespace and name.
    pub async fn put(&self, spec: &FunctionSpec) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(spec).expect("a spec always serialises");
        self.kv.put(spec.function_ref().key(), bytes.into()).await.map_err(StoreError::unavailable)?;
        Ok(())
    }

    /// Removes a function; returns false when there was none.
    pub async fn delete(&self, function: &FunctionRef) -> Result<bool, StoreError> {
        if self.get(function).await?.is_none() {
            return Ok(false);
        }
        self.kv.delete(function.key()).await.map_err(StoreError::unavailable)?;
        Ok(true)
    }

    /// Every function deployed in `namespace` (in every namespace when `None`), by name.
    pub async fn list(&self, namespace: Option<&str>) -> Result<Vec<FunctionSpec>, StoreError> {
        Ok(self.list_deployed(namespace).await?.into_iter().map(|deployed| deployed.spec).collect())
    }

    /// Every function deployed in `namespace` (in every namespace when `None`) with the time it was last
    /// deployed, by name; read in one pass over the namespace's keys.
    pub async fn list_deployed(&self, namespace: Option<&str>) -> Result<Vec<Deployed>, StoreError> {
        let entries = super::latest_under(&self.kv, namespace, true).await?;
        let mut found = Vec::with_capacity(entries.len());
        for entry in entries {
            match decode(&entry.key, &entry.value) {
                Ok(spec) => found.push(Deployed { spec, deployed_at: entry.written }),
                Err(err) => tracing::error!(%err, "stored spec left out of a listing"),
            }
        }
        found.sort_by_key(|deployed| deployed.spec.function_ref());
        Ok(found)
    }
}

/// A function as deployed: its spec and when that spec was written (its last deploy or update).
#[derive(Debug, Clone)]
pub struct Deployed {
    pub spec: FunctionSpec,
    pub deployed_at: chrono::DateTime<chrono::Utc>,
}

/// One change to the deployed functions.
#[derive(Debug)]
pub enum SpecChange {
    Deployed(Box<FunctionSpec>),
    Removed(FunctionRef),
}

impl FunctionStore {
    /// Every spec as it stands, then each change as it happens, until `stop`. The watch resumes by itself
    /// after a NATS outage (replaying the current specs, so nothing missed meanwhile is lost).
    pub fn follow(&self, stop: CancellationToken) -> mpsc::Receiver<SpecChange> {
        let (changes, received) = mpsc::channel(256);
        let kv = self.kv.clone();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let mut watch = match kv.watch_with_history(">").await {
                    Ok(watch) => watch,
                    Err(err) => {
                        tracing::warn!(%err, "cannot watch function specs; retrying");
                        tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => continue }
                    }
                };
                loop {
                    let entry = tokio::select! {
                        _ = stop.cancelled() => return,
                        entry = watch.next() => entry,
                    };
                    let change = match entry {
                        Some(Ok(entry)) if entry.operation == kv::Operation::Put => {
                            match decode(&entry.key, &entry.value) {
                                Ok(spec) => SpecChange::Deployed(Box::new(spec)),
                                Err(err) => {
                                    tracing::error!(%err, "stored spec ignored");
                                    continue;
                                }
                            }
                        }
                        // A bare key is removed only when it moves under its namespace: nothing is removed.
                        Some(Ok(entry)) if !entry.key.contains('.') => continue,
                        Some(Ok(entry)) => match FunctionRef::from_key(&entry.key) {
                            Some(function) => SpecChange::Removed(function),
                            None => continue,
                        },
                        Some(Err(err)) => {
                            tracing::warn!(%err, "function watch interrupted; resuming");
                            break;
                        }
                        None => break,
                    };
                    if changes.send(change).await.is_err() {
                        return; // nobody listens any more
                    }
                }
            }
        });
        received
    }
}

/// A stored spec. One stored before namespaces existed has no namespace of its own: its key says where it lives.
pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<FunctionSpec, StoreError> {
    let mut spec: FunctionSpec = serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        what: "function spec",
        key: key.to_owned(),
        source,
    })?;
    if spec.namespace.is_none() {
        spec.namespace = FunctionRef::from_key(key).map(|f| f.namespace);
    }
    Ok(spec)
}
