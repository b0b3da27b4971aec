//! A worker's presence: what it says about itself every few seconds in KV `sluice_workers`, so operators (the
//! console's health page, `GET /system/health`) see which workers are up and how busy they are. An entry that is
//! not renewed lapses with the bucket's TTL: a worker that died drops out on its own.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How often a worker renews its presence.
pub const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a presence lasts unless renewed.
pub const PRESENCE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPresence {
    /// `--worker-id` (the host name unless set).
    pub worker_id: String,
    /// This run of the worker: workers sharing an id (one host) stay apart.
    pub instance: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    /// Calls running on it now (async and sync).
    pub inflight: usize,
    /// `--max-inflight`.
    pub max_inflight: usize,
    /// Functions it serves.
    pub functions: usize,
    /// Whether it runs container functions.
    pub containers: bool,
}

impl WorkerPresence {
    /// Its key in `sluice_workers`: the id made key-safe, then the instance.
    pub fn key(&self) -> String {
        let id: String = self
            .worker_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .take(100)
            .collect();
        format!("{id}-{}", self.instance)
    }
}

/// What `GET /system/health` answers: the workers that are up and the size of everything Sluice keeps.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemHealth {
    pub workers: Vec<WorkerPresence>,
    /// Streams, key-value buckets and the object store, by their JetStream stream names.
    pub streams: Vec<StreamSize>,
}

/// One JetStream stream's size, and the limits that bound it.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamSize {
    pub name: String,
    pub messages: u64,
    pub bytes: u64,
    pub consumers: usize,
    /// Most bytes it may hold; absent when only its age bounds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// How long a message is kept, in seconds; absent when kept until taken or replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u64>,
    /// What a full stream does: `"discard oldest"` or `"refuse new"`.
    #[serde(default)]
    pub when_full: String,
}
