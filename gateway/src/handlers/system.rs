//! `/healthz`, `/metrics`, `/system/alert` and `/system/info`.

use axum::{Json, extract::State, http::StatusCode};

use crate::{ApiError, App};

/// Healthy while NATS is connected.
pub async fn healthz(State(app): State<App>) -> (StatusCode, &'static str) {
    match app.topology.client.connection_state() {
        async_nats::connection::State::Connected => (StatusCode::OK, "OK"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "NATS disconnected"),
    }
}

/// Prometheus text format. The stores' sizes are read at each scrape (a request per stream), so a gateway that is
/// not scraped reads nothing; a scrape waits at most [`STORE_READ_LIMIT`] for them, else shows the last read.
pub async fn metrics(State(app): State<App>) -> (StatusCode, String) {
    let Some(handle) = &app.cfg.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are not enabled in this process".to_owned());
    };
    match tokio::time::timeout(STORE_READ_LIMIT, super::health::stream_sizes(&app.topology.jetstream)).await {
        Ok(streams) => crate::metrics::stores(&streams),
        Err(_) => tracing::warn!("stream sizes not read within {STORE_READ_LIMIT:?}; /metrics shows the last read"),
    }
    (StatusCode::OK, handle.render())
}

/// Longest a scrape waits for the stores' sizes.
const STORE_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `POST /system/alert`: OpenFaaS scales from AlertManager's alerts here. Sluice scales from its own queue
/// depth and `com.openfaas.scale.*` labels, so an alert is refused by name rather than silently dropped.
pub async fn alert() -> ApiError {
    ApiError::NotImplemented(
        "POST /system/alert: Sluice scales container functions from their queue depth (the function's scale \
         block or com.openfaas.scale.* labels) and by POST /system/scale-function/{name}; AlertManager alerts \
         are not used"
            .into(),
    )
}

/// `GET /system/info` in OpenFaaS's shape, as `faas-cli version` reads it.
pub async fn info() -> Json<serde_json::Value> {
    let version = serde_json::json!({ "release": env!("CARGO_PKG_VERSION"), "sha": env!("SLUICE_GIT_SHA") });
    Json(serde_json::json!({
        "provider": { "provider": "sluice", "orchestration": "nats-jetstream", "version": version },
        "version": version,
        "arch": std::env::consts::ARCH,
    }))
}
