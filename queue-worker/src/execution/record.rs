//! The call record's part in one attempt: whether the call runs at all, the `running` mark, and writing
//! the attempt's outcome over whatever revision the record has reached, unless a cancellation or another
//! delivery's outcome got there first.

use chrono::Utc;
use sluice_contracts::{CallRecord, CallStatus, InvocationMessage};
use sluice_jetstream::store::{CallStore, StoreError};

use crate::retry::RetrySettings;

/// Reads and writes of one record before giving up on it for now.
const ATTEMPTS: u32 = 5;

/// Where the record stood when an attempt began.
pub enum Start {
    /// Run it; the record, with this attempt's number and start, is still as stored at this revision.
    Run(CallRecord, u64),
    /// Cancelled or already finished (the status it has): ack, nothing to run.
    Skip(CallStatus),
    /// Too old to start.
    Expired(CallRecord, u64),
}

/// Reads the record of attempt number `attempt` of `call` and decides whether it runs.
pub async fn start(
    calls: &CallStore,
    call: &InvocationMessage,
    attempt: u32,
    settings: &RetrySettings,
) -> Result<Start, StoreError> {
    for _ in 0..ATTEMPTS {
        let (record, revision) = match calls.entry(&call.call_id).await? {
            Some((record, _)) if record.status.is_final() => return Ok(Start::Skip(record.status)),
            Some(entry) => entry,
            None => {
                // The queue's record write failed before the publish (or the record expired): write it here
                // (unless another delivery does first) and read it back for its revision.
                calls.create(&call.queued_record()).await?;
                continue;
            }
        };
        return Ok(begin(record, revision, call, attempt, settings));
    }
    Err(StoreError::Unavailable("call record keeps changing".into()))
}

/// Where the record stands for a first delivery that need not read it: as the queue wrote it, at `revision`.
pub fn start_unread(call: &InvocationMessage, revision: u64, settings: &RetrySettings) -> Start {
    begin(call.queued_record(), revision, call, 1, settings)
}

/// Whether the call, its record read at `revision`, runs as attempt number `attempt`.
fn begin(
    mut record: CallRecord,
    revision: u64,
    call: &InvocationMessage,
    attempt: u32,
    settings: &RetrySettings,
) -> Start {
    if settings.expired(call.time, Utc::now()) {
        return Start::Expired(record, revision);
    }
    record.attempts = attempt;
    record.started_at = Some(Utc::now());
    record.next_attempt_at = None;
    Start::Run(record, revision)
}

/// What became of a write of this attempt's view of the record.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Stored,
    /// The call was cancelled meanwhile; the cancellation stands.
    Cancelled,
    /// Another delivery of the call recorded its outcome first; that one stands.
    FinishedElsewhere,
}

/// Writes `record`, expected at `*revision`; on a conflict looks again and writes over the newer revision
/// unless the call was cancelled or finished meanwhile. Conflicts come from cancellations, from another
/// delivery of the same call, from the callback outbox noting a delivery, and from a write of this attempt
/// that landed although its answer was lost.
pub async fn write_over(calls: &CallStore, record: &mut CallRecord, revision: &mut u64) -> Result<Written, StoreError> {
    for _ in 0..ATTEMPTS {
        if let Some(written) = calls.update(record, *revision).await? {
            *revision = written;
            return Ok(Written::Stored);
        }
        match calls.entry(&record.call_id).await? {
            Some((stored, _)) if stored.status == CallStatus::Cancelled => return Ok(Written::Cancelled),
            Some((stored, _)) if stored.status.is_final() => return Ok(Written::FinishedElsewhere),
            Some((stored, stored_revision)) => {
                // The outbox's word on the callback is newer than this attempt's.
                if let Some(noted) = stored.callback
                    && record.callback.as_ref().is_none_or(|ours| noted.attempts >= ours.attempts)
                {
                    record.callback = Some(noted);
                }
                if let Some(noted) = stored.destination
                    && record.destination.as_ref().is_none_or(|ours| noted.attempts >= ours.attempts)
                {
                    record.destination = Some(noted);
                }
                *revision = stored_revision;
            }
            None => {
                // Expired from the bucket meanwhile: write it afresh.
                *revision = calls.put(record).await?;
                return Ok(Written::Stored);
            }
        }
    }
    Err(StoreError::Unavailable("call record keeps changing".into()))
}

/// Marks the record `running`; `Ok(false)` when the call was cancelled or finished elsewhere meanwhile.
pub async fn mark_running(calls: &CallStore, record: &mut CallRecord, revision: &mut u64) -> Result<bool, StoreError> {
    record.status = CallStatus::Running;
    Ok(write_over(calls, record, revision).await? == Written::Stored)
}
