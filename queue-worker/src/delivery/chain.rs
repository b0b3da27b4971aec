//! Going on from a finished call (`async.onSuccess` / `async.onFailure`): its response becomes the next
//! call's input — the body where it already is (a large one by reference to the stored result, never copied),
//! its content type, the parent's call id and chain depth, and the completion's CloudEvents attributes as
//! headers. The next call's id derives from the parent's, so an outcome reported twice starts it once. A step
//! past `--max-chain-depth`, or to a function that is not deployed, is recorded failed and never queued: it is
//! seen, and nothing loops. Fan-out children and joins ([`crate::fanout`]) are started the same way.

use chrono::Utc;
use sluice_contracts::{
    CallRecord, CallStatus, FunctionRef, FunctionSpec, InvocationMessage, Payload,
    chain::{Leg, chained_call_id},
    names::{self, http_headers as h},
};
use sluice_jetstream::{
    queue::Claim,
    retry::{STORE, persist},
};

use crate::{Worker, outcome::Outcome};

/// Starts the call `call`'s outcome leads on to, if its function names one; `body` is where the response is.
/// Returns the next call's id, started or recorded as refused.
pub async fn follow_on(
    worker: &Worker,
    spec: &FunctionSpec,
    call: &InvocationMessage,
    outcome: &Outcome,
    body: &Payload,
    series: Option<&str>,
) -> Result<Option<String>, String> {
    let leg = if outcome.succeeded() { Leg::OnSuccess } else { Leg::OnFailure };
    let Some((_, target)) = spec.destinations().into_iter().find(|(l, _)| *l == leg) else { return Ok(None) };
    let ce_type = if outcome.succeeded() { names::CE_TYPE_COMPLETED } else { names::CE_TYPE_FAILED };
    let mut next =
        next_call(call, &call.call_id, chained_call_id(&call.call_id, leg, &target, series), target, body.clone());
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            next.headers.insert(name, value);
        }
    };
    if let Some(content_type) = outcome.content_type() {
        put("content-type", content_type);
    }
    put(h::FUNCTION_STATUS, &outcome.status.to_string());
    put(names::ce::SPECVERSION, names::ce::VERSION);
    put(names::ce::TYPE, ce_type);
    put(names::ce::SOURCE, names::CE_SOURCE_WORKER);
    put(names::ce::ID, &call.call_id);
    put(names::ce::SUBJECT, &call.function.key());
    launch(worker, &next, leg.field()).await?;
    Ok(Some(next.call_id))
}

/// A call started by the worker as a step after `from` (the call that finished or fanned out), under
/// `parent`: one level deeper in the pipeline, with the same root.
pub fn next_call(
    from: &InvocationMessage,
    parent: &str,
    call_id: String,
    function: FunctionRef,
    payload: Payload,
) -> InvocationMessage {
    let mut headers = http::HeaderMap::new();
    let depth = from.chain_depth().saturating_add(1);
    let root = from.root_call_id().unwrap_or(&from.call_id);
    for (name, value) in [(h::PARENT_CALL_ID, parent), (h::ROOT_CALL_ID, root), (h::CHAIN_DEPTH, &depth.to_string())] {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    InvocationMessage {
        call_id,
        function,
        source: names::CE_SOURCE_WORKER.to_owned(),
        time: Utc::now(),
        method: http::Method::POST,
        path: String::new(),
        query: String::new(),
        headers,
        callback_url: None,
        payload,
    }
}

/// Why `next` cannot start here and now: its depth is over the limit, or its function is not deployed
/// (`what` names the field that asked for it).
pub fn refusal(worker: &Worker, next: &InvocationMessage, what: &str) -> Option<String> {
    let depth = next.chain_depth();
    if depth > worker.cfg.max_chain_depth {
        Some(format!(
            "not started: chain depth {depth} is over the limit of {} (--max-chain-depth); a loop?",
            worker.cfg.max_chain_depth
        ))
    } else if !worker.specs.read().expect("specs lock").contains_key(&next.function) {
        Some(format!("not started: {} ({what}) is not deployed", next.function))
    } else {
        None
    }
}

/// Queues `next` once (its id is derived), or records it failed when it may not start.
pub async fn launch(worker: &Worker, next: &InvocationMessage, what: &str) -> Result<(), String> {
    if let Some(error) = refusal(worker, next, what) {
        tracing::warn!(next = %next.call_id, %error, "call refused");
        let mut record = CallRecord::queued(&next.call_id, &next.function, next.time);
        record.parent_call_id = next.parent_call_id().map(str::to_owned);
        record.root_call_id = next.root_call_id().map(str::to_owned);
        record.status = CallStatus::Failed;
        record.finished_at = Some(next.time);
        record.error = Some(error);
        persist("refused call", STORE, || worker.calls.create(&record)).await?;
        return Ok(());
    }
    persist("next call", STORE, || worker.queue.submit(next, Claim::Derived)).await?;
    tracing::info!(next = %next.call_id, function = %next.function, what, "call queued");
    Ok(())
}
