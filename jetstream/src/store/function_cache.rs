//! Function specs kept in memory from a KV watch, so the hot paths (accepting a call, routing an event) cost no
//! KV read, and a listing only one request: the bucket's latest revision, which the copy must have applied. A
//! miss (a function deployed through another process a moment ago) falls back to KV.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use chrono::{DateTime, Utc};
use sluice_contracts::{FunctionRef, FunctionSpec};
use tokio_util::sync::CancellationToken;

use super::{Deployed, FunctionStore, SpecChange, StoreError, follow::Applied};

/// A spec, and when the store wrote it.
struct Known {
    spec: Arc<FunctionSpec>,
    deployed_at: DateTime<Utc>,
}

/// Specs by namespace and name, following KV `sluice_functions`.
pub struct FunctionCache {
    specs: RwLock<HashMap<FunctionRef, Known>>,
    applied: Applied,
    store: FunctionStore,
}

impl FunctionCache {
    /// A cache that follows the store until `stop`.
    pub fn start(store: FunctionStore, stop: CancellationToken) -> Arc<Self> {
        let cache = Arc::new(Self { specs: RwLock::default(), applied: Applied::default(), store });
        tokio::spawn(cache.clone().follow(stop));
        cache
    }

    pub async fn get(&self, function: &FunctionRef) -> Result<Option<Arc<FunctionSpec>>, StoreError> {
        if let Some(known) = self.specs.read().expect("function cache lock").get(function) {
            return Ok(Some(known.spec.clone()));
        }
        let found = self.store.get(function).await?.map(Arc::new);
        if let Some(spec) = &found {
            self.insert(spec.clone());
        }
        Ok(found)
    }

    /// Every spec known now.
    pub fn all(&self) -> Vec<Arc<FunctionSpec>> {
        self.specs.read().expect("function cache lock").values().map(|known| known.spec.clone()).collect()
    }

    /// Every function deployed in `namespace`, by name, as the store has them now: from memory once the watch
    /// has applied the bucket's latest revision (waiting for it briefly), else read from the store.
    pub async fn deployed_in(&self, namespace: &str) -> Result<Vec<Deployed>, StoreError> {
        if !self.applied.caught_up(self.store.kv()).await? {
            return self.store.list_deployed(Some(namespace)).await;
        }
        let specs = self.specs.read().expect("function cache lock");
        let mut found: Vec<Deployed> = specs
            .iter()
            .filter(|(function, _)| function.namespace == namespace)
            .map(|(_, known)| Deployed { spec: (*known.spec).clone(), deployed_at: known.deployed_at })
            .collect();
        drop(specs);
        found.sort_unstable_by(|a, b| a.spec.service.cmp(&b.spec.service));
        Ok(found)
    }

    /// Takes a change made through this process at once, ahead of the watch (which brings the time the store
    /// wrote it). The same spec already brought by the watch keeps the store's time.
    pub fn insert(&self, spec: Arc<FunctionSpec>) {
        let mut specs = self.specs.write().expect("function cache lock");
        let function = spec.function_ref();
        if specs.get(&function).is_none_or(|known| *known.spec != *spec) {
            specs.insert(function, Known { spec, deployed_at: Utc::now() });
        }
    }

    pub fn remove(&self, function: &FunctionRef) {
        self.specs.write().expect("function cache lock").remove(function);
    }

    async fn follow(self: Arc<Self>, stop: CancellationToken) {
        let mut changes = self.store.follow(stop);
        while let Some(change) = changes.recv().await {
            match change {
                SpecChange::Deployed(deployed) => {
                    let Deployed { spec, deployed_at } = *deployed;
                    let known = Known { spec: Arc::new(spec), deployed_at };
                    self.specs.write().expect("function cache lock").insert(known.spec.function_ref(), known);
                }
                SpecChange::Removed(function) => self.remove(&function),
                SpecChange::Applied(revision) => self.applied.advance(revision),
            }
        }
    }
}
