//! `GET /system/health`: the workers that are up (from their presence in KV `sluice_workers`) and the size of
//! every stream, bucket and object store Sluice keeps, with the limits that bound each — what an operator looks at
//! first.

use async_nats::jetstream::stream::DiscardPolicy;
use axum::{Json, extract::State};
use futures::StreamExt;
use sluice_contracts::{
    names,
    presence::{StreamSize, SystemHealth, WorkerPresence},
};

use crate::{ApiError, App};

/// The streams behind everything Sluice keeps, by JetStream name.
fn stream_names() -> Vec<String> {
    let streams = [names::EVENTS_STREAM, names::RESULTS_STREAM, names::DEAD_STREAM, names::CALLBACKS_STREAM];
    let buckets = [
        names::CALLS_BUCKET,
        names::GROUPS_BUCKET,
        names::FUNCTIONS_BUCKET,
        names::WORKERS_BUCKET,
        names::REPLICAS_BUCKET,
        names::INVOCATIONS_BUCKET,
        names::NAMESPACES_BUCKET,
        names::SECRETS_BUCKET,
    ];
    let mut all: Vec<String> = names::invocation_streams().collect();
    all.extend(streams.iter().map(|s| (*s).to_owned()));
    all.extend(buckets.iter().map(|b| format!("KV_{b}")));
    all.push(format!("OBJ_{}", names::PAYLOADS_BUCKET));
    all
}

/// Workers seen at most this many: a bound on the answer, far above any real cluster.
const MAX_WORKERS: usize = 1000;

/// Every stream's size and limits, read now: one request per stream.
pub(crate) async fn stream_sizes(js: &async_nats::jetstream::Context) -> Vec<StreamSize> {
    let mut streams = Vec::new();
    for name in stream_names() {
        // A bucket nobody created yet (an older deployment) is left out.
        // `get_stream` reads the stream's info already: one request per stream.
        let Ok(stream) = js.get_stream(&name).await else { continue };
        let info = stream.cached_info();
        let config = &info.config;
        streams.push(StreamSize {
            name,
            messages: info.state.messages,
            bytes: info.state.bytes,
            consumers: info.state.consumer_count,
            max_bytes: u64::try_from(config.max_bytes).ok(),
            max_age_seconds: Some(config.max_age.as_secs()).filter(|&seconds| seconds > 0),
            when_full: match config.discard {
                DiscardPolicy::Old => "discard oldest",
                DiscardPolicy::New => "refuse new",
            }
            .to_owned(),
        });
    }
    streams
}

pub async fn health(State(app): State<App>) -> Result<Json<SystemHealth>, ApiError> {
    let unavailable = |e: &dyn std::fmt::Display| ApiError::Unavailable(format!("reading {e}"));
    let streams = stream_sizes(&app.topology.jetstream).await;
    let mut workers = Vec::new();
    let mut keys = app.topology.workers.keys().await.map_err(|e| unavailable(&e))?.take(MAX_WORKERS);
    while let Some(Ok(key)) = keys.next().await {
        if let Ok(Some(value)) = app.topology.workers.get(&key).await
            && let Ok(presence) = serde_json::from_slice::<WorkerPresence>(&value)
        {
            workers.push(presence);
        }
    }
    workers.sort_by(|a, b| a.worker_id.cmp(&b.worker_id).then(a.instance.cmp(&b.instance)));
    Ok(Json(SystemHealth { workers, streams }))
}
