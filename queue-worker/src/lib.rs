//! The queue worker: takes calls off JetStream, runs them, and delivers their outcomes.
//!
//! For every function in KV `sluice_functions` the worker pulls from that function's durable consumer on its
//! shard of the queue, `SLUICE_QUEUE_nn` (shared by all workers, so each call runs on one), runs the call through its
//! [`Runtime`](sluice_runtime::Runtime), POSTs the callback, publishes the completion event to
//! `sluice.results.{namespace}.{function}`, records the outcome in `sluice_calls`, and only then acks. While a
//! call runs its lease is kept with in-progress acks, so a call far longer than the ack wait is not redelivered;
//! if the worker dies, the lease lapses and another worker runs the call.
//!
//! Concurrency is bounded twice: a worker-wide limit (`max_inflight`) and a per-function one
//! (`async.maxInflight`). Per-function consumers plus a FIFO semaphore make the worker fair: a flood of calls
//! to one function queues behind its own consumer and cannot stall another function's calls.
//!
//! Synchronous calls arrive by NATS request/reply on `sluice.sync.{function}` in a queue group and share the
//! worker-wide limit.
//!
//! The modules are grouped by what they serve: `intake` (taking calls), `execution` (running one call),
//! `delivery` (callbacks, the outbox, completion events, the body sweep) and `containers` (scaling, logs and
//! secret files of container functions). Every part runs supervised: one that fails stops the worker.

mod containers;
mod delivery;
mod execution;
mod intake;
mod metrics;
mod presence;
#[cfg(test)]
mod test_nats;

// Each module by its own name inside the crate; the folders say which part of the worker it serves.
use containers::{logs, scaling, secrets};
use delivery::{callback, chain, fanout, outbox, progress, results, sweep};
use execution::{cancel, execute, lease, outcome, record, retry, running};
use intake::{consume, deleted, notices, pulls, registry, reports, sync};

use sluice_contracts::FunctionRef;
use std::{sync::Arc, time::Duration};

use sluice_jetstream::{
    Queue,
    store::{CallStore, InvocationTally},
    topology::Topology,
};
use sluice_runtime::Runtimes;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use callback::CallbackConfig;
pub use reports::ProgressEndpoint;
pub use retry::RetryDefaults;
pub use sweep::SweepConfig;

/// How a worker takes and runs calls.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Calls this worker runs at once, over all functions.
    pub max_inflight: usize,
    /// The consumers' ack wait: how long a call's lease lasts without an in-progress ack.
    pub ack_wait: Duration,
    /// How long a function's queue is polled with no call before this worker stops polling it and waits for a
    /// call to be published instead; also its consumer's inactive threshold, after which the server lets the
    /// consumer of a function no worker polls go (`intake::consume`).
    pub idle_after: Duration,
    /// How long one attempt may run when its function sets no `async.timeout`.
    pub default_timeout: Duration,
    /// On shutdown, how long started calls may go on before they are handed back to the queue.
    pub grace_period: Duration,
    pub retry: RetryDefaults,
    pub callback: CallbackConfig,
    /// Collection of stored bodies no call needs.
    pub sweep: SweepConfig,
    /// Where functions reach this worker's [`ProgressEndpoint`]; a call gets no progress URL without one.
    pub progress: ProgressUrls,
    /// Longest chain of `async.onSuccess`/`onFailure` steps; a step past it is recorded failed, not run.
    pub max_chain_depth: u32,
    /// This worker's name (`--worker-id`), in its presence and on its containers.
    pub worker_id: String,
    /// Most calls fanned out in one pipeline (from one root call), over all its fan-outs: fan-outs of
    /// fan-outs multiply, and this is where they stop.
    pub max_pipeline_calls: u64,
}

/// The base URLs (scheme, host and port) of this worker's progress endpoint, as functions reach it.
#[derive(Clone, Debug, Default)]
pub struct ProgressUrls {
    /// For processes on this host and HTTP upstreams.
    pub host: Option<String>,
    /// For containers on the function network.
    pub containers: Option<String>,
}

impl ProgressUrls {
    /// The base URL a function of `kind` is given.
    pub fn for_kind(&self, kind: sluice_contracts::RuntimeKind) -> Option<&str> {
        match kind {
            sluice_contracts::RuntimeKind::Docker => self.containers.as_deref().or(self.host.as_deref()),
            _ => self.host.as_deref(),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            max_inflight: 64,
            ack_wait: Duration::from_secs(30),
            idle_after: Duration::from_secs(120),
            default_timeout: Duration::from_secs(300),
            grace_period: Duration::from_secs(30),
            retry: RetryDefaults::default(),
            callback: CallbackConfig::default(),
            sweep: SweepConfig::default(),
            progress: ProgressUrls::default(),
            max_chain_depth: 16,
            max_pipeline_calls: 10_000,
            worker_id: "worker".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot watch function specs: {0}")]
    Watch(String),
    #[error("cannot subscribe: {0}")]
    Subscribe(String),
    #[error("a part of the worker failed: {0}")]
    Crashed(String),
}

/// Current specs by function.
pub(crate) type SpecMap =
    Arc<std::sync::RwLock<std::collections::HashMap<FunctionRef, Arc<sluice_contracts::FunctionSpec>>>>;

/// What every part of a worker shares.
pub(crate) struct Worker {
    pub cfg: WorkerConfig,
    pub topology: Topology,
    pub calls: CallStore,
    /// Finished calls (sync and async) per function, for `invocationCount`.
    pub invocations: InvocationTally,
    /// Where callbacks that failed their first try wait.
    pub queue: Queue,
    pub runtimes: Runtimes,
    /// Worker-wide call slots; tokio's semaphore is FIFO, which is what makes functions take turns.
    pub slots: Arc<Semaphore>,
    pub callbacks: callback::Callbacks,
    /// Every started call, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Cancelled when the grace period is over: calls still running are handed back.
    pub abandon: CancellationToken,
    pub inline_limit: usize,
    /// Calls running here, so a cancellation can stop them.
    pub running: Arc<running::Running>,
    /// The cancellation notices heard lately, so a young call's first delivery need not read its record.
    pub cancels: cancel::Cancels,
    /// Current specs by function, kept by the registry; read by synchronous calls.
    pub specs: SpecMap,
    /// Each served function's call slots (`async.maxInflight`), shared by its queued and synchronous calls.
    pub function_slots: std::sync::RwLock<std::collections::HashMap<FunctionRef, Arc<Semaphore>>>,
    /// Each served function's long poll, renewed when it may have been lost.
    pub polls: pulls::Polls,
}

/// Runs a worker until `shutdown`; then stops taking calls, lets started ones finish within the grace
/// period, and hands the rest back to the queue.
pub async fn run(
    cfg: WorkerConfig,
    topology: Topology,
    runtimes: Runtimes,
    progress: ProgressEndpoint,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let worker = Arc::new(Worker {
        slots: Arc::new(Semaphore::new(cfg.max_inflight)),
        callbacks: callback::Callbacks::new(cfg.callback.clone()),
        queue: Queue::new(topology.clone()),
        calls: CallStore::new(topology.calls.clone(), topology.jetstream.clone()),
        invocations: InvocationTally::new(topology.invocations.clone()),
        inline_limit: topology.inline_limit(),
        tracker: TaskTracker::new(),
        abandon: CancellationToken::new(),
        specs: progress.specs,
        function_slots: Default::default(),
        polls: Default::default(),
        cancels: Default::default(),
        running: progress.running,
        cfg,
        topology,
        runtimes,
    });
    tracing::info!(max_inflight = worker.cfg.max_inflight, ack_wait = ?worker.cfg.ack_wait, "worker started");
    // The worker's own stop: a part that fails stops the whole worker at once (and the caller sees the error)
    // rather than leaving it half alive until shutdown.
    let stop = shutdown.child_token();
    let tasks = [
        supervise("cancellations", &stop, cancel::listen(worker.clone(), stop.clone())),
        supervise("callback outbox", &stop, infallible(outbox::dispatch(worker.clone(), stop.clone()))),
        supervise("synchronous calls", &stop, sync::serve(worker.clone(), stop.clone())),
        supervise("scale requests", &stop, scaling::listen(worker.clone(), stop.clone())),
        supervise("secret files", &stop, infallible(secrets::follow(worker.clone(), stop.clone()))),
        supervise("body sweep", &stop, infallible(sweep::run(worker.clone(), worker.cfg.sweep, stop.clone()))),
        supervise("log requests", &stop, logs::listen(worker.clone(), stop.clone())),
        supervise("function registry", &stop, registry::run(worker.clone(), stop.clone())),
        supervise("invocation counts", &stop, infallible(worker.invocations.clone().flush_every(stop.clone()))),
        supervise("presence", &stop, infallible(presence::announce(worker.clone(), stop.clone()))),
        supervise("queue metrics", &stop, infallible(intake::queues::sample(worker.clone(), stop.clone()))),
        supervise("consumers of before", &stop, infallible(give_idle_time(worker.clone()))),
    ];
    let mut result = Ok(());
    for task in tasks {
        let outcome = task.await.unwrap_or_else(|e| Err(WorkerError::Crashed(e.to_string())));
        result = result.and(outcome);
    }
    worker.tracker.close();
    if tokio::time::timeout(worker.cfg.grace_period, worker.tracker.wait()).await.is_err() {
        tracing::warn!(running = worker.tracker.len(), "grace period over; handing running calls back");
        worker.abandon.cancel();
        worker.tracker.wait().await;
    }
    worker.invocations.flush().await;
    tracing::info!("worker stopped");
    result
}

async fn give_idle_time(worker: Arc<Worker>) {
    intake::old_consumers::give_idle_time(&worker.topology.jetstream, worker.cfg.idle_after).await;
}

async fn infallible(task: impl Future<Output = ()>) -> Result<(), WorkerError> {
    task.await;
    Ok(())
}

/// Runs one part of the worker; if it fails or panics before `stop`, stops the whole worker.
fn supervise(
    name: &'static str,
    stop: &CancellationToken,
    task: impl Future<Output = Result<(), WorkerError>> + Send + 'static,
) -> tokio::task::JoinHandle<Result<(), WorkerError>> {
    let (stop, inner) = (stop.clone(), tokio::spawn(task));
    tokio::spawn(async move {
        let result = inner.await.unwrap_or_else(|panic| Err(WorkerError::Crashed(panic.to_string())));
        if let Err(err) = &result
            && !stop.is_cancelled()
        {
            tracing::error!(%err, task = name, "a part of the worker failed; stopping the worker");
            stop.cancel();
        }
        result
    })
}
