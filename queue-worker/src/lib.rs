//! The queue worker: takes calls off JetStream, runs them, and delivers their outcomes.
//!
//! For every function in KV `sluice_functions` the worker pulls from that function's durable consumer on
//! `SLUICE_INVOCATIONS` (shared by all workers, so each call runs on one), runs the call through its
//! [`Runtime`](sluice_runtime::Runtime), POSTs the callback, publishes the completion event to
//! `sluice.results.{function}`, records the outcome in `sluice_calls`, and only then acks. While a call runs its
//! lease is kept with in-progress acks, so a call far longer than the ack wait is not redelivered; if the
//! worker dies, the lease lapses and another worker runs the call.
//!
//! Concurrency is bounded twice: a worker-wide limit (`max_inflight`) and a per-function one
//! (`async.maxInflight`). Per-function consumers plus a FIFO semaphore make the worker fair: a flood of calls
//! to one function queues behind its own consumer and cannot stall another function's calls.
//!
//! Synchronous calls arrive by NATS request/reply on `sluice.sync.{function}` in a queue group and share the
//! worker-wide limit.

mod callback;
mod cancel;
mod consume;
mod deleted;
mod execute;
mod lease;
mod logs;
mod metrics;
mod notices;
mod outbox;
mod outcome;
mod record;
mod registry;
mod results;
mod retry;
mod scaling;
mod secrets;
mod sweep;
mod sync;

use std::{sync::Arc, time::Duration};

use sluice_jetstream::{Queue, store::CallStore, topology::Topology};
use sluice_runtime::Runtimes;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use callback::CallbackConfig;
pub use retry::RetryDefaults;
pub use sweep::SweepConfig;

/// How a worker takes and runs calls.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Calls this worker runs at once, over all functions.
    pub max_inflight: usize,
    /// The consumers' ack wait: how long a call's lease lasts without an in-progress ack.
    pub ack_wait: Duration,
    /// How long one attempt may run when its function sets no `async.timeout`.
    pub default_timeout: Duration,
    /// On shutdown, how long started calls may go on before they are handed back to the queue.
    pub grace_period: Duration,
    pub retry: RetryDefaults,
    pub callback: CallbackConfig,
    /// Collection of stored bodies no call needs.
    pub sweep: SweepConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            max_inflight: 64,
            ack_wait: Duration::from_secs(30),
            default_timeout: Duration::from_secs(300),
            grace_period: Duration::from_secs(30),
            retry: RetryDefaults::default(),
            callback: CallbackConfig::default(),
            sweep: SweepConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot watch function specs: {0}")]
    Watch(String),
    #[error("cannot subscribe to synchronous calls: {0}")]
    Subscribe(String),
}

/// What every part of a worker shares.
pub(crate) struct Worker {
    pub cfg: WorkerConfig,
    pub topology: Topology,
    pub calls: CallStore,
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
    pub running: Arc<cancel::Running>,
    /// Current specs by name, kept by the registry; read by synchronous calls.
    pub specs: std::sync::RwLock<std::collections::HashMap<String, Arc<sluice_contracts::FunctionSpec>>>,
    /// Each served function's call slots (`async.maxInflight`), shared by its queued and synchronous calls.
    pub function_slots: std::sync::RwLock<std::collections::HashMap<String, Arc<Semaphore>>>,
}

/// Runs a worker until `shutdown`; then stops taking calls, lets started ones finish within the grace
/// period, and hands the rest back to the queue.
pub async fn run(
    cfg: WorkerConfig,
    topology: Topology,
    runtimes: Runtimes,
    shutdown: CancellationToken,
) -> Result<(), WorkerError> {
    let worker = Arc::new(Worker {
        slots: Arc::new(Semaphore::new(cfg.max_inflight)),
        callbacks: callback::Callbacks::new(cfg.callback.clone()),
        queue: Queue::new(topology.clone()),
        calls: CallStore::new(topology.calls.clone(), topology.jetstream.clone()),
        inline_limit: topology.inline_limit(),
        tracker: TaskTracker::new(),
        abandon: CancellationToken::new(),
        specs: Default::default(),
        function_slots: Default::default(),
        running: Default::default(),
        cfg,
        topology,
        runtimes,
    });
    tracing::info!(max_inflight = worker.cfg.max_inflight, ack_wait = ?worker.cfg.ack_wait, "worker started");
    let cancels = tokio::spawn(cancel::listen(worker.clone(), shutdown.clone()));
    let outbox = tokio::spawn(outbox::dispatch(worker.clone(), shutdown.clone()));
    let sync = tokio::spawn(sync::serve(worker.clone(), shutdown.clone()));
    let scale = tokio::spawn(scaling::listen(worker.clone(), shutdown.clone()));
    tokio::spawn(secrets::follow(worker.clone(), shutdown.clone()));
    tokio::spawn(sweep::run(worker.clone(), worker.cfg.sweep, shutdown.clone()));
    let logs = tokio::spawn(logs::listen(worker.clone(), shutdown.clone()));
    let registry = registry::run(worker.clone(), shutdown.clone()).await;
    let sync = sync.await.unwrap_or_else(|e| Err(WorkerError::Subscribe(e.to_string())));
    let cancels = cancels.await.unwrap_or_else(|e| Err(WorkerError::Subscribe(e.to_string())));
    let _ = outbox.await;
    let scale = scale.await.unwrap_or_else(|e| Err(WorkerError::Subscribe(e.to_string())));
    let logs = logs.await.unwrap_or_else(|e| Err(WorkerError::Subscribe(e.to_string())));
    worker.tracker.close();
    if tokio::time::timeout(worker.cfg.grace_period, worker.tracker.wait()).await.is_err() {
        tracing::warn!(running = worker.tracker.len(), "grace period over; handing running calls back");
        worker.abandon.cancel();
        worker.tracker.wait().await;
    }
    tracing::info!("worker stopped");
    registry.and(sync).and(cancels).and(scale).and(logs)
}
