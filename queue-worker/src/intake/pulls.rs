//! When an idle function's long poll is asked again before it expires: its consumer's leader moved (the
//! server's advisory), or the queue scan sees calls on the function while the poll is old — the poll may have
//! been lost without the connection dropping. Reconnections renew every poll (`topology::reconnections`).
//!
//! This is what lets an idle poll last an hour: an idle function then costs the server one pull per worker per
//! hour, and a lost one is noticed within seconds of a call arriving, not when it expires.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use sluice_contracts::{FunctionRef, names};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError, notices};

/// How old a poll must be, on a function with calls queued, before the scan asks it again. A poll that is
/// alive has had a waiting call handed to it long before; one whose calls all run elsewhere is renewed at
/// most this often, a cost that grows with busy functions, not deployed ones.
const STALE: Duration = Duration::from_secs(10);

/// One function's current poll.
pub struct Poll {
    renew: watch::Sender<()>,
    since: Mutex<Instant>,
}

impl Poll {
    fn new() -> Self {
        Self { renew: watch::Sender::new(()), since: Mutex::new(Instant::now()) }
    }

    /// What the consume loop waits on beside its poll.
    pub fn renewals(&self) -> watch::Receiver<()> {
        self.renew.subscribe()
    }

    /// Called as a poll is sent.
    pub fn started(&self) {
        *self.since.lock().expect("poll clock lock") = Instant::now();
    }

    fn renew(&self) {
        self.renew.send_replace(());
    }
}

/// The polls of every function served, by consumer name (which the advisories give).
#[derive(Default)]
pub struct Polls(RwLock<HashMap<String, Arc<Poll>>>);

impl Polls {
    /// The function's poll, made when it is first served.
    pub fn of(&self, function: &FunctionRef) -> Arc<Poll> {
        let name = names::invoke_consumer(function);
        if let Some(poll) = self.0.read().expect("polls lock").get(&name) {
            return poll.clone();
        }
        self.0.write().expect("polls lock").entry(name).or_insert_with(|| Arc::new(Poll::new())).clone()
    }

    pub fn forget(&self, function: &FunctionRef) {
        self.0.write().expect("polls lock").remove(&names::invoke_consumer(function));
    }

    /// The queue scan saw calls on `function`: renews its poll if that is old.
    pub fn work_seen(&self, function: &FunctionRef) {
        let polls = self.0.read().expect("polls lock");
        if let Some(poll) = polls.get(&names::invoke_consumer(function))
            && poll.since.lock().expect("poll clock lock").elapsed() > STALE
        {
            poll.renew();
        }
    }

    fn leader_moved(&self, consumer: &str) {
        if let Some(poll) = self.0.read().expect("polls lock").get(consumer) {
            poll.renew();
        }
    }
}

/// Renews the poll of each function whose consumer elects a new leader, until `shutdown`. A poll is held by
/// the consumer's leader, so one sent to the old leader is gone. A single server never moves leaders.
pub async fn follow_leaders(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    // What follows the prefix is `{stream}.{consumer}`; the polls are found by consumer name alone.
    notices::each(&worker, "$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED", &shutdown, |moved, _| {
        if let Some((_stream, consumer)) = moved.split_once('.') {
            tracing::debug!(%consumer, "a function's queue has a new leader; polling it again");
            worker.polls.leader_moved(consumer);
        }
    })
    .await
}
