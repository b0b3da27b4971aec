//! `POST /system/events/replay`: routes stored events again — those that matched no function when they
//! arrived reach functions deployed since. Calls already queued for an event are not queued again.

use axum::{
    Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
};
use serde::Deserialize;
use sluice_connectors::Routes;

use super::functions::parse;
use crate::{ApiError, App};

#[derive(Deserialize)]
pub struct ReplayRequest {
    /// RFC 3339 time, or a duration back from now (`1h`).
    since: String,
    /// Only to this function.
    #[serde(default)]
    function: Option<String>,
}

pub async fn replay(
    State(app): State<App>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let request: ReplayRequest = parse(body, "a replay request ({\"since\": \"1h\"})")?;
    let since = match chrono::DateTime::parse_from_rfc3339(&request.since) {
        Ok(at) => at.with_timezone(&chrono::Utc),
        Err(_) => {
            let back = humantime::parse_duration(&request.since).map_err(|_| {
                ApiError::BadQuery(format!("since {:?}: give an RFC 3339 time or a duration like 1h", request.since))
            })?;
            chrono::Utc::now() - back
        }
    };
    if let Some(function) = &request.function
        && app.function_cache.get(function).await?.is_none()
    {
        return Err(ApiError::UnknownFunction(function.clone()));
    }
    let routes = Routes::new(app.topology.clone(), app.function_cache.clone());
    let (events, calls) =
        routes.replay(since, request.function.as_deref()).await.map_err(|e| ApiError::NotPersisted(e.to_string()))?;
    tracing::info!(events, calls, "events replayed");
    Ok(Json(serde_json::json!({"events": events, "calls": calls})))
}
