//! The queue metrics of every function this worker serves, from one read of each shard stream's per-subject
//! counts every few seconds — not one consumer read per function, which made idle functions cost
//! the server work in proportion to how many were deployed.
//!
//! On the work-queue stream a call's message stays until its outcome is stored, so a function's subject count
//! is its calls queued and not yet finished (waiting, or running), and the first message on the subject is the
//! oldest of them. Seeing calls on a function whose poll is old also checks that poll (`pulls`).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;
use sluice_contracts::{FunctionRef, names};
use tokio_util::sync::CancellationToken;

use crate::{Worker, metrics};

/// How often the queues are read.
const EVERY: Duration = Duration::from_secs(5);

/// Samples the queues until `stop`.
pub async fn sample(worker: Arc<Worker>, stop: CancellationToken) {
    let mut every = tokio::time::interval(EVERY);
    loop {
        tokio::select! { _ = stop.cancelled() => return, _ = every.tick() => {} }
        if let Err(err) = sample_once(&worker).await {
            tracing::debug!(%err, "queue sizes not read; trying again shortly");
        }
    }
}

async fn sample_once(worker: &Worker) -> Result<(), async_nats::Error> {
    let served: Vec<FunctionRef> = worker.specs.read().expect("spec map lock").keys().cloned().collect();
    let mut by_shard: BTreeMap<u32, Vec<FunctionRef>> = BTreeMap::new();
    for function in served {
        by_shard.entry(names::invocation_shard(&function)).or_default().push(function);
    }
    for (shard, functions) in by_shard {
        sample_shard(worker, shard, functions).await?;
    }
    Ok(())
}

/// One shard's subject counts, for the functions served on it.
async fn sample_shard(worker: &Worker, shard: u32, functions: Vec<FunctionRef>) -> Result<(), async_nats::Error> {
    let stream = worker.topology.jetstream.get_stream_no_info(names::invocations_stream_of(shard)).await?;
    // Only subjects holding messages are listed: the answer grows with the functions that have work.
    let mut subjects = stream.info_with_subjects(names::queue_subjects_of(shard)).await?;
    let mut queued: HashMap<String, u64> = HashMap::new();
    while let Some(entry) = subjects.next().await {
        let (subject, count) = entry?;
        queued.insert(subject, count as u64);
    }
    for function in functions {
        let subject = names::invoke_subject(&function);
        let count = queued.get(&subject).copied().unwrap_or(0);
        metrics::pending(&function, count);
        if count > 0 {
            worker.polls.work_seen(&stream, &function).await;
        }
        let mut age = 0.0;
        if count > 0
            && let Ok(oldest) = stream.get_first_raw_message_by_subject(subject.as_str(), 1).await
        {
            let queued_at = sluice_jetstream::store::written_at(oldest.time);
            age = (chrono::Utc::now() - queued_at).to_std().unwrap_or_default().as_secs_f64();
        }
        metrics::oldest_age(&function, age);
    }
    Ok(())
}
