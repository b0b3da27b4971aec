//! The latest value of every key under one prefix of a KV bucket, read in one pass over the bucket's stream.
//!
//! Listings (a namespace's functions, its secrets, a function's replica reports) read only their own keys this
//! way: one ordered consumer filtered to the prefix, delivering the last message per key, instead of a listing
//! of every key followed by one read per key.

use std::time::Duration;

use async_nats::jetstream::{
    consumer::{DeliverPolicy, pull::OrderedConfig},
    kv,
};
use bytes::Bytes;
use futures::StreamExt;

use super::StoreError;

/// One key's latest value.
#[derive(Debug, Clone)]
pub struct Latest {
    /// The whole key, prefix included.
    pub key: String,
    pub value: Bytes,
    pub written: chrono::DateTime<chrono::Utc>,
}

/// Every live key under `prefix` (`{prefix}.…`; every key when `None`), with its value unless `values` is
/// false. Waits at most 5 s for any one message, so a stalled server cannot hold the caller forever.
pub async fn latest_under(kv: &kv::Store, prefix: Option<&str>, values: bool) -> Result<Vec<Latest>, StoreError> {
    let filter = match prefix {
        Some(prefix) => format!("{}{prefix}.>", kv.prefix),
        None => format!("{}>", kv.prefix),
    };
    let consumer = kv
        .stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            deliver_policy: DeliverPolicy::LastPerSubject,
            headers_only: !values,
            ..Default::default()
        })
        .await
        .map_err(StoreError::unavailable)?;
    let mut found = Vec::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(found);
    }
    let mut messages = consumer.messages().await.map_err(StoreError::unavailable)?;
    loop {
        let message = match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(err))) => return Err(StoreError::unavailable(err)),
            Ok(None) => break,
            Err(elapsed) => return Err(StoreError::unavailable(elapsed)),
        };
        let info = message.info().map_err(|e| StoreError::Unavailable(e.to_string().into()))?;
        let pending = info.pending;
        let written = super::written_at(info.published);
        let removed = message
            .headers
            .as_ref()
            .and_then(|h| h.get("KV-Operation"))
            .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"));
        if !removed && let Some(key) = message.subject.strip_prefix(kv.prefix.as_str()) {
            found.push(Latest { key: key.to_owned(), value: message.payload.clone(), written });
        }
        if pending == 0 {
            break;
        }
    }
    Ok(found)
}
