//! `sluice connector router|cron|webhook|s3|all`: the event parts on their own. Any number of each can run against
//! one NATS: routers share one durable consumer, cron replicas publish each tick once between them, and webhook
//! servers are stateless.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Args, ValueEnum};
use sluice_jetstream::topology::Topology;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{NatsArgs, shutdown, telemetry};
use crate::args::LogArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConnectorKind {
    /// Turns events into calls of the functions whose triggers match.
    Router,
    /// Fires cron triggers and `schedule` annotations.
    Cron,
    /// Serves `/hooks/{name}`, `/events` and the S3 endpoints over HTTP.
    Webhook,
    /// Serves the S3 notification endpoints over HTTP, consumes `--s3-nats-subject` and polls
    /// (`--s3-poll-interval`) when given.
    S3,
    /// All of them in one process.
    All,
}

#[derive(Args, Clone, Debug)]
pub struct ConnectorArgs {
    pub kind: ConnectorKind,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Address the HTTP connectors listen on.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub s3: S3Options,
    #[command(flatten)]
    pub auth: super::auth::AuthOptions,
    #[command(flatten)]
    pub policy: super::CallbackPolicyArgs,
    #[command(flatten)]
    pub listen_limits: super::ListenOptions,
    #[command(flatten)]
    pub namespace: super::NamespaceArgs,
    /// Where the generated admin password is kept (when no credentials are given).
    #[arg(long, env = "SLUICE_DATA_DIR", default_value_os_t = crate::args::default_data_dir())]
    pub data_dir: std::path::PathBuf,
    /// Serve /metrics for this connector on this address.
    #[arg(long, env = "SLUICE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// How S3 events are taken in besides the HTTP endpoints: MinIO's NATS target and polling.
#[derive(Args, Clone, Debug)]
pub struct S3Options {
    /// NATS subject MinIO's NATS target publishes object events on.
    #[arg(long, env = "SLUICE_S3_NATS_SUBJECT")]
    pub s3_nats_subject: Option<String>,
    /// Poll the buckets named by S3 triggers every this long; off unless given.
    #[arg(long, env = "SLUICE_S3_POLL_INTERVAL", value_parser = crate::args::duration)]
    pub s3_poll_interval: Option<std::time::Duration>,
    /// S3 API endpoint to poll (AWS's when absent), e.g. http://127.0.0.1:9000 for MinIO.
    #[arg(long, env = "SLUICE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Address buckets path-style (endpoint/bucket/key), as MinIO and most S3-compatible stores want.
    #[arg(long, env = "SLUICE_S3_PATH_STYLE")]
    pub s3_path_style: bool,
}

impl S3Options {
    /// The NATS consumer and the poller, for those configured, until `stop`.
    pub fn spawn(&self, topology: &Topology, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some(subject) = self.s3_nats_subject.clone() {
            let (topology, stop) = (topology.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(err) = sluice_connectors::s3::nats::run(topology, subject, stop).await {
                    tracing::error!(%err, "MinIO NATS consumer stopped");
                }
            }));
        }
        if let Some(interval) = self.s3_poll_interval {
            let cfg = sluice_connectors::s3::poll::PollConfig {
                endpoint: self.s3_endpoint.clone(),
                path_style: self.s3_path_style,
                interval,
            };
            let (topology, stop) = (topology.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(err) = sluice_connectors::s3::poll::run(topology, cfg, stop).await {
                    tracing::error!(%err, "S3 poller stopped");
                }
            }));
        }
        tasks
    }
}

/// The event router, and its answers to gateways' replay requests.
fn spawn_router(topology: &Topology, stop: &CancellationToken) -> JoinHandle<()> {
    let routes = sluice_connectors::EventRouter::start(topology.clone(), stop.child_token());
    let stop = stop.clone();
    tokio::spawn(async move {
        let replays = sluice_connectors::router::answer_replays(routes.clone(), stop.clone());
        let (routed, replays) = tokio::join!(sluice_connectors::router::run(routes, stop.clone()), replays);
        for err in [routed.err(), replays.err()].into_iter().flatten() {
            tracing::error!(%err, "event router stopped");
            stop.cancel(); // a process whose router died should not look healthy
        }
    })
}

/// The connectors' HTTP routes: webhooks and S3 notifications (which authenticate themselves: their senders
/// cannot log in, and their secrets are in `secrets_namespace`) and the `/events` ingress behind `access`'s
/// events guard. The gateway serves them beside its API; `sluice connector webhook` serves them alone.
pub fn http_routes(
    topology: &Topology,
    access: &sluice_gateway::Access,
    policy: &super::CallbackPolicyArgs,
    secrets_namespace: &str,
) -> aide::axum::ApiRouter {
    let state = sluice_connectors::ConnectorState {
        secrets_namespace: secrets_namespace.to_owned(),
        max_body: topology.inline_limit(),
        topology: topology.clone(),
        sns: std::sync::Arc::new(sluice_connectors::s3::http::SnsConfirmer::new(
            policy.policy(),
            policy.sns_subscribe_host.clone(),
        )),
    };
    let ingress = secured(sluice_connectors::http::ingress_routes()).with_state(state.clone());
    sluice_connectors::http::webhook_routes().with_state(state).merge(access.events_guard().protect_api(ingress))
}

/// The ingress's operations, documented as needing credentials (the events guard).
fn secured(
    ingress: aide::axum::ApiRouter<sluice_connectors::ConnectorState>,
) -> aide::axum::ApiRouter<sluice_connectors::ConnectorState> {
    use sluice_gateway::openapi::{BASIC_AUTH, BEARER};
    ingress.with_path_items(|item| item.security_requirement(BASIC_AUTH).security_requirement(BEARER))
}

/// Adds the connectors' HTTP routes to an OpenAPI document, as the gateway serves them beside its own.
pub fn document_http_routes(api: &mut aide::openapi::OpenApi) {
    use sluice_connectors::http::{ingress_routes, webhook_routes};
    let _ = webhook_routes().merge(secured(ingress_routes())).finish_api(api);
}

fn spawn_cron(topology: &Topology, stop: &CancellationToken) -> JoinHandle<()> {
    tokio::spawn(sluice_connectors::cron::run(topology.clone(), stop.clone()))
}

/// The router and cron connector as background tasks until `stop` (as `sluice up` runs them).
pub fn spawn_background(topology: &Topology, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
    vec![spawn_router(topology, stop), spawn_cron(topology, stop)]
}

pub async fn run(args: ConnectorArgs) -> anyhow::Result<()> {
    let _traces = telemetry::init(&args.log, "sluice-connector")?;
    let metrics = telemetry::metrics_recorder()?;
    let url = args.nats.nats_url.as_deref().context("--nats-url (or SLUICE_NATS_URL) is required")?;
    let topology = args.nats.topology(url, "sluice-connector").await?;
    let serves_http = matches!(args.kind, ConnectorKind::Webhook | ConnectorKind::S3 | ConnectorKind::All);
    // Only what serves HTTP needs credentials: a router or cron alone never generates any.
    let access = if serves_http || args.metrics_listen.is_some() {
        args.auth.access(&args.data_dir)?
    } else {
        sluice_gateway::Access::default()
    };
    let stop = shutdown::on_signal();
    if let Some(addr) = args.metrics_listen {
        tokio::spawn(telemetry::serve_metrics(addr, metrics, access.metrics_guard(), stop.clone()));
    }
    let mut tasks = Vec::new();
    if matches!(args.kind, ConnectorKind::Router | ConnectorKind::All) {
        tasks.push(spawn_router(&topology, &stop));
    }
    if matches!(args.kind, ConnectorKind::Cron | ConnectorKind::All) {
        tasks.push(spawn_cron(&topology, &stop));
    }
    if matches!(args.kind, ConnectorKind::S3 | ConnectorKind::All) {
        tasks.extend(args.s3.spawn(&topology, &stop));
    }
    if serves_http {
        let app = axum::Router::from(http_routes(&topology, &access, &args.policy, &args.namespace.default_namespace))
            .route("/healthz", axum::routing::get(|| async { "OK" }));
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        tracing::info!(listen = %listener.local_addr()?, "webhook connector listening");
        let stop = stop.clone();
        let limits = args.listen_limits.limits();
        tasks.push(tokio::spawn(async move {
            let served = sluice_gateway::listen::serve(listener, app, limits, stop).await;
            if let Err(err) = served {
                tracing::error!(%err, "webhook connector failed");
            }
        }));
    }
    tracing::info!(kind = ?args.kind, "connector ready");
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}
