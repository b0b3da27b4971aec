//! Keeping a running call's lease: in-progress acks at a third of the ack wait, so a call may run far longer
//! than the ack wait without being redelivered, while a dead worker's calls come back soon.

use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};

/// Sends in-progress acks for `message` until dropped (used inside a `select!` against the call).
pub async fn keep(message: &Message, ack_wait: Duration) {
    let every = (ack_wait / 3).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        if let Err(err) = message.ack_with(AckKind::Progress).await {
            tracing::warn!(%err, "could not extend the call's lease");
        }
    }
}
