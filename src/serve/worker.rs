//! `sluice worker`: a queue worker on its own, and the options and runtimes every worker is built from.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Args;
use sluice_contracts::outbound::OutboundPolicy;
use sluice_gateway::Credentials;
use sluice_jetstream::topology::Topology;
use sluice_queue_worker::{CallbackConfig, RetryDefaults, SweepConfig, WorkerConfig};
use sluice_runtime::{DockerConfig, DockerRuntime, RuntimeConfig, Runtimes};
use tokio_util::sync::CancellationToken;

use super::{CallbackPolicyArgs, NatsArgs, auth, shutdown, telemetry};
use crate::args::{self, LogArgs};

/// Queue worker options.
#[derive(Args, Clone, Debug)]
pub struct WorkerOptions {
    /// Calls this worker runs at once, over all functions.
    #[arg(long, env = "SLUICE_MAX_INFLIGHT", default_value_t = 64)]
    pub max_inflight: usize,
    /// Lease of a running call without an in-progress ack (the consumers' ack wait).
    #[arg(long, env = "SLUICE_ACK_WAIT", default_value = "30s", value_parser = args::duration)]
    pub ack_wait: Duration,
    /// How long a function goes without calls before this worker stops polling its queue and waits for a call
    /// to be published instead; the server removes the function's consumer once no worker has polled it for
    /// as long, so idle functions cost it nothing (at least 1s).
    #[arg(long, env = "SLUICE_IDLE_AFTER", default_value = "2m", value_parser = args::duration)]
    pub idle_after: Duration,
    /// Timeout of calls whose function sets no async.timeout.
    #[arg(long, env = "SLUICE_DEFAULT_TIMEOUT", default_value = "5m", value_parser = args::duration)]
    pub default_timeout: Duration,
    /// On shutdown, how long running calls may go on before they are handed back to the queue.
    #[arg(long, env = "SLUICE_GRACE_PERIOD", default_value = "30s", value_parser = args::duration)]
    pub grace_period: Duration,
    /// Attempts of a call when its function sets no async.retry.attempts (the first included).
    #[arg(long, env = "SLUICE_RETRY_ATTEMPTS", default_value_t = 3)]
    pub retry_attempts: u32,
    /// Shortest wait before a retry when the function sets none.
    #[arg(long, env = "SLUICE_RETRY_MIN_WAIT", default_value = "1s", value_parser = args::duration)]
    pub retry_min_wait: Duration,
    /// Longest wait before a retry when the function sets none.
    #[arg(long, env = "SLUICE_RETRY_MAX_WAIT", default_value = "5m", value_parser = args::duration)]
    pub retry_max_wait: Duration,
    /// Time one callback delivery may take.
    #[arg(long, env = "SLUICE_CALLBACK_TIMEOUT", default_value = "10s", value_parser = args::duration)]
    pub callback_timeout: Duration,
    /// How long an undelivered callback is retried before it is given up.
    #[arg(long, env = "SLUICE_CALLBACK_EXPIRY", default_value = "24h", value_parser = args::duration)]
    pub callback_expiry: Duration,
    /// Longest wait between retries of a callback.
    #[arg(long, env = "SLUICE_CALLBACK_MAX_WAIT", default_value = "5m", value_parser = args::duration)]
    pub callback_max_wait: Duration,
    /// Secret that signs callbacks (X-Sluice-Signature).
    #[arg(long, env = "SLUICE_CALLBACK_SECRET", hide_env_values = true, conflicts_with = "callback_secret_file")]
    pub callback_secret: Option<String>,
    /// File holding the callback signing secret.
    #[arg(long, env = "SLUICE_CALLBACK_SECRET_FILE")]
    pub callback_secret_file: Option<PathBuf>,
    /// Longest chain of async.onSuccess/onFailure steps; a step past it is recorded failed and not run.
    #[arg(long, env = "SLUICE_MAX_CHAIN_DEPTH", default_value_t = 16)]
    pub max_chain_depth: u32,
    /// Most calls fanned out in one pipeline, over all its fan-outs; a fan-out past it fails its call.
    #[arg(long, env = "SLUICE_MAX_PIPELINE_CALLS", default_value_t = 10_000)]
    pub max_pipeline_calls: u64,
    /// How often stored bodies that no call needs any more are looked for and removed.
    #[arg(long, env = "SLUICE_PAYLOADS_SWEEP_EVERY", default_value = "10m", value_parser = args::duration)]
    pub payloads_sweep_every: Duration,
    /// Stored bodies younger than this are never removed by the sweep.
    #[arg(long, env = "SLUICE_PAYLOADS_ORPHAN_AGE", default_value = "1h", value_parser = args::duration)]
    pub payloads_orphan_age: Duration,
    #[command(flatten)]
    pub progress: super::progress::ProgressOptions,
    #[command(flatten)]
    pub docker: DockerOptions,
}

impl WorkerOptions {
    pub fn config(&self, policy: OutboundPolicy) -> anyhow::Result<WorkerConfig> {
        let secret = match (&self.callback_secret, &self.callback_secret_file) {
            (Some(secret), _) => Some(secret.as_bytes().to_vec()),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
                Some(text.trim_end_matches(['\r', '\n']).as_bytes().to_vec())
            }
            (None, None) => None,
        };
        anyhow::ensure!(secret.as_ref().is_none_or(|s| !s.is_empty()), "the callback signing secret is empty");
        Ok(WorkerConfig {
            max_inflight: self.max_inflight.max(1),
            ack_wait: self.ack_wait,
            idle_after: self.idle_after.max(Duration::from_secs(1)),
            default_timeout: self.default_timeout,
            grace_period: self.grace_period,
            retry: RetryDefaults {
                attempts: self.retry_attempts.max(1),
                min_wait: self.retry_min_wait,
                max_wait: self.retry_max_wait.max(self.retry_min_wait),
            },
            callback: CallbackConfig {
                timeout: self.callback_timeout,
                secret,
                expiry: self.callback_expiry,
                max_wait: self.callback_max_wait,
                policy,
                ..Default::default()
            },
            sweep: SweepConfig {
                every: self.payloads_sweep_every.max(Duration::from_secs(1)),
                orphan_age: self.payloads_orphan_age,
            },
            progress: Default::default(),
            max_chain_depth: self.max_chain_depth,
            max_pipeline_calls: self.max_pipeline_calls,
            worker_id: self.docker.worker_id.clone(),
        })
    }
}

/// Whether the worker runs container functions on the local Docker engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DockerMode {
    /// Use the engine when one answers; otherwise container functions fail on this worker.
    Auto,
    /// Require an engine: refuse to start without one.
    On,
    Off,
}

/// The docker runtime's options.
#[derive(Args, Clone, Debug)]
pub struct DockerOptions {
    #[arg(long = "docker", env = "SLUICE_DOCKER", value_enum, default_value = "auto")]
    pub docker_mode: DockerMode,
    /// This worker's name on its containers' labels; workers sharing one engine need different ids.
    #[arg(long, env = "SLUICE_WORKER_ID", default_value_t = default_worker_id())]
    pub worker_id: String,
    /// Bridge network for function containers (created when missing).
    #[arg(long, env = "SLUICE_DOCKER_NETWORK", default_value = "sluice")]
    pub docker_network: String,
    /// Where secret files are written for mounting into containers (default: a private directory under TMPDIR).
    #[arg(long, env = "SLUICE_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// How long a new container may take to become ready (healthy, or `/_/ready` answering).
    #[arg(long, env = "SLUICE_READY_TIMEOUT", default_value = "60s", value_parser = args::duration)]
    pub ready_timeout: Duration,
    /// Largest function response a call may return; a larger one fails the call with a 502, read no further.
    #[arg(long, env = "SLUICE_MAX_RESPONSE", default_value = "64MiB", value_parser = args::byte_size)]
    pub max_response: usize,
    /// Scale-down stabilisation window: replicas are removed only when load stayed low this long.
    #[arg(long, env = "SLUICE_SCALE_DOWN_WINDOW", default_value = "60s", value_parser = args::duration)]
    pub scale_down_window: Duration,
}

fn default_worker_id() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned())
}

impl DockerOptions {
    /// The worker's runtimes, with docker when the options and the engine allow.
    pub async fn runtimes(&self) -> anyhow::Result<Runtimes> {
        let runtime_cfg = RuntimeConfig { max_response_bytes: self.max_response };
        let runtimes = Runtimes::new(runtime_cfg.clone());
        if self.docker_mode == DockerMode::Off {
            return Ok(runtimes);
        }
        let secrets_dir = self
            .secrets_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("sluice-secrets-{}", self.worker_id)));
        let cfg = DockerConfig {
            worker_id: self.worker_id.clone(),
            network: self.docker_network.clone(),
            secrets_dir,
            ready_timeout: self.ready_timeout,
            scale_down_window: self.scale_down_window,
            ..Default::default()
        };
        match DockerRuntime::connect(cfg, runtime_cfg).await {
            Ok(docker) => Ok(runtimes.with_docker(docker)),
            Err(err) if self.docker_mode == DockerMode::Auto => {
                tracing::warn!(%err, "no Docker engine: container functions will not run on this worker");
                Ok(runtimes)
            }
            Err(err) => Err(anyhow::Error::new(err).context("--docker on: cannot reach the Docker engine")),
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub worker: WorkerOptions,
    #[command(flatten)]
    pub policy: CallbackPolicyArgs,
    /// Serve /metrics for this worker on this address.
    #[arg(long, env = "SLUICE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// File holding bearer tokens /metrics requires, one per line (open without it).
    #[arg(long, env = "SLUICE_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// `sluice worker`.
pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let _traces = telemetry::init(&args.log, "sluice-worker")?;
    let metrics = telemetry::metrics_recorder()?;
    let topology = args.nats.topology(args.nats.required_url()?, "sluice-worker").await?;
    let stop = shutdown::on_signal();
    if let Some(addr) = args.metrics_listen {
        let guard = match &args.metrics_token_file {
            Some(file) => {
                sluice_gateway::Guard::new(Some(Credentials { basic: None, tokens: auth::token_file(file)? }))
            }
            None => sluice_gateway::Guard::new(None),
        };
        tokio::spawn(telemetry::serve_metrics(addr, metrics, guard, stop.clone()));
    }
    let cfg = args.worker.config(args.policy.policy())?;
    let runtimes = args.worker.docker.runtimes().await?;
    run_worker(cfg, &args.worker.progress, runtimes, topology, stop).await
}

/// Runs a worker, with its progress endpoint, until `stop`.
pub async fn run_worker(
    mut cfg: WorkerConfig,
    progress: &super::progress::ProgressOptions,
    runtimes: Runtimes,
    topology: Topology,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let endpoint = sluice_queue_worker::ProgressEndpoint::new();
    // Stopped after the worker: calls finishing in the grace period may still report.
    let endpoint_stop = CancellationToken::new();
    cfg.progress = super::progress::start(progress, &runtimes, &endpoint, &endpoint_stop).await?;
    let ran = sluice_queue_worker::run(cfg, topology, runtimes, endpoint, stop).await.context("worker failed");
    endpoint_stop.cancel();
    ran
}
