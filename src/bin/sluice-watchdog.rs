//! `sluice-watchdog`: the HTTP server inside images made by `sluice build`.
//!
//! It serves port 8080 (or `$port`) and runs `$fprocess` once per request with the OpenFaaS classic-watchdog
//! contract — body on stdin, stdout as the response, `Http_*` variables describing the request — through the
//! same process runtime the worker uses for `process` functions. `exec_timeout` (a duration such as `30s`;
//! default none beyond an hour) ends a call that runs too long. `GET /_/health` and `GET /_/ready` answer 200 once it listens.
//! What the function writes to stderr goes to the container log, one `stderr:` line per line.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use axum::{
    Router,
    body::Body as AxumBody,
    extract::{Request, State},
    response::{IntoResponse, Response},
    routing::get,
};
use sluice_contracts::FunctionSpec;
use sluice_runtime::{Body, Invocation, ProcessRuntime, Runtime, RuntimeConfig, RuntimeError};
use tokio::time::Instant;

struct Watchdog {
    runtime: ProcessRuntime,
    spec: FunctionSpec,
    timeout: Duration,
}

async fn call(State(dog): State<Arc<Watchdog>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(err) => {
            return (http::StatusCode::BAD_REQUEST, format!("cannot read the request body: {err}")).into_response();
        }
    };
    let call = Invocation {
        call_id: parts.headers.get("x-call-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers,
        body: Body::Bytes(body),
    };
    let (started, method, path) = (Instant::now(), call.method.clone(), call.path.clone());
    let result = dog.runtime.invoke(&dog.spec, call, started + dog.timeout).await;
    let status = result.as_ref().map_or(0, |r| r.status.as_u16());
    let seconds = started.elapsed().as_secs_f64();
    match &result {
        Ok(response) => {
            // The container log is where a function's own diagnostics belong, as under the classic watchdog.
            for line in String::from_utf8_lossy(&response.stderr).lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!("stderr: {line}");
            }
            tracing::info!(%method, path, status, seconds, "call");
        }
        Err(err) => tracing::warn!(%method, path, seconds, %err, "call failed"),
    }
    match result {
        Ok(r) => {
            let mut response = Response::new(AxumBody::from(r.body));
            *response.status_mut() = r.status;
            *response.headers_mut() = r.headers;
            response
        }
        Err(err @ RuntimeError::Timeout(_)) => (http::StatusCode::GATEWAY_TIMEOUT, err.to_string()).into_response(),
        Err(err) => (http::StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).with_ansi(false).init();
    let fprocess = std::env::var("fprocess").context("set fprocess to the command to run per request")?;
    let port: u16 = std::env::var("port").ok().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let timeout = match std::env::var("exec_timeout") {
        Ok(t) => humantime::parse_duration(&t).with_context(|| format!("exec_timeout {t:?}"))?,
        Err(_) => Duration::from_secs(3600),
    };
    // The function sees the container's environment, as under the OpenFaaS watchdog.
    let env_vars: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k != "fprocess").collect();
    let spec = FunctionSpec {
        service: "watchdog".into(),
        env_process: Some(fprocess.clone()),
        env_vars,
        ..Default::default()
    };
    let dog = Arc::new(Watchdog { runtime: ProcessRuntime::new(RuntimeConfig::default()), spec, timeout });
    // Both of the watchdogs' probe paths: it is ready as soon as it listens (it forks per call).
    let app = Router::new()
        .route("/_/health", get(|| async { "OK" }))
        .route("/_/ready", get(|| async { "OK" }))
        .fallback(call)
        .with_state(dog);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).await?;
    tracing::info!(port, %fprocess, "watchdog listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
        })
        .await?;
    Ok(())
}
