//! Every name that crosses a process boundary: streams, subjects, buckets, consumers, headers.
//!
//! Call sites use these instead of formatting strings themselves, so a rename happens in one place.
//! A function's subjects and keys put its namespace first (`sluice.results.{namespace}.{function}`), so one
//! prefix selects a tenant (queued calls put their shard before it: `sluice.queue.*.{namespace}.>`); see
//! `docs/namespaces.md`.

use std::fmt::Write as _;

pub use crate::function_ref::FunctionRef;

/// How many work-queue streams hold the queued calls, each function's on one of them by a hash of its name.
/// On a work queue every ack asks each consumer of the stream whether it still needs the message, and each
/// function has a consumer: spread over shards, an ack costs the server its shard's functions, not all of them.
/// Part of the stored layout: changing it moves queued calls.
pub const INVOCATION_SHARDS: u32 = 16;
/// The single work-queue stream of queued calls before they were sharded (`sluice.invoke.>`); its calls are
/// moved to the shards when a process starts (`jetstream/src/migrate.rs`).
pub const LEGACY_INVOCATIONS_STREAM: &str = "SLUICE_INVOCATIONS";
/// Subject prefix of the legacy stream's calls: `sluice.invoke.{namespace}.{function}` (or, older still,
/// `sluice.invoke.{function}`).
pub const LEGACY_INVOKE_PREFIX: &str = "sluice.invoke";
/// Replayable stream of CloudEvents published by connectors.
pub const EVENTS_STREAM: &str = "SLUICE_EVENTS";
/// Completion events, for chaining and audit.
pub const RESULTS_STREAM: &str = "SLUICE_RESULTS";
/// Calls that exhausted their retries.
pub const DEAD_STREAM: &str = "SLUICE_DEAD";
/// Work-queue stream of callbacks waiting for (re)delivery: the durable callback outbox.
pub const CALLBACKS_STREAM: &str = "SLUICE_CALLBACKS";
/// The namespace a bare function name means unless the gateway is told otherwise (OpenFaaS's default).
pub const DEFAULT_NAMESPACE: &str = crate::function_ref::LEGACY_NAMESPACE;
/// KV bucket of namespaces other than the default one, keyed by name; the value is a [`crate::Namespace`].
pub const NAMESPACES_BUCKET: &str = "sluice_namespaces";

/// KV bucket of function specs, keyed `{namespace}.{function}`.
pub const FUNCTIONS_BUCKET: &str = "sluice_functions";
/// KV bucket of call records, keyed by call id.
pub const CALLS_BUCKET: &str = "sluice_calls";
/// KV bucket of the workers that are up, keyed `{worker id}-{instance}`; each renews its entry, which lapses
/// when it stops.
pub const WORKERS_BUCKET: &str = "sluice_workers";
/// KV bucket of fan-out groups, keyed by the id of the call that fanned out.
pub const GROUPS_BUCKET: &str = "sluice_groups";
/// KV bucket of the events the router routed to no function, keyed by their sequence in `SLUICE_EVENTS`; the
/// value says why. Kept as long as the events are.
pub const UNMATCHED_BUCKET: &str = "sluice_unmatched";
/// Object store for bodies larger than the NATS max payload.
pub const PAYLOADS_BUCKET: &str = "sluice_payloads";

/// Subject prefix of queued calls: `sluice.queue.{shard}.{namespace}.{function}`.
pub const QUEUE_PREFIX: &str = "sluice.queue";
/// Subject prefix of synchronous calls (core NATS request/reply): `sluice.sync.{namespace}.{function}`.
pub const SYNC_PREFIX: &str = "sluice.sync";
/// Subject prefix of completion events: `sluice.results.{namespace}.{function}`.
pub const RESULTS_PREFIX: &str = "sluice.results";
/// Subject prefix of progress events (stored in `SLUICE_RESULTS`): `sluice.progress.{namespace}.{function}`.
pub const PROGRESS_PREFIX: &str = "sluice.progress";
/// Subject prefix of dead letters: `sluice.dead.{namespace}.{function}`.
pub const DEAD_PREFIX: &str = "sluice.dead";
/// Subject prefix of connector events: `sluice.events.{source}.…`.
pub const EVENTS_PREFIX: &str = "sluice.events";
/// Subject prefix of callbacks in the outbox: `sluice.callbacks.{namespace}.{function}`.
pub const CALLBACKS_PREFIX: &str = "sluice.callbacks";
/// Subject prefix of cancellation notices (core NATS, to every worker): `sluice.cancel.{call id}`.
pub const CANCEL_PREFIX: &str = "sluice.cancel";
/// KV bucket of replica counts, keyed `{namespace}.{function}.{worker}`.
pub const REPLICAS_BUCKET: &str = "sluice_replicas";
/// KV bucket of each function's finished invocations (sync and async), keyed `{namespace}.{function}`; the value is
/// the count in decimal.
pub const INVOCATIONS_BUCKET: &str = "sluice_invocations";
/// KV bucket of secrets for container functions, keyed `{namespace}.{secret}`.
pub const SECRETS_BUCKET: &str = "sluice_secrets";
/// Core NATS subjects (not stored) on which every docker-running worker takes manual scale requests.
pub const SCALE_PREFIX: &str = "sluice.scale";
/// Core NATS subjects on which workers stream a function's container logs to a gateway.
pub const LOGS_PREFIX: &str = "sluice.logs";

pub fn scale_subject(function: &FunctionRef) -> String {
    function_subject(SCALE_PREFIX, function)
}
pub fn logs_subject(function: &FunctionRef) -> String {
    function_subject(LOGS_PREFIX, function)
}
pub fn replicas_key(function: &FunctionRef, worker: &str) -> String {
    format!("{}.{worker}", function.key())
}
/// The KV key of a secret in a namespace; a secret name may hold `.`, the namespace never does.
pub fn secret_key(namespace: &str, secret: &str) -> String {
    format!("{namespace}.{secret}")
}

/// Queue group in which workers share synchronous calls.
pub const SYNC_QUEUE_GROUP: &str = "sluice-workers";

/// The shard holding `function`'s queued calls: FNV-1a of its `{namespace}.{function}` key, so every process
/// and version agrees without asking.
pub fn invocation_shard(function: &FunctionRef) -> u32 {
    shard_of_key(&function.key())
}

fn shard_of_key(key: &str) -> u32 {
    let hash = key.bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    hash % INVOCATION_SHARDS
}

/// Work-queue stream of one shard's queued calls: `SLUICE_QUEUE_00` …
pub fn invocations_stream_of(shard: u32) -> String {
    format!("SLUICE_QUEUE_{shard:02}")
}

/// Work-queue stream holding `function`'s queued calls, one message per call.
pub fn invocations_stream(function: &FunctionRef) -> String {
    invocations_stream_of(invocation_shard(function))
}

/// Every shard's stream.
pub fn invocation_streams() -> impl Iterator<Item = String> {
    (0..INVOCATION_SHARDS).map(invocations_stream_of)
}

/// Subjects one shard's stream captures: `sluice.queue.{shard}.>`.
pub fn queue_subjects_of(shard: u32) -> String {
    format!("{QUEUE_PREFIX}.{shard}.>")
}

/// Subject of `function`'s queued calls.
pub fn invoke_subject(function: &FunctionRef) -> String {
    let key = function.key();
    let shard = shard_of_key(&key);
    let mut subject = String::with_capacity(QUEUE_PREFIX.len() + 4 + key.len());
    subject.push_str(QUEUE_PREFIX);
    subject.push('.');
    // Writing into a String cannot fail.
    let _ = write!(subject, "{shard}.{key}");
    subject
}

/// `{prefix}.{namespace}.{function}`, allocated once at its size: these are made on every call, and `format!`
/// grows its string piece by piece.
fn function_subject(prefix: &str, function: &FunctionRef) -> String {
    [prefix, ".", &function.namespace, ".", &function.name].concat()
}
pub fn sync_subject(function: &FunctionRef) -> String {
    function_subject(SYNC_PREFIX, function)
}
pub fn progress_subject(function: &FunctionRef) -> String {
    function_subject(PROGRESS_PREFIX, function)
}
pub fn results_subject(function: &FunctionRef) -> String {
    function_subject(RESULTS_PREFIX, function)
}
pub fn dead_subject(function: &FunctionRef) -> String {
    function_subject(DEAD_PREFIX, function)
}
pub fn callbacks_subject(function: &FunctionRef) -> String {
    function_subject(CALLBACKS_PREFIX, function)
}
pub fn cancel_subject(call_id: &str) -> String {
    format!("{CANCEL_PREFIX}.{call_id}")
}
/// Durable pull consumer, shared by every worker, that delivers the callback outbox.
pub const CALLBACKS_CONSUMER: &str = "callbacks";
/// Durable pull consumer on `SLUICE_EVENTS` shared by every event router, so each event is routed once.
pub const ROUTER_CONSUMER: &str = "router";
/// Request/reply subject on which event routers answer replay requests (one of a queue group answers).
pub const REPLAY_SUBJECT: &str = "sluice.router.replay";
/// Queue group of the event routers for [`REPLAY_SUBJECT`].
pub const ROUTER_QUEUE_GROUP: &str = "sluice-routers";
/// KV bucket of S3 objects the polling connector has announced: key a hash of (bucket, key), value the ETag.
pub const S3_SEEN_BUCKET: &str = "sluice_s3_seen";
/// Durable pull consumer shared by every worker for one function's queue: `invoke-{namespace}_{function}`
/// (consumer names cannot hold `.`, and `_` is in no DNS label).
pub fn invoke_consumer(function: &FunctionRef) -> String {
    format!("{INVOKE_CONSUMER_PREFIX}{}_{}", function.namespace, function.name)
}

/// How every function's queue consumer is named: `invoke-{namespace}_{name}`.
pub const INVOKE_CONSUMER_PREFIX: &str = "invoke-";

/// CloudEvents type of a queued call.
pub const CE_TYPE_REQUESTED: &str = "sluice.invocation.requested";
/// CloudEvents type of a call that ended with a function response.
pub const CE_TYPE_COMPLETED: &str = "sluice.invocation.completed";
/// CloudEvents type of a call that ended without one, or with a failure status after its last attempt.
pub const CE_TYPE_FAILED: &str = "sluice.invocation.failed";
/// CloudEvents type of a call cancelled on request.
pub const CE_TYPE_CANCELLED: &str = "sluice.invocation.cancelled";
/// CloudEvents type of a running call's progress report.
pub const CE_TYPE_PROGRESS: &str = "sluice.invocation.progress";
/// CloudEvents source of calls accepted by the gateway.
pub const CE_SOURCE_GATEWAY: &str = "/sluice/gateway";
/// CloudEvents source of completion events published by workers.
pub const CE_SOURCE_WORKER: &str = "/sluice/queue-worker";

/// Headers of the CloudEvents binary mode (NATS and HTTP bindings use the same `ce-` prefix).
pub mod ce {
    pub const SPECVERSION: &str = "ce-specversion";
    pub const ID: &str = "ce-id";
    pub const TYPE: &str = "ce-type";
    pub const SOURCE: &str = "ce-source";
    pub const SUBJECT: &str = "ce-subject";
    pub const TIME: &str = "ce-time";
    pub const VERSION: &str = "1.0";
}

/// Headers on invocation and sync-request messages that carry the original HTTP request.
pub mod wire {
    /// JetStream's de-duplication id; set to the call id.
    pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
    pub const CONTENT_TYPE: &str = "Content-Type";
    pub const METHOD: &str = "Sluice-Method";
    pub const PATH: &str = "Sluice-Path";
    pub const QUERY: &str = "Sluice-Query";
    pub const CALLBACK_URL: &str = "Sluice-Callback-Url";
    /// Object name in `sluice_payloads` when the body did not fit in the message (claim check).
    pub const PAYLOAD_OBJECT: &str = "Sluice-Payload-Object";
    /// Prefix of each forwarded request or response header: `Sluice-Header-{name}`.
    pub const HEADER_PREFIX: &str = "Sluice-Header-";
    /// Function status code, on a sync reply.
    pub const STATUS: &str = "Sluice-Status";
    /// Why a sync call produced no function response.
    pub const ERROR: &str = "Sluice-Error";
    /// On a dead letter: the last function status (0 when there was no response).
    pub const DEAD_STATUS: &str = "Sluice-Dead-Status";
    /// On a dead letter: why the call failed.
    pub const DEAD_ERROR: &str = "Sluice-Dead-Error";
    /// On a dead letter: attempts made.
    pub const DEAD_ATTEMPTS: &str = "Sluice-Dead-Attempts";
    /// On a queued call: the revision its `queued` record was created at, written before the call was published.
    /// A worker taking the call on its first delivery starts from that revision instead of reading the record.
    pub const RECORD_REVISION: &str = "Sluice-Record-Revision";
    /// On a replayed call: the dead letter's sequence in `SLUICE_DEAD`.
    pub const REPLAY_OF: &str = "Sluice-Replay-Of";
    /// On an outbox callback: where it goes.
    pub const CALLBACK_TARGET: &str = "Sluice-Callback-Target";
    /// On outbox messages for an `async.onSuccess`/`onFailure` URL: `destination` (absent for a caller's callback).
    pub const CALLBACK_RECIPIENT: &str = "Sluice-Callback-Recipient";
    /// On log stream markers from a worker: `begin` or `end`.
    pub const LOGS_MARKER: &str = "Sluice-Logs";
}

/// HTTP headers of the public API and the callback contract.
pub mod http_headers {
    pub const CALL_ID: &str = "X-Call-Id";
    pub const CALLBACK_URL: &str = "X-Callback-Url";
    pub const FUNCTION_NAME: &str = "X-Function-Name";
    pub const FUNCTION_NAMESPACE: &str = "X-Function-Namespace";
    pub const FUNCTION_STATUS: &str = "X-Function-Status";
    pub const DURATION_SECONDS: &str = "X-Duration-Seconds";
    pub const START_TIME: &str = "X-Start-Time";
    pub const ATTEMPT: &str = "X-Sluice-Attempt";
    pub const MAX_ATTEMPTS: &str = "X-Sluice-Max-Attempts";
    pub const SIGNATURE: &str = "X-Sluice-Signature";
    /// Where a running call reports its progress: a URL for that one call and attempt.
    pub const PROGRESS_URL: &str = "X-Sluice-Progress-Url";
    /// On a chained call (`async.onSuccess`/`onFailure`): the call whose response is its input.
    pub const PARENT_CALL_ID: &str = "X-Sluice-Parent-Call-Id";
    /// On a chained call: how many calls led to it (1 for the first step).
    pub const CHAIN_DEPTH: &str = "X-Sluice-Chain-Depth";
    /// On a chained, fanned-out or join call: the first call of its pipeline.
    pub const ROOT_CALL_ID: &str = "X-Sluice-Root-Call-Id";
    /// On a fanned-out call: its group (the id of the call that fanned out).
    pub const GROUP_ID: &str = "X-Sluice-Group-Id";
    /// On a fanned-out call: its place in the group's list, from 0.
    pub const GROUP_INDEX: &str = "X-Sluice-Group-Index";
    /// Where a running call declares its fan-out: a URL for that one call and attempt.
    pub const FANOUT_URL: &str = "X-Sluice-Fanout-Url";
    /// The headers only Sluice sets: whatever a caller sends under these names is dropped at the gateway.
    pub const LINEAGE: [&str; 7] =
        [PARENT_CALL_ID, CHAIN_DEPTH, ROOT_CALL_ID, GROUP_ID, GROUP_INDEX, PROGRESS_URL, FANOUT_URL];
}

/// Whether `name` can be a KV key or one subject token: 1 to `max` letters, digits, `-`, `_`, `=` and `.`,
/// neither starting nor ending with `.` and without `..` (an empty token). Names that become keys or subjects
/// (call ids, secret and webhook names) are checked with it at the edge, so none reaches NATS malformed or
/// long enough to break a connection's control line.
pub fn is_key_safe(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'.'))
}

/// Longest webhook name (`/hooks/{name}`).
pub const MAX_HOOK_NAME: usize = 128;
/// Longest CloudEvent `type`, which becomes a subject token.
pub const MAX_EVENT_TYPE: usize = 256;
