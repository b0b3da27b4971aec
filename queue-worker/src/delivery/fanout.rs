//! Fan-out and fan-in. A call that succeeds with a fan-out document (POSTed to its `X-Sluice-Fanout-Url`, or
//! its response as `application/vnd.sluice.fanout+json`) starts a group: the group record first, then each
//! child, all with ids derived from the parent's, so a second report of the parent's outcome starts nothing
//! twice. Each child, as it ends for good (or is cancelled), settles its place in the group by compare-and-set;
//! the write that settles the last place starts the join, whose id is derived from the group's — so the join
//! is queued once however many workers end children at the same moment, and again only as a no-op.

use std::time::Duration;

use bytes::Bytes;
use sluice_contracts::{
    CallStatus, FunctionRef, InvocationMessage, Payload,
    fanout::{ChildOutcome, FanOut, Group, child_call_id},
};
use sluice_jetstream::{
    retry::{STORE, persist},
    store::GroupStore,
};

use crate::{SpecMap, Worker, chain};

/// Children queued at once.
const LAUNCH_BATCH: usize = 16;

/// Compare-and-set rounds before a settle gives up for now (the call is then redelivered and settles later).
const SETTLE_TRIES: usize = 64;

/// Admits `fan_out` for `call`: every function it names is deployed, the children would not go past the chain
/// depth limit, and the pipeline's count of fanned-out calls stays within `--max-pipeline-calls` (counted
/// here). The error fails the call that fanned out.
pub async fn admit(worker: &Worker, call: &InvocationMessage, fan_out: &FanOut) -> Result<(), String> {
    check(worker, call, fan_out)?;
    let root = call.root_call_id().unwrap_or(&call.call_id);
    let groups = GroupStore::new(worker.topology.groups.clone());
    let (calls, max) = (fan_out.calls.len() as u64, worker.cfg.max_pipeline_calls);
    match persist("pipeline count", STORE, || groups.reserve(root, calls, max)).await? {
        Ok(_) => Ok(()),
        Err(count) => Err(format!(
            "fan-out refused: the pipeline from {root} has fanned out {count} calls, and {calls} more would pass the \
             limit of {max} (--max-pipeline-calls)"
        )),
    }
}

/// The first function `fan_out` (from a call in `namespace`) names that is not deployed, with its place in the
/// document (`calls[2]`, `join`).
pub fn undeployed(specs: &SpecMap, fan_out: &FanOut, namespace: &str) -> Option<(String, FunctionRef)> {
    let specs = specs.read().expect("specs lock");
    let (index, function) =
        fan_out.functions(namespace).into_iter().enumerate().find(|(_, function)| !specs.contains_key(function))?;
    let place = if index < fan_out.calls.len() { format!("calls[{index}]") } else { "join".into() };
    Some((place, function))
}

fn check(worker: &Worker, call: &InvocationMessage, fan_out: &FanOut) -> Result<(), String> {
    if let Some((place, function)) = undeployed(&worker.specs, fan_out, &call.function.namespace) {
        return Err(format!("fan-out {place}: function {function} is not deployed"));
    }
    let depth = call.chain_depth().saturating_add(1);
    if depth > worker.cfg.max_chain_depth {
        return Err(format!(
            "fan-out refused: its calls would be at depth {depth}, over the limit of {} (--max-chain-depth)",
            worker.cfg.max_chain_depth
        ));
    }
    Ok(())
}

/// Starts `call`'s group of `fan_out`'s children; returns the ids the call's record lists as its children (the
/// children, then the join).
pub async fn start(worker: &Worker, call: &InvocationMessage, fan_out: &FanOut) -> Result<Vec<String>, String> {
    let root = call.root_call_id().unwrap_or(&call.call_id);
    let group = Group::new(&call.call_id, &call.function, root, fan_out);
    let groups = GroupStore::new(worker.topology.groups.clone());
    // The group first: a child that ends at once must find its place to settle.
    if !persist("fan-out group", STORE, || groups.create(&group)).await? {
        tracing::info!(group = %group.group_id, "fan-out group started before; its children are queued again only where missing");
    }
    let namespace = &call.function.namespace;
    let children = fan_out.calls.iter().enumerate().map(|(index, child)| {
        let function = FunctionRef::from_qualified(&child.function, namespace);
        let (body, content_type) = child.body();
        let mut next =
            chain::next_call(call, &call.call_id, child_call_id(&call.call_id, index), function, Payload::Inline(body));
        if let Ok(content_type) = http::HeaderValue::from_str(&content_type) {
            next.headers.insert(http::header::CONTENT_TYPE, content_type);
        }
        next.headers.insert(sluice_contracts::names::http_headers::GROUP_ID, header(&call.call_id));
        next.headers.insert(sluice_contracts::names::http_headers::GROUP_INDEX, index.into());
        next
    });
    let children: Vec<InvocationMessage> = children.collect();
    // Children queue in parallel, a bounded number at a time.
    for batch in children.chunks(LAUNCH_BATCH) {
        let mut launches = Vec::with_capacity(batch.len());
        for next in batch {
            launches.push(chain::launch(worker, next, "fan-out"));
        }
        for launched in futures::future::join_all(launches).await {
            launched?;
        }
    }
    tracing::info!(group = %group.group_id, children = group.total, "fan-out started");
    let mut ids: Vec<String> = group.calls.iter().map(|c| c.call_id.clone()).collect();
    ids.extend(group.join.as_ref().map(|join| join.call_id.clone()));
    Ok(ids)
}

/// Settles `call`'s place in its group, if it is a fanned-out child, with how it ended; starts the join
/// when it was the last.
pub async fn settle(worker: &Worker, call: &InvocationMessage, outcome: ChildOutcome) -> Result<(), String> {
    let Some((group_id, index)) = call.group() else { return Ok(()) };
    let groups = GroupStore::new(worker.topology.groups.clone());
    for _ in 0..SETTLE_TRIES {
        let Some((mut group, revision)) = persist("fan-out group", STORE, || groups.entry(group_id)).await? else {
            tracing::warn!(group_id, "call names a fan-out group that does not exist (expired?); nothing to settle");
            return Ok(());
        };
        if group.calls.get(index).is_none_or(|place| place.call_id != call.call_id) {
            tracing::warn!(group_id, index, "call is not in the fan-out group it names; nothing to settle");
            return Ok(());
        }
        if !group.settle(index, &outcome) {
            // Settled before (a redelivery): the join, if this completed the group, was started then, but
            // starting it again is a no-op and covers a crash between the two.
            return if group.is_complete() { start_join(worker, call, &group).await } else { Ok(()) };
        }
        if persist("fan-out group", STORE, || groups.update(&group, revision)).await?.is_some() {
            tracing::info!(group_id, index, ended = group.ended(), total = group.total, "fan-out child settled");
            return if group.is_complete() { start_join(worker, call, &group).await } else { Ok(()) };
        }
        // Another child settled first; look again after a moment's jitter.
        tokio::time::sleep(Duration::from_millis(rand::random_range(1..10))).await;
    }
    Err(format!("fan-out group {group_id} kept changing; settled later"))
}

/// Settles a cancelled child's place: a cancelled child ends its group's wait like any other end.
pub async fn settle_cancelled(worker: &Worker, call: &InvocationMessage) -> Result<(), String> {
    let outcome = ChildOutcome {
        status: CallStatus::Cancelled,
        function_status: None,
        error: Some("cancelled on request".into()),
        content_type: None,
        body: Bytes::new(),
    };
    settle(worker, call, outcome).await
}

/// Queues the join of a complete group, with the group as its JSON input.
async fn start_join(worker: &Worker, child: &InvocationMessage, group: &Group) -> Result<(), String> {
    let Some(join) = &group.join else { return Ok(()) };
    let function = FunctionRef::from_qualified(&join.function, "");
    let body = Bytes::from(serde_json::to_vec(group).expect("a group always serialises"));
    // The join is the children's sibling: same parent, same depth.
    let mut next = chain::next_call(child, &group.group_id, join.call_id.clone(), function, Payload::Inline(body));
    next.headers.insert(sluice_contracts::names::http_headers::CHAIN_DEPTH, child.chain_depth().into());
    next.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    chain::launch(worker, &next, "fan-out join").await
}

fn header(value: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(value).expect("call ids are header-safe")
}
