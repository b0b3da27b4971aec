//! Moves what was stored before namespaces existed into the namespace it always meant (`openfaas-fn`), once.
//!
//! Function specs and invocation counts under a bare name, secrets under a bare secret name, and calls still
//! queued on `sluice.invoke.{function}` are rewritten under `openfaas-fn`. Every step is idempotent, so any
//! number of processes may run it at once and a run cut short is finished by the next; a marker in
//! `sluice_namespaces` (not a namespace name, so never listed) says it is done. Dead letters and completion
//! events stay where they are: the read paths accept both layouts until retention expires them.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, pull},
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
/// The consumer that drains calls queued under the old subjects; one for every process that runs the move at
/// once (a work queue lets no two consumers share a subject), gone by itself a minute after the last use.
const DRAIN_CONSUMER: &str = "migrate-unnamespaced";

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Moves what is left of the layout without namespaces (the buckets and streams exist); returns how many keys and
/// queued calls it moved.
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
    moved += move_queued_calls(js).await?;
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

/// Republishes every call queued on `sluice.invoke.{function}` to `sluice.invoke.openfaas-fn.{function}`, acking
/// each only once the new copy is stored. The old per-function consumers go first: a work queue lets no two
/// consumers share a subject. Processes running this at once share the drain consumer and its work.
async fn move_queued_calls(js: &jetstream::Context) -> Result<usize, Error> {
    let stream = js.get_stream(names::INVOCATIONS_STREAM).await?;
    let mut consumers = stream.consumer_names();
    let mut legacy = Vec::new();
    while let Some(name) = consumers.next().await {
        let name = name?;
        if name.starts_with("invoke-") && !name.contains('_') {
            legacy.push(name);
        }
    }
    for name in legacy {
        if let Err(err) = stream.delete_consumer(&name).await {
            // Another process starting at the same time may have removed it first.
            tracing::debug!(consumer = name, %err, "old consumer not removed here");
        }
    }
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(DRAIN_CONSUMER.to_owned()),
            filter_subject: format!("{}.*", names::INVOKE_PREFIX),
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
            let Some(name) = message.subject.strip_prefix(&format!("{}.", names::INVOKE_PREFIX)) else { continue };
            let Some(function) = FunctionRef::from_key(name) else {
                tracing::error!(subject = %message.subject, "queued call under no valid function name left in place");
                continue;
            };
            let mut headers = message.headers.clone().unwrap_or_default();
            // Its own message id: the original's may still be in the duplicate window.
            let call_id = headers.get(names::ce::ID).map(|v| v.as_str().to_owned()).unwrap_or_default();
            headers.insert(wire::NATS_MSG_ID, format!("{call_id}.moved"));
            headers.insert(names::ce::SUBJECT, function.key());
            let subject = names::invoke_subject(&function);
            js.publish_with_headers(subject, headers, message.payload.clone()).await?.await?;
            message.ack().await?;
            moved += 1;
        }
        if got == 0 {
            break;
        }
    }
    Ok(moved)
}
