//! Reporting a call's final outcome, before its ack: the completion event, the dead letter and the first tries
//! of its callbacks (the caller's and its function's destination URL) at once; then whatever it goes on to — a
//! chained step, its fan-out — and its place in its own group; then the record. A delivery that finds the outcome
//! recorded does not get this far again, so everything before the record write is safe to do twice.

use std::time::Duration;

use chrono::Utc;
use sluice_contracts::{
    CallRecord, CallStatus, CallbackDelivery, CallbackState, Payload,
    callback::{CallbackFacts, CallbackMessage, Recipient, contract_headers},
    chain::Leg,
    fanout::{ChildOutcome, FanOut},
    names,
};
use sluice_jetstream::{
    dead_letters::{Burial, DeadLetters},
    retry::{STORE, persist},
};

use crate::{
    callback::DeliveryError,
    chain, fanout, metrics,
    outcome::Outcome,
    record::{self, Written},
    results::{self, Completion},
};

use super::execute::Run;

impl Run<'_> {
    /// Publishes the completion event, dead-letters a failure and makes the first callback tries (these at
    /// once), starts what the call goes on to (chained step, fan-out) and settles its place in its group, then
    /// records the outcome and removes the call's stored body.
    pub(super) async fn report(
        &self,
        mut record: CallRecord,
        mut revision: u64,
        outcome: &Outcome,
        fan_out: Option<&FanOut>,
        max_attempts: u32,
        seconds: f64,
    ) -> Result<(), String> {
        let (worker, call) = (self.worker, self.call);
        let series = self.series();
        let completion = Completion {
            call_id: &call.call_id,
            function: &call.function,
            attempt: self.attempt,
            series: series.as_deref(),
            duration: Duration::from_secs_f64(seconds),
            outcome,
        };
        let started = record.started_at.unwrap_or_else(Utc::now);
        let callback_headers =
            call.callback_url.as_ref().map(|_| self.callback_headers(outcome, max_attempts, started, seconds));
        // The event, the dead letter and the first callback try do not depend on each other.
        let published = persist("completion event", STORE, || results::publish(worker, &completion));
        let dead_lettered = async {
            if outcome.succeeded() {
                return Ok(None);
            }
            let original = self.message.headers.clone().unwrap_or_default();
            let dead_letters = DeadLetters::new(&worker.topology);
            let write = || {
                let (payload, original) = (self.message.payload.clone(), &original);
                let why = Burial {
                    function: &call.function,
                    call_id: &call.call_id,
                    status: outcome.status,
                    error: outcome.error.as_deref(),
                    attempts: self.attempt,
                };
                dead_letters.bury(original, payload, why)
            };
            let buried = persist("dead letter", STORE, write).await;
            if buried.is_ok() {
                metrics::dead_lettered(&call.function);
            }
            buried.map(Some)
        };
        let first_try = async {
            match (&call.callback_url, &callback_headers) {
                (Some(url), Some(headers)) => Some(worker.callbacks.send(url, headers, outcome.body.clone()).await),
                _ => None,
            }
        };
        // The function's own onSuccess/onFailure URL gets the result as a callback does.
        let leg = if outcome.succeeded() { Leg::OnSuccess } else { Leg::OnFailure };
        let destination_url = self.spec.destination_url(leg);
        let destination_headers =
            destination_url.map(|_| self.callback_headers(outcome, max_attempts, started, seconds));
        let destination_try = async {
            match (destination_url, &destination_headers) {
                (Some(url), Some(headers)) => Some(worker.callbacks.send(url, headers, outcome.body.clone()).await),
                _ => None,
            }
        };
        let (published, dead_letter, first_try, destination_try) =
            tokio::join!(published, dead_lettered, first_try, destination_try);
        let results::Published { body: stored_body, result } = published?;
        record.result = Some(result);
        // Before the outcome is recorded: a delivery that finds it recorded does not get this far again.
        if let Some(next) = chain::follow_on(worker, self.spec, call, outcome, &stored_body, series.as_deref()).await? {
            record.add_child(&next);
        }
        if let Some(fan_out) = fan_out {
            for child in fanout::start(worker, call, fan_out).await? {
                record.add_child(&child);
            }
        }
        let ended = ChildOutcome {
            status: if outcome.succeeded() { CallStatus::Succeeded } else { CallStatus::Failed },
            function_status: Some(outcome.status),
            error: outcome.error.clone(),
            content_type: outcome.content_type().map(str::to_owned),
            body: outcome.body.clone(),
        };
        fanout::settle(worker, call, ended).await?;
        record.dead_letter = dead_letter?;
        if let (Some(url), Some(headers), Some(delivery)) = (&call.callback_url, callback_headers, first_try) {
            let settled =
                self.settle_callback(url, headers, delivery, &stored_body, Recipient::Caller, &series).await?;
            record.callback = Some(settled);
        }
        if let (Some(url), Some(headers), Some(delivery)) = (destination_url, destination_headers, destination_try) {
            let settled =
                self.settle_callback(url, headers, delivery, &stored_body, Recipient::Destination, &series).await?;
            record.destination = Some(settled);
        }
        record.status = if outcome.succeeded() { CallStatus::Succeeded } else { CallStatus::Failed };
        record.next_attempt_at = None;
        record.function_status = Some(outcome.status);
        record.finished_at = Some(Utc::now());
        record.error = outcome.error.clone();
        match record::write_over(&self.worker.calls, &mut record, &mut revision).await {
            Ok(Written::Stored) => worker.invocations.count(&call.function),
            // The cancellation's callback went out too.
            Ok(Written::Cancelled) => tracing::warn!("call cancelled as it finished; the cancellation is kept"),
            Ok(Written::FinishedElsewhere) => tracing::info!("another delivery recorded the call's outcome first"),
            Err(err) => return Err(format!("call record: {err}")),
        }
        // Only the call's own stored body: a chained call's input is its parent's result, which stays.
        if outcome.succeeded()
            && let Payload::Object(name) = &call.payload
            && *name == call.call_id
            && let Err(err) = worker.topology.payloads.delete(name).await
        {
            tracing::warn!(%err, object = %name, "could not delete the call's stored body");
        }
        Ok(())
    }

    /// The callback contract's headers for this attempt's outcome.
    fn callback_headers(
        &self,
        outcome: &Outcome,
        max_attempts: u32,
        started: chrono::DateTime<Utc>,
        seconds: f64,
    ) -> http::HeaderMap {
        let ce_type = if outcome.succeeded() { names::CE_TYPE_COMPLETED } else { names::CE_TYPE_FAILED };
        let mut headers = contract_headers(&CallbackFacts {
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
        // A callback belongs to the call's trace.
        sluice_contracts::trace::copy(&self.call.headers, &mut headers);
        headers
    }

    /// What the inline try of a callback (the caller's, or the function's destination URL) came to; a
    /// retryable failure queues it in the durable outbox.
    async fn settle_callback(
        &self,
        url: &str,
        headers: http::HeaderMap,
        first_try: Result<(), DeliveryError>,
        stored_body: &Payload,
        recipient: Recipient,
        series: &Option<String>,
    ) -> Result<CallbackState, String> {
        let error = match first_try {
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
            recipient,
            series: series.clone(),
        };
        persist("callback outbox", STORE, || self.worker.queue.enqueue_callback(&message)).await?;
        Ok(CallbackState { state: CallbackDelivery::Pending, attempts: 1, last_error: Some(error) })
    }
}
