//! Running one queued call, from message to ack.
//!
//! 1. The call record decides whether the call runs at all: a cancelled call, or one already finished (a
//!    redelivery after its outcome was stored), is acked without running; one older than `async.maxAge`
//!    fails without running. The `running` record is written only if nobody changed the record meanwhile.
//! 2. The call runs with its lease kept; a cancellation stops it.
//! 3. A failure worth retrying is handed back with a delay (nak), holding no slot while it waits.
//! 4. A final outcome is published (`SLUICE_RESULTS`), dead-lettered if it failed, called back (once inline;
//!    the outbox retries), recorded, and only then acked. A crash before the ack means the call runs again:
//!    at-least-once, never an ack with the outcome lost.

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use sluice_runtime::{Body, Invocation, Runtime};
use sluice_schemas::{
    CallRecord, CallStatus, CallbackDelivery, CallbackState, FunctionSpec, InvocationMessage, Payload,
    callback::{CallbackFacts, CallbackMessage, contract_headers},
    names::{self, http_headers as h},
};
use tracing::Instrument;

use crate::{
    Worker,
    callback::DeliveryError,
    consume::hand_back,
    dead, lease, metrics, outbox,
    outcome::Outcome,
    results::{self, Completion},
    retry::{Decision, RetrySettings},
};

/// Attempts at storing an outcome before the call is left to be redelivered.
const STORE_ATTEMPTS: u32 = 5;

/// Runs `message`'s call to its recorded outcome.
pub async fn run(worker: &Arc<Worker>, spec: &FunctionSpec, message: Message) {
    let headers = message.headers.clone().unwrap_or_default();
    let call = match InvocationMessage::from_nats(&headers, message.payload.clone()) {
        Ok(call) => call,
        Err(err) => {
            tracing::error!(%err, subject = %message.subject, "invalid invocation message removed from the queue");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let attempt = message.info().map(|i| i.delivered.max(1) as u32).unwrap_or(1);
    let span = tracing::info_span!("call", call_id = %call.call_id, function = %call.function, attempt);
    let run = Run { worker, spec, message: &message, call: &call, attempt };
    run.execute().instrument(span).await;
}

/// One attempt at one call.
struct Run<'a> {
    worker: &'a Arc<Worker>,
    spec: &'a FunctionSpec,
    message: &'a Message,
    call: &'a InvocationMessage,
    attempt: u32,
}

/// Where the record stood when this attempt began.
enum Start {
    /// Run it; the record is `running` at this revision.
    Run(CallRecord, u64),
    /// Cancelled or already finished: ack, nothing to do.
    Skip(&'static str),
    /// Too old to start.
    Expired(CallRecord, u64),
}

impl Run<'_> {
    async fn execute(&self) {
        let clock = std::time::Instant::now();
        let settings = RetrySettings::resolve(self.spec, &self.worker.cfg.retry);
        let start = match self.start(&settings).await {
            Ok(start) => start,
            Err(err) => {
                tracing::warn!(%err, "call record unavailable; the call is retried shortly");
                let _ = self.message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                return;
            }
        };
        let (record, revision) = match start {
            Start::Skip(why) => {
                tracing::info!(why, "call not run");
                let _ = self.message.double_ack().await;
                return;
            }
            Start::Expired(record, revision) => {
                let outcome = Outcome::failure(504, "call expired: older than the function's async.maxAge".into());
                self.finish(record, revision, outcome, settings.attempts, 0.0).await;
                return;
            }
            Start::Run(record, revision) => (record, revision),
        };
        metrics::inflight(&self.call.function, 1.0);
        let ran = self.invoke(settings.attempts).await;
        metrics::inflight(&self.call.function, -1.0);
        let Some((outcome, seconds)) = ran else { return };
        tracing::info!(status = outcome.status, seconds, "attempt finished");
        metrics::ended(&self.call.function, if outcome.succeeded() { "succeeded" } else { "failed" }, seconds);
        match settings.decide(&outcome, self.attempt) {
            Decision::Retry(wait) => self.retry_later(record, revision, &outcome, wait).await,
            Decision::Final => self.finish(record, revision, outcome, settings.attempts, seconds).await,
        }
        metrics::overhead(clock.elapsed().as_secs_f64() - seconds);
    }

    /// Reads the record and, unless the call must not run, marks it running.
    async fn start(&self, settings: &RetrySettings) -> Result<Start, sluice_schemas::store::StoreError> {
        let calls = &self.worker.calls;
        for _ in 0..STORE_ATTEMPTS {
            let existing = calls.entry(&self.call.call_id).await?;
            let mut record = match &existing {
                Some((record, _)) if record.status == CallStatus::Cancelled => return Ok(Start::Skip("cancelled")),
                Some((record, _)) if record.status.is_final() => return Ok(Start::Skip("already finished")),
                Some((record, _)) => record.clone(),
                None => {
                    let mut fresh = CallRecord::queued(&self.call.call_id, &self.call.function, self.call.time);
                    fresh.callback_url = self.call.callback_url.clone();
                    fresh
                }
            };
            if settings.expired(self.call.time, Utc::now()) {
                let revision = match existing {
                    Some((_, revision)) => revision,
                    None => calls.put(&record).await?,
                };
                return Ok(Start::Expired(record, revision));
            }
            record.status = CallStatus::Running;
            record.attempts = self.attempt;
            record.started_at = Some(Utc::now());
            let written = match existing {
                Some((_, revision)) => calls.update(&record, revision).await?,
                None => match calls.create(&record).await? {
                    true => calls.entry(&record.call_id).await?.map(|(_, revision)| revision),
                    false => None, // the gateway's `queued` record landed first; read it again
                },
            };
            if let Some(revision) = written {
                return Ok(Start::Run(record, revision));
            }
        }
        Err(sluice_schemas::store::StoreError::Unavailable("call record keeps changing".into()))
    }

    /// Runs the function; `None` when the attempt was cancelled or abandoned (already acked or handed back).
    async fn invoke(&self, max_attempts: u32) -> Option<(Outcome, f64)> {
        let invocation = match self.invocation(max_attempts).await {
            Ok(invocation) => invocation,
            Err(err) => {
                tracing::warn!(%err, "call body unavailable; the call is retried later");
                let _ = self.message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                return None;
            }
        };
        let registration = self.worker.running.register(&self.call.call_id);
        let timeout = self.spec.timeout().unwrap_or(self.worker.cfg.default_timeout);
        let clock = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let result = tokio::select! {
            result = self.worker.runtimes.invoke(self.spec, invocation, deadline) => result,
            _ = lease::keep(self.message, self.worker.cfg.ack_wait) => unreachable!("lease keeping never ends"),
            _ = registration.token.cancelled() => {
                // The gateway recorded the cancellation and sent its callback.
                tracing::info!("call cancelled while running");
                let _ = self.message.double_ack().await;
                return None;
            }
            _ = self.worker.abandon.cancelled() => {
                tracing::warn!("worker stopping; call handed back to the queue");
                hand_back(self.message).await;
                return None;
            }
        };
        Some((Outcome::from_result(result), clock.elapsed().as_secs_f64()))
    }

    /// The runtime's view of the call, its body streamed from the object store when it was claim-checked.
    async fn invocation(&self, max_attempts: u32) -> Result<Invocation, async_nats::Error> {
        let call = self.call;
        let body = match &call.payload {
            Payload::Inline(bytes) => Body::Bytes(bytes.clone()),
            Payload::Object(name) => Body::Reader(sluice_schemas::payloads::open(&self.worker.topology, name).await?),
        };
        let mut headers = call.headers.clone();
        headers.insert(h::CALL_ID, http::HeaderValue::from_str(&call.call_id)?);
        headers.insert(h::ATTEMPT, self.attempt.into());
        headers.insert(h::MAX_ATTEMPTS, max_attempts.into());
        Ok(Invocation {
            call_id: call.call_id.clone(),
            method: call.method.clone(),
            path: call.path.clone(),
            query: call.query.clone(),
            headers,
            body,
        })
    }

    async fn retry_later(&self, mut record: CallRecord, revision: u64, outcome: &Outcome, wait: Duration) {
        record.status = CallStatus::Queued;
        record.function_status = Some(outcome.status);
        record.error = outcome.error.clone();
        match self.worker.calls.update(&record, revision).await {
            Ok(None) => {
                tracing::info!("call cancelled meanwhile; not retried");
                let _ = self.message.double_ack().await;
                return;
            }
            Ok(Some(_)) => {}
            Err(err) => tracing::warn!(%err, "could not record the failed attempt"),
        }
        tracing::info!(?wait, error = outcome.error.as_deref().unwrap_or(""), "attempt failed; retrying later");
        let _ = self.message.ack_with(AckKind::Nak(Some(wait))).await;
    }

    /// Stores and reports the final outcome, then acks; keeps the lease while it does.
    async fn finish(&self, record: CallRecord, revision: u64, outcome: Outcome, max_attempts: u32, seconds: f64) {
        let report = self.report(record, revision, &outcome, max_attempts, seconds);
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

    async fn report(
        &self,
        mut record: CallRecord,
        revision: u64,
        outcome: &Outcome,
        max_attempts: u32,
        seconds: f64,
    ) -> Result<(), String> {
        let (worker, call) = (self.worker, self.call);
        let completion = Completion {
            call_id: &call.call_id,
            function: &call.function,
            attempt: self.attempt,
            duration: Duration::from_secs_f64(seconds),
            outcome,
        };
        let result_body = persist("completion event", || results::publish(worker, &completion)).await?;
        if !outcome.succeeded() {
            let original = self.message.headers.clone().unwrap_or_default();
            let seq = persist("dead letter", || {
                dead::publish(
                    worker,
                    &call.function,
                    &call.call_id,
                    &original,
                    self.message.payload.clone(),
                    outcome,
                    self.attempt,
                )
            })
            .await?;
            record.dead_letter = Some(seq);
        }
        if let Some(url) = &call.callback_url {
            let started = record.started_at.unwrap_or_else(Utc::now);
            record.callback = Some(self.call_back(url, outcome, &result_body, max_attempts, started, seconds).await?);
        }
        record.status = if outcome.succeeded() { CallStatus::Succeeded } else { CallStatus::Failed };
        record.function_status = Some(outcome.status);
        record.finished_at = Some(Utc::now());
        record.error = outcome.error.clone();
        match self.worker.calls.update(&record, revision).await {
            Ok(Some(_)) => {}
            // Cancelled while finishing: the cancellation stands, and its callback went out too.
            Ok(None) => tracing::warn!("call cancelled as it finished; the cancellation is kept"),
            Err(err) => return Err(format!("call record: {err}")),
        }
        if outcome.succeeded()
            && let Payload::Object(name) = &call.payload
            && let Err(err) = worker.topology.payloads.delete(name).await
        {
            tracing::warn!(%err, object = %name, "could not delete the call's stored body");
        }
        Ok(())
    }

    /// Delivers the callback once inline; when that fails, queues it in the durable outbox.
    async fn call_back(
        &self,
        url: &str,
        outcome: &Outcome,
        stored_body: &Payload,
        max_attempts: u32,
        started: chrono::DateTime<Utc>,
        seconds: f64,
    ) -> Result<CallbackState, String> {
        let ce_type = if outcome.succeeded() { names::CE_TYPE_COMPLETED } else { names::CE_TYPE_FAILED };
        let headers = contract_headers(&CallbackFacts {
            call_id: &self.call.call_id,
            function: &self.call.function,
            ce_type,
            function_status: outcome.status,
            duration_seconds: seconds,
            started,
            attempt: self.attempt,
            max_attempts,
            content_type: outcome.content_type(),
        });
        let error = match self.worker.callbacks.send(url, &headers, outcome.body.clone()).await {
            Ok(()) => return Ok(CallbackState { state: CallbackDelivery::Delivered, attempts: 1, last_error: None }),
            Err(DeliveryError::Refused(error)) => {
                tracing::error!(%error, "callback refused");
                return Ok(CallbackState { state: CallbackDelivery::Failed, attempts: 1, last_error: Some(error) });
            }
            Err(DeliveryError::Retryable(error)) => error,
        };
        tracing::info!(%error, "callback failed; queued in the outbox");
        let message = CallbackMessage {
            url: url.to_owned(),
            call_id: self.call.call_id.clone(),
            function: self.call.function.clone(),
            headers,
            body: stored_body.clone(),
        };
        persist("callback outbox", || outbox::enqueue(self.worker, &message)).await?;
        Ok(CallbackState { state: CallbackDelivery::Pending, attempts: 1, last_error: Some(error) })
    }
}

/// Retries a JetStream write a few times with a short backoff.
async fn persist<T, F, Fut, E>(what: &str, mut write: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut wait = Duration::from_millis(100);
    for attempt in 1..STORE_ATTEMPTS {
        match write().await {
            Ok(value) => return Ok(value),
            Err(err) => tracing::warn!(%err, attempt, "{what} not stored; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    write().await.map_err(|err| format!("{what}: {err}"))
}
