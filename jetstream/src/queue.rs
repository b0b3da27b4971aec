//! The queue: the one place work enters JetStream. A call is *submitted* (its record created and its
//! invocation published on `sluice.queue.{shard}.{namespace}.{function}`), a dead call *resubmitted* (its record
//! reset, its place in a fan-out group reopened, and its dead letter published again), and a callback
//! *enqueued* in the outbox (`sluice.callbacks.{function}`).
//! The gateway, the event router, dead-letter replay and cancellation all go through here, so the order of
//! writes and the rollback when one of them fails are written once.
//!
//! Delivery reasoning: a call exists once JetStream has stored its invocation; the record is how it is
//! seen. The record is written first (a derived call's is its claim; a claim found still queued and young is
//! published again, in case a crash came between the two writes), and the invocation names the revision it
//! was written at. So a failed publish must leave no record saying `queued` (it is removed) and no stored
//! body (it is deleted), while a failed record write before a fresh call's publish does not stop it: once the
//! call is stored its record is written again in the background, and the worker that takes it writes it too.

use std::time::Duration;

use sluice_contracts::{
    CallRecord, CallStatus, InvocationMessage, Payload,
    callback::CallbackMessage,
    names::{self, wire},
};

use crate::{
    store::{CallStore, GroupStore, StoreError},
    topology::Topology,
};

mod replay;

/// How a call id came about, which decides how a second submission of it is told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Fresh or chosen by the caller: a record that exists already does not stop the publish. JetStream's
    /// duplicate window stores a re-sent id once.
    Fresh,
    /// Derived from what caused the call (an event and a function): the record is written first and is the
    /// claim, so past the duplicate window a second cause with the same id finds it and queues nothing.
    Derived,
}

/// What a submission did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    Queued,
    /// A [`Claim::Derived`] call whose record already existed: it was queued before.
    AlreadyQueued,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// JetStream did not store the work; nothing was queued.
    #[error("not queued: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no call {0}")]
    UnknownCall(String),
    #[error("call {0} has no dead letter; only a call that failed for good can be replayed")]
    NotDead(String),
    #[error(
        "call {call_id}'s dead letter {sequence} is no longer kept (past SLUICE_DEAD's limits): it cannot be replayed"
    )]
    LetterGone { call_id: String, sequence: u64 },
    #[error("call {0}'s replay was cut short before the call was queued: replay it again to finish it")]
    ReplayUnfinished(String),
    #[error(
        "call {0} is being replayed (its record was queued again moments ago); if that replay's gateway stopped, replay it again in 10 s"
    )]
    ReplayUnderWay(String),
    #[error("dead letter {sequence} is not a call: {reason}")]
    NotACall { sequence: u64, reason: String },
    #[error("the call's record changed meanwhile; try again")]
    Changed,
}

fn unavailable(err: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(err.to_string())
}

/// Records of stored calls waiting to be written again at once, at most ([`Queue::record_later`]).
const MAX_RECORDS_PENDING: usize = 10_000;
/// How long a record of a stored call is tried again: past a leader election, or a full bucket freed.
const RECORD_LATER_FOR: Duration = Duration::from_secs(300);

/// Producer side of the queue.
#[derive(Clone)]
pub struct Queue {
    topology: Topology,
    calls: CallStore,
    /// Fan-out groups, whose places replays reopen.
    groups: GroupStore,
    /// Records being written again in the background ([`Queue::record_later`]).
    records_pending: tokio_util::task::TaskTracker,
}

impl Queue {
    pub fn new(topology: Topology) -> Self {
        let calls = CallStore::new(topology.calls.clone(), topology.jetstream.clone());
        let groups = GroupStore::new(topology.groups.clone());
        Self { topology, calls, groups, records_pending: Default::default() }
    }

    /// The call records the queue writes.
    pub fn calls(&self) -> &CallStore {
        &self.calls
    }

    async fn publish(
        &self,
        subject: String,
        (headers, body): (async_nats::HeaderMap, bytes::Bytes),
    ) -> Result<u64, QueueError> {
        let ack = self.topology.jetstream.publish_with_headers(subject, headers, body).await.map_err(unavailable)?;
        Ok(ack.await.map_err(unavailable)?.sequence)
    }

    /// Queues `call` and returns once JetStream has stored it. On failure nothing is left behind: no record
    /// that says queued, no stored body.
    ///
    /// The record is written first and the invocation carries the revision it got ([`wire::RECORD_REVISION`]):
    /// the worker taking the call on its first delivery starts from that revision without reading the record,
    /// one request per call fewer. (The two writes were once sent together, saving the gateway a round trip of
    /// latency per accept; the worker's read costs the server more.)
    pub async fn submit(&self, call: &InvocationMessage, claim: Claim) -> Result<Submitted, QueueError> {
        let record = call.queued_record();
        let subject = names::invoke_subject(&call.function);
        let mut unrecorded = false;
        let recorded = match (claim, self.calls.create(&record).await) {
            (_, Ok(Some(revision))) => Some(revision),
            (Claim::Fresh, Ok(None)) => {
                // The caller sent this id before, or a worker took the call first and wrote the record: the
                // duplicate window keeps one invocation.
                None
            }
            (Claim::Fresh, Err(err)) => {
                // Published all the same: the record is written again once the call is stored (below), and the
                // worker that takes the call writes it too if it still is not there.
                tracing::warn!(call_id = %call.call_id, %err, "record of a call not written (yet)");
                unrecorded = true;
                None
            }
            (Claim::Derived, Ok(None)) => {
                if !self.maybe_unpublished(&call.call_id).await? {
                    return Ok(Submitted::AlreadyQueued);
                }
                // Claimed but perhaps never published (a crash between the two writes): publish again.
                // Within the duplicate window JetStream keeps one of the two, so a call queued both times
                // still runs once.
                tracing::info!(call_id = %call.call_id, "claimed call queued again, in case its first publish was lost");
                self.publish(subject, call.to_nats(names::CE_TYPE_REQUESTED)).await?;
                return Ok(Submitted::AlreadyQueued);
            }
            (Claim::Derived, Err(err)) => return Err(err.into()),
        };
        let (mut headers, body) = call.to_nats(names::CE_TYPE_REQUESTED);
        if let Some(revision) = recorded {
            headers.insert(wire::RECORD_REVISION, revision.to_string());
        }
        match self.publish(subject, (headers, body)).await {
            Ok(_) => {
                if unrecorded {
                    self.record_later(record);
                }
                Ok(Submitted::Queued)
            }
            Err(err) => {
                if recorded.is_some()
                    && let Err(err) = self.calls.delete(&call.call_id).await
                {
                    tracing::error!(call_id = %call.call_id, %err, "record of an unqueued call left behind");
                }
                self.discard(&call.payload).await;
                Err(err)
            }
        }
    }

    /// Writes the `queued` record of a call stored without one, trying again for a while in the background: its
    /// 202 is sent, and a worker, which would write the record too, may not take it for hours behind a backlog.
    /// A record written meanwhile (by a worker) stands. At most [`MAX_RECORDS_PENDING`] such writes wait at once.
    fn record_later(&self, record: CallRecord) {
        if self.records_pending.len() >= MAX_RECORDS_PENDING {
            tracing::warn!(call_id = %record.call_id, "too many records waiting to be written; left to the worker");
            return;
        }
        let calls = self.calls.clone();
        self.records_pending.spawn(async move {
            let given_up = tokio::time::Instant::now() + RECORD_LATER_FOR;
            let mut wait = Duration::from_millis(100);
            loop {
                tokio::time::sleep(wait).await;
                match calls.create(&record).await {
                    Ok(written) => {
                        let by_us = written.is_some();
                        tracing::info!(call_id = %record.call_id, by_us, "record of a stored call written");
                        return;
                    }
                    Err(err) if tokio::time::Instant::now() >= given_up => {
                        tracing::error!(call_id = %record.call_id, %err, "record of a stored call not written; left to the worker");
                        return;
                    }
                    Err(_) => wait = (wait * 2).min(Duration::from_secs(5)),
                }
            }
        });
    }

    /// On shutdown: waits up to `limit` for the records still being written in the background. What is left then
    /// is written by the worker that takes each call.
    pub async fn finish_records(&self, limit: Duration) {
        self.records_pending.close();
        let pending = self.records_pending.len();
        if pending > 0 && tokio::time::timeout(limit, self.records_pending.wait()).await.is_err() {
            tracing::warn!(pending = self.records_pending.len(), "records of stored calls left to their workers");
        }
    }

    /// Whether the claimed call `call_id` may have lost its publish: its record is still `queued`, never started,
    /// and young enough that JetStream's duplicate window would drop a second publish of it (half the window, to
    /// keep clear of its edge). A record older than that, still unstarted, is a call waiting behind others.
    async fn maybe_unpublished(&self, call_id: &str) -> Result<bool, QueueError> {
        let Some(record) = self.calls.get(call_id).await? else { return Ok(false) };
        let age = (chrono::Utc::now() - record.created_at).to_std().unwrap_or_default();
        Ok(record.status == CallStatus::Queued
            && record.attempts == 0
            && record.started_at.is_none()
            && age < self.topology.duplicate_window / 2)
    }

    /// Removes a stored body whose call was not queued after all.
    pub async fn discard(&self, payload: &Payload) {
        if let Payload::Object(name) = payload
            && let Err(err) = self.topology.payloads.delete(name).await
        {
            tracing::warn!(object = %name, %err, "could not delete the body of a call that was not queued");
        }
    }

    /// Puts a callback in the durable outbox and returns once JetStream has stored it.
    pub async fn enqueue_callback(&self, callback: &CallbackMessage) -> Result<(), QueueError> {
        self.publish(names::callbacks_subject(&callback.function), callback.to_nats()).await.map(drop)
    }
}
