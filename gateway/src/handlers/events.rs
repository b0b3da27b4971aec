//! `POST /system/events/replay`: routes stored events again — those that matched no function when they
//! arrived reach functions deployed since. Calls already queued for an event are not queued again.
//!
//! The gateway does no routing itself: it asks an event router over NATS (`sluice.router.replay`), as it asks
//! workers to scale, and relays the answer.

use std::time::Duration;

use async_nats::RequestErrorKind;
use axum::{Json, extract::State};
use serde::Deserialize;
use sluice_contracts::{
    names,
    replay::{ReplayReply, ReplayRequest},
};

use super::extract::{Expected, JsonBody};
use crate::{ApiError, App};

/// Replaying reads the events stream from `since`: long for a long window, bounded all the same.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ReplayBody {
    /// RFC 3339 time, or a duration back from now (`1h`).
    since: String,
    /// Only to this function.
    #[serde(default)]
    function: Option<String>,
    /// The namespace of `function`; the default one when absent.
    #[serde(default)]
    namespace: Option<String>,
}

impl Expected for ReplayBody {
    const SHAPE: &'static str = "a replay request ({\"since\": \"1h\"})";
}

pub async fn replay(
    State(app): State<App>,
    JsonBody(request, _): JsonBody<ReplayBody>,
) -> Result<Json<ReplayReply>, ApiError> {
    let since = match chrono::DateTime::parse_from_rfc3339(&request.since) {
        Ok(at) => at.with_timezone(&chrono::Utc),
        Err(_) => {
            let back = humantime::parse_duration(&request.since).ok().and_then(|d| chrono::Duration::from_std(d).ok());
            let since = back.and_then(|back| chrono::Utc::now().checked_sub_signed(back));
            since.ok_or_else(|| {
                ApiError::BadQuery(format!("since {:?}: give an RFC 3339 time or a duration like 1h", request.since))
            })?
        }
    };
    let namespace = app.namespace(request.namespace.as_deref()).await?;
    let function = request.function.map(|name| sluice_contracts::FunctionRef::new(namespace, name));
    if let Some(function) = &function {
        app.deployed(function).await?;
    }
    let function = function.map(|f| f.key());
    let payload = serde_json::to_vec(&ReplayRequest { since, function }).expect("requests serialize");
    let ask = async_nats::Request::new().payload(payload.into()).timeout(Some(REPLAY_TIMEOUT));
    let reply = app.topology.client.send_request(names::REPLAY_SUBJECT, ask).await.map_err(|err| match err.kind() {
        RequestErrorKind::NoResponders => ApiError::Unavailable("no event router is running".into()),
        _ => ApiError::Unavailable(format!("asking an event router: {err}")),
    })?;
    let answer: ReplayReply = serde_json::from_slice(&reply.payload)
        .map_err(|e| ApiError::CallFailed(format!("unreadable answer from an event router: {e}")))?;
    match answer {
        ReplayReply::Failed { error } => Err(ApiError::Unavailable(format!("replaying events: {error}"))),
        replayed => {
            tracing::info!(?replayed, "events replayed");
            Ok(Json(replayed))
        }
    }
}
