//! The connectors' HTTP side, served on the gateway's listener: webhooks (`POST /hooks/{name}`), the
//! CloudEvents ingress (`POST /events`), and the S3 notification endpoints. Each request becomes a CloudEvent
//! stored in `SLUICE_EVENTS` before the answer (202), so an accepted event is never lost.

use axum::{
    Json, Router,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::json;
use sluice_contracts::EventMessage;
use sluice_jetstream::topology::Topology;

use crate::{hooks, ingress, metrics, router, s3};

/// Shared by the connector routes.
#[derive(Clone)]
pub struct ConnectorState {
    pub topology: Topology,
    /// Largest body accepted: an event must fit in one NATS message.
    pub max_body: usize,
    /// Where SNS subscription confirmations may go.
    pub sns: std::sync::Arc<s3::http::SnsConfirmer>,
}

/// A refused request: a 4xx (or 503) with `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Upstream(String),
    #[error("body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("event not stored, try again: {0}")]
    NotStored(String),
}

impl IntoResponse for ConnectorError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotStored(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

/// Reads a body up to `limit` bytes. A declared `Content-Length` over the limit is refused before any of the
/// body is read, so the sender gets its 413 rather than a connection closed under it mid-write.
pub async fn read_body(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<bytes::Bytes, ConnectorError> {
    if sluice_contracts::body::declares_more_than(headers, limit) {
        return Err(ConnectorError::TooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = cause {
            if err.is::<http_body_util::LengthLimitError>() {
                return ConnectorError::TooLarge(limit);
            }
            cause = err.source();
        }
        ConnectorError::BadRequest(format!("cannot read the body: {e}"))
    })
}

/// Stores `event` under `subject` in `SLUICE_EVENTS`, counted for `connector`.
pub async fn store(
    state: &ConnectorState,
    connector: &'static str,
    subject: String,
    event: &EventMessage,
) -> Result<(), ConnectorError> {
    router::publish(&state.topology, subject, event).await.map_err(|e| ConnectorError::NotStored(e.to_string()))?;
    metrics::accepted(connector);
    tracing::debug!(connector, id = %event.id, source = %event.source, "event accepted");
    Ok(())
}

/// Stores `event` under `subject`; answers 202 with its id.
pub async fn accept(
    state: &ConnectorState,
    connector: &'static str,
    subject: String,
    event: EventMessage,
) -> Result<Response, ConnectorError> {
    store(state, connector, subject, &event).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"id": event.id, "source": event.source, "type": event.event_type})))
        .into_response())
}

/// Routes whose senders authenticate with signatures or tokens of their own rather than the gateway's
/// credentials: webhooks (`/hooks/{name}`) and S3 notifications (`/connectors/s3/…`).
pub fn webhook_routes(state: ConnectorState) -> Router {
    Router::new()
        .route("/hooks/{name}", post(hooks::receive))
        .route("/connectors/s3/minio", post(s3::http::minio).head(s3::http::minio_probe))
        .route("/connectors/s3/sns", post(s3::http::sns))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// The CloudEvents ingress (`/events`); whoever serves it puts it behind credentials.
pub fn ingress_routes(state: ConnectorState) -> Router {
    Router::new()
        .route("/events", post(ingress::receive))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}
