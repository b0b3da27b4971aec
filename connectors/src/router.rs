//! The router: takes every event off `SLUICE_EVENTS` (one durable consumer shared by all routers, so each event
//! is routed once) and queues one call per function whose triggers match. The call id comes from the event and
//! the function, so a redelivered or replayed event never queues the same call twice. Unmatched events are
//! counted, marked in KV `sluice_unmatched` (so the events API can show them) and stay in the stream for
//! `sluice events replay`, which gateways ask of a router over NATS ([`answer_replays`]).

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{
    AckKind,
    consumer::{AckPolicy, DeliverPolicy, pull},
    stream::LastRawMessageErrorKind,
};
use bytes::Bytes;
use futures::StreamExt;
use sluice_contracts::{
    EventMessage, FunctionRef, InvocationMessage, Payload, names,
    replay::{ReplayReply, ReplayRequest},
};
use sluice_jetstream::{
    Queue, Submitted,
    event_log::EventLog,
    queue::Claim,
    store::{FunctionCache, FunctionStore},
    topology::Topology,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{metrics, triggers};

/// `ce-source` of calls the router queues.
pub const ROUTER_SOURCE: &str = "/sluice/router";

/// Routing failed for now; the event is tried again.
#[derive(Debug, thiserror::Error)]
#[error("routing failed: {0}")]
pub struct RouteError(String);

/// What routing needs: where to publish and which functions exist.
#[derive(Clone)]
pub struct EventRouter {
    topology: Topology,
    functions: Arc<FunctionCache>,
    queue: Queue,
    log: EventLog,
}

impl EventRouter {
    /// A router that follows the function specs until `stop`.
    pub fn start(topology: Topology, stop: CancellationToken) -> Self {
        let functions = FunctionCache::start(FunctionStore::new(topology.functions.clone()), stop);
        Self::new(topology, functions)
    }

    /// A router over a function cache the caller keeps.
    pub fn new(topology: Topology, functions: Arc<FunctionCache>) -> Self {
        let (queue, log) = (Queue::new(topology.clone()), EventLog::new(&topology));
        Self { topology, functions, queue, log }
    }

    /// Queues the calls `event` makes (only to the function `only` when given); returns how many functions
    /// matched.
    pub async fn route(&self, event: &EventMessage, only: Option<&FunctionRef>) -> Result<usize, RouteError> {
        let span = tracing::info_span!("route", event = %event.id, source = %event.source);
        sluice_contracts::trace::continue_from_attributes(&span, &event.extensions);
        self.route_in(event, only).instrument(span).await
    }

    async fn route_in(&self, event: &EventMessage, only: Option<&FunctionRef>) -> Result<usize, RouteError> {
        let targets: Vec<_> = self
            .functions
            .all()
            .into_iter()
            .filter(|spec| only.is_none_or(|f| *f == spec.function_ref()))
            .filter_map(|spec| triggers::matching(&spec, event).map(|m| (spec, m)))
            .collect();
        for (spec, matched) in &targets {
            self.queue(event, &spec.function_ref(), matched.callback_url.clone()).await?;
        }
        if targets.is_empty() {
            metrics::unmatched(&event.source);
        }
        Ok(targets.len())
    }

    async fn queue(
        &self,
        event: &EventMessage,
        function: &FunctionRef,
        callback_url: Option<String>,
    ) -> Result<(), RouteError> {
        let mut headers = event.http_headers();
        sluice_contracts::trace::event_headers(&event.extensions, &mut headers);
        sluice_contracts::trace::pass_on_in_headers(&tracing::Span::current(), &mut headers);
        let call = InvocationMessage {
            call_id: event.call_id_for(function),
            function: function.clone(),
            source: ROUTER_SOURCE.to_owned(),
            time: chrono::Utc::now(),
            method: http::Method::POST,
            path: String::new(),
            query: String::new(),
            headers,
            callback_url,
            payload: Payload::Inline(event.data.clone()),
        };
        // The id derives from the event: past JetStream's duplicate window the record is what says this
        // event already queued this call.
        if self.queue.submit(&call, Claim::Derived).await.map_err(|e| RouteError(e.to_string()))? == Submitted::Queued {
            metrics::routed(function);
            tracing::debug!(call_id = %call.call_id, %function, event = %event.id, "event routed");
        }
        Ok(())
    }

    /// Re-routes the events stored since `since` (to `only` when given): for events that matched nothing
    /// when they arrived. Returns (events read, calls queued or already queued).
    pub async fn replay(
        &self,
        since: chrono::DateTime<chrono::Utc>,
        only: Option<&FunctionRef>,
    ) -> Result<(u64, u64), RouteError> {
        let err = |e: &dyn std::fmt::Display| RouteError(e.to_string());
        let stream = self.topology.jetstream.get_stream(names::EVENTS_STREAM).await.map_err(|e| err(&e))?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartTime {
                    start_time: time::OffsetDateTime::from_unix_timestamp(since.timestamp()).map_err(|e| err(&e))?,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| err(&e))?;
        let mut pending = consumer.cached_info().num_pending;
        let mut messages = consumer.messages().await.map_err(|e| err(&e))?;
        let (mut events, mut calls) = (0u64, 0u64);
        while pending > 0 {
            let Some(message) = tokio::time::timeout(Duration::from_secs(5), messages.next()).await.ok().flatten()
            else {
                break;
            };
            let message = message.map_err(|e| err(&e))?;
            let info = message.info().map_err(|e| err(&e))?;
            pending = info.pending;
            let sequence = info.stream_sequence;
            if let Some(matched) =
                self.route_again(sequence, &message.subject, &message.headers, &message.payload, only).await?
            {
                events += 1;
                calls += matched as u64;
            }
        }
        Ok((events, calls))
    }

    /// Re-routes the one event stored at `sequence` (to `only` when given). Returns (1, calls queued or already
    /// queued), or (0, 0) when nothing is stored there (any more) or it is no event to route.
    pub async fn replay_one(&self, sequence: u64, only: Option<&FunctionRef>) -> Result<(u64, u64), RouteError> {
        let err = |e: &dyn std::fmt::Display| RouteError(e.to_string());
        let stream = self.topology.jetstream.get_stream_no_info(names::EVENTS_STREAM).await.map_err(|e| err(&e))?;
        let stored = match stream.get_raw_message(sequence).await {
            Ok(stored) => stored,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok((0, 0)),
            Err(e) => return Err(err(&e)),
        };
        let headers = Some(stored.headers);
        match self.route_again(sequence, &stored.subject, &headers, &stored.payload, only).await? {
            Some(calls) => Ok((1, calls as u64)),
            None => Ok((0, 0)),
        }
    }

    /// Routes a stored event again; an event that was unmatched and now reaches a function loses its mark.
    /// `None` when the message is no event the router would route.
    async fn route_again(
        &self,
        sequence: u64,
        subject: &str,
        headers: &Option<async_nats::HeaderMap>,
        payload: &Bytes,
        only: Option<&FunctionRef>,
    ) -> Result<Option<usize>, RouteError> {
        let headers = headers.clone().unwrap_or_default();
        let Ok(event) = EventMessage::from_nats(&headers, payload.clone()) else { return Ok(None) };
        if triggers::forged(subject, &event) {
            return Ok(None);
        }
        let calls = self.route(&event, only).await?;
        if calls > 0
            && self.log.is_unmatched(sequence).await
            && let Err(err) = self.log.mark_matched(sequence).await
        {
            tracing::warn!(%err, sequence, "event replayed, but its unmatched mark stays");
        }
        Ok(Some(calls))
    }

    /// Marks the event at `sequence` as routed to no function, saying why (best effort: the mark only informs).
    async fn mark_unmatched(&self, sequence: u64, why: &str) {
        if let Err(err) = self.log.mark_unmatched(sequence, why).await {
            tracing::warn!(%err, sequence, "unmatched event not marked");
        }
    }
}

/// Routes events until `shutdown`.
pub async fn run(routes: EventRouter, shutdown: CancellationToken) -> Result<(), RouteError> {
    let stream = loop {
        match routes.topology.jetstream.get_stream_no_info(names::EVENTS_STREAM).await {
            Ok(s) => break s,
            Err(err) => {
                tracing::warn!(%err, "cannot open the events stream; retrying");
                tokio::select! { _ = shutdown.cancelled() => return Ok(()), _ = tokio::time::sleep(Duration::from_secs(1)) => {} }
            }
        }
    };
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(names::ROUTER_CONSUMER.to_owned()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| RouteError(e.to_string()))?;
    let mut messages = consumer.messages().await.map_err(|e| RouteError(e.to_string()))?;
    tracing::info!("router started");
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = messages.next() => m,
        };
        let Some(message) = message else { return Ok(()) };
        let message = match message {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(%err, "event delivery interrupted");
                continue;
            }
        };
        let headers = message.headers.clone().unwrap_or_default();
        let event = match EventMessage::from_nats(&headers, message.payload.clone()) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(%err, subject = %message.subject, "not a CloudEvent; left in the stream unrouted");
                let _ = message.ack().await;
                continue;
            }
        };
        metrics::received(&event.source);
        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        if triggers::forged(&message.subject, &event) {
            tracing::warn!(event = %event.id, source = %event.source, "event from the ingress impersonates a connector; not routed");
            routes.mark_unmatched(sequence, "refused: an ingress event that claims a connector's source").await;
            let _ = message.ack().await;
            continue;
        }
        match routes.route(&event, None).await {
            Ok(matched) => {
                if matched == 0 {
                    routes.mark_unmatched(sequence, "no function's triggers matched it").await;
                }
                let _ = message.ack().await;
            }
            Err(err) => {
                tracing::warn!(%err, event = %event.id, "routing failed; the event comes back");
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
}

/// Answers replay requests from gateways on `sluice.router.replay` until `shutdown`, one at a time (a replay
/// reads the events stream; running them in turn bounds what a burst of requests costs).
pub async fn answer_replays(routes: EventRouter, shutdown: CancellationToken) -> Result<(), RouteError> {
    let client = &routes.topology.client;
    let mut requests = client
        .queue_subscribe(names::REPLAY_SUBJECT, names::ROUTER_QUEUE_GROUP.to_owned())
        .await
        .map_err(|e| RouteError(e.to_string()))?;
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = requests.next() => r,
        };
        let Some(request) = request else { return Ok(()) };
        let Some(reply) = request.reply else { continue };
        let answer = match serde_json::from_slice::<ReplayRequest>(&request.payload) {
            Err(err) => ReplayReply::Failed { error: format!("bad replay request: {err}") },
            Ok(ask) => match ask.function.as_deref().map(|key| FunctionRef::from_key(key).ok_or(key)) {
                Some(Err(key)) => ReplayReply::Failed { error: format!("{key:?} is not a function key") },
                only => match match ask.sequence {
                    Some(sequence) => routes.replay_one(sequence, only.and_then(Result::ok).as_ref()).await,
                    None => routes.replay(ask.since, only.and_then(Result::ok).as_ref()).await,
                } {
                    Ok((events, calls)) => ReplayReply::Replayed { events, calls },
                    Err(err) => ReplayReply::Failed { error: err.to_string() },
                },
            },
        };
        let answer = serde_json::to_vec(&answer).expect("replies serialize");
        if let Err(err) = client.publish(reply, answer.into()).await {
            tracing::warn!(%err, "replay answer not sent");
        }
    }
}

/// Publishes `event` on `subject` in `SLUICE_EVENTS` and waits for JetStream to store it.
pub async fn publish(topology: &Topology, subject: String, event: &EventMessage) -> Result<(), RouteError> {
    let (headers, data): (_, Bytes) = event.to_nats();
    let ack =
        topology.jetstream.publish_with_headers(subject, headers, data).await.map_err(|e| RouteError(e.to_string()))?;
    ack.await.map_err(|e| RouteError(e.to_string()))?;
    Ok(())
}
