//! Logs (human or JSON, via `tracing`) and the Prometheus recorder.

use std::net::SocketAddr;

use axum::{Router, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, fmt};

use sluice_gateway::Guard;

use crate::args::LogArgs;

/// Installs the global subscriber; `RUST_LOG` refines the default `info` level.
pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if args.log_format == "json" {
        builder.json().flatten_event(true).with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Installs the process-wide Prometheus recorder, with histogram buckets for call durations.
pub fn metrics_recorder() -> anyhow::Result<PrometheusHandle> {
    let buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0];
    // The worker's own time per call is a few milliseconds; it needs finer buckets.
    let overhead = [
        0.00025, 0.0005, 0.00075, 0.001, 0.00125, 0.0015, 0.00175, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075, 0.01,
        0.02, 0.05, 0.1, 0.25, 1.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets(&buckets)?
        .set_buckets_for_metric(Matcher::Full("sluice_queue_overhead_seconds".into()), &overhead)?
        .install_recorder()?;
    Ok(handle)
}

/// Serves `/metrics` alone (for a worker or connector without a gateway), behind `guard`.
pub async fn serve_metrics(addr: SocketAddr, handle: PrometheusHandle, guard: Guard, stop: CancellationToken) {
    let app = guard.protect(Router::new().route("/metrics", get(move || async move { handle.render() })));
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            tracing::info!(listen = %addr, "metrics listening");
            let limits = sluice_gateway::listen::ListenLimits { max_connections: 64, ..Default::default() };
            let _ = sluice_gateway::listen::serve(listener, app, limits, stop).await;
        }
        Err(err) => tracing::error!(%err, listen = %addr, "cannot serve metrics"),
    }
}
