//! The worker's core NATS listeners (cancellations, scale and log requests) share one shape: every message on
//! `{prefix}.*`, with the subject's last token (a call id or a function name), until shutdown.

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError};

/// Hands each message on `{prefix}.*` to `handle` with its last subject token, until `shutdown`. `handle` runs
/// inline, so one that waits on anything spawns its own task.
pub async fn each(
    worker: &Worker,
    prefix: &str,
    shutdown: &CancellationToken,
    mut handle: impl FnMut(String, async_nats::Message),
) -> Result<(), WorkerError> {
    let mut messages = worker
        .topology
        .client
        .subscribe(format!("{prefix}.*"))
        .await
        .map_err(|e| WorkerError::Subscribe(format!("{prefix}.*: {e}")))?;
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = messages.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let token = message.subject.as_str().rsplit('.').next().unwrap_or_default().to_owned();
        handle(token, message);
    }
}
