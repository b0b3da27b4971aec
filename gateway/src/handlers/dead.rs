//! `GET /system/dead?namespace=&function=&limit=` lists dead letters; `POST /system/dead/{id}/replay` queues a dead call
//! again as a new attempt series (its old letter goes), and `POST /system/dead/replay` many at once (named, or the
//! newest of a function); `DELETE /system/dead/{id}` discards a dead letter.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header::LOCATION},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use sluice_contracts::{
    DeadLetter,
    call::is_valid_call_id,
    dead::{DeadReplay, DeadReplayReport, MAX_DEAD_REPLAY, NotReplayed},
    names,
};
use sluice_jetstream::dead_letters::DeadLetters;

use super::extract::{Expected, InNamespace, JsonBody, Query};
use crate::{ApiError, App};

const DEFAULT_LIMIT: usize = 100;

#[derive(Deserialize, schemars::JsonSchema)]
pub struct DeadListQuery {
    function: Option<String>,
    limit: Option<String>,
}

pub async fn list(
    State(app): State<App>,
    InNamespace(namespace): InNamespace,
    Query(query): Query<DeadListQuery>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    let limit = match &query.limit {
        Some(l) => l.parse().map_err(|_| ApiError::BadQuery(format!("limit {l:?} is not a number")))?,
        None => DEFAULT_LIMIT,
    };
    super::extract::check_function_filter(query.function.as_deref())?;
    let found = DeadLetters::new(&app.topology)
        .list(&namespace, query.function.as_deref(), limit)
        .await
        .map_err(|e| ApiError::Unavailable(format!("reading dead letters: {e}")))?;
    Ok(Json(found))
}

pub async fn replay(
    State(app): State<App>,
    Path(super::CallPath { id }): Path<super::CallPath>,
) -> Result<Response, ApiError> {
    app.queue.resubmit(&id).await?;
    tracing::info!(call_id = %id, "dead letter replayed");
    let mut response = StatusCode::ACCEPTED.into_response();
    if let (Ok(call_id), Ok(location)) =
        (HeaderValue::from_str(&id), HeaderValue::from_str(&format!("/system/calls/{id}")))
    {
        response.headers_mut().insert(names::http_headers::CALL_ID, call_id);
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

impl Expected for DeadReplay {
    const SHAPE: &'static str = "a replay of dead calls ({\"callIds\": [\"...\"]} or {\"function\": \"name\"})";
}

/// Replays many dead calls at once: the named ones, or the newest of a function. Each is replayed or not on its
/// own (the answer says which and why); fanned-out children of one group replayed together make one round.
pub async fn replay_many(
    State(app): State<App>,
    InNamespace(namespace): InNamespace,
    JsonBody(request, _): JsonBody<DeadReplay>,
) -> Result<Json<DeadReplayReport>, ApiError> {
    let outcomes = match (request.call_ids, request.function) {
        (Some(ids), None) if request.limit.is_none() => {
            if ids.is_empty() || ids.len() > MAX_DEAD_REPLAY {
                let count = ids.len();
                return Err(ApiError::BadQuery(format!("callIds: give 1 to {MAX_DEAD_REPLAY} call ids, not {count}")));
            }
            if let Some(bad) = ids.iter().find(|id| !is_valid_call_id(id)) {
                let bad: String = bad.chars().take(140).collect();
                return Err(ApiError::BadQuery(format!("callIds: {bad:?} is not a call id")));
            }
            app.queue.resubmit_all(&ids).await
        }
        (None, Some(function)) => {
            super::extract::check_function_filter(Some(&function))?;
            let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
            if !(1..=MAX_DEAD_REPLAY).contains(&limit) {
                return Err(ApiError::BadQuery(format!("limit {limit}: give a number from 1 to {MAX_DEAD_REPLAY}")));
            }
            let found = DeadLetters::new(&app.topology)
                .list(&namespace, Some(&function), limit)
                .await
                .map_err(|e| ApiError::Unavailable(format!("reading dead letters: {e}")))?;
            let letters: Vec<(String, u64)> = found.into_iter().map(|l| (l.call_id, l.sequence)).collect();
            app.queue.resubmit_letters(&letters).await
        }
        (Some(_), None) => return Err(ApiError::BadQuery("limit goes with function, not with callIds".into())),
        _ => {
            return Err(ApiError::BadQuery(
                "give either callIds (the calls to replay) or function (to replay its newest dead letters)".into(),
            ));
        }
    };
    let mut report = DeadReplayReport::default();
    for (call_id, outcome) in outcomes {
        match outcome {
            Ok(()) => report.replayed.push(call_id),
            Err(err) => report.not_replayed.push(NotReplayed { call_id, error: err.to_string() }),
        }
    }
    tracing::info!(replayed = report.replayed.len(), not_replayed = report.not_replayed.len(), "dead letters replayed");
    Ok(Json(report))
}

/// Discards a dead call's dead letter: it cannot be replayed any more.
pub async fn discard(
    State(app): State<App>,
    Path(super::CallPath { id }): Path<super::CallPath>,
) -> Result<StatusCode, ApiError> {
    app.queue.discard_dead(&id).await?;
    tracing::info!(call_id = %id, "dead letter discarded");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /system/dead/replay`: the dead letter of a call whose id is `replay`, which the batch replay's route
/// would otherwise take from [`discard`].
pub async fn discard_named_replay(State(app): State<App>) -> Result<StatusCode, ApiError> {
    app.queue.discard_dead("replay").await?;
    Ok(StatusCode::NO_CONTENT)
}
