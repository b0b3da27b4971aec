//! Function consumers made before idle functions let theirs go have no inactive threshold: each would stay, and
//! cost the server as before, until its function is next called. A starting worker gives each one its idle
//! time, and the server then lets it go like any other once nobody polls it.

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use sluice_contracts::names;

use super::consume::OPENING;

/// Gives every function consumer without an inactive threshold `idle_after`.
pub async fn give_idle_time(js: &jetstream::Context, idle_after: Duration) {
    let mut changed = 0;
    for stream_name in names::invocation_streams() {
        let stream = match js.get_stream_no_info(&stream_name).await {
            Ok(stream) => stream,
            Err(err) => {
                tracing::debug!(stream = stream_name, %err, "queue shard not looked at");
                continue;
            }
        };
        let mut old: Vec<consumer::Config> = Vec::new();
        let mut listed = stream.consumers();
        while let Some(info) = listed.next().await {
            match info {
                Ok(info)
                    if info.name.starts_with(names::INVOKE_CONSUMER_PREFIX)
                        && info.config.inactive_threshold.is_zero() =>
                {
                    old.push(info.config)
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!(stream = stream_name, %err, "queue shard's consumers not listed");
                    break;
                }
            }
        }
        for mut config in old {
            config.inactive_threshold = idle_after;
            let _turn = OPENING.acquire().await.expect("never closed");
            match stream.update_consumer(config).await {
                Ok(_) => changed += 1,
                // Such as removed meanwhile, or changed by another worker starting at the same time.
                Err(err) => tracing::debug!(stream = stream_name, %err, "consumer not changed here"),
            }
        }
    }
    if changed > 0 {
        tracing::info!(changed, ?idle_after, "function consumers of before now go when idle");
    }
}
