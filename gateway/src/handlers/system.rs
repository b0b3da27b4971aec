//! `/healthz` and `/metrics`.

use axum::{extract::State, http::StatusCode, response::IntoResponse};

use crate::App;

/// Healthy while NATS is connected.
pub async fn healthz(State(app): State<App>) -> impl IntoResponse {
    match app.topology.client.connection_state() {
        async_nats::connection::State::Connected => (StatusCode::OK, "OK"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "NATS disconnected"),
    }
}

/// Prometheus text format.
pub async fn metrics(State(app): State<App>) -> impl IntoResponse {
    match &app.cfg.metrics {
        Some(handle) => (StatusCode::OK, handle.render()),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled in this process".to_owned()),
    }
}
