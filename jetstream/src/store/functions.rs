//! Function specs in KV `sluice_functions`, keyed `{namespace}.{function}`.

use async_nats::jetstream::kv;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{StoreError, follow::Followed, written_at};
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
        Ok(Some(Deployed { spec: decode(&name, &entry.value)?, deployed_at: written_at(entry.created) }))
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
        found.sort_unstable_by(|a, b| {
            (a.spec.namespace.as_deref(), &a.spec.service).cmp(&(b.spec.namespace.as_deref(), &b.spec.service))
        });
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
    Deployed(Box<Deployed>),
    Removed(FunctionRef),
    /// Every change up to this revision of the bucket has been given: sent once the specs as they stood have
    /// all been given, then after each change.
    Applied(u64),
}

impl FunctionStore {
    /// Every spec as it stands, then each change as it happens, until `stop`; resumes by itself after a NATS
    /// outage.
    pub fn follow(&self, stop: CancellationToken) -> mpsc::Receiver<SpecChange> {
        let (changes, received) = mpsc::channel(256);
        let mut followed = super::follow::follow(self.kv.clone(), stop);
        tokio::spawn(async move {
            while let Some(followed) = followed.recv().await {
                let change = match followed {
                    Followed::Applied(revision) => Some(SpecChange::Applied(revision)),
                    Followed::Entry(entry) if entry.operation == kv::Operation::Put => {
                        match decode(&entry.key, &entry.value) {
                            Ok(spec) => Some(SpecChange::Deployed(Box::new(Deployed {
                                spec,
                                deployed_at: written_at(entry.created),
                            }))),
                            Err(err) => {
                                tracing::error!(%err, "stored spec ignored");
                                None
                            }
                        }
                    }
                    // A bare key is removed only when it moves under its namespace: nothing is removed.
                    Followed::Entry(entry) if !entry.key.contains('.') => None,
                    Followed::Entry(entry) => FunctionRef::from_key(&entry.key).map(SpecChange::Removed),
                };
                if let Some(change) = change
                    && changes.send(change).await.is_err()
                {
                    return; // nobody listens any more
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
