//! The events kept in `SLUICE_EVENTS`, as operators look at them: the newest ones, with what routing made of
//! each. The router marks the events it routed to no function ([`EventLog::mark_unmatched`], KV
//! `sluice_unmatched`); an event at or below the router's acknowledged floor without a mark was matched.

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull::OrderedConfig},
    kv,
};
use futures::StreamExt;
use sluice_contracts::{EventMessage, Routing, StoredEvent, names};

use crate::{Topology, store::StoreError};

/// How many of the newest events a listing searches, whatever its filters.
pub const SCAN: u64 = 10_000;

/// Longest wait for any one message while reading, so a stalled server cannot hold a listing forever.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Which events a listing returns.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub routing: Option<Routing>,
}

impl EventFilter {
    fn keeps_all(&self) -> bool {
        self.source.is_none() && self.event_type.is_none() && self.routing.is_none()
    }

    fn keeps(&self, event: &StoredEvent) -> bool {
        self.source.as_ref().is_none_or(|s| *s == event.source)
            && self.event_type.as_ref().is_none_or(|t| *t == event.event_type)
            && self.routing.is_none_or(|r| r == event.routing)
    }
}

/// Reads `SLUICE_EVENTS` and the marks of unmatched events.
#[derive(Clone)]
pub struct EventLog {
    jetstream: jetstream::Context,
    unmatched: kv::Store,
}

impl EventLog {
    pub fn new(topology: &Topology) -> Self {
        Self { jetstream: topology.jetstream.clone(), unmatched: topology.unmatched.clone() }
    }

    /// Records that the event at `sequence` was routed to no function, and why.
    pub async fn mark_unmatched(&self, sequence: u64, why: &str) -> Result<(), StoreError> {
        self.unmatched.put(sequence.to_string(), why.to_owned().into()).await.map(drop).map_err(StoreError::unavailable)
    }

    /// Records that the event at `sequence` has now reached a function (a replay matched it).
    pub async fn mark_matched(&self, sequence: u64) -> Result<(), StoreError> {
        self.unmatched.purge(sequence.to_string()).await.map_err(StoreError::unavailable)
    }

    /// Whether the event at `sequence` is marked unmatched.
    pub async fn is_unmatched(&self, sequence: u64) -> bool {
        matches!(self.unmatched.get(sequence.to_string()).await, Ok(Some(_)))
    }

    /// The newest `limit` events among the newest [`SCAN`] that `filter` keeps, newest first.
    pub async fn list(&self, filter: &EventFilter, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut stream = self.jetstream.get_stream(names::EVENTS_STREAM).await.map_err(StoreError::unavailable)?;
        let state = stream.info().await.map_err(StoreError::unavailable)?.state.clone();
        if state.messages == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        // Without a filter the newest `limit` are all there is to read.
        let window = if filter.keeps_all() { (limit as u64).min(SCAN) } else { SCAN };
        let start = state.last_sequence.saturating_sub(window - 1).max(state.first_sequence).max(1);
        // A router not created yet has confirmed nothing.
        let floor = match stream.consumer_info(names::ROUTER_CONSUMER).await {
            Ok(info) => info.ack_floor.stream_sequence,
            Err(_) => 0,
        };
        let mut read = Vec::new();
        self.read_from(names::EVENTS_STREAM, DeliverPolicy::ByStartSequence { start_sequence: start }, |message| {
            let Ok(info) = message.info() else { return };
            let (sequence, stored) = (info.stream_sequence, info.published);
            let headers = message.headers.clone().unwrap_or_default();
            // Anything that is not a CloudEvent was never routed; the router logs it.
            if let Ok(event) = EventMessage::from_nats(&headers, message.payload.clone()) {
                read.push((sequence, stored, event));
            }
        })
        .await?;
        let oldest = read.first().map(|(_, stored, _)| *stored);
        let marks = match oldest {
            Some(since) => self.marks_since(since).await?,
            None => HashMap::new(),
        };
        let mut found = Vec::new();
        for (sequence, stored, event) in read.into_iter().rev() {
            let note = marks.get(&sequence).cloned();
            let routing = match (&note, sequence <= floor) {
                (Some(_), _) => Routing::Unmatched,
                (None, true) => Routing::Matched,
                (None, false) => Routing::Waiting,
            };
            let entry = StoredEvent {
                sequence,
                preview: StoredEvent::preview_of(&event.data),
                size: event.data.len(),
                id: event.id,
                source: event.source,
                event_type: event.event_type,
                subject: event.subject,
                time: event.time.map(|t| t.to_rfc3339()),
                received_at: crate::store::written_at(stored).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                content_type: event.content_type,
                routing,
                note,
            };
            if filter.keeps(&entry) {
                found.push(entry);
                if found.len() == limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// The unmatched marks written since `since` (a mark is written after its event is stored), by sequence.
    async fn marks_since(&self, since: time::OffsetDateTime) -> Result<HashMap<u64, String>, StoreError> {
        let name = format!("KV_{}", names::UNMATCHED_BUCKET);
        let prefix = format!("$KV.{}.", names::UNMATCHED_BUCKET);
        let mut marks = HashMap::new();
        self.read_from(&name, DeliverPolicy::ByStartTime { start_time: since }, |message| {
            let sequence = message.subject.strip_prefix(prefix.as_str()).and_then(|key| key.parse::<u64>().ok());
            let removed = message.headers.as_ref().and_then(|h| h.get("KV-Operation")).is_some();
            if let Some(sequence) = sequence {
                if removed {
                    marks.remove(&sequence);
                } else {
                    marks.insert(sequence, String::from_utf8_lossy(&message.payload).into_owned());
                }
            }
        })
        .await?;
        Ok(marks)
    }

    /// Hands every message of the stream `name` from `from` on to `each`, in order, up to the last one there
    /// when reading began; waits at most [`READ_TIMEOUT`] for any one.
    async fn read_from(
        &self,
        name: &str,
        from: DeliverPolicy,
        mut each: impl FnMut(&jetstream::Message),
    ) -> Result<(), StoreError> {
        let stream = self.jetstream.get_stream_no_info(name).await.map_err(StoreError::unavailable)?;
        let consumer = stream
            .create_consumer(OrderedConfig { deliver_policy: from, ..Default::default() })
            .await
            .map_err(StoreError::unavailable)?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(());
        }
        let mut messages = consumer.messages().await.map_err(StoreError::unavailable)?;
        while let Ok(Some(Ok(message))) = tokio::time::timeout(READ_TIMEOUT, messages.next()).await {
            let pending = message.info().map(|i| i.pending).unwrap_or(0);
            each(&message);
            if pending == 0 {
                break;
            }
        }
        Ok(())
    }
}
