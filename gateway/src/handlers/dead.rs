//! `GET /system/dead?function=&limit=` lists dead letters; `POST /system/dead/{id}/replay` queues a dead call
//! again as a new attempt series.

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header::LOCATION},
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use sluice_schemas::{CallStatus, DeadLetter, InvocationMessage, names, names::wire};

use crate::{ApiError, App};

const DEFAULT_LIMIT: usize = 100;

fn header(headers: &async_nats::HeaderMap, name: &str) -> String {
    headers.get(name).map(|v| v.as_str().to_owned()).unwrap_or_default()
}

pub async fn list(
    State(app): State<App>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    let limit = match query.get("limit") {
        Some(l) => l.parse().map_err(|_| ApiError::BadQuery(format!("limit {l:?} is not a number")))?,
        None => DEFAULT_LIMIT,
    };
    let filter = match query.get("function") {
        Some(f) => names::dead_subject(f),
        None => format!("{}.>", names::DEAD_PREFIX),
    };
    let unavailable = |e: String| ApiError::NotPersisted(format!("reading dead letters: {e}"));
    let stream =
        app.topology.jetstream.get_stream_no_info(names::DEAD_STREAM).await.map_err(|e| unavailable(e.to_string()))?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let mut found = std::collections::VecDeque::new();
    if consumer.cached_info().num_pending > 0 {
        let mut messages = consumer.messages().await.map_err(|e| unavailable(e.to_string()))?;
        while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
            let headers = message.headers.clone().unwrap_or_default();
            let info = message.info().map_err(|e| unavailable(e.to_string()))?;
            let (sequence, pending) = (info.stream_sequence, info.pending);
            found.push_back(DeadLetter {
                call_id: header(&headers, names::ce::ID),
                function: header(&headers, names::ce::SUBJECT),
                status: header(&headers, wire::DEAD_STATUS).parse().unwrap_or_default(),
                error: header(&headers, wire::DEAD_ERROR),
                attempts: header(&headers, wire::DEAD_ATTEMPTS).parse().unwrap_or_default(),
                dead_at: chrono::DateTime::from_timestamp(info.published.unix_timestamp(), 0)
                    .unwrap_or_default()
                    .to_rfc3339(),
                sequence,
            });
            if found.len() > limit {
                found.pop_front();
            }
            if pending == 0 {
                break;
            }
        }
    }
    Ok(Json(found.into_iter().rev().collect()))
}

pub async fn replay(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (record, revision) = app.calls.entry(&id).await?.ok_or_else(|| ApiError::UnknownCall(id.clone()))?;
    let sequence = record.dead_letter.ok_or_else(|| ApiError::NotDead(id.clone()))?;
    let unavailable = |e: String| ApiError::NotPersisted(format!("reading the dead letter: {e}"));
    let stream =
        app.topology.jetstream.get_stream_no_info(names::DEAD_STREAM).await.map_err(|e| unavailable(e.to_string()))?;
    let dead = stream.get_raw_message(sequence).await.map_err(|e| unavailable(e.to_string()))?;
    let call = InvocationMessage::from_nats(&dead.headers, dead.payload)
        .map_err(|e| ApiError::CallFailed(format!("dead letter {sequence} is not a call: {e}")))?;
    let (mut headers, body) = call.to_nats(names::CE_TYPE_REQUESTED);
    // A new attempt series: its own message id, so JetStream does not take it for the original.
    headers.insert(wire::NATS_MSG_ID, format!("{id}.replay.{sequence}"));
    headers.insert(wire::REPLAY_OF, sequence.to_string());
    let mut fresh = record.clone();
    fresh.status = CallStatus::Queued;
    fresh.attempts = 0;
    fresh.function_status = None;
    fresh.error = None;
    fresh.started_at = None;
    fresh.finished_at = None;
    fresh.dead_letter = None;
    fresh.callback = None;
    // The record first: a worker that finds the call still `failed` would take it as done.
    if app.calls.update(&fresh, revision).await?.is_none() {
        return Err(ApiError::NotPersisted("the call's record changed meanwhile; try again".into()));
    }
    let published = async {
        app.topology.jetstream.publish_with_headers(names::invoke_subject(&call.function), headers, body).await?.await
    }
    .await;
    if let Err(err) = published {
        if let Err(restore) = app.calls.put(&record).await {
            tracing::error!(call_id = %id, %restore, "replay failed and the record could not be restored");
        }
        return Err(ApiError::NotPersisted(err.to_string()));
    }
    tracing::info!(call_id = %id, sequence, "dead letter replayed");
    let mut response = StatusCode::ACCEPTED.into_response();
    if let (Ok(call_id), Ok(location)) =
        (HeaderValue::from_str(&id), HeaderValue::from_str(&format!("/system/calls/{id}")))
    {
        response.headers_mut().insert(names::http_headers::CALL_ID, call_id);
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}
