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
    handle: impl FnMut(String, async_nats::Message),
) -> Result<(), WorkerError> {
    handle_each(subscribe(worker, prefix).await?, prefix, shutdown, handle).await
}

/// Subscribes to `{prefix}.>`; once this returns, the server has the subscription.
pub async fn subscribe(worker: &Worker, prefix: &str) -> Result<async_nats::Subscriber, WorkerError> {
    let client = &worker.topology.client;
    let messages = client
        .subscribe(format!("{prefix}.>"))
        .await
        .map_err(|e| WorkerError::Subscribe(format!("{prefix}.>: {e}")))?;
    client.flush().await.map_err(|e| WorkerError::Subscribe(format!("{prefix}.>: {e}")))?;
    Ok(messages)
}

/// [`each`] on a subscription made already.
pub async fn handle_each(
    mut messages: async_nats::Subscriber,
    prefix: &str,
    shutdown: &CancellationToken,
    mut handle: impl FnMut(String, async_nats::Message),
) -> Result<(), WorkerError> {
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
