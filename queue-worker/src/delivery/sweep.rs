//! Collecting stored bodies that no live call needs: a body whose call record is gone (expired, or the call
//! was never queued because its gateway died mid-intake), a succeeded or cancelled call's request body, and
//! synchronous responses (read once, at once). A failed call's request body stays for its dead letter's replay.
//! Bodies younger than the orphan age are left alone: their call may still be on its way. Any number of
//! workers may sweep at once; deleting twice is harmless.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use sluice_contracts::CallStatus;
use tokio_util::sync::CancellationToken;

use crate::Worker;

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

/// Whether the body `name` is still needed, given its call's status (`None`: no record).
fn needed(name: &str, status: Option<CallStatus>) -> bool {
    if name.ends_with(".sync-response") {
        return false;
    }
    match status {
        None => false,
        // A request body is replayed with its dead letter; a result is what the outbox still delivers.
        Some(CallStatus::Succeeded | CallStatus::Cancelled) => name.ends_with(".result"),
        Some(_) => true,
    }
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
        let call_id = object.name.strip_suffix(".result").unwrap_or(&object.name);
        let call_id = call_id.strip_suffix(".sync-response").unwrap_or(call_id);
        let status = match worker.calls.get(call_id).await {
            Ok(record) => record.map(|r| r.status),
            Err(_) => continue, // unsure: keep it
        };
        if !needed(&object.name, status) && worker.topology.payloads.delete(&object.name).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_kept() {
        assert!(!needed("abc", None), "no record: nobody needs it");
        assert!(!needed("abc", Some(CallStatus::Succeeded)));
        assert!(needed("abc", Some(CallStatus::Failed)), "kept for the dead letter's replay");
        assert!(needed("abc", Some(CallStatus::Queued)));
        assert!(needed("abc.result", Some(CallStatus::Succeeded)));
        assert!(!needed("abc.sync-response", Some(CallStatus::Running)));
    }
}
