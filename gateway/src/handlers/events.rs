//! `GET /system/events` lists the newest connector events with what routing made of them;
//! `POST /system/events/replay` routes stored events again (from a time, or one by its sequence) — those that
//! matched no function when they arrived reach functions deployed since. Calls already queued for an event are
//! not queued again.
//!
//! The gateway does no routing itself: it asks an event router over NATS (`sluice.router.replay`), as it asks
//! workers to scale, and relays the answer.

use std::time::Duration;

use async_nats::RequestErrorKind;
use axum::{Json, extract::State};
use serde::Deserialize;
use sluice_contracts::{
    Routing, StoredEvent, names,
    replay::{ReplayReply, ReplayRequest},
};
use sluice_jetstream::event_log::{EventFilter, EventLog};

use super::extract::{Expected, JsonBody, Query};
use crate::{ApiError, App};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;

#[derive(Deserialize, schemars::JsonSchema)]
pub struct EventListQuery {
    /// Only events of this CloudEvents source.
    source: Option<String>,
    /// Only events of this CloudEvents type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Only `matched`, `unmatched` or `waiting` events.
    routing: Option<String>,
    /// At most this many (100 unless given, at most 1000); the newest 10,000 events are searched.
    limit: Option<String>,
}

pub async fn list(
    State(app): State<App>,
    Query(query): Query<EventListQuery>,
) -> Result<Json<Vec<StoredEvent>>, ApiError> {
    let limit = match &query.limit {
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(ApiError::BadQuery(format!("limit {l:?}: give a number from 1 to {MAX_LIMIT}"))),
        },
        None => DEFAULT_LIMIT,
    };
    let routing = match query.routing.as_deref() {
        None => None,
        Some("matched") => Some(Routing::Matched),
        Some("unmatched") => Some(Routing::Unmatched),
        Some("waiting") => Some(Routing::Waiting),
        Some(other) => {
            return Err(ApiError::BadQuery(format!("routing {other:?}: give matched, unmatched or waiting")));
        }
    };
    let filter = EventFilter { source: query.source, event_type: query.event_type, routing };
    let found = EventLog::new(&app.topology)
        .list(&filter, limit)
        .await
        .map_err(|e| ApiError::Unavailable(format!("reading events: {e}")))?;
    Ok(Json(found))
}

/// Replaying reads the events stream from `since`: long for a long window, bounded all the same.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ReplayBody {
    /// RFC 3339 time, or a duration back from now (`1h`). Give this or `sequence`.
    #[serde(default)]
    since: Option<String>,
    /// One event, by its `sequence` in the events list. Give this or `since`.
    #[serde(default)]
    sequence: Option<u64>,
    /// Only to this function.
    #[serde(default)]
    function: Option<String>,
    /// The namespace of `function`; the default one when absent.
    #[serde(default)]
    namespace: Option<String>,
}

impl Expected for ReplayBody {
    const SHAPE: &'static str = "a replay request ({\"since\": \"1h\"} or {\"sequence\": 12})";
}

pub async fn replay(
    State(app): State<App>,
    JsonBody(request, _): JsonBody<ReplayBody>,
) -> Result<Json<ReplayReply>, ApiError> {
    if request.sequence == Some(0) {
        return Err(ApiError::BadQuery("sequence 0: sequences start at 1".into()));
    }
    let since = match (&request.since, request.sequence) {
        (Some(since), None) => super::extract::since(since)?,
        (None, Some(_)) => chrono::Utc::now(),
        _ => return Err(ApiError::BadQuery("give either since (a time or a duration) or sequence (one event)".into())),
    };
    let namespace = app.namespace(request.namespace.as_deref()).await?;
    let function = request.function.map(|name| sluice_contracts::FunctionRef::new(namespace, name));
    if let Some(function) = &function {
        app.deployed(function).await?;
    }
    let function = function.map(|f| f.key());
    let payload =
        serde_json::to_vec(&ReplayRequest { since, function, sequence: request.sequence }).expect("requests serialize");
    let ask = async_nats::Request::new().payload(payload.into()).timeout(Some(REPLAY_TIMEOUT));
    let reply = app.topology.client.send_request(names::REPLAY_SUBJECT, ask).await.map_err(|err| match err.kind() {
        RequestErrorKind::NoResponders => ApiError::Unavailable("no event router is running".into()),
        _ => ApiError::Unavailable(format!("asking an event router: {err}")),
    })?;
    let answer: ReplayReply = serde_json::from_slice(&reply.payload)
        .map_err(|e| ApiError::CallFailed(format!("unreadable answer from an event router: {e}")))?;
    match answer {
        ReplayReply::Failed { error } => Err(ApiError::Unavailable(format!("replaying events: {error}"))),
        ReplayReply::Replayed { events: 0, .. } if let Some(sequence) = request.sequence => {
            Err(ApiError::UnknownEvent(sequence))
        }
        replayed => {
            tracing::info!(?replayed, "events replayed");
            Ok(Json(replayed))
        }
    }
}
