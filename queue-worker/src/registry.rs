//! Following KV `sluice_functions`: one consume loop per deployed function, restarted when its spec
//! changes and stopped when it is removed.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_nats::jetstream::kv::Operation;
use futures::StreamExt;
use sluice_runtime::Runtime;
use sluice_schemas::FunctionSpec;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError, consume};

struct FunctionLoop {
    spec: Arc<FunctionSpec>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Watches the function specs until `shutdown`, then stops every consume loop (started calls go on).
pub async fn run(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let mut loops: HashMap<String, FunctionLoop> = HashMap::new();
    let mut first = true;
    while !shutdown.is_cancelled() {
        let mut watch = match worker.topology.functions.watch_with_history(">").await {
            Ok(watch) => watch,
            Err(err) if first => return Err(WorkerError::Watch(err.to_string())),
            Err(err) => {
                tracing::warn!(%err, "function watch failed; retrying");
                tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(Duration::from_secs(1)) => continue }
            }
        };
        first = false;
        loop {
            let entry = tokio::select! {
                _ = shutdown.cancelled() => break,
                entry = watch.next() => entry,
            };
            match entry {
                Some(Ok(entry)) if entry.operation == Operation::Put => {
                    match serde_json::from_slice::<FunctionSpec>(&entry.value) {
                        Ok(spec) => apply(&worker, &mut loops, spec).await,
                        Err(err) => tracing::error!(function = %entry.key, %err, "stored spec is invalid; ignored"),
                    }
                }
                Some(Ok(entry)) => remove(&worker, &mut loops, &entry.key),
                Some(Err(err)) => {
                    tracing::warn!(%err, "function watch interrupted; resuming");
                    break;
                }
                None => break,
            }
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
    if let Err(err) = worker.runtimes.deploy(&spec).await {
        tracing::warn!(function = %spec.service, %err, "function is not ready on this worker");
    }
    let spec = Arc::new(spec);
    worker.specs.write().expect("spec map lock").insert(spec.service.clone(), spec.clone());
    if let Some(old) = loops.remove(&spec.service) {
        old.stop.cancel(); // its running calls finish under the old spec
    }
    let stop = CancellationToken::new();
    let task = tokio::spawn(consume::run(worker.clone(), spec.clone(), stop.clone()));
    tracing::info!(function = %spec.service, runtime = spec.runtime_kind().as_str(), "serving function");
    loops.insert(spec.service.clone(), FunctionLoop { spec, stop, task });
}

fn remove(worker: &Worker, loops: &mut HashMap<String, FunctionLoop>, name: &str) {
    worker.specs.write().expect("spec map lock").remove(name);
    if let Some(old) = loops.remove(name) {
        old.stop.cancel();
        tracing::info!(function = %name, "function removed; no longer serving it");
    }
}
