//! `GET /system/calls/{id}/tree`: the pipeline a call belongs to, from its root (the first call without a
//! parent) down through every call that went on from another, with statuses, durations and progress. A call
//! whose function reports no progress of its own but has children (a fan-out) shows the share of them that
//! has ended.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, State},
};
use chrono::Utc;
use sluice_contracts::{CallProgress, CallRecord, CallTree};

use super::calls::public;
use crate::{ApiError, App};

/// Parents followed up from a call at most, looking for its root.
const MAX_ANCESTORS: usize = 64;
/// Calls one tree shows at most.
const MAX_CALLS: usize = 1000;

pub async fn tree(
    State(app): State<App>,
    Path(super::CallPath { id }): Path<super::CallPath>,
) -> Result<Json<CallTree>, ApiError> {
    let mut root = app.calls.get(&id).await?.ok_or_else(|| ApiError::UnknownCall(id.clone()))?;
    // Calls started by a worker name their root: one read rather than a walk up.
    if let Some(named) = &root.root_call_id
        && let Some(record) = app.calls.get(named).await?
    {
        root = record;
    }
    for _ in 0..MAX_ANCESTORS {
        let Some(parent) = &root.parent_call_id else { break };
        // A parent whose record expired leaves its oldest known descendant as the root.
        match app.calls.get(parent).await? {
            Some(record) => root = record,
            None => break,
        }
    }
    let mut found: HashMap<String, CallRecord> = HashMap::new();
    let mut frontier = root.children.clone();
    while !frontier.is_empty() && found.len() < MAX_CALLS {
        let reads = frontier.iter().filter(|id| !found.contains_key(*id)).map(|id| app.calls.get(id));
        let records = futures::future::try_join_all(reads).await?;
        frontier.clear();
        for record in records.into_iter().flatten() {
            frontier.extend(record.children.iter().cloned());
            found.insert(record.call_id.clone(), record);
        }
    }
    Ok(Json(assemble(root, &mut found)))
}

/// `record` with the calls it went on to, each taken out of `found` once (so a cycle cannot recurse).
fn assemble(mut record: CallRecord, found: &mut HashMap<String, CallRecord>) -> CallTree {
    let next = record.children.iter().filter_map(|id| found.remove(id)).collect::<Vec<_>>();
    let next: Vec<CallTree> = next.into_iter().map(|child| assemble(child, found)).collect();
    if record.progress.is_none() && !record.children.is_empty() {
        // Children not started yet (a join waiting for its group) count as not ended.
        let ended = next.iter().filter(|child| child.call.status.is_final()).count();
        let total = record.children.len();
        record.progress = Some(CallProgress {
            percent: Some((ended * 100) as f64 / total as f64),
            message: Some(format!("{ended} of {total} calls it started have ended")),
            updated_at: Utc::now(),
        });
    }
    let duration_seconds = record.started_at.map(|started| {
        let end = record.finished_at.unwrap_or_else(Utc::now);
        (end - started).to_std().unwrap_or_default().as_secs_f64()
    });
    CallTree { call: public(record), duration_seconds, next }
}
