//! The Sluice HTTP API: an OpenFaaS-compatible gateway over NATS JetStream.
//!
//! The gateway is stateless. `/system/functions` reads and writes specs in KV `sluice_functions`;
//! `/async-function/{name}` turns a request into an invocation on its shard of the queue (`SLUICE_QUEUE_nn`) and answers 202 only
//! once JetStream has confirmed the write; `/function/{name}` sends the request to a worker over NATS
//! request/reply. It never starts a process or container itself, so any number of gateways can run against
//! one NATS cluster.
//!
//! ```no_run
//! # async fn demo(topology: sluice_jetstream::topology::Topology) -> Result<(), std::io::Error> {
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let beside = aide::axum::ApiRouter::new();
//! sluice_gateway::run(sluice_gateway::GatewayConfig::default(), topology, beside, shutdown).await
//! # }
//! ```

mod app;
mod auth;
mod body;
mod call_watch;
mod console;
mod error;
mod handlers;
pub mod listen;
mod metrics;
pub mod openapi;

use std::{net::SocketAddr, time::Duration};

use sluice_jetstream::topology::Topology;
use tokio_util::sync::CancellationToken;

pub use app::App;
pub use auth::{Access, Guard};
pub use error::ApiError;
pub use sluice_contracts::credentials::Credentials;

/// How the gateway listens and what it accepts.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Largest request body accepted; larger ones get a 413.
    pub max_body_bytes: usize,
    /// Who may use `/system/*`, `/metrics` and `/events`; no admin credentials means open, which only
    /// `--insecure-no-auth` asks for.
    pub access: Access,
    /// Whether invocation routes require the admin credentials too.
    pub protect_invocations: bool,
    /// How long a synchronous call may take when its function sets no timeout.
    pub sync_timeout: Duration,
    /// Which callback URLs calls may name (and where any request made on a caller's behalf may go).
    pub callback_policy: sluice_contracts::outbound::OutboundPolicy,
    /// Timeouts and the connection cap of the listener.
    pub limits: listen::ListenLimits,
    /// Renders `/metrics`; absent when the process installed no Prometheus recorder.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The namespace a bare function name means (`openfaas-fn` unless configured).
    pub default_namespace: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 128 * 1024 * 1024,
            access: Access::default(),
            protect_invocations: false,
            sync_timeout: Duration::from_secs(60),
            callback_policy: Default::default(),
            limits: Default::default(),
            metrics: None,
            default_namespace: sluice_contracts::names::DEFAULT_NAMESPACE.to_owned(),
        }
    }
}

/// Serves the API, and `beside` (other routes the process serves on the same port: the connectors' webhooks
/// and ingress, documented in the same OpenAPI document), on `cfg.listen` until `shutdown`, then finishes
/// in-flight requests.
pub async fn run(
    cfg: GatewayConfig,
    topology: Topology,
    beside: aide::axum::ApiRouter,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "gateway listening");
    serve(listener, cfg, topology, beside, shutdown).await
}

/// How long a stopping gateway waits for records of stored calls it is still writing (see `Queue::submit`).
const RECORDS_ON_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(5);

/// Like [`run`], on a listener the caller bound.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: GatewayConfig,
    topology: Topology,
    beside: aide::axum::ApiRouter,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let cache_stop = shutdown.child_token();
    let limits = cfg.limits;
    let app = App::new(cfg, topology, cache_stop.clone());
    let queue = app.queue.clone();
    let routes = handlers::router(app, beside);
    let served = listen::serve(listener, routes, limits, shutdown).await;
    cache_stop.cancel();
    queue.finish_records(RECORDS_ON_SHUTDOWN).await;
    served
}
