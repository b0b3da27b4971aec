//! `GET /system/calls/{id}`, `GET /system/calls?namespace=&function=&status=&since=&limit=` and
//! `DELETE /system/calls/{id}`.

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State},
};
use chrono::Utc;
use sluice_contracts::{
    CallRecord, CallStatus, CallbackDelivery, CallbackState, FunctionRef, Payload,
    callback::{CallbackFacts, CallbackMessage, contract_headers},
    names,
};

use sluice_jetstream::store::Modified;

use super::extract::{InNamespace, Query};
use crate::{ApiError, App};

const DEFAULT_LIMIT: usize = 100;
/// `X-Function-Status` of a cancellation callback: the call's client gave up on it (as nginx's 499).
pub const CANCELLED_STATUS: u16 = 499;

/// A record as the API shows it: without the callback URL, which may carry credentials.
pub(super) fn public(mut record: CallRecord) -> CallRecord {
    record.callback_url = None;
    record
}

/// A call's record, its kept result's state as it is now.
pub async fn get(
    State(app): State<App>,
    Path(super::CallPath { id }): Path<super::CallPath>,
) -> Result<Json<CallRecord>, ApiError> {
    let mut record = app.calls.get(&id).await?.ok_or(ApiError::UnknownCall(id))?;
    if let Some(result) = &mut record.result {
        result.state = Some(app.results.state(result).await?);
    }
    Ok(Json(public(record)))
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct CallListQuery {
    function: Option<String>,
    status: Option<String>,
    /// Only calls made at this time or later: an RFC 3339 time (`2026-12-01T09:00:00Z`) or a duration back from
    /// now (`1h`).
    since: Option<String>,
    limit: Option<String>,
}

pub async fn list(
    State(app): State<App>,
    InNamespace(namespace): InNamespace,
    Query(query): Query<CallListQuery>,
) -> Result<Json<Vec<CallRecord>>, ApiError> {
    super::extract::check_function_filter(query.function.as_deref())?;
    let status = query.status.map(|s| s.parse::<CallStatus>()).transpose().map_err(ApiError::BadQuery)?;
    let limit = match &query.limit {
        Some(l) => l.parse().map_err(|_| ApiError::BadQuery(format!("limit {l:?} is not a number")))?,
        None => DEFAULT_LIMIT,
    };
    let since = query.since.as_deref().map(super::extract::since).transpose()?;
    let function = query.function.as_deref();
    let records = app.calls.list(&namespace, function, status, since, limit, Duration::from_secs(10)).await?;
    Ok(Json(records.into_iter().map(public).collect()))
}

/// `DELETE /async-function/{name}/{call id}`: [`cancel`], for a call of that function only.
pub async fn cancel_of(
    State(app): State<App>,
    Path(super::FunctionCallPath { name, id }): Path<super::FunctionCallPath>,
) -> Result<Json<CallRecord>, ApiError> {
    let function = app.function_ref(&name);
    match app.calls.get(&id).await? {
        Some(record) if record.function_ref() == function => cancel(State(app), Path(super::CallPath { id })).await,
        _ => Err(ApiError::UnknownCall(id)),
    }
}

/// Cancels a queued or running call and every call it started that has not ended (fan-out children, chained
/// steps, a join not started yet): the records say cancelled at once, running calls are stopped by their
/// workers, and a cancellation's callback goes out through the durable outbox. A call that has ended can still
/// be "cancelled" for the sake of what it started; with nothing left to cancel it is a 409.
pub async fn cancel(
    State(app): State<App>,
    Path(super::CallPath { id }): Path<super::CallPath>,
) -> Result<Json<CallRecord>, ApiError> {
    let (record, cancelled_itself) = match cancel_one(&app, &id).await? {
        Cancelled::Now(record) => (record, true),
        Cancelled::Ended(record) => (record, false),
        Cancelled::Missing => return Err(ApiError::UnknownCall(id)),
    };
    let descendants = cancel_descendants(&app, &record).await?;
    if !cancelled_itself && descendants == 0 {
        return Err(ApiError::CallFinished { id, status: record.status.as_str() });
    }
    tracing::info!(call_id = %id, cancelled_itself, descendants, "call cancelled");
    Ok(Json(public(record)))
}

/// Descendants looked at by one cancellation at most.
const MAX_CASCADE: usize = 1000;

/// Cancels the calls `record` started, and theirs, that have not ended; returns how many were cancelled.
/// A listed call with no record yet (a join whose group is still running) gets a cancelled one, so it never
/// starts.
async fn cancel_descendants(app: &App, record: &CallRecord) -> Result<usize, ApiError> {
    let under =
        |parent: &CallRecord| parent.children.iter().map(|id| (id.clone(), parent.call_id.clone())).collect::<Vec<_>>();
    let mut frontier = under(record);
    let (mut seen, mut cancelled) = (std::collections::HashSet::new(), 0);
    while let Some((id, parent)) = frontier.pop() {
        if seen.len() >= MAX_CASCADE {
            tracing::warn!(call_id = %record.call_id, "cancellation stopped after {MAX_CASCADE} descendants");
            break;
        }
        if !seen.insert(id.clone()) {
            continue;
        }
        match cancel_one(app, &id).await? {
            Cancelled::Now(child) => {
                cancelled += 1;
                frontier.extend(under(&child));
            }
            Cancelled::Ended(child) => frontier.extend(under(&child)),
            Cancelled::Missing => cancelled += usize::from(cancel_unstarted_join(app, &id, &parent).await?),
        }
    }
    Ok(cancelled)
}

/// Writes a cancelled record for the join `id` of the group `group` if it has not started, so it never does.
async fn cancel_unstarted_join(app: &App, id: &str, group: &str) -> Result<bool, ApiError> {
    let groups = sluice_jetstream::store::GroupStore::new(app.topology.groups.clone());
    let Some((group, _)) = groups.entry(group).await? else { return Ok(false) };
    let Some(join) = group.join.filter(|join| join.call_id == id) else { return Ok(false) };
    let now = Utc::now();
    let mut record = CallRecord::queued(id, &FunctionRef::from_qualified(&join.function, ""), now);
    record.status = CallStatus::Cancelled;
    record.parent_call_id = Some(group.group_id);
    record.root_call_id = Some(group.root_call_id);
    record.finished_at = Some(now);
    record.error = Some("cancelled on request before it started".into());
    Ok(app.calls.create(&record).await?.is_some())
}

/// What cancelling one call did.
enum Cancelled {
    /// Cancelled now; its record as written.
    Now(CallRecord),
    /// It had ended already; its record.
    Ended(CallRecord),
    Missing,
}

/// Cancels one call, with its worker told and its callback queued.
async fn cancel_one(app: &App, id: &str) -> Result<Cancelled, ApiError> {
    let cancelled = app.calls.modify(id, |record| {
        if record.status.is_final() {
            return Err(Box::new(record.clone()));
        }
        record.status = CallStatus::Cancelled;
        record.finished_at = Some(Utc::now());
        record.error = Some("cancelled on request".into());
        if record.callback_url.is_some() {
            record.callback = Some(CallbackState { state: CallbackDelivery::Pending, attempts: 0, last_error: None });
        }
        Ok(())
    });
    let record = match cancelled.await? {
        Modified::Written(record) => *record,
        Modified::Missing => return Ok(Cancelled::Missing),
        Modified::Refused(ended) => return Ok(Cancelled::Ended(*ended)),
        Modified::KeepsChanging => {
            return Err(ApiError::Conflict("the call's record keeps changing; try again".into()));
        }
    };
    // Core NATS reaches every worker; the one running the call stops it.
    let client = &app.topology.client;
    if let Err(err) = client.publish(names::cancel_subject(id), bytes::Bytes::new()).await {
        tracing::warn!(call_id = %id, %err, "cancellation notice not sent; a running call finishes but is not recorded");
    }
    let _ = client.flush().await;
    if let Some(url) = &record.callback_url {
        let max_attempts = match app.functions.get(&record.function_ref()).await {
            Ok(Some(spec)) => spec.async_config.and_then(|a| a.retry).and_then(|r| r.attempts),
            _ => None,
        };
        enqueue_cancellation_callback(app, &record, url, max_attempts.unwrap_or(record.attempts.max(1))).await?;
    }
    Ok(Cancelled::Now(record))
}

async fn enqueue_cancellation_callback(
    app: &App,
    record: &CallRecord,
    url: &str,
    max_attempts: u32,
) -> Result<(), ApiError> {
    let now = Utc::now();
    let started = record.started_at.unwrap_or(now);
    let headers = contract_headers(&CallbackFacts {
        call_id: &record.call_id,
        function: &record.function_ref(),
        ce_type: names::CE_TYPE_CANCELLED,
        function_status: CANCELLED_STATUS,
        duration_seconds: (now - started).to_std().unwrap_or_default().as_secs_f64(),
        started,
        attempt: record.attempts,
        max_attempts,
        content_type: Some("application/json"),
    });
    let body = serde_json::to_vec(&serde_json::json!({ "error": "cancelled on request" })).expect("json");
    let message = CallbackMessage {
        url: url.to_owned(),
        call_id: record.call_id.clone(),
        function: record.function_ref(),
        headers,
        body: Payload::Inline(body.into()),
        recipient: sluice_contracts::callback::Recipient::Caller,
        // Its own outbox message: an earlier end's callback may still be in the duplicate window (a failure the
        // cancelled call is a replay of) and must not be taken for this one.
        series: Some(sluice_contracts::callback::CANCELLED_SERIES.to_owned()),
    };
    app.queue
        .enqueue_callback(&message)
        .await
        .map_err(|e| ApiError::NotPersisted(format!("cancellation callback: {e}")))
}
