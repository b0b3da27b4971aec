//! Kept results: each finished call's completion event in `SLUICE_RESULTS` (the function's status, headers and
//! body, or the name of the stored object holding a large body), found by the sequence its record names. The
//! stream keeps them for the results TTL within its size cap; a result it dropped early to make room is told
//! apart from one that expired by the time it was due to go.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, message::StreamMessage, stream};
use chrono::Utc;
use sluice_contracts::{ResultState, StoredResult, names};

use super::StoreError;

/// How stale the stream's first sequence may be when a record's result state is shown.
const FIRST_SEQUENCE_FRESH: Duration = Duration::from_secs(1);

/// The results store.
pub struct ResultStore {
    jetstream: jetstream::Context,
    /// The stream's first sequence, and when it was read: every result before it is gone.
    first: Mutex<Option<(Instant, u64)>>,
}

impl ResultStore {
    pub fn new(jetstream: jetstream::Context) -> Self {
        Self { jetstream, first: Mutex::new(None) }
    }

    async fn stream(&self) -> Result<stream::Stream<()>, StoreError> {
        self.jetstream.get_stream_no_info(names::RESULTS_STREAM).await.map_err(StoreError::unavailable)
    }

    /// The completion event holding `result`, unless it is gone.
    pub async fn get(&self, result: &StoredResult) -> Result<Option<StreamMessage>, StoreError> {
        match self.stream().await?.get_raw_message(result.sequence).await {
            Ok(message) => Ok(Some(message)),
            Err(err) if err.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                // The stream moved on: the next record shown reads where it starts now.
                *self.first.lock().expect("first sequence lock") = None;
                Ok(None)
            }
            Err(err) => Err(StoreError::unavailable(err)),
        }
    }

    /// Whether `result` can still be fetched, from the stream's first sequence (read at most once a second).
    pub async fn state(&self, result: &StoredResult) -> Result<ResultState, StoreError> {
        let cached = *self.first.lock().expect("first sequence lock");
        let first = match cached {
            Some((at, first)) if at.elapsed() < FIRST_SEQUENCE_FRESH => first,
            _ => {
                // Opening the stream reads its current state: one request.
                let stream = self.jetstream.get_stream(names::RESULTS_STREAM).await.map_err(StoreError::unavailable)?;
                let first = stream.cached_info().state.first_sequence;
                *self.first.lock().expect("first sequence lock") = Some((Instant::now(), first));
                first
            }
        };
        Ok(if result.sequence >= first { ResultState::Available } else { gone(result) })
    }
}

/// Why a result that is no longer in the stream went.
pub fn gone(result: &StoredResult) -> ResultState {
    match result.expires_at {
        Some(due) if due > Utc::now() => ResultState::Evicted,
        _ => ResultState::Expired,
    }
}
