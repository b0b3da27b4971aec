//! Function specs kept in memory from a KV watch, so the hot paths (accepting a call, routing an event) cost no
//! KV read. A miss (a function deployed through another process a moment ago) falls back to KV.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use super::{FunctionStore, SpecChange, StoreError};
use sluice_contracts::{FunctionRef, FunctionSpec};
use tokio_util::sync::CancellationToken;

/// Specs by namespace and name, following KV `sluice_functions`.
pub struct FunctionCache {
    specs: RwLock<HashMap<FunctionRef, Arc<FunctionSpec>>>,
    store: FunctionStore,
}

impl FunctionCache {
    /// A cache that follows the store until `stop`.
    pub fn start(store: FunctionStore, stop: CancellationToken) -> Arc<Self> {
        let cache = Arc::new(Self { specs: RwLock::default(), store });
        tokio::spawn(cache.clone().follow(stop));
        cache
    }

    pub async fn get(&self, function: &FunctionRef) -> Result<Option<Arc<FunctionSpec>>, StoreError> {
        if let Some(spec) = self.specs.read().expect("function cache lock").get(function) {
            return Ok(Some(spec.clone()));
        }
        let found = self.store.get(function).await?.map(Arc::new);
        if let Some(spec) = &found {
            self.insert(spec.clone());
        }
        Ok(found)
    }

    /// Every spec known now.
    pub fn all(&self) -> Vec<Arc<FunctionSpec>> {
        self.specs.read().expect("function cache lock").values().cloned().collect()
    }

    /// Takes a change made through this process at once, ahead of the watch.
    pub fn insert(&self, spec: Arc<FunctionSpec>) {
        self.specs.write().expect("function cache lock").insert(spec.function_ref(), spec);
    }

    pub fn remove(&self, function: &FunctionRef) {
        self.specs.write().expect("function cache lock").remove(function);
    }

    async fn follow(self: Arc<Self>, stop: CancellationToken) {
        let mut changes = self.store.follow(stop);
        while let Some(change) = changes.recv().await {
            match change {
                SpecChange::Deployed(spec) => self.insert(Arc::new(*spec)),
                SpecChange::Removed(function) => self.remove(&function),
            }
        }
    }
}
