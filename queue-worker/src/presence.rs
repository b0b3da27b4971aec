//! Telling the cluster this worker is up: its presence in KV `sluice_workers`, renewed every few seconds with
//! how busy it is, and withdrawn when it stops (a worker that dies drops out when the entry lapses).

use std::sync::Arc;

use chrono::Utc;
use sluice_contracts::presence::{RENEW_EVERY, WorkerPresence};
use tokio_util::sync::CancellationToken;

use crate::Worker;

/// Renews this worker's presence until `shutdown`, then withdraws it.
pub async fn announce(worker: Arc<Worker>, shutdown: CancellationToken) {
    let mut presence = WorkerPresence {
        worker_id: worker.cfg.worker_id.clone(),
        instance: format!("{:08x}", rand::random::<u32>()),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: Utc::now(),
        seen_at: Utc::now(),
        inflight: 0,
        max_inflight: worker.cfg.max_inflight,
        functions: 0,
        containers: worker.runtimes.containers().is_some(),
    };
    let key = presence.key();
    let mut every = tokio::time::interval(RENEW_EVERY);
    loop {
        tokio::select! { _ = shutdown.cancelled() => break, _ = every.tick() => {} }
        presence.seen_at = Utc::now();
        presence.inflight = worker.cfg.max_inflight.saturating_sub(worker.slots.available_permits());
        presence.functions = worker.specs.read().expect("specs lock").len();
        let value = serde_json::to_vec(&presence).expect("a presence serialises");
        if let Err(err) = worker.topology.workers.put(&key, value.into()).await {
            tracing::debug!(%err, "presence not renewed");
        }
    }
    let _ = worker.topology.workers.delete(&key).await;
}
