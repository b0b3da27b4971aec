//! Function specs kept in memory from a KV watch, so the hot paths (accepting a call, routing an event) cost no
//! KV read, and a listing none either once the watch has given every spec. A miss (a function deployed through
//! another process a moment ago) falls back to KV.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use chrono::{DateTime, Utc};
use sluice_contracts::{FunctionRef, FunctionSpec};
use tokio_util::sync::CancellationToken;

use super::{Deployed, FunctionStore, SpecChange, StoreError};

/// A spec, and when it was written.
type Written = (Arc<FunctionSpec>, DateTime<Utc>);

/// Specs by namespace and name, following KV `sluice_functions`, with when each was written.
pub struct FunctionCache {
    specs: RwLock<HashMap<FunctionRef, Written>>,
    /// Whether the watch has given every spec there was when it began.
    current: AtomicBool,
    store: FunctionStore,
}

impl FunctionCache {
    /// A cache that follows the store until `stop`.
    pub fn start(store: FunctionStore, stop: CancellationToken) -> Arc<Self> {
        let cache = Arc::new(Self { specs: RwLock::default(), current: AtomicBool::new(false), store });
        tokio::spawn(cache.clone().follow(stop));
        cache
    }

    pub async fn get(&self, function: &FunctionRef) -> Result<Option<Arc<FunctionSpec>>, StoreError> {
        if let Some((spec, _)) = self.specs.read().expect("function cache lock").get(function) {
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
        self.specs.read().expect("function cache lock").values().map(|(spec, _)| spec.clone()).collect()
    }

    /// The functions deployed in `namespace`, sorted as the store lists them; `None` until the watch has given
    /// every spec (then the store must be read).
    pub fn deployed_in(&self, namespace: &str) -> Option<Vec<Deployed>> {
        if !self.current.load(Ordering::Acquire) {
            return None;
        }
        let specs = self.specs.read().expect("function cache lock");
        let mut found: Vec<Deployed> = specs
            .iter()
            .filter(|(function, _)| function.namespace == namespace)
            .map(|(_, (spec, at))| Deployed { spec: (**spec).clone(), deployed_at: *at })
            .collect();
        drop(specs);
        found.sort_by_key(|deployed| deployed.spec.function_ref());
        Some(found)
    }

    /// Takes a change made through this process at once, ahead of the watch (which brings the time the store
    /// gave it). The same spec brought by the watch already keeps the store's time.
    pub fn insert(&self, spec: Arc<FunctionSpec>) {
        let mut specs = self.specs.write().expect("function cache lock");
        let function = spec.function_ref();
        if specs.get(&function).is_none_or(|(known, _)| **known != *spec) {
            specs.insert(function, (spec, Utc::now()));
        }
    }

    fn insert_at(&self, spec: Arc<FunctionSpec>, at: DateTime<Utc>) {
        self.specs.write().expect("function cache lock").insert(spec.function_ref(), (spec, at));
    }

    pub fn remove(&self, function: &FunctionRef) {
        self.specs.write().expect("function cache lock").remove(function);
    }

    async fn follow(self: Arc<Self>, stop: CancellationToken) {
        let mut changes = self.store.follow(stop);
        while let Some(change) = changes.recv().await {
            match change {
                SpecChange::Deployed(spec, at) => self.insert_at(Arc::new(*spec), at),
                SpecChange::Removed(function) => self.remove(&function),
                SpecChange::Current => self.current.store(true, Ordering::Release),
            }
        }
    }
}
