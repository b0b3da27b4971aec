//! Collecting stored bodies that no live call needs: a body whose call record is gone (expired, or the call
//! was never queued because its gateway died mid-intake), a succeeded or cancelled call's request body, and
//! synchronous responses (read once, at once). A failed call's request body stays for its dead letter's replay.
//! A large result stays while it can be fetched (until its kept result expires) and while its callback waits.
//! Bodies younger than the orphan age are left alone: their call may still be on its way. Any number of
//! workers may sweep at once; deleting twice is harmless.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use futures::StreamExt;
use sluice_contracts::{CallRecord, CallStatus, CallbackDelivery};
use tokio_util::sync::CancellationToken;

use crate::{Worker, results};

/// When and what to sweep.
#[derive(Clone, Copy, Debug)]
pub struct SweepConfig {
    pub every: Duration,
    /// Stored bodies younger than this are never collected.
    pub orphan_age: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self { every: Duration::from_secs(600), orphan_age: Duration::from_secs(3600) }
    }
}

/// Sweeps every `cfg.every` until `shutdown`.
pub async fn run(worker: Arc<Worker>, cfg: SweepConfig, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(cfg.every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! { _ = shutdown.cancelled() => return, _ = every.tick() => {} }
        match sweep(&worker, cfg.orphan_age).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "stored bodies no call needs were removed"),
            Err(err) => tracing::warn!(%err, "could not sweep stored bodies"),
        }
    }
}

/// Whether the body `name` is still needed, given its call's record (`None`: no record).
fn needed(name: &str, record: Option<&CallRecord>) -> bool {
    if name.ends_with(".sync-response") {
        return false;
    }
    let Some(record) = record else { return false };
    if results::call_of_result(name).is_some() {
        let fetchable = record.result.as_ref().is_some_and(|r| r.expires_at.is_none_or(|due| due > Utc::now()));
        let pending = |c: &Option<sluice_contracts::CallbackState>| {
            c.as_ref().is_some_and(|c| c.state == CallbackDelivery::Pending)
        };
        let delivering = pending(&record.callback) || pending(&record.destination);
        return fetchable || delivering;
    }
    // A request body is replayed with its dead letter.
    !matches!(record.status, CallStatus::Succeeded | CallStatus::Cancelled)
}

async fn sweep(worker: &Worker, orphan_age: Duration) -> Result<u64, async_nats::Error> {
    let cutoff = time::OffsetDateTime::now_utc() - orphan_age;
    let mut objects = worker.topology.payloads.list().await?;
    let mut removed = 0;
    while let Some(object) = objects.next().await {
        let object = object?;
        if object.deleted || object.modified.is_none_or(|m| m > cutoff) {
            tracing::debug!(object = %object.name, modified = ?object.modified, "stored bodies: too young to sweep");
            continue;
        }
        let call_id = results::call_of_result(&object.name)
            .or_else(|| object.name.strip_suffix(".sync-response"))
            .unwrap_or(&object.name);
        let record = match worker.calls.get(call_id).await {
            Ok(record) => record,
            Err(_) => continue, // unsure: keep it
        };
        if !needed(&object.name, record.as_ref()) && worker.topology.payloads.delete(&object.name).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: CallStatus) -> CallRecord {
        let mut record = CallRecord::queued("abc", &sluice_contracts::FunctionRef::new("ns", "f"), Utc::now());
        record.status = status;
        record
    }

    fn with_result(mut record: CallRecord, expires_in: i64) -> CallRecord {
        let expires_at = Some(Utc::now() + chrono::Duration::seconds(expires_in));
        record.result = Some(sluice_contracts::StoredResult { sequence: 1, size: 1, expires_at, state: None });
        record
    }

    #[test]
    fn what_is_kept() {
        assert!(!needed("abc", None), "no record: nobody needs it");
        assert!(!needed("abc", Some(&record(CallStatus::Succeeded))));
        assert!(needed("abc", Some(&record(CallStatus::Failed))), "kept for the dead letter's replay");
        assert!(needed("abc", Some(&record(CallStatus::Queued))));
        assert!(!needed("abc.sync-response", Some(&record(CallStatus::Running))));
    }

    #[test]
    fn a_large_result_is_kept_while_it_can_be_fetched_or_its_callback_waits() {
        let done = record(CallStatus::Succeeded);
        assert!(needed("abc.result", Some(&with_result(done.clone(), 60))));
        assert!(!needed("abc.result", Some(&with_result(done.clone(), -1))), "expired");
        let mut waiting = with_result(done, -1);
        waiting.callback =
            Some(sluice_contracts::CallbackState { state: CallbackDelivery::Pending, attempts: 1, last_error: None });
        assert!(needed("abc.result", Some(&waiting)));
        assert!(needed("abc.result.r9", Some(&waiting)), "a replay's result");
    }
}
