//! Synchronous calls: requests on `sluice.sync.{function}`, shared by the workers' queue group, answered
//! with the function's response (large ones through the object store).

use std::sync::Arc;

use async_nats::{HeaderMap, Message};
use futures::StreamExt;
use sluice_contracts::{
    FunctionRef, FunctionSpec, InvocationMessage, Payload,
    invocation::put_http_headers,
    names::{self, http_headers as h, wire},
};
use sluice_jetstream::store::FunctionStore;
use sluice_runtime::{Body, Invocation, Runtime};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{Worker, WorkerError, metrics, outcome::Outcome};

/// Answers synchronous calls until `shutdown`.
pub async fn serve(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let subject = format!("{}.*.*", names::SYNC_PREFIX);
    let mut requests = worker
        .topology
        .client
        .queue_subscribe(subject, names::SYNC_QUEUE_GROUP.to_owned())
        .await
        .map_err(|e| WorkerError::Subscribe(format!("synchronous calls: {e}")))?;
    // Subscriptions take effect once the server has them; flush so "ready" means ready.
    worker.topology.client.flush().await.map_err(|e| WorkerError::Subscribe(e.to_string()))?;
    tracing::info!("worker ready: serving synchronous calls");
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => break,
            request = requests.next() => request,
        };
        let Some(request) = request else { break };
        let worker2 = worker.clone();
        worker.tracker.spawn(async move { answer(&worker2, request).await });
    }
    let _ = requests.unsubscribe().await;
    Ok(())
}

async fn spec(worker: &Worker, function: &FunctionRef) -> Option<Arc<FunctionSpec>> {
    let known = worker.specs.read().expect("spec map lock").get(function).cloned();
    match known {
        Some(spec) => Some(spec),
        // Deployed a moment ago and not yet seen by this worker's watch.
        None => FunctionStore::new(worker.topology.functions.clone()).get(function).await.ok().flatten().map(Arc::new),
    }
}

async fn answer(worker: &Worker, request: Message) {
    let Some(reply_to) = request.reply.clone() else { return };
    let headers = request.headers.clone().unwrap_or_default();
    let outcome = match InvocationMessage::from_nats(&headers, request.payload.clone()) {
        Ok(mut call) => {
            let span = tracing::info_span!("sync_call", call_id = %call.call_id, function = %call.function);
            sluice_contracts::trace::continue_from_headers(&span, &call.headers);
            sluice_contracts::trace::pass_on_in_headers(&span, &mut call.headers);
            run(worker, call).instrument(span).await
        }
        Err(err) => Outcome::from_result(Err(sluice_runtime::RuntimeError::Backend(Box::new(err)))),
    };
    let mut reply = HeaderMap::new();
    reply.insert(wire::STATUS, outcome.status.to_string());
    put_http_headers(&mut reply, &outcome.headers);
    let body = if outcome.body.len() > worker.inline_limit {
        let name = format!("{}.sync-response", uuid_like(&headers));
        let mut reader = &outcome.body[..];
        match sluice_jetstream::payloads::put(&worker.topology, name.as_str(), &mut reader).await {
            Ok(_) => {
                reply.insert(wire::PAYLOAD_OBJECT, name);
                bytes::Bytes::new()
            }
            Err(err) => {
                tracing::error!(%err, "could not store a large sync response");
                reply.insert(wire::STATUS, "502");
                bytes::Bytes::from(format!("{{\"error\":\"response could not be stored: {err}\"}}"))
            }
        }
    } else {
        outcome.body
    };
    if let Err(err) = worker.topology.client.publish_with_headers(reply_to, reply, body).await {
        tracing::warn!(%err, "could not send a sync reply");
    }
}

fn uuid_like(headers: &HeaderMap) -> String {
    headers.get(names::ce::ID).map(|v| v.as_str().to_owned()).unwrap_or_else(|| "sync".to_owned())
}

async fn run(worker: &Worker, call: InvocationMessage) -> Outcome {
    let Some(spec) = spec(worker, &call.function).await else {
        return Outcome::from_result(Err(sluice_runtime::RuntimeError::Backend(
            format!("function {} is not deployed", call.function).into(),
        )));
    };
    // Like the OpenFaaS watchdog's max_inflight: a function at its limit answers 429 at once.
    let function_slots = spec.max_inflight().map(|limit| {
        let known = worker.function_slots.read().expect("slot map lock").get(&call.function).cloned();
        // A function deployed a moment ago may not have its slots yet; the registry's replace these.
        let slots = known.unwrap_or_else(|| {
            let mut all = worker.function_slots.write().expect("slot map lock");
            let new = || Arc::new(tokio::sync::Semaphore::new(crate::consume::function_limit(worker, &spec)));
            all.entry(call.function.clone()).or_insert_with(new).clone()
        });
        (limit, slots)
    });
    let _function_slot = match function_slots {
        Some((limit, slots)) => match slots.try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                return Outcome::failure(
                    429,
                    format!("function {} is running its maxInflight of {limit} calls; try again", call.function),
                );
            }
        },
        None => None,
    };
    let _slot = worker.slots.acquire().await.expect("never closed");
    let body = match &call.payload {
        Payload::Inline(bytes) => Body::Bytes(bytes.clone()),
        Payload::Object(name) => match sluice_jetstream::payloads::open(&worker.topology, name).await {
            Ok(reader) => Body::Reader(reader),
            Err(err) => return Outcome::from_result(Err(sluice_runtime::RuntimeError::Backend(Box::new(err)))),
        },
    };
    let mut headers = call.headers.clone();
    if let Ok(id) = http::HeaderValue::from_str(&call.call_id) {
        headers.insert(h::CALL_ID, id);
    }
    // A synchronous call answers at once and has no progress URL; none a caller sent reaches the function.
    headers.remove(h::PROGRESS_URL);
    let invocation = Invocation {
        call_id: call.call_id.clone(),
        method: call.method,
        path: call.path,
        query: call.query,
        headers,
        body,
    };
    let deadline = tokio::time::Instant::now() + spec.timeout().unwrap_or(worker.cfg.default_timeout);
    metrics::inflight(&call.function, 1.0);
    let clock = std::time::Instant::now();
    let outcome = Outcome::from_result(worker.runtimes.invoke(&spec, invocation, deadline).await);
    metrics::inflight(&call.function, -1.0);
    worker.invocations.count(&call.function);
    metrics::ended(&call.function, outcome.succeeded(), clock.elapsed().as_secs_f64());
    outcome
}
