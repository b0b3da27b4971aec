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

/// Prometheus text format.
pub async fn metrics(State(app): State<App>) -> (StatusCode, String) {
    match &app.cfg.metrics {
        Some(handle) => (StatusCode::OK, handle.render()),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled in this process".to_owned()),
    }
}

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
