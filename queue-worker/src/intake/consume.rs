//! One function's consume loop: pull calls from its durable consumer when both a function slot and a
//! worker slot are free, and start each one; and, once the function has gone a while without calls, stop
//! polling it and wait for a call's publication instead.
//!
//! A consumer costs nats-server goroutines and timers whether or not it has work, so ten thousand idle
//! functions kept a server busy doing nothing. An idle function's consumer is therefore let go: it is made with
//! an inactive threshold of the worker's `idle_after`, the loop polls for that long, and when no call came it
//! subscribes to the function's queue subject (core NATS: a publication reaches every subscriber as the stream
//! stores it) and waits. The server removes the consumer once no worker has polled it, nor acknowledged
//! anything on it, for `idle_after`; a call published later wakes the loop, which opens the consumer again
//! (delivering everything queued, from the start of the function's subject) and takes the call. Whatever
//! slips between the poll's end and the subscription is found by looking at the function's queue once
//! subscribed; the queue scan and reconnections wake a sleeping loop too.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use async_nats::jetstream::{
    AckKind, Message,
    consumer::{AckPolicy, PullConsumer, pull},
};
use futures::{FutureExt, StreamExt, stream::SelectAll};
use sluice_contracts::{FunctionRef, FunctionSpec, RuntimeKind, names};
use sluice_runtime::Runtime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::{Worker, execute, lease, metrics, pulls::Poll, scaling};

/// Most calls taken in one pull once capacity is free.
const BATCH: usize = 64;
/// How many functions' consumers are opened, or queues looked at, at once (per process), as when a worker
/// starts: ten thousand requests at once would crowd out every other client's JetStream requests (another
/// worker's start among them).
const OPENING_AT_ONCE: usize = 16;
pub(crate) static OPENING: Semaphore = Semaphore::const_new(OPENING_AT_ONCE);
/// How long an immediate fetch may go unanswered. Its request or answer can be lost when the server
/// restarts, and the client then waits for ever: the consume loop would stall with calls queued.
const FETCH_LIMIT: Duration = Duration::from_secs(5);

/// The call slots one running call holds; released when the call ends.
pub struct Slots {
    _function: OwnedSemaphorePermit,
    _worker: OwnedSemaphorePermit,
}

/// The function's durable consumer: the one there when it has this worker's settings (a read the consumer's
/// leader answers alone), else created or updated.
pub async fn consumer(worker: &Worker, function: &FunctionRef) -> Result<PullConsumer, async_nats::Error> {
    let _turn = OPENING.acquire().await.expect("never closed");
    let stream = worker.topology.jetstream.get_stream_no_info(names::invocations_stream(function)).await?;
    let name = names::invoke_consumer(function);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: names::invoke_subject(function),
        ack_policy: AckPolicy::Explicit,
        ack_wait: worker.cfg.ack_wait,
        max_ack_pending: 100_000,
        // Running calls keep it: their leases are kept with in-progress acknowledgements.
        inactive_threshold: worker.cfg.idle_after,
        ..Default::default()
    };
    if let Ok(existing) = stream.get_consumer::<pull::Config>(&name).await {
        let have = &existing.cached_info().config;
        if have.filter_subject == config.filter_subject
            && have.ack_wait == config.ack_wait
            && have.max_ack_pending == config.max_ack_pending
            && have.ack_policy == config.ack_policy
            && have.inactive_threshold == config.inactive_threshold
        {
            return Ok(existing);
        }
    }
    Ok(stream.create_consumer(config).await?)
}

/// How many calls of `spec` this worker runs at once.
pub fn function_limit(worker: &Worker, spec: &FunctionSpec) -> usize {
    // maxInflight holds per instance (a container replica; the runtime enforces it), so the function may run
    // that many calls on each instance it can have.
    let instances = worker.runtimes.instances(spec) as usize;
    spec.max_inflight().map_or(worker.cfg.max_inflight, |n| (n as usize).saturating_mul(instances))
}

/// Runs until `stop`, taking calls as `function_slots` allow; calls already started go on under the
/// worker's tracker.
pub async fn run(
    worker: Arc<Worker>,
    spec: Arc<FunctionSpec>,
    function_slots: Arc<Semaphore>,
    poll: Arc<Poll>,
    stop: CancellationToken,
) {
    let function = spec.function_ref();
    let mut nudges = Nudges { reconnections: sluice_jetstream::topology::reconnections(), renewals: poll.renewals() };
    if spec.runtime_kind() == RuntimeKind::Docker && worker.runtimes.containers().is_some() {
        tokio::spawn(scaling::autoscale(worker.clone(), function.clone(), stop.clone()));
    }
    // A loop starts asleep: the function's consumer is only opened once calls are queued.
    'open: loop {
        let woken = tokio::select! {
            _ = stop.cancelled() => return,
            woken = sleep_until_called(&worker, &function, &poll, &mut nudges) => woken,
        };
        if !woken {
            tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
            continue;
        }
        let consumer = loop {
            match consumer(&worker, &function).await {
                Ok(c) => break c,
                Err(err) => {
                    tracing::warn!(function = %function, %err, "cannot open the function's queue; retrying");
                    tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
                }
            }
        };
        let mut held = Held::default();
        loop {
            // Wait for a call holding no slot, so an idle function takes no capacity from busy ones nor from
            // its own synchronous calls.
            let polled_at = tokio::time::Instant::now();
            let polled = tokio::select! {
                _ = stop.cancelled() => return,
                polled = held.next_call(&consumer, &poll, worker.cfg.idle_after, &mut nudges) => polled,
            };
            let message = match polled {
                Polled::Call(message) => *message,
                Polled::Idle => {
                    metrics::went_idle(&function);
                    // A poll that failed at once is not tried again at once.
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep_until(polled_at + Duration::from_secs(1)) => continue 'open,
                    }
                }
            };
            let ack_wait = worker.cfg.ack_wait;
            let function_slot = tokio::select! {
                _ = stop.cancelled() => return held.hand_back(&message).await,
                slot = held.slot(&function_slots, &message, ack_wait) => slot,
            };
            let worker_slot = tokio::select! {
                _ = stop.cancelled() => return held.hand_back(&message).await,
                slot = held.slot(&worker.slots, &message, ack_wait) => slot,
            };
            start(&worker, &spec, message, Slots { _function: function_slot, _worker: worker_slot });
            if !held.has_calls() {
                take_more(&worker, &spec, &consumer, &function_slots, &stop).await;
            }
        }
    }
}

/// Takes as many calls as there are free slots right now, in one pull.
async fn take_more(
    worker: &Arc<Worker>,
    spec: &Arc<FunctionSpec>,
    consumer: &PullConsumer,
    function_slots: &Arc<Semaphore>,
    stop: &CancellationToken,
) {
    while !stop.is_cancelled() {
        let n = function_slots.available_permits().min(worker.slots.available_permits()).min(BATCH);
        if n == 0 {
            return;
        }
        let (Ok(mut function_slot), Ok(mut worker_slot)) = (
            function_slots.clone().try_acquire_many_owned(n as u32),
            worker.slots.clone().try_acquire_many_owned(n as u32),
        ) else {
            return;
        };
        let Ok(mut batch) = consumer.fetch().max_messages(n).messages().await else { return };
        let mut taken = 0;
        // Calls of an abandoned fetch that arrive later are redelivered when their ack wait ends.
        while let Ok(Some(Ok(message))) = tokio::time::timeout(FETCH_LIMIT, batch.next()).await {
            taken += 1;
            let slots = Slots {
                _function: function_slot.split(1).expect("one slot per call taken"),
                _worker: worker_slot.split(1).expect("one slot per call taken"),
            };
            start(worker, spec, message, slots);
        }
        if taken < n {
            return;
        }
    }
}

/// What tells a loop to poll again or wake: its client connecting again (what the server held for it may be
/// gone), and the queue scan (`pulls`).
struct Nudges {
    reconnections: watch::Receiver<u64>,
    renewals: watch::Receiver<()>,
}

impl Nudges {
    /// Only nudges from now on count.
    fn forget_earlier(&mut self) {
        self.reconnections.mark_unchanged();
        self.renewals.mark_unchanged();
    }

    /// The next nudge.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.reconnections.changed() => {}
            _ = self.renewals.changed() => {}
        }
    }
}

/// How the long polls ended.
enum Polled {
    Call(Box<Message>),
    /// No call came for as long as a poll lasts, or the polls failed (the server let the consumer go).
    Idle,
}

/// The long polls (one call each, lasting `idle_after`) this loop has sent and the server may still hold, and
/// the calls they brought that wait for a slot.
///
/// A poll is never dropped while the server may hold it: a call the server is handing to a dropped poll's
/// inbox is lost until its ack wait ends, a spent attempt. A renewal (`pulls`, a reconnection) therefore sends
/// another poll beside the ones held, and a call may come from any of them. A poll ends when it brings its call,
/// expires or fails, so renewals, at most one a queue scan, bound how many are held — and how many calls can
/// come at once: those wait for a slot in order, their leases kept.
#[derive(Default)]
struct Held {
    polls: SelectAll<pull::Batch>,
    calls: VecDeque<Message>,
}

impl Held {
    /// The next call: one already come, else from any poll held, sending one when none is or when one is
    /// asked for again.
    async fn next_call(
        &mut self,
        consumer: &PullConsumer,
        poll: &Poll,
        idle_after: Duration,
        nudges: &mut Nudges,
    ) -> Polled {
        if let Some(call) = self.calls.pop_front() {
            return Polled::Call(Box::new(call));
        }
        // A poll that brought its call has ended, but leaves the set only when looked at again: sweep out the
        // ended ones without waiting, so that only polls still held count.
        loop {
            match self.polls.next().now_or_never() {
                Some(Some(Ok(message))) => return Polled::Call(Box::new(message)),
                Some(Some(Err(err))) => tracing::debug!(%err, "pull ended without a call"),
                Some(None) | None => break,
            }
        }
        let mut send = self.polls.is_empty();
        loop {
            if send {
                nudges.forget_earlier();
                poll.started();
                match consumer.batch().max_messages(1).expires(idle_after).messages().await {
                    Ok(batch) => self.polls.push(batch),
                    Err(err) => {
                        tracing::warn!(%err, "pull failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        // With polls still held, wait on them; the next nudge sends one again.
                        if self.polls.is_empty() {
                            continue;
                        }
                    }
                }
            }
            send = tokio::select! {
                next = self.polls.next() => match next {
                    Some(Ok(message)) => return Polled::Call(Box::new(message)),
                    // Such as the consumer let go (409) or gone (no responders): once no poll is held, the loop
                    // opens it again when calls are queued.
                    Some(Err(err)) => {
                        tracing::debug!(%err, "pull ended without a call");
                        false
                    }
                    None => return Polled::Idle,
                },
                _ = nudges.next() => true,
            };
        }
    }

    /// Whether calls have come that wait for a slot.
    fn has_calls(&self) -> bool {
        !self.calls.is_empty()
    }

    /// A slot of `slots` for `call`, keeping its lease and the leases of calls other polls bring meanwhile.
    async fn slot(&mut self, slots: &Arc<Semaphore>, call: &Message, ack_wait: Duration) -> OwnedSemaphorePermit {
        let acquire = slots.clone().acquire_owned();
        tokio::pin!(acquire);
        loop {
            let leases = futures::future::join_all(self.calls.iter().chain([call]).map(|m| lease::keep(m, ack_wait)));
            let came = tokio::select! {
                slot = &mut acquire => return slot.expect("never closed"),
                _ = leases => unreachable!("lease keeping never ends"),
                Some(Ok(came)) = self.polls.next(), if !self.polls.is_empty() => came,
            };
            self.calls.push_back(came);
        }
    }

    /// Gives `call`, and the calls that came with it, back to the queue for another worker.
    async fn hand_back(&mut self, call: &Message) {
        hand_back(call).await;
        for came in self.calls.drain(..) {
            hand_back(&came).await;
        }
    }
}

/// Waits, polling nothing, until a call of the function is published, or the queue scan or a reconnection
/// says to look again. Returns whether it was woken (false when it could not listen).
async fn sleep_until_called(worker: &Worker, function: &FunctionRef, poll: &Poll, nudges: &mut Nudges) -> bool {
    nudges.forget_earlier();
    poll.asleep();
    let subject = names::invoke_subject(function);
    let Ok(mut published) = worker.topology.client.subscribe(subject.clone()).await else { return false };
    // Asked on the same connection (the JetStream context is the client's) after the subscription, so anything
    // published before the server had the subscription is counted here.
    match queued(worker, function, &subject).await {
        Ok(0) => {}
        Ok(_) => return true,
        Err(err) => {
            tracing::debug!(%function, %err, "could not look at the function's queue");
            return false;
        }
    }
    tracing::debug!(%function, "no calls for a while; waiting for one to be published");
    tokio::select! {
        _ = published.next() => {}
        _ = nudges.next() => {}
    }
    true
}

/// Calls queued for `function` and not yet finished.
pub async fn queued(worker: &Worker, function: &FunctionRef, subject: &str) -> Result<usize, async_nats::Error> {
    let _turn = OPENING.acquire().await.expect("never closed");
    let stream = worker.topology.jetstream.get_stream_no_info(names::invocations_stream(function)).await?;
    let mut subjects = stream.info_with_subjects(subject).await?;
    let mut count = 0;
    while let Some(entry) = subjects.next().await {
        count += entry?.1;
    }
    Ok(count)
}

fn start(worker: &Arc<Worker>, spec: &Arc<FunctionSpec>, message: Message, slots: Slots) {
    let (worker2, spec) = (worker.clone(), spec.clone());
    worker.tracker.spawn(async move {
        execute::run(&worker2, &spec, message).await;
        drop(slots);
    });
}

/// Gives a call back to the queue at once, for another worker.
pub async fn hand_back(message: &Message) {
    if let Err(err) = message.ack_with(AckKind::Nak(None)).await {
        tracing::warn!(%err, "could not hand a call back; it returns when its lease lapses");
    }
}

#[cfg(test)]
mod tests {
    //! Against a real `nats-server`.

    use async_nats::jetstream::stream;

    use super::*;
    use crate::{pulls::Polls, test_nats::server};

    const ACK_WAIT: Duration = Duration::from_secs(1);

    /// Polls the server holds on the consumer, once it reads `want` (or after 5 s).
    async fn waiting(consumer: &mut PullConsumer, want: usize) -> usize {
        let mut held = 0;
        for _ in 0..50 {
            held = consumer.info().await.unwrap().num_waiting;
            if held == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        held
    }

    #[tokio::test]
    async fn a_renewed_poll_is_kept_beside_the_new_one_and_either_brings_a_call() {
        let (_server, js) = server().await;
        let function = FunctionRef::new("openfaas-fn", "f");
        let stream = js
            .create_stream(stream::Config {
                name: names::invocations_stream(&function),
                subjects: vec![names::invoke_subject(&function)],
                retention: stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(names::invoke_consumer(&function)),
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                ..Default::default()
            })
            .await
            .unwrap();
        let poll = Polls::default().of(&function);
        let (reconnect, reconnections) = watch::channel(0);
        let (renew, renewals) = watch::channel(());
        let mut nudges = Nudges { reconnections, renewals };
        let mut held = Held::default();
        let idle_after = Duration::from_secs(60);

        let first = {
            let next = held.next_call(&consumer, &poll, idle_after, &mut nudges);
            tokio::pin!(next);
            let mut consumer = consumer.clone();
            let renewing = async {
                assert_eq!(waiting(&mut consumer, 1).await, 1, "the first poll is held");
                renew.send_replace(());
                // Dropping the first poll's inbox would let the server forget it; it is kept, as a call may be
                // on its way to it when the server has not yet seen the renewal.
                assert_eq!(waiting(&mut consumer, 2).await, 2, "a renewal keeps the poll it renews");
                reconnect.send_replace(1);
                assert_eq!(waiting(&mut consumer, 3).await, 3, "so does a reconnection");
                js.publish(names::invoke_subject(&function), "one".into()).await.unwrap().await.unwrap();
                std::future::pending::<()>().await;
            };
            tokio::select! {
                polled = &mut next => polled,
                _ = renewing => unreachable!(),
                _ = tokio::time::sleep(Duration::from_secs(30)) => panic!("no call came"),
            }
        };
        let Polled::Call(first) = first else { panic!("the poll ended without a call") };
        assert_eq!(first.payload, "one");
        assert_eq!(first.info().unwrap().delivered, 1);

        // The two polls left bring the next calls without another being sent, while the first waits for a slot:
        // all three leases are kept meanwhile, so none is delivered again.
        assert_eq!(waiting(&mut consumer, 2).await, 2);
        let slots = Arc::new(Semaphore::new(0));
        let publishing = async {
            for body in ["two", "three"] {
                js.publish(names::invoke_subject(&function), body.into()).await.unwrap().await.unwrap();
            }
            tokio::time::sleep(3 * ACK_WAIT).await;
            slots.add_permits(1);
            std::future::pending::<()>().await;
        };
        tokio::select! {
            _slot = held.slot(&slots, &first, ACK_WAIT) => {}
            _ = publishing => unreachable!(),
        }
        assert!(held.has_calls());
        for body in ["two", "three"] {
            let Polled::Call(call) = held.next_call(&consumer, &poll, idle_after, &mut nudges).await else {
                panic!("the poll ended without a call")
            };
            assert_eq!(call.payload, body);
            assert_eq!(call.info().unwrap().delivered, 1);
        }
        // Nothing lapsed, so a pull finds nothing to deliver again.
        let again = consumer.fetch().max_messages(3).messages().await.unwrap().count().await;
        assert_eq!(again, 0, "calls whose leases lapsed while they waited for a slot");

        // Every poll has brought its call: the next call is polled for, and the poll that brought it ends there
        // (its end is not taken for the end of every poll, that is, for an idle function).
        for body in ["four", "five"] {
            js.publish(names::invoke_subject(&function), body.into()).await.unwrap().await.unwrap();
            let next = held.next_call(&consumer, &poll, idle_after, &mut nudges);
            let Ok(Polled::Call(call)) = tokio::time::timeout(Duration::from_secs(10), next).await else {
                panic!("no poll was sent once the others had ended")
            };
            assert_eq!(call.payload, body);
        }
    }
}
