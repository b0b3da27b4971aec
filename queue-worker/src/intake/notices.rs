//! The worker's core NATS listeners (cancellations, scale and log requests) share one shape: every message on
//! `{prefix}.>`, with what follows the prefix (a call id, or a function's `{namespace}.{name}` key), until
//! shutdown.

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError};

/// Hands each message on `{prefix}.>` to `handle` with the subject after `{prefix}.`, until `shutdown`.
/// `handle` runs inline, so one that waits on anything spawns its own task.
pub async fn each(
    worker: &Worker,
    prefix: &str,
    shutdown: &CancellationToken,
    mut handle: impl FnMut(String, async_nats::Message),
) -> Result<(), WorkerError> {
    let mut messages = worker
        .topology
        .client
        .subscribe(format!("{prefix}.>"))
        .await
        .map_err(|e| WorkerError::Subscribe(format!("{prefix}.>: {e}")))?;
    let prefix = format!("{prefix}.");
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = messages.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let rest = message.subject.as_str().strip_prefix(&prefix).unwrap_or_default().to_owned();
        handle(rest, message);
    }
}
