//! Replaying dead calls: each queued again as a new series of attempts from its dead letter (the original
//! request), one call or many at once. Children of one fan-out group replayed together take their places in
//! the group again in one write, before any of them is published, so the group completes once, after the last
//! of them: one new round and one join, however quickly the first of them ends.

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use futures::{StreamExt, stream};
use sluice_contracts::{
    CallRecord, CallStatus, InvocationMessage,
    names::{self, wire},
};

use super::{Queue, QueueError};
use crate::{
    dead_letters::DeadLetters,
    store::{Modified, Reopened},
};

/// Calls of one replay read, written and published at a time.
const IN_FLIGHT: usize = 16;

/// How recently a record queued again for its letter may still be a replay under way rather than one cut short:
/// a replay publishes within moments of that write (each publish waits at most 5 s for JetStream's ack).
const REPLAY_UNDER_WAY: Duration = Duration::from_secs(10);

/// A dead call whose record says `queued` again, not yet published.
struct Prepared {
    /// The call's id, as the replay names it.
    call_id: String,
    /// The record as it was, put back if the replay fails; `None` when the call had none (it expired before its
    /// dead letter), so a failed replay removes the one it wrote.
    record: Option<CallRecord>,
    /// Its dead letter in `SLUICE_DEAD`.
    sequence: u64,
    call: InvocationMessage,
}

/// One call of a replay as it goes: prepared, then published, or why not.
type Step = Result<Prepared, QueueError>;

impl Queue {
    /// Queues a dead call again as a new attempt series, from its dead letter (the original request).
    ///
    /// A fanned-out child's place in its group waits again before the call is published, so the replay's end
    /// settles it like a first end: when the group had completed, a new round starts and its join, a new call
    /// listed under the call that fanned out, runs with the replay's outcome (see `Group::reopen`).
    pub async fn resubmit(&self, call_id: &str) -> Result<(), QueueError> {
        let mut outcomes = self.resubmit_all(&[call_id.to_owned()]).await;
        outcomes.pop().map_or(Ok(()), |(_, outcome)| outcome)
    }

    /// Replays each of `call_ids` as [`Queue::resubmit`] does one (a call named twice, once) and says how each
    /// went, in their order. Every call's record is reset and every fan-out place reopened before the first call
    /// is published, so children of one group replayed together make one round.
    ///
    /// A call that is not queued is left as it was, with its dead letter, to be replayed again — except that
    /// when others of its group were published, its place in the group stays open and waits for that replay
    /// (its error says so): closing it could complete the group with no one to start its join.
    pub async fn resubmit_all(&self, call_ids: &[String]) -> Vec<(String, Result<(), QueueError>)> {
        self.resubmit_each(call_ids.iter().map(|id| (id.clone(), None)).collect()).await
    }

    /// Replays dead letters as listed (`(call id, sequence)`), as [`Queue::resubmit_all`] replays calls; a call
    /// whose record expired before its letter is replayed from the letter listed, without searching for it.
    pub async fn resubmit_letters(&self, letters: &[(String, u64)]) -> Vec<(String, Result<(), QueueError>)> {
        self.resubmit_each(letters.iter().map(|(id, sequence)| (id.clone(), Some(*sequence))).collect()).await
    }

    async fn resubmit_each(&self, named: Vec<(String, Option<u64>)>) -> Vec<(String, Result<(), QueueError>)> {
        let mut seen = HashSet::new();
        let named: Vec<(String, Option<u64>)> = named.into_iter().filter(|(id, _)| seen.insert(id.clone())).collect();
        let ids: Vec<String> = named.iter().map(|(id, _)| id.clone()).collect();
        // Each step's futures own what they use (a clone of the queue is a few handles), so the whole stays `Send`
        // for the gateway's handlers.
        let queue = self.clone();
        let mut steps: Vec<Step> = stream::iter(named)
            .map(|(id, letter)| {
                let queue = queue.clone();
                async move { queue.prepare(&id, letter).await }
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        let groups = self.reopen_groups(&mut steps).await;
        let mut steps: Vec<Step> = stream::iter(steps)
            .map(|step| {
                let queue = queue.clone();
                async move { queue.publish_replay(step?).await }
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await;
        // From here a call's step is `Ok` when it was published.
        for (group_id, (members, reopened)) in &groups {
            let Some(reopened) = reopened else { continue };
            if members.iter().all(|&i| steps[i].is_err()) {
                self.restore_group(reopened).await;
                continue;
            }
            for &i in members {
                // A failed publish is `Unavailable`; its reason gains what became of the place.
                if let Err(QueueError::Unavailable(reason)) = &mut steps[i] {
                    reason.push_str(&format!("; its place in fan-out group {group_id} waits for it: replay it again"));
                }
            }
        }
        stream::iter(ids.into_iter().zip(steps))
            .map(|(id, step)| {
                let queue = queue.clone();
                async move {
                    let prepared = match step {
                        Ok(prepared) => prepared,
                        Err(err) => return (id, Err(err)),
                    };
                    // Replayed, it is dead no more: its old letter goes (a new one comes if it fails for good
                    // again).
                    if let Err(err) = DeadLetters::new(&queue.topology).remove(prepared.sequence).await {
                        let sequence = prepared.sequence;
                        tracing::warn!(call_id = %id, %err, sequence, "replayed call's old dead letter not removed");
                    }
                    (id, Ok(()))
                }
            })
            .buffered(IN_FLIGHT)
            .collect()
            .await
    }

    /// Reads `call_id`'s record and dead letter and writes the record `queued` again, as a replay starts: first,
    /// because a worker that found the call still `failed` would take it as done.
    ///
    /// A replay that stopped between that write and its publish (its gateway killed) left the record `queued`,
    /// unstarted, naming the letter it replays, and the letter kept: such a call (once that write is
    /// [`REPLAY_UNDER_WAY`] old) is prepared as it stands, so replaying it again finishes the replay instead of
    /// leaving a call that nothing will run. Had the first publish landed after all, the second has the same
    /// message id: within the queue's duplicate window JetStream keeps one, and past it a worker that finds the
    /// call finished skips the second.
    ///
    /// A call whose record expired before its dead letter (`--calls-ttl` shorter than letters are kept) is
    /// replayed from the letter (`letter`, as listed, or else the newest found for it), its record written anew.
    async fn prepare(&self, call_id: &str, letter: Option<u64>) -> Step {
        let Some((record, revision, written)) = self.calls.entry_at(call_id).await? else {
            return self.prepare_unrecorded(call_id, letter).await;
        };
        let not_dead = || QueueError::NotDead(call_id.to_owned());
        let Some(sequence) = record.dead_letter else {
            let sequence = interrupted_replay(&record).ok_or_else(not_dead)?;
            // Its letter gone, it was published: a replay that finished.
            let call = DeadLetters::new(&self.topology).call(sequence).await?.ok_or_else(not_dead)?;
            if (chrono::Utc::now() - written).to_std().unwrap_or_default() < REPLAY_UNDER_WAY {
                // Another replay of it may be publishing it now, and put its record back if that fails.
                return Err(QueueError::ReplayUnderWay(call_id.to_owned()));
            }
            tracing::info!(call_id, sequence, "replay interrupted before its publish: published now");
            return Ok(Prepared { call_id: call_id.to_owned(), record: Some(record), sequence, call });
        };
        let call = DeadLetters::new(&self.topology)
            .call(sequence)
            .await?
            .ok_or_else(|| QueueError::LetterGone { call_id: call_id.to_owned(), sequence })?;
        let mut fresh = record.clone();
        fresh.status = CallStatus::Queued;
        fresh.attempts = 0;
        fresh.function_status = None;
        fresh.error = None;
        fresh.started_at = None;
        fresh.finished_at = None;
        fresh.dead_letter = None;
        fresh.replay_of = Some(sequence);
        fresh.callback = None;
        if self.calls.update(&fresh, revision).await?.is_none() {
            return Err(QueueError::Changed);
        }
        Ok(Prepared { call_id: call_id.to_owned(), record: Some(record), sequence, call })
    }

    /// Prepares the replay of a call that has a dead letter but no record any more: the record is written from
    /// the letter, `queued` for it.
    async fn prepare_unrecorded(&self, call_id: &str, letter: Option<u64>) -> Step {
        let unknown = || QueueError::UnknownCall(call_id.to_owned());
        let letters = DeadLetters::new(&self.topology);
        let sequence = match letter {
            Some(sequence) => sequence,
            None => letters.find(call_id).await?.ok_or_else(unknown)?,
        };
        let call = letters.call(sequence).await?.filter(|call| call.call_id == call_id).ok_or_else(unknown)?;
        let mut record = call.queued_record();
        record.replay_of = Some(sequence);
        if self.calls.create(&record).await?.is_none() {
            return Err(QueueError::Changed);
        }
        tracing::info!(call_id, sequence, "replaying a dead letter whose call record had expired");
        Ok(Prepared { call_id: call_id.to_owned(), record: None, sequence, call })
    }

    /// Publishes a prepared replay; on failure its record is put back.
    async fn publish_replay(&self, prepared: Prepared) -> Step {
        let (mut headers, body) = prepared.call.to_nats(names::CE_TYPE_REQUESTED);
        // A new attempt series: its own message id, so JetStream does not take it for the original.
        headers.insert(wire::NATS_MSG_ID, format!("{}.replay.{}", prepared.call.call_id, prepared.sequence));
        headers.insert(wire::REPLAY_OF, prepared.sequence.to_string());
        match self.publish(names::invoke_subject(&prepared.call.function), (headers, body)).await {
            Ok(_) => Ok(prepared),
            Err(err) => {
                self.restore_record(&prepared).await;
                Err(err)
            }
        }
    }

    /// Reopens, group by group in one write each, the places of the prepared calls that are fanned-out children,
    /// and returns each group's calls (indices into `steps`) and what reopening did. A call whose group could
    /// not be reopened fails, its record put back. A new round's join is listed among the children of the call
    /// that fanned out, so the call tree shows it and cancelling that call cancels it before it starts.
    async fn reopen_groups(&self, steps: &mut [Step]) -> BTreeMap<String, (Vec<usize>, Option<Reopened>)> {
        // Each group's places: (the child's index in the group, the call's index in `steps`).
        let mut places: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
        for (i, step) in steps.iter().enumerate() {
            if let Ok(Prepared { call, .. }) = step
                && let Some((group_id, index)) = call.group()
            {
                places.entry(group_id.to_owned()).or_default().push((index, i));
            }
        }
        let mut groups = BTreeMap::new();
        for (group_id, places) in places {
            let members: Vec<usize> = places.iter().map(|&(_, i)| i).collect();
            let named: Vec<(usize, &str)> = places
                .iter()
                .filter_map(|&(index, i)| Some((index, steps[i].as_ref().ok()?.call.call_id.as_str())))
                .collect();
            match self.reopen_group(&group_id, &named).await {
                Ok(reopened) => {
                    groups.insert(group_id, (members, reopened));
                }
                Err(err) => {
                    let reason = match err {
                        QueueError::Unavailable(reason) => reason,
                        other => other.to_string(),
                    };
                    for &i in &members {
                        if let Ok(prepared) = &steps[i] {
                            self.restore_record(prepared).await;
                        }
                        steps[i] = Err(QueueError::Unavailable(reason.clone()));
                    }
                }
            }
        }
        groups
    }

    async fn reopen_group(&self, group_id: &str, places: &[(usize, &str)]) -> Result<Option<Reopened>, QueueError> {
        let Some(reopened) = self.groups.reopen(group_id, places).await? else {
            tracing::info!(
                group_id,
                replayed = places.len(),
                "replayed children have no ended place in a group to reopen"
            );
            return Ok(None);
        };
        if let Some(join) = reopened.new_join() {
            let listed = self.calls.modify(group_id, |parent| {
                parent.add_child(join);
                Ok::<(), ()>(())
            });
            // A record that expired before its group lists nothing; one that cannot be written fails the replay.
            if !matches!(listed.await, Ok(Modified::Written(_) | Modified::Missing)) {
                self.restore_group(&reopened).await;
                return Err(QueueError::Unavailable(format!(
                    "the record of {group_id}, which fanned out, could not list the join of the group's next round"
                )));
            }
            let round = reopened.after.round;
            tracing::info!(group_id, join, round, replayed = places.len(), "fan-out group reopened for a new round");
        }
        Ok(Some(reopened))
    }

    async fn restore_group(&self, reopened: &Reopened) {
        if !matches!(self.groups.restore(reopened).await, Ok(true)) {
            let group_id = &reopened.before.group_id;
            tracing::error!(group_id, "replay failed and its fan-out group could not be restored");
        }
    }

    async fn restore_record(&self, prepared: &Prepared) {
        let restored = match &prepared.record {
            Some(record) => self.calls.put(record).await.map(drop),
            None => self.calls.delete(&prepared.call_id).await,
        };
        if let Err(err) = restored {
            tracing::error!(call_id = %prepared.call_id, %err, "replay failed and the record could not be restored");
        }
    }

    /// Drops a dead call's dead letter for good: it can no longer be replayed, and its record says so.
    ///
    /// A call whose record expired before its letter, or no longer names it, has its newest letter removed.
    pub async fn discard_dead(&self, call_id: &str) -> Result<(), QueueError> {
        let letters = DeadLetters::new(&self.topology);
        let missing = match self.calls.entry(call_id).await? {
            Some((mut record, revision)) => match record.dead_letter {
                Some(sequence) => {
                    record.dead_letter = None;
                    // The record first: were the letter removed and the record not, a replay would find nothing
                    // to replay.
                    if self.calls.update(&record, revision).await?.is_none() {
                        return Err(QueueError::Changed);
                    }
                    letters.remove(sequence).await?;
                    return Ok(());
                }
                // Its letter is what the replay is published from: the replay is finished by replaying again.
                None if interrupted_replay(&record).is_some() => {
                    return Err(QueueError::ReplayUnfinished(call_id.to_owned()));
                }
                None => QueueError::NotDead(call_id.to_owned()),
            },
            None => QueueError::UnknownCall(call_id.to_owned()),
        };
        // No record, or one that names no letter: a letter left by a discard or a replay cut short before removing
        // it, or one that outlived its record, goes (the newest, if there is one).
        let sequence = letters.find(call_id).await?.ok_or(missing)?;
        letters.remove(sequence).await?;
        Ok(())
    }
}

/// The dead letter a replay was publishing when it stopped, as `record` shows it: `queued` again for that letter,
/// no attempt begun. (A record at that point with its letter removed was published; see [`Queue::prepare`].)
fn interrupted_replay(record: &CallRecord) -> Option<u64> {
    let untouched = record.status == CallStatus::Queued && record.attempts == 0 && record.started_at.is_none();
    record.replay_of.filter(|_| untouched)
}
