//! Logs (human or JSON, via `tracing`), trace spans over OTLP, and the Prometheus recorder.

use std::net::SocketAddr;

use anyhow::Context;
use axum::{Router, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use sluice_gateway::Guard;

use crate::args::LogArgs;

/// Spans being exported; flushed and stopped when dropped (at the end of a server command).
pub struct Traces(Option<SdkTracerProvider>);

impl Drop for Traces {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(err) = provider.shutdown()
        {
            tracing::warn!(%err, "trace spans not all exported at shutdown");
        }
    }
}

/// Installs the global subscriber (`RUST_LOG` refines the default `info` level) and, with an OTLP endpoint,
/// exports the spans as `service` (or `OTEL_SERVICE_NAME`).
pub fn init(args: &LogArgs, service: &str) -> anyhow::Result<Traces> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = fmt::layer().with_writer(std::io::stderr);
    let logs = if args.log_format == "json" {
        logs.json().flatten_event(true).with_current_span(true).boxed()
    } else {
        logs.boxed()
    };
    let provider = args.otlp_endpoint.as_deref().map(|endpoint| exporter(endpoint, service)).transpose()?;
    let spans = provider.as_ref().map(|provider| {
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        // Sluice's own spans (a call, an event), not the libraries' (aide instruments its route building).
        let ours = tracing_subscriber::filter::filter_fn(|meta| meta.target().starts_with("sluice"));
        tracing_opentelemetry::layer().with_tracer(provider.tracer("sluice")).with_filter(ours)
    });
    let _ = tracing_subscriber::registry().with(filter).with(logs).with(spans).try_init();
    if let Some(endpoint) = &args.otlp_endpoint {
        tracing::info!(endpoint, "exporting trace spans over OTLP/HTTP");
    }
    Ok(Traces(provider))
}

/// A tracer provider sending batches of spans to `endpoint` as OTLP/HTTP JSON.
fn exporter(endpoint: &str, service: &str) -> anyhow::Result<SdkTracerProvider> {
    let base = endpoint.trim_end_matches('/');
    let url = if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") };
    reqwest::Url::parse(&url).with_context(|| format!("--otlp-endpoint {endpoint:?} is not a URL"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(url)
        .build()
        .context("cannot set up the OTLP span exporter")?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    let resource = Resource::builder().with_service_name(service).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
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
