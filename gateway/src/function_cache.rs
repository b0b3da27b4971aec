//! Function specs as the invocation routes need them: kept in memory from a KV watch, so accepting a call
//! costs no KV read. A miss (a function deployed through another gateway a moment ago) falls back to KV.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use sluice_schemas::{
    FunctionSpec,
    store::{FunctionStore, SpecChange, StoreError},
};
use tokio_util::sync::CancellationToken;

/// Specs by function name, following KV `sluice_functions`.
pub struct FunctionCache {
    specs: RwLock<HashMap<String, Arc<FunctionSpec>>>,
    store: FunctionStore,
}

impl FunctionCache {
    /// A cache that follows the store until `stop`.
    pub fn start(store: FunctionStore, stop: CancellationToken) -> Arc<Self> {
        let cache = Arc::new(Self { specs: RwLock::default(), store });
        tokio::spawn(cache.clone().follow(stop));
        cache
    }

    pub async fn get(&self, name: &str) -> Result<Option<Arc<FunctionSpec>>, StoreError> {
        if let Some(spec) = self.specs.read().expect("function cache lock").get(name) {
            return Ok(Some(spec.clone()));
        }
        let found = self.store.get(name).await?.map(Arc::new);
        if let Some(spec) = &found {
            self.insert(spec.clone());
        }
        Ok(found)
    }

    /// Takes a change made through this gateway at once, ahead of the watch.
    pub fn insert(&self, spec: Arc<FunctionSpec>) {
        self.specs.write().expect("function cache lock").insert(spec.service.clone(), spec);
    }

    pub fn remove(&self, name: &str) {
        self.specs.write().expect("function cache lock").remove(name);
    }

    async fn follow(self: Arc<Self>, stop: CancellationToken) {
        let mut changes = self.store.follow(stop);
        while let Some(change) = changes.recv().await {
            match change {
                SpecChange::Deployed(spec) => self.insert(Arc::new(*spec)),
                SpecChange::Removed(name) => self.remove(&name),
            }
        }
    }
}
