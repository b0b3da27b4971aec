//! Following KV `sluice_functions`: one consume loop per deployed function, restarted when its spec
//! changes and stopped when it is removed.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use sluice_contracts::FunctionSpec;
use sluice_jetstream::store::{FunctionStore, SpecChange};
use sluice_runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError, consume, deleted, secrets};

struct FunctionLoop {
    spec: Arc<FunctionSpec>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Follows the function specs until `shutdown`, then stops every consume loop (started calls go on).
pub async fn run(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let mut loops: HashMap<String, FunctionLoop> = HashMap::new();
    let store = FunctionStore::new(worker.topology.functions.clone());
    // What functions removed while this worker was down still hold (containers).
    match store.list().await {
        Ok(specs) => {
            let deployed: HashSet<String> = specs.into_iter().map(|s| s.service).collect();
            if let Err(err) = worker.runtimes.remove_orphans(&deployed).await {
                tracing::warn!(%err, "cannot look for orphan containers");
            }
        }
        Err(err) => tracing::warn!(%err, "cannot list functions; orphan containers stay for now"),
    }
    let mut changes = store.follow(shutdown.clone());
    while let Some(change) = changes.recv().await {
        match change {
            SpecChange::Deployed(spec) => apply(&worker, &mut loops, *spec).await,
            SpecChange::Removed(name) => remove(&worker, &mut loops, &name, &shutdown).await,
        }
    }
    for (_, l) in loops.drain() {
        l.stop.cancel();
        let _ = l.task.await;
    }
    Ok(())
}

async fn apply(worker: &Arc<Worker>, loops: &mut HashMap<String, FunctionLoop>, spec: FunctionSpec) {
    if loops.get(&spec.service).is_some_and(|l| *l.spec == spec) {
        return;
    }
    if let Err(err) = secrets::materialize(worker, &spec).await {
        tracing::warn!(function = %spec.service, %err, "function secrets not available");
    }
    if let Err(err) = worker.runtimes.deploy(&spec).await {
        tracing::warn!(function = %spec.service, %err, "function is not ready on this worker");
    }
    let spec = Arc::new(spec);
    worker.specs.write().expect("spec map lock").insert(spec.service.clone(), spec.clone());
    if let Some(old) = loops.remove(&spec.service) {
        old.stop.cancel(); // its running calls finish under the old spec
    }
    let stop = CancellationToken::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(consume::function_limit(worker, &spec)));
    worker.function_slots.write().expect("slot map lock").insert(spec.service.clone(), slots.clone());
    let task = tokio::spawn(consume::run(worker.clone(), spec.clone(), slots, stop.clone()));
    tracing::info!(function = %spec.service, runtime = spec.runtime_kind().as_str(), "serving function");
    loops.insert(spec.service.clone(), FunctionLoop { spec, stop, task });
}

async fn remove(
    worker: &Arc<Worker>,
    loops: &mut HashMap<String, FunctionLoop>,
    name: &str,
    shutdown: &CancellationToken,
) {
    worker.specs.write().expect("spec map lock").remove(name);
    worker.function_slots.write().expect("slot map lock").remove(name);
    if let Some(old) = loops.remove(name) {
        old.stop.cancel();
        tracing::info!(function = %name, "function removed; no longer serving it");
        worker.tracker.spawn(deleted::drain(worker.clone(), old.spec, shutdown.clone()));
    }
    worker.runtimes.remove(name).await;
    secrets::forget(worker, name);
}
