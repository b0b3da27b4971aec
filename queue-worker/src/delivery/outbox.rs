//! The durable callback outbox: callbacks not delivered at the first try wait in `SLUICE_CALLBACKS` (put there
//! by `sluice_jetstream::Queue::enqueue_callback`) and are
//! retried with backoff by whichever worker is free, surviving restarts and holding no function slot,
//! until delivered or expired. Each outcome is written to the call record's `callback` field (or
//! `destination`, for a function's `async.onSuccess`/`onFailure` URL).

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{
    AckKind, Message,
    consumer::{AckPolicy, PullConsumer, pull},
};
use bytes::Bytes;
use futures::StreamExt;
use sluice_contracts::{
    CallbackDelivery, CallbackState, Payload,
    callback::{CANCELLED_SERIES, CallbackMessage, Recipient},
    invocation::series_of_replay,
    names,
};
use sluice_jetstream::{payloads, store::Modified};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::{Worker, callback::DeliveryError};

async fn consumer(worker: &Worker) -> Result<PullConsumer, async_nats::Error> {
    let stream = worker.topology.jetstream.get_stream_no_info(names::CALLBACKS_STREAM).await?;
    Ok(stream
        .create_consumer(pull::Config {
            durable_name: Some(names::CALLBACKS_CONSUMER.to_owned()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: worker.callbacks.cfg.timeout * 3,
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await?)
}

/// Delivers the outbox until `shutdown`.
pub async fn dispatch(worker: Arc<Worker>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        let consumer = match consumer(&worker).await {
            Ok(c) => c,
            Err(err) => {
                tracing::warn!(%err, "cannot open the callback outbox; retrying");
                tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(1)) => continue }
            }
        };
        let concurrency = worker.callbacks.cfg.concurrency.max(1);
        let messages = match consumer.stream().max_messages_per_batch(concurrency).messages().await {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(%err, "cannot pull the callback outbox; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        messages
            .take_until(shutdown.cancelled())
            .for_each_concurrent(concurrency, |message| {
                let worker = worker.clone();
                async move {
                    match message {
                        Ok(message) => deliver(&worker, message).await,
                        Err(err) => tracing::debug!(%err, "outbox pull interrupted"),
                    }
                }
            })
            .await;
    }
}

async fn body_of(worker: &Worker, callback: &CallbackMessage) -> Result<Bytes, String> {
    match &callback.body {
        Payload::Inline(body) => Ok(body.clone()),
        Payload::Object(name) => {
            let mut reader = payloads::open(&worker.topology, name).await.map_err(|e| e.to_string())?;
            let mut body = Vec::new();
            reader.read_to_end(&mut body).await.map_err(|e| e.to_string())?;
            Ok(body.into())
        }
    }
}

async fn deliver(worker: &Worker, message: Message) {
    let headers = message.headers.clone().unwrap_or_default();
    let Some(callback) = CallbackMessage::from_nats(&headers, message.payload.clone()) else {
        tracing::error!(subject = %message.subject, "invalid outbox message removed");
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    let span = tracing::info_span!("callback", call_id = %callback.call_id, function = %callback.function);
    // A later try belongs to the call's trace too (its headers name the call's span).
    sluice_contracts::trace::continue_from_headers(&span, &callback.headers);
    let _enter = span.enter();
    let (outbox_attempt, age) = match message.info() {
        Ok(info) => {
            let published = sluice_jetstream::store::written_at(info.published);
            (info.delivered.max(1) as u32, (chrono::Utc::now() - published).to_std().unwrap_or_default())
        }
        Err(_) => (1, Duration::ZERO),
    };
    let result = match body_of(worker, &callback).await {
        Ok(body) => worker.callbacks.send(&callback.url, &callback.headers, body).await,
        Err(err) => Err(DeliveryError::Retryable(format!("callback body unavailable: {err}"))),
    };
    // The first try happened inline, before the callback was queued here.
    let attempts = outbox_attempt + 1;
    let cfg = &worker.callbacks.cfg;
    let state = match result {
        Ok(()) => {
            let _ = message.double_ack().await;
            tracing::info!(attempts, "callback delivered from the outbox");
            CallbackState { state: CallbackDelivery::Delivered, attempts, last_error: None }
        }
        Err(DeliveryError::Retryable(error)) if age < cfg.expiry => {
            let wait = backoff(cfg.min_wait, cfg.max_wait, outbox_attempt);
            tracing::debug!(%error, ?wait, "callback failed; retrying later");
            let _ = message.ack_with(AckKind::Nak(Some(wait))).await;
            CallbackState { state: CallbackDelivery::Pending, attempts, last_error: Some(error) }
        }
        Err(error) => {
            tracing::error!(%error, attempts, "callback given up");
            let _ = message.ack_with(AckKind::Term).await;
            CallbackState { state: CallbackDelivery::Failed, attempts, last_error: Some(error.to_string()) }
        }
    };
    record(worker, &callback, state).await;
}

/// Doubling waits from `min` to `max`.
fn backoff(min: Duration, max: Duration, attempt: u32) -> Duration {
    min.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(max)
}

/// A callback that reports another series of the call's attempts than the record's now (a failure's, delivered
/// after the call was replayed), whose state is not the record's to show.
struct AnotherSeries;

/// Whether `callback` reports the call's end the record shows: its current series of attempts, or its
/// cancellation.
fn reports_current(callback: &CallbackMessage, record: &sluice_contracts::CallRecord) -> bool {
    callback.series.as_deref() == Some(CANCELLED_SERIES) || callback.series == record.replay_of.map(series_of_replay)
}

/// Writes the callback's state into the call record (`callback` or `destination`, for its recipient), looking
/// again when the record changes underneath; not when the callback reports an earlier series of attempts.
pub async fn record(worker: &Worker, callback: &CallbackMessage, state: CallbackState) {
    let noted = worker.calls.modify(&callback.call_id, |record| {
        if !reports_current(callback, record) {
            return Err(AnotherSeries);
        }
        match callback.recipient {
            Recipient::Caller => record.callback = Some(state.clone()),
            Recipient::Destination => record.destination = Some(state.clone()),
        }
        Ok(())
    });
    match noted.await {
        Ok(Modified::Written(_) | Modified::Missing) => {}
        Ok(Modified::Refused(AnotherSeries)) => {
            tracing::debug!("an earlier series' callback: the record shows a replay's")
        }
        Ok(Modified::KeepsChanging) => tracing::warn!("the callback's state not recorded: the record keeps changing"),
        Err(err) => tracing::warn!(%err, "could not record the callback's state"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_writes_its_state_only_into_the_series_it_reports() {
        let function = sluice_contracts::FunctionRef::new("ns", "f");
        let callback = |series: Option<&str>| CallbackMessage {
            url: "http://127.0.0.1:9/cb".into(),
            call_id: "c1".into(),
            function: function.clone(),
            headers: http::HeaderMap::new(),
            body: Payload::Inline(Bytes::new()),
            recipient: Recipient::Caller,
            series: series.map(str::to_owned),
        };
        let first = sluice_contracts::CallRecord::queued("c1", &function, chrono::Utc::now());
        let replayed = sluice_contracts::CallRecord { replay_of: Some(12), ..first.clone() };
        assert!(reports_current(&callback(None), &first));
        assert!(!reports_current(&callback(None), &replayed), "the failure's, after the replay");
        assert!(reports_current(&callback(Some("r12")), &replayed));
        assert!(!reports_current(&callback(Some("r11")), &replayed), "an earlier replay's");
        assert!(!reports_current(&callback(Some("r12")), &first));
        assert!(reports_current(&callback(Some(CANCELLED_SERIES)), &replayed));
        assert!(reports_current(&callback(Some(CANCELLED_SERIES)), &first));
    }

    #[test]
    fn outbox_backoff_doubles_to_the_cap() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(10));
        let waits: Vec<u64> = (1..=6).map(|n| backoff(min, max, n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
    }
}
