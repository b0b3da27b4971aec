//! Progress events on `sluice.progress.{namespace}.{function}` (CloudEvents type `sluice.invocation.progress`),
//! stored in `SLUICE_RESULTS` beside the completion events, for dashboards and functions that follow others.
//! One per progress write of the call's record, so at most as many as the record's rate allows.

use async_nats::HeaderMap;
use sluice_contracts::{
    CallProgress, FunctionRef,
    names::{self, ce, http_headers as h, wire},
};

use crate::Worker;

/// Publishes one progress event in the background: a lost one is followed by the next, or by the
/// completion event, so the call never waits for it.
pub fn publish(worker: &Worker, call_id: &str, function: &FunctionRef, attempt: u32, progress: &CallProgress) {
    let mut headers = HeaderMap::new();
    headers.insert(ce::SPECVERSION, ce::VERSION);
    headers.insert(ce::ID, format!("{call_id}.progress.{}", progress.updated_at.timestamp_micros()));
    headers.insert(ce::TYPE, names::CE_TYPE_PROGRESS);
    headers.insert(ce::SOURCE, names::CE_SOURCE_WORKER);
    headers.insert(ce::SUBJECT, function.key());
    headers.insert(ce::TIME, progress.updated_at.to_rfc3339());
    headers.insert(h::CALL_ID, call_id);
    headers.insert(h::ATTEMPT, attempt.to_string());
    headers.insert(wire::CONTENT_TYPE, "application/json");
    let body = serde_json::to_vec(progress).expect("progress always serialises");
    let (jetstream, subject) = (worker.topology.jetstream.clone(), names::progress_subject(function));
    tokio::spawn(async move {
        let stored = async { jetstream.publish_with_headers(subject, headers, body.into()).await?.await };
        if let Err(err) = stored.await {
            tracing::debug!(%err, "progress event not stored");
        }
    });
}
