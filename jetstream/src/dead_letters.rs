//! The dead-letter stream `SLUICE_DEAD`: calls that failed for good, kept with their original request
//! (headers and body, or the body's object-store name) and why they failed, to be inspected and replayed.

use std::{collections::VecDeque, time::Duration};

use async_nats::{
    HeaderMap,
    jetstream::{
        consumer::{Consumer, DeliverPolicy, pull::OrderedConfig},
        stream::RawMessageErrorKind,
    },
};
use bytes::Bytes;
use futures::StreamExt;
use sluice_contracts::{
    DeadLetter, FunctionRef, InvocationMessage,
    invocation::replay_series,
    names::{self, wire},
};

use crate::{queue::QueueError, store::StoreError, topology::Topology};

/// The longest a listing of dead letters looks back for where the newest it lists begin.
const LIST_BUDGET: Duration = Duration::from_secs(10);

/// Why a call failed for good, as its dead letter says.
pub struct Burial<'a> {
    pub function: &'a FunctionRef,
    pub call_id: &'a str,
    /// The function's HTTP status, or Sluice's for a failure of its own.
    pub status: u16,
    pub error: Option<&'a str>,
    pub attempts: u32,
}

/// Reading and writing dead letters.
pub struct DeadLetters {
    jetstream: async_nats::jetstream::Context,
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).map(|v| v.as_str().to_owned()).unwrap_or_default()
}

impl DeadLetters {
    pub fn new(topology: &Topology) -> Self {
        Self { jetstream: topology.jetstream.clone() }
    }

    /// Stores the dead letter of a call with its original request; returns its sequence in `SLUICE_DEAD`.
    pub async fn bury(&self, original: &HeaderMap, body: Bytes, why: Burial<'_>) -> Result<u64, async_nats::Error> {
        let mut headers = original.clone();
        // One dead letter per failure series, even if the series' end is recorded twice.
        let series = replay_series(original);
        headers.insert(wire::NATS_MSG_ID, format!("{}.dead.{}", why.call_id, series.as_deref().unwrap_or("0")));
        headers.insert(wire::DEAD_STATUS, why.status.to_string());
        headers.insert(wire::DEAD_ERROR, why.error.unwrap_or_default().replace(['\r', '\n'], " "));
        headers.insert(wire::DEAD_ATTEMPTS, why.attempts.to_string());
        let subject = names::dead_subject(why.function);
        let ack = self.jetstream.publish_with_headers(subject, headers, body).await?.await?;
        Ok(ack.sequence)
    }

    /// Removes dead letter `sequence` from `SLUICE_DEAD`; `false` when it was gone already.
    pub async fn remove(&self, sequence: u64) -> Result<bool, QueueError> {
        let unavailable =
            |e: &dyn std::fmt::Display| QueueError::Unavailable(format!("removing dead letter {sequence}: {e}"));
        let stream = self.jetstream.get_stream_no_info(names::DEAD_STREAM).await.map_err(|e| unavailable(&e))?;
        match stream.delete_message(sequence).await {
            Ok(deleted) => Ok(deleted),
            // The server answers an error for a sequence it no longer holds.
            Err(err) if err.to_string().contains("no message found") => Ok(false),
            Err(err) => Err(unavailable(&err)),
        }
    }

    /// The call stored as dead letter `sequence`; `None` when the letter is no longer kept (removed, or
    /// discarded by `SLUICE_DEAD`'s limits).
    pub async fn call(&self, sequence: u64) -> Result<Option<InvocationMessage>, QueueError> {
        let unavailable =
            |e: &dyn std::fmt::Display| QueueError::Unavailable(format!("reading dead letter {sequence}: {e}"));
        let stream = self.jetstream.get_stream_no_info(names::DEAD_STREAM).await.map_err(|e| unavailable(&e))?;
        let dead = match stream.get_raw_message(sequence).await {
            Ok(dead) => dead,
            Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => return Ok(None),
            Err(err) => return Err(unavailable(&err)),
        };
        InvocationMessage::from_nats(&dead.headers, dead.payload)
            .map(Some)
            .map_err(|e| QueueError::NotACall { sequence, reason: e.to_string() })
    }

    /// The sequence of the newest dead letter of call `call_id`, for a call whose record no longer names it (the
    /// record expired before the letter, `--calls-ttl` being shorter than dead letters are kept). Reads every
    /// letter's headers, so it is for that rare case only; gives up after [`LIST_BUDGET`].
    pub async fn find(&self, call_id: &str) -> Result<Option<u64>, QueueError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            QueueError::Unavailable(format!("searching the dead letters for call {call_id}: {e}"))
        };
        let stream = self.jetstream.get_stream(names::DEAD_STREAM).await.map_err(|e| unavailable(&e))?;
        if stream.cached_info().state.messages == 0 {
            return Ok(None);
        }
        let consumer = stream
            .create_consumer(OrderedConfig { headers_only: true, ..Default::default() })
            .await
            .map_err(|e| unavailable(&e))?;
        if consumer.cached_info().num_pending == 0 {
            return Ok(None);
        }
        let mut newest = None;
        let read = read_letters(consumer, Some(tokio::time::Instant::now() + LIST_BUDGET), |sequence, headers, _| {
            if headers.get(names::ce::ID).is_some_and(|id| id.as_str() == call_id) {
                newest = Some(sequence);
            }
        });
        match read.await {
            Read::Done => Ok(newest),
            Read::Failed(err) | Read::Broken(err) => Err(unavailable(&err)),
            Read::OutOfTime => Err(unavailable(&format!("not done within {LIST_BUDGET:?}"))),
        }
    }

    /// The newest `limit` dead letters of `namespace` (of its function `function` when given), newest first.
    ///
    /// Reads headers only (a letter's body is the original request, up to the largest a call may have), and only
    /// from where the newest `limit` begin, found by looking back from the end of the stream a window at a time
    /// (each look is a consumer made, which counts what it would deliver): a listing costs what it returns rather
    /// than every letter kept. Looks back for at most [`LIST_BUDGET`] (then reads from where it got to) and waits at
    /// most 5 s for any one message, so a stalled server cannot hold the caller forever.
    pub async fn list(
        &self,
        namespace: &str,
        function: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let mut filters = vec![match function {
            Some(name) => names::dead_subject(&FunctionRef::new(namespace, name)),
            None => format!("{}.{namespace}.>", names::DEAD_PREFIX),
        }];
        if namespace == sluice_contracts::function_ref::LEGACY_NAMESPACE {
            // Dead letters stored before namespaces existed (`sluice.dead.{function}`) stay readable.
            filters.push(format!("{}.{}", names::DEAD_PREFIX, function.unwrap_or("*")));
        }
        let stream = self.jetstream.get_stream(names::DEAD_STREAM).await.map_err(StoreError::unavailable)?;
        let state = stream.cached_info().state.clone();
        if state.messages == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + LIST_BUDGET;
        let mut window = (limit as u64).saturating_mul(4).max(256);
        let consumer = loop {
            let start = state.last_sequence.saturating_sub(window - 1).max(state.first_sequence);
            let consumer = stream
                .create_consumer(OrderedConfig {
                    filter_subjects: filters.clone(),
                    deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start },
                    headers_only: true,
                    ..Default::default()
                })
                .await
                .map_err(StoreError::unavailable)?;
            let enough = consumer.cached_info().num_pending >= limit as u64;
            if enough || start <= state.first_sequence || tokio::time::Instant::now() >= deadline {
                break consumer;
            }
            window = window.saturating_mul(4);
        };
        let mut found = VecDeque::with_capacity(limit.min(1024));
        if consumer.cached_info().num_pending > 0 {
            let read = read_letters(consumer, None, |sequence, headers, published| {
                let function = FunctionRef::from_key(&header(headers, names::ce::SUBJECT));
                let (namespace, function) = function.map(|f| (f.namespace, f.name)).unwrap_or_default();
                found.push_back(DeadLetter {
                    call_id: header(headers, names::ce::ID),
                    function,
                    namespace,
                    status: header(headers, wire::DEAD_STATUS).parse().unwrap_or_default(),
                    error: header(headers, wire::DEAD_ERROR),
                    attempts: header(headers, wire::DEAD_ATTEMPTS).parse().unwrap_or_default(),
                    dead_at: crate::store::written_at(published).to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                    sequence,
                });
                if found.len() > limit {
                    found.pop_front();
                }
            });
            // A letter that fails to arrive ends the listing with what came before it.
            if let Read::Failed(err) = read.await {
                return Err(StoreError::Unavailable(err.into()));
            }
        }
        Ok(found.into_iter().rev().collect())
    }
}

/// How reading a consumer's letters ended.
enum Read {
    /// Every letter was read, or none came for 5 s (letters removed while read, a stalled server).
    Done,
    /// The consumer could not be read from, or a letter carried no delivery info.
    Failed(String),
    /// A letter failed to arrive.
    Broken(String),
    /// The deadline passed first.
    OutOfTime,
}

/// Hands each letter `consumer` delivers (headers only) to `each` with its sequence and when it was stored, up to
/// the last one there was when the consumer was made, waiting at most 5 s for any one and never past `deadline`.
async fn read_letters(
    consumer: Consumer<OrderedConfig>,
    deadline: Option<tokio::time::Instant>,
    mut each: impl FnMut(u64, &HeaderMap, time::OffsetDateTime),
) -> Read {
    let mut messages = match consumer.messages().await {
        Ok(messages) => messages,
        Err(err) => return Read::Failed(err.to_string()),
    };
    let no_headers = HeaderMap::new();
    loop {
        let pause = tokio::time::Instant::now() + Duration::from_secs(5);
        let message = match tokio::time::timeout_at(deadline.map_or(pause, |d| pause.min(d)), messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(err))) => return Read::Broken(err.to_string()),
            Ok(None) => return Read::Broken("the letters' stream ended".into()),
            Err(_) if deadline.is_none_or(|d| pause < d) => return Read::Done,
            Err(_) => return Read::OutOfTime,
        };
        let info = match message.info() {
            Ok(info) => info,
            Err(err) => return Read::Failed(err.to_string()),
        };
        each(info.stream_sequence, message.headers.as_ref().unwrap_or(&no_headers), info.published);
        if info.pending == 0 {
            return Read::Done;
        }
    }
}
