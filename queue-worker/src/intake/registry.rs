//! Following KV `sluice_functions`: one consume loop per deployed function, restarted when its spec
//! changes and stopped when it is removed.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use sluice_contracts::{FunctionRef, FunctionSpec};
use sluice_jetstream::store::{FunctionStore, SpecChange};
use sluice_runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError, consume, deleted, metrics, secrets};

struct FunctionLoop {
    spec: Arc<FunctionSpec>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Follows the function specs until `shutdown`, then stops every consume loop (started calls go on).
pub async fn run(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let mut loops: HashMap<FunctionRef, FunctionLoop> = HashMap::new();
    let store = FunctionStore::new(worker.topology.functions.clone());
    // What functions removed while this worker was down still hold (containers).
    match store.list(None).await {
        Ok(specs) => {
            let deployed: HashSet<String> = specs.into_iter().map(|s| s.function_ref().key()).collect();
            if let Err(err) = worker.runtimes.remove_orphans(&deployed).await {
                tracing::warn!(%err, "cannot look for orphan containers");
            }
        }
        Err(err) => tracing::warn!(%err, "cannot list functions; orphan containers stay for now"),
    }
    let mut changes = store.follow(shutdown.clone());
    while let Some(change) = changes.recv().await {
        match change {
            SpecChange::Deployed(deployed) => apply(&worker, &mut loops, deployed.spec).await,
            SpecChange::Removed(function) => remove(&worker, &mut loops, &function, &shutdown).await,
            SpecChange::Applied(_) => {}
        }
    }
    for (_, l) in loops.drain() {
        l.stop.cancel();
        let _ = l.task.await;
    }
    Ok(())
}

async fn apply(worker: &Arc<Worker>, loops: &mut HashMap<FunctionRef, FunctionLoop>, spec: FunctionSpec) {
    let function = spec.function_ref();
    if loops.get(&function).is_some_and(|l| *l.spec == spec) {
        return;
    }
    if let Err(err) = secrets::materialize(worker, &spec).await {
        tracing::warn!(function = %function, %err, "function secrets not available");
    }
    if let Err(err) = worker.runtimes.deploy(&spec).await {
        tracing::warn!(function = %function, %err, "function is not ready on this worker");
    }
    let spec = Arc::new(spec);
    metrics::served(&function);
    worker.specs.write().expect("spec map lock").insert(function.clone(), spec.clone());
    if let Some(old) = loops.remove(&function) {
        old.stop.cancel(); // its running calls finish under the old spec
    }
    let stop = CancellationToken::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(consume::function_limit(worker, &spec)));
    worker.function_slots.write().expect("slot map lock").insert(function.clone(), slots.clone());
    let poll = worker.polls.of(&function);
    let task = tokio::spawn(consume::run(worker.clone(), spec.clone(), slots, poll, stop.clone()));
    tracing::info!(function = %function, runtime = spec.runtime_kind().as_str(), "serving function");
    loops.insert(function, FunctionLoop { spec, stop, task });
}

async fn remove(
    worker: &Arc<Worker>,
    loops: &mut HashMap<FunctionRef, FunctionLoop>,
    function: &FunctionRef,
    shutdown: &CancellationToken,
) {
    worker.specs.write().expect("spec map lock").remove(function);
    worker.function_slots.write().expect("slot map lock").remove(function);
    worker.polls.forget(function);
    if let Some(old) = loops.remove(function) {
        old.stop.cancel();
        tracing::info!(%function, "function removed; no longer serving it");
        worker.tracker.spawn(deleted::drain(worker.clone(), old.spec, shutdown.clone()));
    }
    worker.runtimes.remove(&function.key()).await;
    secrets::forget(worker, &function.key());
}
