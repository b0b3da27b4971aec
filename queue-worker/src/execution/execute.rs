//! Running one queued call, from message to ack.
//!
//! 1. The call record decides whether the call runs at all: a cancelled call, or one already finished (a
//!    redelivery after its outcome was stored), is acked without running; one older than `async.maxAge`
//!    fails without running. A young call's first delivery starts from the record as it was queued, unread,
//!    unless this worker heard it cancelled (`cancel::Cancels`).
//! 2. The call runs with its lease kept; a cancellation stops it. The record says `running` once the call
//!    has run for [`MARK_RUNNING_AFTER`]: most calls end sooner and go from `queued` straight to their
//!    outcome, one record write fewer per call. The function's progress reports reach the record at most once
//!    per [`PROGRESS_WRITE_INTERVAL`], the latest winning; with `async.heartbeatTimeout`, a call that goes
//!    that long without a report is stopped as hung, like a timeout.
//! 3. A failure worth retrying is handed back with a delay (nak), holding no slot while it waits.
//! 4. A final outcome is reported (`report.rs`: published, dead-lettered if it failed, called back, followed on)
//!    and recorded, and only then acked. A crash before the ack means the call runs again: at-least-once, never
//!    an ack with the outcome lost.

use std::{
    future::Future,
    pin::{Pin, pin},
    sync::Arc,
    time::Duration,
};

use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use sluice_contracts::{
    CallProgress, CallRecord, CallStatus, FunctionSpec, InvocationMessage, Payload,
    fanout::{self as fanout_doc, FanOut},
    names::{http_headers as h, wire},
};
use sluice_runtime::{Body, FunctionResponse, Invocation, Runtime, RuntimeError};
use tracing::Instrument;

use crate::{
    Worker,
    consume::hand_back,
    fanout, lease, metrics,
    outcome::Outcome,
    progress,
    record::{self, Start, Written},
    reports,
    retry::{Decision, RetrySettings},
    running::{Arrived, Registration},
};

/// Deliveries beyond the retry policy's attempts after which a call that never reached an outcome is failed
/// rather than run again: something (a crash, a panic) ends every attempt, and it must not loop for ever.
/// Hand-backs at shutdown and lost leases count as deliveries too, hence the margin.
const POISON_MARGIN: u32 = 10;

/// How long an attempt waits for the call's record store to answer before handing the call back.
const RECORD_PATIENCE: Duration = Duration::from_secs(30);

/// How long a call runs before its record is marked `running`.
pub const MARK_RUNNING_AFTER: Duration = Duration::from_millis(100);

/// Shortest time between two writes of one call's progress to its record (and two progress events): a
/// function reporting every frame costs JetStream one write a second.
pub const PROGRESS_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `message`'s call to its recorded outcome.
pub async fn run(worker: &Arc<Worker>, spec: &FunctionSpec, message: Message) {
    let headers = message.headers.clone().unwrap_or_default();
    let mut call = match InvocationMessage::from_nats(&headers, message.payload.clone()) {
        Ok(call) => call,
        Err(err) => {
            tracing::error!(%err, subject = %message.subject, "invalid invocation message removed from the queue");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let attempt = message.info().map(|i| i.delivered.max(1) as u32).unwrap_or(1);
    let span = tracing::info_span!("call", call_id = %call.call_id, function = %call.function, attempt);
    // The attempt continues the trace the call was queued in; the function, the steps it starts and the
    // callback continue this attempt's.
    sluice_contracts::trace::continue_from_headers(&span, &call.headers);
    sluice_contracts::trace::pass_on_in_headers(&span, &mut call.headers);
    let run = Run { worker, spec, message: &message, call: &call, attempt };
    run.execute().instrument(span).await;
}

/// Ends `message`'s call as failed without running it, with `status` and `reason` (its function was
/// deleted): recorded, dead-lettered and called back like any final failure.
pub async fn fail_unrun(worker: &Arc<Worker>, spec: &FunctionSpec, message: Message, status: u16, reason: &str) {
    let headers = message.headers.clone().unwrap_or_default();
    let Ok(call) = InvocationMessage::from_nats(&headers, message.payload.clone()) else {
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    let attempt = message.info().map(|i| i.delivered.max(1) as u32).unwrap_or(1);
    let span = tracing::info_span!("call", call_id = %call.call_id, function = %call.function, attempt);
    let run = Run { worker, spec, message: &message, call: &call, attempt };
    async {
        let settings = RetrySettings::resolve(spec, &worker.cfg.retry);
        match run.start_record(&settings).await {
            Ok(Start::Run(record, revision) | Start::Expired(record, revision)) => {
                tracing::info!(reason, "call ended without running");
                let outcome = Outcome::failure(status, reason.to_owned());
                run.finish(record, revision, outcome, None, settings.attempts, 0.0).await;
            }
            Ok(Start::Skip(status)) => run.ack_unrun(status).await,
            Err(err) => {
                tracing::warn!(%err, "call record unavailable; the call is ended later");
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
    .instrument(span)
    .await;
}

/// One attempt at one call.
pub(super) struct Run<'a> {
    pub(super) worker: &'a Arc<Worker>,
    pub(super) spec: &'a FunctionSpec,
    pub(super) message: &'a Message,
    pub(super) call: &'a InvocationMessage,
    pub(super) attempt: u32,
}

impl Run<'_> {
    /// The attempt series this delivery belongs to: `None` as first queued, else the replay's. What ends it (its
    /// completion event, dead letter, outbox callbacks, chained step) is named by it.
    pub(super) fn series(&self) -> Option<String> {
        self.message.headers.as_ref().and_then(sluice_contracts::invocation::replay_series)
    }

    /// Reads (or writes) the call's record for this attempt. While the store is out of reach (a NATS leader
    /// election, a node going down) the attempt keeps its message and tries again, for up to
    /// [`RECORD_PATIENCE`]: a nak would count as a delivery, and deliveries are the call's attempts.
    async fn start_record(
        &self,
        settings: &RetrySettings,
    ) -> Result<record::Start, sluice_jetstream::store::StoreError> {
        if let Some(revision) = self.unread_revision() {
            return Ok(record::start_unread(self.call, revision, settings));
        }
        metrics::record_read(&self.call.function);
        let deadline = tokio::time::Instant::now() + RECORD_PATIENCE;
        let mut wait = Duration::from_millis(100);
        loop {
            match record::start(&self.worker.calls, self.call, self.attempt, settings).await {
                Err(err) if tokio::time::Instant::now() + wait < deadline => {
                    tracing::warn!(%err, "call record unavailable; trying again");
                    let _ = self.message.ack_with(AckKind::Progress).await;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                done => return done,
            }
        }
    }

    /// The revision the call's record was queued at, when this delivery may start from it without reading the
    /// record: the first, of a call whose queue wrote the record before publishing it, that no cancellation
    /// can have reached without this worker hearing. Most calls; the others read the record.
    fn unread_revision(&self) -> Option<u64> {
        if self.attempt != 1 {
            return None;
        }
        let revision = self.message.headers.as_ref()?.get(wire::RECORD_REVISION)?.as_str().parse().ok()?;
        self.worker.cancels.unheard(&self.call.call_id, self.call.time).then_some(revision)
    }

    async fn execute(&self) {
        let clock = std::time::Instant::now();
        let settings = RetrySettings::resolve(self.spec, &self.worker.cfg.retry);
        // Registered before the record is read, so a cancellation landing meanwhile is not missed.
        let mut registration = self.worker.running.register(&self.call.call_id, &self.call.function);
        let start = match self.start_record(&settings).await {
            Ok(start) => start,
            Err(err) => {
                tracing::warn!(%err, "call record unavailable; the call is retried shortly");
                let _ = self.message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                return;
            }
        };
        let (mut record, mut revision) = match start {
            Start::Skip(status) => {
                tracing::info!(status = status.as_str(), "call not run");
                self.ack_unrun(status).await;
                return;
            }
            Start::Expired(record, revision) => {
                let outcome = Outcome::failure(504, "call expired: older than the function's async.maxAge".into());
                self.finish(record, revision, outcome, None, settings.attempts, 0.0).await;
                return;
            }
            Start::Run(record, revision) if self.attempt > settings.attempts.saturating_add(POISON_MARGIN) => {
                let error = format!(
                    "the call was delivered {} times without reaching an outcome; a worker fails on it every time",
                    self.attempt - 1
                );
                tracing::error!(%error, "call failed without running again");
                self.finish(record, revision, Outcome::failure(500, error), None, settings.attempts, 0.0).await;
                return;
            }
            Start::Run(record, revision) => (record, revision),
        };
        metrics::inflight(&self.call.function, 1.0);
        let ran = self.invoke(&mut record, &mut revision, &mut registration, settings.attempts).await;
        metrics::inflight(&self.call.function, -1.0);
        let Some((mut outcome, seconds)) = ran else { return };
        let fan_out = match self.fan_out(&outcome, &registration).await {
            Ok(fan_out) => fan_out,
            Err(error) => {
                tracing::warn!(%error, "fan-out refused; the call fails");
                outcome = Outcome::failure(422, error);
                None
            }
        };
        tracing::info!(status = outcome.status, seconds, "attempt finished");
        metrics::ended(&self.call.function, outcome.succeeded(), seconds);
        match settings.decide(&outcome, self.attempt) {
            Decision::Retry(wait) => self.retry_later(record, revision, &outcome, wait).await,
            Decision::Final => self.finish(record, revision, outcome, fan_out, settings.attempts, seconds).await,
        }
        metrics::overhead(clock.elapsed().as_secs_f64() - seconds);
    }

    /// The fan-out a succeeded attempt declared (at its fan-out URL, or as its response), checked; an error
    /// fails the call.
    async fn fan_out(&self, outcome: &Outcome, registration: &Registration) -> Result<Option<FanOut>, String> {
        let declared = registration.take_fan_out();
        if !outcome.succeeded() {
            return Ok(None);
        }
        let answered = outcome.content_type().is_some_and(|t| t.starts_with(fanout_doc::CONTENT_TYPE));
        let fan_out = match (answered, declared) {
            (true, _) => FanOut::parse(&outcome.body).map_err(|err| err.to_string())?,
            (false, Some(declared)) => declared,
            (false, None) => return Ok(None),
        };
        fanout::admit(self.worker, self.call, &fan_out).await?;
        Ok(Some(fan_out))
    }

    /// Acks a delivery of a call that ended without this attempt (cancelled, or finished by another
    /// delivery); a cancelled fan-out child settles its place in its group first.
    async fn ack_unrun(&self, status: CallStatus) {
        if status == CallStatus::Cancelled
            && self.call.group().is_some()
            && let Err(err) = fanout::settle_cancelled(self.worker, self.call).await
        {
            tracing::warn!(%err, "cancelled child not settled in its group; the call is looked at again shortly");
            let _ = self.message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            return;
        }
        let _ = self.message.double_ack().await;
    }

    /// Runs the function; `None` when the attempt was cancelled or abandoned (already acked or handed back).
    async fn invoke(
        &self,
        record: &mut CallRecord,
        revision: &mut u64,
        registration: &mut Registration,
        max_attempts: u32,
    ) -> Option<(Outcome, f64)> {
        let invocation = match self.invocation(max_attempts, &registration.secret).await {
            Ok(invocation) => invocation,
            Err(err) => {
                tracing::warn!(%err, "call body unavailable; the call is retried later");
                let _ = self.message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                return None;
            }
        };
        if registration.token.is_cancelled() {
            tracing::info!("call cancelled before it started");
            self.ack_unrun(CallStatus::Cancelled).await;
            return None;
        }
        let timeout = self.spec.timeout().unwrap_or(self.worker.cfg.default_timeout);
        let clock = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let call = pin!(self.worker.runtimes.invoke(self.spec, invocation, deadline));
        let result = self.run_marked(call, record, revision, registration).await;
        let result = match result {
            Ran::Finished(result) => {
                if let Ok(response) = &result
                    && !response.stderr.is_empty()
                {
                    // A process function's diagnostics; the worker's log is the only place they can go.
                    let text = String::from_utf8_lossy(&response.stderr);
                    tracing::info!("function wrote to stderr: {}", text.trim_end());
                }
                result
            }
            Ran::Hung(limit) => {
                tracing::warn!(?limit, "no progress report within the heartbeat timeout; call stopped as hung");
                Err(RuntimeError::Hung(limit))
            }
            Ran::Cancelled => {
                // The gateway recorded the cancellation and sent its callback.
                tracing::info!("call cancelled while running");
                self.ack_unrun(CallStatus::Cancelled).await;
                return None;
            }
            Ran::Superseded => {
                // Settling a child that finished elsewhere changes nothing: its place is settled already.
                tracing::info!("call cancelled or finished elsewhere while running");
                self.ack_unrun(CallStatus::Cancelled).await;
                return None;
            }
            Ran::Abandoned => {
                tracing::warn!("worker stopping; call handed back to the queue");
                hand_back(self.message).await;
                return None;
            }
        };
        Some((Outcome::from_result(result), clock.elapsed().as_secs_f64()))
    }

    /// Drives a call to its end, keeping its lease; marks its record running once it has run for
    /// [`MARK_RUNNING_AFTER`], writes the function's latest progress report to it at most once per
    /// [`PROGRESS_WRITE_INTERVAL`], and stops the call when its heartbeat timeout passes without a report.
    /// Record writes are awaited whole (the call runs on meanwhile): a write dropped halfway could land unseen
    /// and leave the revision held here stale.
    async fn run_marked(
        &self,
        mut call: Pin<&mut impl Future<Output = Result<FunctionResponse, RuntimeError>>>,
        record: &mut CallRecord,
        revision: &mut u64,
        registration: &mut Registration,
    ) -> Ran {
        let mut lease = pin!(lease::keep(self.message, self.worker.cfg.ack_wait));
        let mut mark_after = pin!(tokio::time::sleep(MARK_RUNNING_AFTER));
        let mut marked = false;
        let heartbeat = self.spec.heartbeat_timeout();
        // Without a heartbeat timeout this never fires: the branch below is disabled.
        let mut hung = pin!(tokio::time::sleep(heartbeat.unwrap_or(Duration::MAX / 4)));
        let mut next_write = pin!(tokio::time::sleep(Duration::ZERO));
        let mut pending: Option<Arrived> = None;
        let mut listening = true;
        loop {
            tokio::select! {
                result = &mut call => {
                    // The latest report not written yet goes into the record with the outcome: a call shorter
                    // than the write interval still ends showing how far it got.
                    let latest = registration.reports.borrow().clone();
                    if let Some(arrived) = latest
                        && record.heartbeat_at.is_none_or(|at| at < arrived.at)
                    {
                        fold_report(record, &arrived);
                    }
                    return Ran::Finished(result);
                }
                _ = &mut mark_after, if !marked => {
                    marked = true;
                    match record::mark_running(&self.worker.calls, record, revision).await {
                        Ok(true) => {}
                        Ok(false) => return Ran::Superseded,
                        Err(err) => tracing::warn!(%err, "could not mark the call running; it runs on"),
                    }
                }
                changed = registration.reports.changed(), if listening => {
                    // Closed only when another delivery of this call took the registration over.
                    let Ok(()) = changed else { listening = false; continue };
                    pending = registration.reports.borrow_and_update().clone();
                    if let Some(limit) = heartbeat {
                        hung.as_mut().reset(tokio::time::Instant::now() + limit);
                    }
                }
                _ = &mut next_write, if pending.is_some() => {
                    let arrived = pending.take().expect("a report is pending");
                    match self.write_progress(record, revision, &arrived).await {
                        Ok(true) => marked = true,
                        Ok(false) => return Ran::Superseded,
                        Err(err) => tracing::warn!(%err, "could not record the call's progress; it runs on"),
                    }
                    next_write.as_mut().reset(tokio::time::Instant::now() + PROGRESS_WRITE_INTERVAL);
                }
                _ = &mut hung, if heartbeat.is_some() => return Ran::Hung(heartbeat.expect("checked")),
                _ = &mut lease => unreachable!("lease keeping never ends"),
                _ = registration.token.cancelled() => return Ran::Cancelled,
                _ = self.worker.abandon.cancelled() => return Ran::Abandoned,
            }
        }
    }

    /// Writes `arrived` into the record (which also marks it running) and publishes it as a progress event;
    /// `Ok(false)` when the call was cancelled or finished elsewhere meanwhile.
    async fn write_progress(
        &self,
        record: &mut CallRecord,
        revision: &mut u64,
        arrived: &Arrived,
    ) -> Result<bool, sluice_jetstream::store::StoreError> {
        record.status = CallStatus::Running;
        fold_report(record, arrived);
        if record::write_over(&self.worker.calls, record, revision).await? != Written::Stored {
            return Ok(false);
        }
        if let (false, Some(progress)) = (arrived.report.is_heartbeat(), &record.progress) {
            progress::publish(self.worker, &self.call.call_id, &self.call.function, self.attempt, progress);
        }
        Ok(true)
    }

    /// The runtime's view of the call, its body streamed from the object store when it was claim-checked, and
    /// with this attempt's progress URL (which carries `secret`).
    async fn invocation(&self, max_attempts: u32, secret: &str) -> Result<Invocation, async_nats::Error> {
        let call = self.call;
        let body = match &call.payload {
            Payload::Inline(bytes) => Body::Bytes(bytes.clone()),
            Payload::Object(name) => Body::Reader(sluice_jetstream::payloads::open(&self.worker.topology, name).await?),
        };
        let mut headers = call.headers.clone();
        headers.insert(h::CALL_ID, http::HeaderValue::from_str(&call.call_id)?);
        headers.insert(h::ATTEMPT, self.attempt.into());
        headers.insert(h::MAX_ATTEMPTS, max_attempts.into());
        // Whatever the caller sent under this name is not the worker's, so it never reaches the function.
        headers.remove(h::PROGRESS_URL);
        headers.remove(h::FANOUT_URL);
        if let Some(base) = self.worker.cfg.progress.for_kind(self.spec.runtime_kind()) {
            // Two per call: `concat` allocates each once, where `format!` grows it piece by piece.
            let url = [base, reports::ROUTE, "/", &call.call_id, "/", secret].concat();
            headers.insert(h::PROGRESS_URL, http::HeaderValue::from_str(&url)?);
            let url = [base, reports::FANOUT_ROUTE, "/", &call.call_id, "/", secret].concat();
            headers.insert(h::FANOUT_URL, http::HeaderValue::from_str(&url)?);
        }
        Ok(Invocation {
            call_id: call.call_id.clone(),
            method: call.method.clone(),
            path: call.path.clone(),
            query: call.query.clone(),
            headers,
            body,
        })
    }

    async fn retry_later(&self, mut record: CallRecord, mut revision: u64, outcome: &Outcome, wait: Duration) {
        metrics::retried(&self.call.function);
        record.status = CallStatus::Queued;
        record.next_attempt_at = chrono::Duration::from_std(wait).ok().map(|wait| Utc::now() + wait);
        record.function_status = Some(outcome.status);
        record.error = outcome.error.clone();
        match record::write_over(&self.worker.calls, &mut record, &mut revision).await {
            Ok(Written::Stored) => {}
            Ok(written) => {
                tracing::info!(?written, "call cancelled or finished elsewhere meanwhile; not retried");
                let _ = self.message.double_ack().await;
                return;
            }
            Err(err) => tracing::warn!(%err, "could not record the failed attempt"),
        }
        tracing::info!(?wait, error = outcome.error.as_deref().unwrap_or(""), "attempt failed; retrying later");
        let _ = self.message.ack_with(AckKind::Nak(Some(wait))).await;
    }

    /// Stores and reports the final outcome, then acks; keeps the lease while it does.
    async fn finish(
        &self,
        record: CallRecord,
        revision: u64,
        outcome: Outcome,
        fan_out: Option<FanOut>,
        max_attempts: u32,
        seconds: f64,
    ) {
        let report = self.report(record, revision, &outcome, fan_out.as_ref(), max_attempts, seconds);
        let reported = tokio::select! {
            reported = report => reported,
            _ = lease::keep(self.message, self.worker.cfg.ack_wait) => unreachable!("lease keeping never ends"),
        };
        match reported {
            // A plain ack: were it lost, the redelivered call finds its outcome recorded and is not run again.
            Ok(()) => {
                if let Err(err) = self.message.ack().await {
                    tracing::warn!(%err, "ack not sent; the call will be redelivered and found finished");
                }
            }
            Err(err) => tracing::error!(%err, "outcome not stored; the call will be redelivered"),
        }
    }
}

/// Takes a function's report into its call's record (in memory).
fn fold_report(record: &mut CallRecord, arrived: &Arrived) {
    record.heartbeat_at = Some(arrived.at);
    if !arrived.report.is_heartbeat() {
        record.progress = Some(CallProgress::merged(record.progress.as_ref(), &arrived.report, arrived.at));
    }
}

/// How a running call ended.
enum Ran {
    Finished(Result<FunctionResponse, RuntimeError>),
    /// No progress report within the function's heartbeat timeout.
    Hung(Duration),
    /// Cancelled by request.
    Cancelled,
    /// Cancelled, or finished by another delivery, as the record showed when it was to be marked running.
    Superseded,
    /// The worker is stopping.
    Abandoned,
}
