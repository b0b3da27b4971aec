//! `GET /system/calls/{id}` and `GET /system/calls?function=&status=&limit=`.

use std::{collections::HashMap, time::Duration};

use axum::{
    Json,
    extract::{Path, Query, State},
};
use sluice_schemas::{CallRecord, CallStatus};

use crate::{ApiError, App};

const DEFAULT_LIMIT: usize = 100;

pub async fn get(State(app): State<App>, Path(id): Path<String>) -> Result<Json<CallRecord>, ApiError> {
    app.calls.get(&id).await?.map(Json).ok_or(ApiError::UnknownCall(id))
}

pub async fn list(
    State(app): State<App>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<CallRecord>>, ApiError> {
    let status = query.get("status").map(|s| s.parse::<CallStatus>()).transpose().map_err(ApiError::BadQuery)?;
    let limit = match query.get("limit") {
        Some(l) => l.parse().map_err(|_| ApiError::BadQuery(format!("limit {l:?} is not a number")))?,
        None => DEFAULT_LIMIT,
    };
    let function = query.get("function").map(String::as_str);
    let records = app.calls.list(function, status, limit, Duration::from_secs(10)).await?;
    Ok(Json(records))
}
