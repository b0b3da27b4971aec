//! The connectors' HTTP side, served on the gateway's listener: webhooks (`POST /hooks/{name}`), the
//! CloudEvents ingress (`POST /events`), and the S3 notification endpoints. Each request becomes a CloudEvent
//! stored in `SLUICE_EVENTS` before the answer (202), so an accepted event is never lost.

use aide::{
    axum::{ApiRouter, routing::post_with},
    transform::TransformOperation,
};
use axum::{
    Json,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;
use sluice_contracts::{ErrorBody, EventMessage, trace};
use sluice_jetstream::topology::Topology;
use tracing::Instrument;

use crate::{hooks, ingress, metrics, router, s3};

/// Shared by the connector routes.
#[derive(Clone)]
pub struct ConnectorState {
    pub topology: Topology,
    /// Largest body accepted: an event must fit in one NATS message.
    pub max_body: usize,
    /// Where SNS subscription confirmations may go.
    pub sns: std::sync::Arc<s3::http::SnsConfirmer>,
    /// The namespace whose secrets hold the webhook secrets and the S3 connector token: the default one.
    pub secrets_namespace: String,
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

/// The statuses a [`ConnectorError`] answers with, for the OpenAPI document.
const ERROR_STATUSES: [(u16, &str); 6] = [
    (400, "Not an event this endpoint takes; `error` says why"),
    (401, "The signature or token is missing or wrong"),
    (403, "The event claims a source or type reserved for Sluice's own connectors"),
    (413, "The body is larger than one event may be"),
    (502, "The S3 subscription could not be confirmed"),
    (503, "The event could not be stored; send it again"),
];

impl aide::OperationOutput for ConnectorError {
    type Inner = ErrorBody;

    fn inferred_responses(
        ctx: &mut aide::generate::GenContext,
        _operation: &mut aide::openapi::Operation,
    ) -> Vec<(Option<aide::openapi::StatusCode>, aide::openapi::Response)> {
        let schema = ctx.schema.subschema_for::<ErrorBody>();
        ERROR_STATUSES
            .iter()
            .map(|(status, description)| {
                let media = aide::openapi::MediaType {
                    schema: Some(aide::openapi::SchemaObject {
                        json_schema: schema.clone(),
                        example: None,
                        external_docs: None,
                    }),
                    ..Default::default()
                };
                let response = aide::openapi::Response {
                    description: (*description).to_owned(),
                    content: [("application/json".to_owned(), media)].into_iter().collect(),
                    ..Default::default()
                };
                (Some(aide::openapi::StatusCode::Code(*status)), response)
            })
            .collect()
    }
}

/// The answer to an accepted event.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Accepted {
    /// The event's id (CloudEvents `id`).
    pub id: String,
    /// CloudEvents `source`.
    pub source: String,
    /// CloudEvents `type`.
    #[serde(rename = "type")]
    pub event_type: String,
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
    mut event: EventMessage,
    request: &HeaderMap,
) -> Result<Response, ConnectorError> {
    // The event continues the trace it came with (its `traceparent`, or the request's), through this span.
    let span = tracing::info_span!("receive_event", otel.kind = "server", connector, event = %event.id);
    trace::event_attributes(request, &mut event.extensions);
    trace::continue_from_attributes(&span, &event.extensions);
    trace::pass_on_in_attributes(&span, &mut event.extensions);
    store(state, connector, subject, &event).instrument(span).await?;
    let answer = Accepted { id: event.id, source: event.source, event_type: event.event_type };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// An event endpoint's documentation: its summary, and the 202 with the stored event's identity.
fn event_doc<'a>(op: TransformOperation<'a>, summary: &str) -> TransformOperation<'a> {
    op.tag("events").summary(summary).response_with::<202, Json<Accepted>, _>(|r| r.description("Stored"))
}

/// Routes whose senders authenticate with signatures or tokens of their own rather than the gateway's
/// credentials: webhooks (`/hooks/{name}`) and S3 notifications (`/connectors/s3/…`). The same table
/// documents them in the OpenAPI document.
pub fn webhook_routes() -> ApiRouter<ConnectorState> {
    ApiRouter::new()
        .api_route(
            "/hooks/{name}",
            post_with(hooks::receive, |op| {
                event_doc(op, "A webhook: signed per its secret `webhook-{name}` (GitHub, or Sluice's HMAC)")
            }),
        )
        .api_route(
            "/connectors/s3/minio",
            post_with(s3::http::minio, |op| {
                event_doc(op, "MinIO bucket notifications (bearer token `connector-s3-token`)")
            })
            .head_with(s3::http::minio_probe, |op| {
                op.tag("events")
                    .summary("MinIO's check that the endpoint answers")
                    .response_with::<200, (), _>(|r| r.description("Up"))
            }),
        )
        .api_route(
            "/connectors/s3/sns",
            post_with(s3::http::sns, |op| {
                event_doc(op, "Amazon SNS notifications of S3 events, and subscription confirmations (?token=)")
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// The CloudEvents ingress (`/events`); whoever serves it puts it behind credentials.
pub fn ingress_routes() -> ApiRouter<ConnectorState> {
    ApiRouter::new()
        .api_route(
            "/events",
            post_with(ingress::receive, |op| event_doc(op, "A CloudEvent, binary or structured mode")),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
}
