//! Function specs in KV `sluice_functions`, keyed by function name.

use async_nats::jetstream::kv;
use futures::TryStreamExt;

use super::StoreError;
use crate::FunctionSpec;

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

    pub async fn get(&self, name: &str) -> Result<Option<FunctionSpec>, StoreError> {
        if !crate::function::is_dns_label(name) {
            return Ok(None); // not a key that can exist, nor a valid KV key
        }
        let Some(bytes) = self.kv.get(name).await.map_err(StoreError::unavailable)? else {
            return Ok(None);
        };
        decode(name, &bytes).map(Some)
    }

    /// Stores `spec`; returns whether a function of that name existed before.
    pub async fn put(&self, spec: &FunctionSpec) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(spec).expect("a spec always serialises");
        self.kv.put(&spec.service, bytes.into()).await.map_err(StoreError::unavailable)?;
        Ok(())
    }

    /// Removes a function; returns false when there was none.
    pub async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        if self.get(name).await?.is_none() {
            return Ok(false);
        }
        self.kv.delete(name).await.map_err(StoreError::unavailable)?;
        Ok(true)
    }

    /// Every deployed function, by name.
    pub async fn list(&self) -> Result<Vec<FunctionSpec>, StoreError> {
        let keys: Vec<String> = self
            .kv
            .keys()
            .await
            .map_err(StoreError::unavailable)?
            .try_collect()
            .await
            .map_err(StoreError::unavailable)?;
        let mut specs = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(spec) = self.get(&key).await? {
                specs.push(spec);
            }
        }
        specs.sort_by(|a, b| a.service.cmp(&b.service));
        Ok(specs)
    }
}

pub(crate) fn decode(key: &str, bytes: &[u8]) -> Result<FunctionSpec, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        what: "function spec",
        key: key.to_owned(),
        source,
    })
}
