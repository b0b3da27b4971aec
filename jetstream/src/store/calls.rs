//! Call records in KV `sluice_calls`, keyed by call id.

use std::time::Duration;

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::StoreError;
use sluice_contracts::{CallRecord, CallStatus, call::is_valid_call_id};

/// What [`CallStore::modify`] did.
#[derive(Debug)]
pub enum Modified<E> {
    /// The change is stored; the record as written.
    Written(Box<CallRecord>),
    /// There is no such record.
    Missing,
    /// The change refused the record as it found it.
    Refused(E),
    /// Someone else kept writing first.
    KeepsChanging,
}

/// How often [`CallStore::modify`] looks again after losing a race.
const MODIFY_TRIES: usize = 5;

/// Call records. Records expire with the bucket's TTL.
#[derive(Clone)]
pub struct CallStore {
    kv: kv::Store,
    jetstream: async_nats::jetstream::Context,
}

impl CallStore {
    pub fn new(kv: kv::Store, jetstream: async_nats::jetstream::Context) -> Self {
        Self { kv, jetstream }
    }

    pub async fn get(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        if !is_valid_call_id(call_id) {
            return Ok(None);
        }
        let Some(bytes) = self.kv.get(call_id).await.map_err(StoreError::unavailable)? else {
            return Ok(None);
        };
        decode(call_id, &bytes).map(Some)
    }

    /// The record and its revision, for a later [`CallStore::update`].
    pub async fn entry(&self, call_id: &str) -> Result<Option<(CallRecord, u64)>, StoreError> {
        Ok(self.entry_at(call_id).await?.map(|(record, revision, _)| (record, revision)))
    }

    /// The record, its revision, and when that revision was written.
    pub async fn entry_at(&self, call_id: &str) -> Result<Option<(CallRecord, u64, DateTime<Utc>)>, StoreError> {
        if !is_valid_call_id(call_id) {
            return Ok(None);
        }
        match self.kv.entry(call_id).await.map_err(StoreError::unavailable)? {
            Some(entry) if entry.operation == kv::Operation::Put => decode(call_id, &entry.value)
                .map(|record| Some((record, entry.revision, super::written_at(entry.created)))),
            _ => Ok(None),
        }
    }

    /// Writes `record` only if it is still at `revision`: `Ok(Some(new revision))`, or `Ok(None)` when someone
    /// else (a cancellation, another worker) changed it first.
    pub async fn update(&self, record: &CallRecord, revision: u64) -> Result<Option<u64>, StoreError> {
        let bytes = encode(record);
        match self.kv.update(&record.call_id, bytes.into(), revision).await {
            Ok(revision) => Ok(Some(revision)),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(err) => Err(StoreError::unavailable(err)),
        }
    }

    /// Reads the record of `call_id`, lets `change` edit it, and writes it back at the revision it read;
    /// when someone else wrote first (a worker, a cancellation, the outbox) it reads and changes the newer
    /// record instead. `change` may refuse the record as it finds it.
    pub async fn modify<E>(
        &self,
        call_id: &str,
        mut change: impl FnMut(&mut CallRecord) -> Result<(), E>,
    ) -> Result<Modified<E>, StoreError> {
        for _ in 0..MODIFY_TRIES {
            let Some((mut record, revision)) = self.entry(call_id).await? else { return Ok(Modified::Missing) };
            if let Err(refusal) = change(&mut record) {
                return Ok(Modified::Refused(refusal));
            }
            if self.update(&record, revision).await?.is_some() {
                return Ok(Modified::Written(Box::new(record)));
            }
        }
        Ok(Modified::KeepsChanging)
    }

    /// Writes the first record of a call unless one exists; a worker may already have written
    /// `running`, which must not be overwritten by `queued`. Returns its revision if it was written.
    pub async fn create(&self, record: &CallRecord) -> Result<Option<u64>, StoreError> {
        let bytes = encode(record);
        match self.kv.create(&record.call_id, bytes.into()).await {
            Ok(revision) => Ok(Some(revision)),
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(err) => Err(StoreError::unavailable(err)),
        }
    }

    /// Removes a call's record (of a call that was not queued after all).
    pub async fn delete(&self, call_id: &str) -> Result<(), StoreError> {
        self.kv.delete(call_id).await.map_err(StoreError::unavailable)
    }

    /// Writes `record` whatever is there; returns the new revision.
    pub async fn put(&self, record: &CallRecord) -> Result<u64, StoreError> {
        let bytes = encode(record);
        self.kv.put(&record.call_id, bytes.into()).await.map_err(StoreError::unavailable)
    }

    /// The newest records (by creation) of calls to functions in `namespace` matching `function` and `status`,
    /// made at `since` or later, at most `limit`. The cost follows
    /// the page, not the bucket: records are read from the end of the bucket's stream (the most recently
    /// written), in windows that grow only while the page is not full, until `budget` is spent.
    pub async fn list(
        &self,
        namespace: &str,
        function: Option<&str>,
        status: Option<CallStatus>,
        since: Option<chrono::DateTime<chrono::Utc>>,
        limit: usize,
        budget: Duration,
    ) -> Result<Vec<CallRecord>, StoreError> {
        use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
        // Fresh stream state: `kv::Store::status` answers from a copy taken when the handle was made.
        let stream_name = format!("KV_{}", sluice_contracts::names::CALLS_BUCKET);
        let mut stream = self.jetstream.get_stream(stream_name).await.map_err(StoreError::unavailable)?;
        let state = stream.info().await.map_err(StoreError::unavailable)?.state.clone();
        let mut found: std::collections::HashMap<String, CallRecord> = std::collections::HashMap::new();
        if state.messages == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + budget;
        let (first, last) = (state.first_sequence, state.last_sequence);
        let mut window = (limit as u64).saturating_mul(4).max(64);
        let mut end = last; // read [start, end] this round
        loop {
            let start = end.saturating_sub(window - 1).max(first);
            let consumer = stream
                .create_consumer(OrderedConfig {
                    deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start },
                    ..Default::default()
                })
                .await
                .map_err(StoreError::unavailable)?;
            let mut messages = consumer.messages().await.map_err(StoreError::unavailable)?;
            // Within a window later messages are newer versions; an earlier window only adds what is missing.
            let mut round = std::collections::HashMap::new();
            while let Ok(Some(message)) = tokio::time::timeout_at(deadline, messages.next()).await {
                let message = message.map_err(StoreError::unavailable)?;
                let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(u64::MAX);
                if sequence > end {
                    break;
                }
                if let Ok(record) = serde_json::from_slice::<CallRecord>(&message.payload)
                    && record.namespace == namespace
                    && function.is_none_or(|f| record.function == f)
                    && status.is_none_or(|s| record.status == s)
                    && since.is_none_or(|t| record.created_at >= t)
                {
                    round.insert(record.call_id.clone(), record);
                }
                if sequence == end {
                    break;
                }
            }
            for (id, record) in round {
                found.entry(id).or_insert(record);
            }
            if found.len() >= limit || start <= first || tokio::time::Instant::now() >= deadline {
                break;
            }
            end = start - 1;
            window = window.saturating_mul(4);
        }
        let mut found: Vec<CallRecord> = found.into_values().collect();
        found.sort_by_key(|record| std::cmp::Reverse(record.created_at));
        found.truncate(limit);
        Ok(found)
    }
}

/// A record's JSON, in a buffer with room for a whole one: grown from `serde_json`'s 128 bytes, a record was
/// reallocated and copied once or twice on every write.
fn encode(record: &CallRecord) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(RECORD_CAPACITY);
    serde_json::to_writer(&mut bytes, record).expect("a record always serialises");
    bytes
}

/// Room for a usual record's JSON: 211 bytes queued, 257 running, 452 succeeded with a delivered callback.
const RECORD_CAPACITY: usize = 512;

fn decode(key: &str, bytes: &[u8]) -> Result<CallRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        what: "call record",
        key: key.to_owned(),
        source,
    })
}
