//! When an idle function's long poll is asked again before it expires: the queue scan sees calls on the
//! function while its poll is old, and the consumer confirms that calls wait undelivered with no poll held
//! for them — the poll was lost without the connection dropping. Reconnections renew every poll
//! (`topology::reconnections`).
//!
//! This is what lets a poll last as long as a function may go idle (`--idle-after`, 2 minutes): a lost one is
//! noticed within seconds of a call arriving, not when it expires. A function idle for longer is not polled
//! at all (`consume`); the scan wakes its loop when it sees calls on it all the same.
//!
//! A renewal sends a poll beside the old one, which the loop keeps until it ends (`consume::Held`): the
//! consumer's count of waiting polls can read zero while a new leader is still taking over the old one, and a
//! call the server hands to a dropped poll would be lost until its ack wait ends. nats-server carries waiting
//! polls across a consumer's leader change itself.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use async_nats::jetstream::stream::Stream;
use sluice_contracts::{FunctionRef, names};
use tokio::sync::watch;

/// How old a poll must be, on a function with calls queued, before the scan asks its consumer whether the poll
/// is still held. A poll that is alive has had a waiting call handed to it long before; a function whose
/// calls are all running is asked about at most once a scan, a cost that grows with busy functions, not
/// deployed ones.
const STALE: Duration = Duration::from_secs(10);

/// One function's current poll.
pub struct Poll {
    renew: watch::Sender<()>,
    since: Mutex<Instant>,
    /// The loop polls nothing: the function was idle, and the loop waits for a call to be published.
    asleep: AtomicBool,
}

impl Poll {
    fn new() -> Self {
        Self { renew: watch::Sender::new(()), since: Mutex::new(Instant::now()), asleep: AtomicBool::new(false) }
    }

    /// What the consume loop waits on beside its poll.
    pub fn renewals(&self) -> watch::Receiver<()> {
        self.renew.subscribe()
    }

    /// Called as a poll is sent.
    pub fn started(&self) {
        self.asleep.store(false, Ordering::Relaxed);
        *self.since.lock().expect("poll clock lock") = Instant::now();
    }

    /// Called as the loop stops polling until a call is published.
    pub fn asleep(&self) {
        self.asleep.store(true, Ordering::Relaxed);
    }

    fn is_stale(&self) -> bool {
        self.since.lock().expect("poll clock lock").elapsed() > STALE
    }
}

/// The polls of every function served.
#[derive(Default)]
pub struct Polls(RwLock<HashMap<FunctionRef, Arc<Poll>>>);

impl Polls {
    /// The function's poll, made when it is first served.
    pub fn of(&self, function: &FunctionRef) -> Arc<Poll> {
        if let Some(poll) = self.0.read().expect("polls lock").get(function) {
            return poll.clone();
        }
        self.0.write().expect("polls lock").entry(function.clone()).or_insert_with(|| Arc::new(Poll::new())).clone()
    }

    pub fn forget(&self, function: &FunctionRef) {
        self.0.write().expect("polls lock").remove(function);
    }

    /// The queue scan saw calls on `function` (on `stream`, its shard): if its poll is old, asks the consumer
    /// whether calls wait undelivered while no poll is held, and if so sends the poll again.
    pub async fn work_seen(&self, stream: &Stream<()>, function: &FunctionRef) {
        let Some(poll) = self.0.read().expect("polls lock").get(function).filter(|poll| poll.is_stale()).cloned()
        else {
            return;
        };
        if poll.asleep.load(Ordering::Relaxed) {
            // Its consumer may be gone; the loop looks at the queue itself once woken.
            poll.renew.send_replace(());
            return;
        }
        match stream.consumer_info(names::invoke_consumer(function)).await {
            Ok(info) if info.num_pending > 0 && info.num_waiting == 0 => {
                tracing::info!(%function, waiting = info.num_pending, "calls wait with no poll held; polling again");
                poll.renew.send_replace(());
            }
            Ok(_) => {}
            Err(err) => tracing::debug!(%function, %err, "could not read the function's queue"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real `nats-server`.

    use async_nats::jetstream::{consumer::pull, stream};
    use futures::StreamExt;

    use super::*;
    use crate::test_nats::server;

    fn renewed(renewals: &mut watch::Receiver<()>) -> bool {
        let changed = renewals.has_changed().unwrap();
        renewals.mark_unchanged();
        changed
    }

    #[tokio::test]
    async fn a_poll_is_sent_again_only_when_calls_wait_with_none_held() {
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
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(names::invoke_consumer(&function)),
                ..Default::default()
            })
            .await
            .unwrap();
        let stream = js.get_stream_no_info(names::invocations_stream(&function)).await.unwrap();
        let polls = Polls::default();
        let poll = polls.of(&function);
        let mut renewals = poll.renewals();
        let age = |poll: &Poll| *poll.since.lock().unwrap() = Instant::now() - 2 * STALE;

        // A call waits and nobody polls (the worker's poll was lost): sent again, but not while the poll is new.
        js.publish(names::invoke_subject(&function), "call".into()).await.unwrap().await.unwrap();
        poll.started();
        polls.work_seen(&stream, &function).await;
        assert!(!renewed(&mut renewals), "a new poll is left alone");
        age(&poll);
        polls.work_seen(&stream, &function).await;
        assert!(renewed(&mut renewals), "calls wait with no poll held");

        // The call runs (delivered, not yet acked) and another poll waits: the poll must not be dropped, as a
        // call could be on its way to it.
        let mut running = consumer.fetch().max_messages(1).messages().await.unwrap();
        let _call = running.next().await.unwrap().unwrap();
        let _waiting = consumer.batch().max_messages(1).expires(Duration::from_secs(60)).messages().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        polls.work_seen(&stream, &function).await;
        assert!(!renewed(&mut renewals), "the running call is not a waiting one, and a poll is held");
    }
}
