//! Dead letters: calls that failed for good go to `sluice.dead.{function}` with their original request
//! (headers and body, or the body's object-store name) and why they failed, so they can be inspected and
//! replayed.

use async_nats::HeaderMap;
use bytes::Bytes;
use sluice_schemas::names::{self, wire};

use crate::{Worker, outcome::Outcome};

/// Publishes the dead letter of a call; returns its sequence in `SLUICE_DEAD`.
pub async fn publish(
    worker: &Worker,
    function: &str,
    call_id: &str,
    original: &HeaderMap,
    body: Bytes,
    outcome: &Outcome,
    attempts: u32,
) -> Result<u64, async_nats::Error> {
    let mut headers = original.clone();
    // One dead letter per failure series, even if the series' end is recorded twice.
    headers.insert(wire::NATS_MSG_ID, format!("{call_id}.dead.{}", original_sequence_marker(original)));
    headers.insert(wire::DEAD_STATUS, outcome.status.to_string());
    headers.insert(wire::DEAD_ERROR, outcome.error.clone().unwrap_or_default().replace(['\r', '\n'], " "));
    headers.insert(wire::DEAD_ATTEMPTS, attempts.to_string());
    let ack =
        worker.topology.jetstream.publish_with_headers(names::dead_subject(function), headers, body).await?.await?;
    Ok(ack.sequence)
}

/// Distinguishes the failure series of a call and of each of its replays.
fn original_sequence_marker(headers: &HeaderMap) -> String {
    headers.get(wire::REPLAY_OF).map(|v| format!("r{}", v.as_str())).unwrap_or_else(|| "0".to_owned())
}
