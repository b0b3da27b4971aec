//! `GET /system/dead?namespace=&function=&limit=` lists dead letters; `POST /system/dead/{id}/replay` queues a dead call
//! again as a new attempt series (its old letter goes); `DELETE /system/dead/{id}` discards a dead letter.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header::LOCATION},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use sluice_contracts::{DeadLetter, names};
use sluice_jetstream::dead_letters::DeadLetters;

use super::extract::{InNamespace, Query};
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

/// Discards a dead call's dead letter: it cannot be replayed any more.
pub async fn discard(
    State(app): State<App>,
    Path(super::CallPath { id }): Path<super::CallPath>,
) -> Result<StatusCode, ApiError> {
    app.queue.discard_dead(&id).await?;
    tracing::info!(call_id = %id, "dead letter discarded");
    Ok(StatusCode::NO_CONTENT)
}
