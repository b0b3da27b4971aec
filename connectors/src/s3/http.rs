//! S3 notifications over HTTP: MinIO's webhook target (`POST /connectors/s3/minio`, answering its `HEAD` probe)
//! and AWS S3 → SNS → HTTPS subscriptions (`POST /connectors/s3/sns`, confirming `SubscriptionConfirmation`s and
//! unwrapping `Notification`s).
//!
//! With a secret named `connector-s3-token` (`/system/secrets`), MinIO must send it as
//! `Authorization: Bearer <token>` (MinIO's `MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN`) and SNS subscriptions must carry it
//! in the endpoint URL (`…/connectors/s3/sns?token=<token>`); other requests get a 401.

use std::collections::HashMap;

use axum::{
    Json,
    body::Body,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::records::{self, Notification};
use crate::{
    http::{ConnectorError, ConnectorState, read_body, store},
    metrics,
};

/// Name of the secret that S3 notification requests must present, when it exists.
pub const TOKEN_SECRET: &str = "connector-s3-token";

async fn check_token(state: &ConnectorState, given: Option<&str>) -> Result<(), ConnectorError> {
    let expected = state
        .topology
        .secrets
        .get(TOKEN_SECRET)
        .await
        .map_err(|e| ConnectorError::NotStored(format!("reading the connector token: {e}")))?;
    match expected {
        None => Ok(()),
        Some(expected) if given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(&expected))) => Ok(()),
        Some(_) => {
            metrics::rejected("s3", "token");
            Err(ConnectorError::Unauthorized("a valid connector token is required".into()))
        }
    }
}

/// Stores one event per record; answers 202 with their ids.
async fn accept_records(state: &ConnectorState, notification: Notification) -> Result<Response, ConnectorError> {
    let mut ids = Vec::new();
    for record in &notification.records {
        let event = records::to_event(record);
        store(state, "s3", records::subject(&record.s3.bucket.name), &event).await?;
        ids.push(event.id);
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"events": ids}))).into_response())
}

fn parse_records(bytes: &[u8]) -> Result<Notification, ConnectorError> {
    serde_json::from_slice(bytes).map_err(|e| {
        metrics::rejected("s3", "malformed");
        ConnectorError::BadRequest(format!("not an S3 event notification (Records): {e}"))
    })
}

/// MinIO probes its webhook target with `HEAD` before it sends events.
pub async fn minio_probe() -> StatusCode {
    StatusCode::OK
}

pub async fn minio(
    State(state): State<ConnectorState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConnectorError> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    check_token(&state, bearer).await?;
    let body = read_body(&headers, body, state.max_body).await?;
    accept_records(&state, parse_records(&body)?).await
}

#[derive(Deserialize)]
struct SnsMessage {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "SubscribeURL", default)]
    subscribe_url: Option<String>,
    #[serde(rename = "TopicArn", default)]
    topic_arn: String,
}

pub async fn sns(
    State(state): State<ConnectorState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConnectorError> {
    check_token(&state, query.get("token").map(String::as_str)).await?;
    let body = read_body(&headers, body, state.max_body).await?;
    let message: SnsMessage = serde_json::from_slice(&body).map_err(|e| {
        metrics::rejected("s3", "malformed");
        ConnectorError::BadRequest(format!("not an SNS message: {e}"))
    })?;
    match message.kind.as_str() {
        "SubscriptionConfirmation" => {
            let url = message
                .subscribe_url
                .ok_or_else(|| ConnectorError::BadRequest("SubscriptionConfirmation without SubscribeURL".into()))?;
            let confirmed = reqwest::get(&url).await.and_then(|r| r.error_for_status());
            confirmed.map_err(|e| ConnectorError::BadRequest(format!("confirming the subscription failed: {e}")))?;
            tracing::info!(topic = %message.topic_arn, "SNS subscription confirmed");
            Ok((StatusCode::OK, Json(json!({"confirmed": message.topic_arn}))).into_response())
        }
        "Notification" => {
            // S3 sends a test event when notifications are configured; it names no object.
            let inner: serde_json::Value = serde_json::from_str(&message.message).unwrap_or_default();
            if inner.get("Records").is_none() {
                return Ok((StatusCode::OK, Json(json!({"events": []}))).into_response());
            }
            accept_records(&state, parse_records(message.message.as_bytes())?).await
        }
        _ => Ok(StatusCode::OK.into_response()),
    }
}
