//! Function specs as the invocation routes need them: kept in memory from a KV watch, so accepting a call
//! costs no KV read. A miss (a function deployed through another gateway a moment ago) falls back to KV.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use async_nats::jetstream::kv::Operation;
use futures::StreamExt;
use sluice_schemas::{
    FunctionSpec,
    store::{FunctionStore, StoreError},
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
        while !stop.is_cancelled() {
            let mut watch = match self.store.kv().watch_with_history(">").await {
                Ok(watch) => watch,
                Err(err) => {
                    tracing::warn!(%err, "cannot watch function specs; calls read them from KV meanwhile");
                    tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => continue }
                }
            };
            loop {
                let entry = tokio::select! {
                    _ = stop.cancelled() => return,
                    entry = watch.next() => entry,
                };
                match entry {
                    Some(Ok(entry)) if entry.operation == Operation::Put => {
                        match serde_json::from_slice::<FunctionSpec>(&entry.value) {
                            Ok(spec) => self.insert(Arc::new(spec)),
                            Err(err) => tracing::error!(function = %entry.key, %err, "stored spec is invalid"),
                        }
                    }
                    Some(Ok(entry)) => self.remove(&entry.key),
                    Some(Err(err)) => {
                        tracing::warn!(%err, "function watch interrupted; resuming");
                        break;
                    }
                    None => break,
                }
            }
            // Specs may have changed while the watch was down; it replays them all when it resumes.
        }
    }
}
