//! Scaling container functions: a per-function loop that feeds queue depth to the docker runtime's
//! autoscaler and reports replica counts to KV `sluice_replicas`, and the handler of manual scale requests
//! (`sluice.scale.{function}`, sent by gateways).

use std::{collections::HashMap, sync::Arc, time::Duration};

use sluice_contracts::{FunctionRef, ReplicaReport, ScaleReply, ScaleRequest, Usage, names};
use sluice_runtime::{DockerRuntime, docker::ReplicaCount};
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError, metrics, notices};

/// How often a container function's load is looked at.
const TICK: Duration = Duration::from_secs(1);
/// A report is renewed at least this often, well inside the bucket's TTL.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Each replica's CPU time when last sampled, to turn the next sample into a rate.
type CpuSeen = HashMap<String, (u64, tokio::time::Instant)>;

/// What the function's replicas use now: memory as sampled, CPU as the rate since the previous sample of the
/// same replica (a replica's first sample counts no CPU).
async fn usage(docker: &DockerRuntime, function: &str, seen: &mut CpuSeen) -> Option<Usage> {
    let samples = docker.usage_samples(function).await;
    let now = tokio::time::Instant::now();
    let mut total: Option<Usage> = None;
    let mut next = CpuSeen::with_capacity(samples.len());
    for (id, cpu_ns, memory) in samples {
        let millicores = match seen.get(&id) {
            Some((before, at)) if now > *at => {
                cpu_ns.saturating_sub(*before) as f64 / now.duration_since(*at).as_nanos() as f64 * 1000.0
            }
            _ => 0.0,
        };
        let one = Usage { cpu: millicores, total_memory_bytes: memory as f64 };
        total = Some(total.map_or(one, |t| t.plus(one)));
        next.insert(id, (cpu_ns, now));
    }
    *seen = next;
    total
}

async fn report(
    worker: &Worker,
    docker: &DockerRuntime,
    function: &FunctionRef,
    count: ReplicaCount,
    seen: &mut CpuSeen,
) {
    metrics::replicas(function, count.available);
    let report = ReplicaReport {
        desired: count.desired,
        available: count.available,
        updated_at: chrono::Utc::now(),
        usage: usage(docker, &function.key(), seen).await,
    };
    let key = names::replicas_key(function, &docker.config().worker_id);
    let value = serde_json::to_vec(&report).expect("reports serialize");
    if let Err(err) = worker.topology.replicas.put(key, value.into()).await {
        tracing::debug!(%err, %function, "replica report not stored");
    }
}

/// Autoscales one container function until `stop`, then withdraws this worker's report.
pub async fn autoscale(worker: Arc<Worker>, function: FunctionRef, stop: CancellationToken) {
    let key = function.key();
    let Some(docker) = worker.runtimes.containers().cloned() else { return };
    let mut every = tokio::time::interval(TICK);
    let mut last: Option<(ReplicaCount, tokio::time::Instant)> = None;
    let mut cpu_seen = CpuSeen::new();
    loop {
        tokio::select! { _ = stop.cancelled() => break, _ = every.tick() => {} }
        // Calls not yet delivered to any worker: what more replicas would take (the queue's metrics are
        // `intake::queues`').
        // None while the function is idle: its consumer is only there while calls are.
        let queued = queued_undelivered(&worker, &function).await;
        docker.tick(&key, queued).await;
        let count = docker.replicas(&key);
        if last.is_none_or(|(c, at)| c != count || at.elapsed() >= REPORT_EVERY) {
            report(&worker, &docker, &function, count, &mut cpu_seen).await;
            last = Some((count, tokio::time::Instant::now()));
        }
    }
    let key = names::replicas_key(&function, &docker.config().worker_id);
    let _ = worker.topology.replicas.delete(key).await;
}

/// Calls of `function` its consumer has not delivered yet; none when it has no consumer.
async fn queued_undelivered(worker: &Worker, function: &FunctionRef) -> u64 {
    let Ok(stream) = worker.topology.jetstream.get_stream_no_info(names::invocations_stream(function)).await else {
        return 0;
    };
    stream.consumer_info(names::invoke_consumer(function)).await.map_or(0, |info| info.num_pending)
}

/// Answers manual scale requests for the container functions this worker runs, until `shutdown`.
pub async fn listen(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let Some(docker) = worker.runtimes.containers().cloned() else { return Ok(()) };
    notices::each(&worker, names::SCALE_PREFIX, &shutdown, |key, request| {
        let Some(function) = FunctionRef::from_key(&key) else { return };
        let (worker, docker) = (worker.clone(), docker.clone());
        tokio::spawn(async move {
            let answer = match serde_json::from_slice::<ScaleRequest>(&request.payload) {
                Err(err) => ScaleReply::Failed { error: format!("bad scale request: {err}") },
                Ok(scale) => match docker.scale(&key, scale.replicas).await {
                    Ok(count) => {
                        report(&worker, &docker, &function, count, &mut CpuSeen::new()).await;
                        ScaleReply::Scaled { desired: count.desired, available: count.available }
                    }
                    Err(err) => ScaleReply::Failed { error: err.to_string() },
                },
            };
            if let Some(reply) = request.reply {
                let answer = serde_json::to_vec(&answer).expect("replies serialize");
                let _ = worker.topology.client.publish(reply, answer.into()).await;
            }
        });
    })
    .await
}
