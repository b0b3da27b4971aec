//! Moves what was stored before namespaces existed into the namespace it always meant (`openfaas-fn`), once.
//!
//! Function specs and invocation counts under a bare name and secrets under a bare secret name are rewritten under
//! `openfaas-fn`; calls still queued on the single invocation stream of before (under either subject layout)
//! move to their shards ([`queued_calls_to_shards`], which runs at every start). Every step is idempotent, so any
//! number of processes may run it at once and a run cut short is finished by the next; a marker in
//! `sluice_namespaces` (not a namespace name, so never listed) says it is done. Dead letters and completion
//! events stay where they are: the read paths accept both layouts until retention expires them.

use std::time::Duration;

use async_nats::jetstream::{
    self, ErrorCode,
    consumer::{AckPolicy, DeliverPolicy, pull},
    context::GetStreamErrorKind,
    kv,
};
use futures::StreamExt;
use sluice_contracts::{
    FunctionRef,
    function_ref::LEGACY_NAMESPACE,
    names::{self, wire},
};

use crate::store::latest_under;

/// Key in `sluice_namespaces` that says the move is done (a dot makes it no namespace name).
const DONE_MARKER: &str = "layout.namespaced";
/// The consumer that drains the calls queued on the stream of before shards; one for every process that runs
/// the move at once (a work queue lets no two consumers share a subject), gone by itself a minute after the
/// last use.
const DRAIN_CONSUMER: &str = "migrate-to-shards";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Brings what is stored to the current layout: [`legacy_layout`], then [`queued_calls_to_shards`]; returns how
/// many keys and queued calls it moved.
pub async fn run(js: &jetstream::Context) -> Result<usize, Error> {
    Ok(legacy_layout(js).await? + queued_calls_to_shards(js).await?)
}

/// Moves what is left of the layout without namespaces (the buckets and streams exist); returns how many keys
/// it moved.
pub async fn legacy_layout(js: &jetstream::Context) -> Result<usize, Error> {
    let namespaces = js.get_key_value(names::NAMESPACES_BUCKET).await?;
    if namespaces.get(DONE_MARKER).await?.is_some() {
        return Ok(0);
    }
    let mut moved = 0;
    let functions = js.get_key_value(names::FUNCTIONS_BUCKET).await?;
    moved += move_keys(&functions, |key| !key.contains('.'), Rewrite::Spec).await?;
    let invocations = js.get_key_value(names::INVOCATIONS_BUCKET).await?;
    moved += move_keys(&invocations, |key| !key.contains('.'), Rewrite::Same).await?;
    // A secret name may hold dots; one that already starts with the default namespace was moved by a run cut
    // short (or is named so on purpose, and stays readable there).
    let legacy_secret = |key: &str| !key.starts_with(&format!("{LEGACY_NAMESPACE}."));
    moved += move_keys(&js.get_key_value(names::SECRETS_BUCKET).await?, legacy_secret, Rewrite::Same).await?;
    namespaces.put(DONE_MARKER, "1".into()).await?;
    if moved > 0 {
        tracing::info!(moved, "data stored without a namespace moved to {LEGACY_NAMESPACE}");
    }
    Ok(moved)
}

enum Rewrite {
    Same,
    /// A spec also names its namespace.
    Spec,
}

/// Writes each key `is_legacy` picks under `openfaas-fn.{key}` (unless there already), then removes it.
async fn move_keys(bucket: &kv::Store, is_legacy: impl Fn(&str) -> bool, rewrite: Rewrite) -> Result<usize, Error> {
    let mut moved = 0;
    for entry in latest_under(bucket, None, true).await? {
        if !is_legacy(&entry.key) {
            continue;
        }
        let value = match rewrite {
            Rewrite::Same => entry.value.clone(),
            Rewrite::Spec => {
                let mut spec: serde_json::Value = serde_json::from_slice(&entry.value)?;
                spec["namespace"] = LEGACY_NAMESPACE.into();
                serde_json::to_vec(&spec)?.into()
            }
        };
        let new_key = format!("{LEGACY_NAMESPACE}.{}", entry.key);
        match bucket.create(&new_key, value).await {
            Ok(_) => {}
            Err(err) if err.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(err) => return Err(err.into()),
        }
        bucket.purge(&entry.key).await?;
        moved += 1;
    }
    Ok(moved)
}

/// Moves every call queued on the single stream of before (`SLUICE_INVOCATIONS`, `sluice.invoke.>`) to its
/// function's shard, acking each only once the new copy is stored, then removes that stream. Calls queued
/// before namespaces (`sluice.invoke.{function}`) go to the default namespace. The old per-function consumers
/// go first (a work queue lets no two consumers share a subject); a call one of them had handed out runs again,
/// and a worker that finds its outcome recorded acks it without running it. Processes running this at once
/// share the drain consumer and its work; the copies' message ids make a repeated move store a call once.
pub async fn queued_calls_to_shards(js: &jetstream::Context) -> Result<usize, Error> {
    let mut stream = match js.get_stream(names::LEGACY_INVOCATIONS_STREAM).await {
        Ok(stream) => stream,
        Err(err) if matches!(err.kind(), GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            return Ok(0);
        }
        Err(err) => return Err(err.into()),
    };
    let mut consumers = stream.consumer_names();
    let mut old = Vec::new();
    while let Some(name) = consumers.next().await {
        let name = name?;
        if name != DRAIN_CONSUMER {
            old.push(name);
        }
    }
    for name in old {
        if let Err(err) = stream.delete_consumer(&name).await {
            // Another process starting at the same time may have removed it first.
            tracing::debug!(consumer = name, %err, "old consumer not removed here");
        }
    }
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(DRAIN_CONSUMER.to_owned()),
            filter_subject: format!("{}.>", names::LEGACY_INVOKE_PREFIX),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await?;
    let mut moved = 0;
    loop {
        let mut batch = consumer.fetch().max_messages(256).expires(Duration::from_secs(1)).messages().await?;
        let mut got = 0;
        while let Some(message) = batch.next().await {
            let message = message?;
            got += 1;
            let Some(key) = message.subject.strip_prefix(&format!("{}.", names::LEGACY_INVOKE_PREFIX)) else {
                continue;
            };
            let function = if key.contains('.') {
                FunctionRef::from_key(key)
            } else {
                Some(FunctionRef::new(LEGACY_NAMESPACE, key))
            };
            let Some(function) = function.filter(FunctionRef::is_valid) else {
                tracing::error!(subject = %message.subject, "queued call under no valid function name left in place");
                continue;
            };
            let mut headers = message.headers.clone().unwrap_or_default();
            // Its own message id: the original's may still be in the duplicate window.
            let call_id = headers.get(names::ce::ID).map(|v| v.as_str().to_owned()).unwrap_or_default();
            headers.insert(wire::NATS_MSG_ID, format!("{call_id}.sharded"));
            headers.insert(names::ce::SUBJECT, function.key());
            js.publish_with_headers(names::invoke_subject(&function), headers, message.payload.clone()).await?.await?;
            message.double_ack().await?;
            moved += 1;
        }
        if got == 0 {
            break;
        }
    }
    // Empty now (a call left in place for want of a valid name keeps it, and says so above).
    if stream.info().await?.state.messages == 0 {
        match js.delete_stream(names::LEGACY_INVOCATIONS_STREAM).await {
            Ok(_) => {}
            Err(err) => tracing::debug!(%err, "old invocation stream not removed here"),
        }
    }
    if moved > 0 {
        tracing::info!(moved, "queued calls moved to their shards");
    }
    Ok(moved)
}
