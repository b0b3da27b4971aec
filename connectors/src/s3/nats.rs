//! MinIO's NATS notification target: MinIO publishes its event JSON (the `Records` schema) on a subject of the
//! same NATS that Sluice uses; this consumes it until shutdown.

use futures::StreamExt;
use sluice_jetstream::topology::Topology;
use tokio_util::sync::CancellationToken;

use super::records::{self, Notification};
use crate::{metrics, router};

/// Consumes MinIO events published on `subject` (in a queue group, so replicas share them).
pub async fn run(
    topology: Topology,
    subject: String,
    shutdown: CancellationToken,
) -> Result<(), async_nats::SubscribeError> {
    let mut messages = topology.client.queue_subscribe(subject.clone(), "sluice-s3-connector".into()).await?;
    tracing::info!(%subject, "consuming MinIO events from NATS");
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = messages.next() => match m { Some(m) => m, None => return Ok(()) },
        };
        let notification: Notification = match serde_json::from_slice(&message.payload) {
            Ok(n) => n,
            Err(err) => {
                metrics::rejected("s3", "malformed");
                tracing::warn!(%err, "not an S3 event notification; dropped");
                continue;
            }
        };
        for record in &notification.records {
            let event = records::to_event(record);
            match router::publish(&topology, records::subject(&record.s3.bucket.name), &event).await {
                Ok(()) => metrics::accepted("s3"),
                Err(err) => tracing::error!(%err, key = %record.s3.object.key, "S3 event not stored"),
            }
        }
    }
}
