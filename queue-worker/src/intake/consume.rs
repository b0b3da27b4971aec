//! One function's consume loop: pull calls from its durable consumer when both a function slot and a
//! worker slot are free, and start each one.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{
    AckKind, Message,
    consumer::{AckPolicy, PullConsumer, pull},
};
use futures::StreamExt;
use sluice_contracts::{FunctionRef, FunctionSpec, RuntimeKind, names};
use sluice_runtime::Runtime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::{Worker, execute, lease, pulls::Poll, scaling};

/// Most calls taken in one pull once capacity is free.
const BATCH: usize = 64;
/// How long one long-poll for a call waits on an idle queue. An idle function costs the server one pull and
/// its expiry per worker per poll, so an hour makes ten thousand deployed functions cheap; a call still
/// starts at once, being handed to the waiting pull. A poll lost with its connection is sent again when the
/// client reconnects, and one lost otherwise when the queue scan sees calls waiting with no poll held for them
/// (`pulls`).
const POLL: Duration = Duration::from_secs(3600);
/// How many functions' consumers are opened at once (per process) as a worker starts: ten thousand requests at
/// once would crowd out every other client's JetStream requests (another worker's start among them).
const OPENING_AT_ONCE: usize = 16;
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
    static OPENING: Semaphore = Semaphore::const_new(OPENING_AT_ONCE);
    let _turn = OPENING.acquire().await.expect("never closed");
    let stream = worker.topology.jetstream.get_stream_no_info(names::invocations_stream(function)).await?;
    let name = names::invoke_consumer(function);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: names::invoke_subject(function),
        ack_policy: AckPolicy::Explicit,
        ack_wait: worker.cfg.ack_wait,
        max_ack_pending: 100_000,
        ..Default::default()
    };
    if let Ok(existing) = stream.get_consumer::<pull::Config>(&name).await {
        let have = &existing.cached_info().config;
        if have.filter_subject == config.filter_subject
            && have.ack_wait == config.ack_wait
            && have.max_ack_pending == config.max_ack_pending
            && have.ack_policy == config.ack_policy
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
    let consumer = loop {
        match consumer(&worker, &function).await {
            Ok(c) => break c,
            Err(err) => {
                tracing::warn!(function = %function, %err, "cannot open the function's queue; retrying");
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
            }
        }
    };
    if spec.runtime_kind() == RuntimeKind::Docker && worker.runtimes.containers().is_some() {
        tokio::spawn(scaling::autoscale(worker.clone(), consumer.clone(), function.clone(), stop.clone()));
    }
    let mut reconnections = sluice_jetstream::topology::reconnections();
    let mut renewals = poll.renewals();
    loop {
        // Wait for a call holding no slot, so an idle function takes no capacity from busy ones nor from its
        // own synchronous calls.
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            message = next_call(&consumer, &poll, &mut reconnections, &mut renewals) => message,
        };
        let Some(message) = message else { continue };
        let function_slot = tokio::select! {
            _ = stop.cancelled() => {
                hand_back(&message).await;
                return;
            }
            _ = lease::keep(&message, worker.cfg.ack_wait) => unreachable!("lease keeping never ends"),
            slot = function_slots.clone().acquire_owned() => slot.expect("never closed"),
        };
        let worker_slot = tokio::select! {
            _ = stop.cancelled() => {
                hand_back(&message).await;
                return;
            }
            _ = lease::keep(&message, worker.cfg.ack_wait) => unreachable!("lease keeping never ends"),
            slot = worker.slots.clone().acquire_owned() => slot.expect("never closed"),
        };
        start(&worker, &spec, message, Slots { _function: function_slot, _worker: worker_slot });
        take_more(&worker, &spec, &consumer, &function_slots, &stop).await;
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

/// One long poll for a call; `None` when it ends without one or must be sent again.
async fn next_call(
    consumer: &PullConsumer,
    poll: &Poll,
    reconnections: &mut watch::Receiver<u64>,
    renewals: &mut watch::Receiver<()>,
) -> Option<Message> {
    reconnections.mark_unchanged();
    renewals.mark_unchanged();
    poll.started();
    match consumer.batch().max_messages(1).expires(POLL).messages().await {
        Ok(mut batch) => tokio::select! {
            next = batch.next() => match next {
                Some(Ok(message)) => Some(message),
                Some(Err(err)) => {
                    tracing::debug!(%err, "pull ended without a call");
                    None
                }
                None => None,
            },
            _ = reconnections.changed() => None,
            _ = renewals.changed() => None,
        },
        Err(err) => {
            tracing::warn!(%err, "pull failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            None
        }
    }
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
