//! Running one queued call, from message to ack.
//!
//! Order matters: run, call back, publish the completion event, record the outcome, and only then ack.
//! A crash anywhere before the ack means the call is redelivered and runs again (at-least-once); never that
//! a call is acked with its outcome lost.

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use sluice_runtime::{Body, Invocation, Runtime};
use sluice_schemas::{CallRecord, CallStatus, FunctionSpec, InvocationMessage, Payload, names::http_headers as h};
use tracing::Instrument;

use crate::{
    Worker,
    callback::Callback,
    consume::hand_back,
    lease, metrics,
    outcome::Outcome,
    results::{self, Completion},
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
    metrics::inflight(&call.function, 1.0);
    execute(worker, spec, &message, &call, attempt).instrument(span).await;
    metrics::inflight(&call.function, -1.0);
}

async fn execute(worker: &Arc<Worker>, spec: &FunctionSpec, message: &Message, call: &InvocationMessage, attempt: u32) {
    let started_at = Utc::now();
    let mut record = CallRecord::queued(&call.call_id, &call.function, call.time);
    record.status = CallStatus::Running;
    record.attempts = attempt;
    record.started_at = Some(started_at);
    if let Err(err) = worker.calls.put(&record).await {
        tracing::warn!(%err, "could not record the call as running");
    }
    let max_attempts = 1;
    let invocation = match invocation(worker, call, attempt, max_attempts).await {
        Ok(invocation) => invocation,
        Err(err) => {
            tracing::warn!(%err, "call body unavailable; the call is retried later");
            let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            return;
        }
    };
    let timeout = spec.timeout().unwrap_or(worker.cfg.default_timeout);
    let clock = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let result = tokio::select! {
        result = worker.runtimes.invoke(spec, invocation, deadline) => result,
        _ = lease::keep(message, worker.cfg.ack_wait) => unreachable!("lease keeping never ends"),
        _ = worker.abandon.cancelled() => {
            tracing::warn!("worker stopping; call handed back to the queue");
            hand_back(message).await;
            return;
        }
    };
    let duration = clock.elapsed();
    let outcome = Outcome::from_result(result);
    tracing::info!(status = outcome.status, seconds = duration.as_secs_f64(), "call finished");
    metrics::ended(&call.function, if outcome.succeeded() { "succeeded" } else { "failed" }, duration.as_secs_f64());

    // The rest only reports the outcome; keep the lease while it does.
    let report = async {
        if let Some(url) = &call.callback_url {
            let callback = Callback {
                url,
                call_id: &call.call_id,
                function: &call.function,
                started: started_at,
                duration,
                attempt,
                max_attempts,
                outcome: &outcome,
            };
            if let Err(err) = worker.callbacks.deliver(&callback).await {
                tracing::error!(%err, url = %url, "callback given up");
            }
        }
        let completion =
            Completion { call_id: &call.call_id, function: &call.function, attempt, duration, outcome: &outcome };
        persist("completion event", || results::publish(worker, &completion)).await?;
        record.status = if outcome.succeeded() { CallStatus::Succeeded } else { CallStatus::Failed };
        record.function_status = Some(outcome.status);
        record.finished_at = Some(Utc::now());
        record.error = outcome.error.clone();
        persist("call record", || worker.calls.put(&record)).await
    };
    let reported = tokio::select! {
        reported = report => reported,
        _ = lease::keep(message, worker.cfg.ack_wait) => unreachable!("lease keeping never ends"),
    };
    if let Err(err) = reported {
        tracing::error!(%err, "outcome not stored; the call will be redelivered");
        return;
    }
    if let Payload::Object(name) = &call.payload
        && let Err(err) = worker.topology.payloads.delete(name).await
    {
        tracing::warn!(%err, object = %name, "could not delete the call's stored body");
    }
    if let Err(err) = message.double_ack().await {
        tracing::warn!(%err, "ack not confirmed; the call may be redelivered");
    }
}

/// The runtime's view of the call, with its body read from the object store when it was claim-checked.
async fn invocation(
    worker: &Worker,
    call: &InvocationMessage,
    attempt: u32,
    max_attempts: u32,
) -> Result<Invocation, async_nats::Error> {
    let body = match &call.payload {
        Payload::Inline(bytes) => Body::Bytes(bytes.clone()),
        Payload::Object(name) => Body::Reader(sluice_schemas::payloads::open(&worker.topology, name).await?),
    };
    let mut headers = call.headers.clone();
    headers.insert(h::CALL_ID, http::HeaderValue::from_str(&call.call_id)?);
    headers.insert(h::ATTEMPT, attempt.into());
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

/// Retries a JetStream write a few times with a short backoff.
async fn persist<F, Fut, E>(what: &str, mut write: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut wait = Duration::from_millis(100);
    for attempt in 1..=STORE_ATTEMPTS {
        match write().await {
            Ok(()) => return Ok(()),
            Err(err) if attempt == STORE_ATTEMPTS => return Err(format!("{what}: {err}")),
            Err(err) => tracing::warn!(%err, attempt, "{what} not stored; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    unreachable!("the last attempt returns")
}
