//! What nats-server keeps in memory for the calls Sluice keeps: each call's record (KV `sluice_calls`, kept for
//! `--calls-ttl`, 7 days by default) and its kept result (`SLUICE_RESULTS`, `--results-ttl`). Measured after N
//! calls end to end, then again once the server has restarted on the same store, when its heap holds only what it
//! keeps (Go does not hand freed memory back at once); set against N bare keys written to a bucket of the
//! harness's own and read the same way, and against N message ids held in a duplicate window alone.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::json;

use crate::{
    Params,
    load::{self, Receiver},
    procs, scenarios,
};

#[derive(Debug, Default, Serialize)]
pub struct Retention {
    pub calls: usize,
    /// nats-server's resident memory with Sluice's streams and buckets made and nothing called.
    pub nats_rss_empty_mb: f64,
    /// After the calls, every one called back.
    pub nats_rss_after_mb: f64,
    /// After a restart on the same store.
    pub nats_rss_restarted_mb: f64,
    /// What the restarted server holds per kept call, bytes.
    pub kept_per_call_bytes: f64,
    /// The same for a bare key of a KV bucket (450-byte values, a finished call's record size), bytes.
    pub baseline_per_key_bytes: f64,
    /// What one message id in a duplicate window holds while the server runs (messages consumed and acked, so
    /// only the window keeps anything), bytes.
    pub baseline_per_message_id_bytes: f64,
    /// Store on disk per kept call, bytes.
    pub disk_per_call_bytes: f64,
}

/// A nats-server's settled resident memory, bytes.
async fn settled_rss(server: &procs::Nats) -> u64 {
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.proc.rss()
}

fn disk_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// N calls (100,000; 5,000 with `--quick`) to an http no-op function with callbacks, then the restart.
pub async fn measure(p: &Params) -> Retention {
    let calls = if p.quick { 5_000 } else { 100_000 };
    let dir = tempfile::tempdir().unwrap();
    let server = procs::nats(dir.path());
    let (gateway, base) = procs::gateway(&server.url, dir.path()).await;
    let (worker, _) = procs::worker(&server.url, dir.path()).await;
    let http = reqwest::Client::new();
    let upstream = load::noop_upstream().await;
    let receiver = Receiver::start().await;
    scenarios::deploy(&http, &base, json!({"service": "noop", "runtime": "http", "upstream": upstream})).await;
    let empty = settled_rss(&server).await;
    eprintln!("retention: {calls} calls end to end, then nats-server restarted");
    let url = format!("{base}/async-function/noop");
    load::post_many(&url, calls, p.concurrency, Bytes::from(vec![b'x'; p.size]), Some(&receiver.url)).await;
    receiver.wait_for(calls, Duration::from_secs(600)).await;
    // The outcome's record is written after the callback; give the last ones their moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = settled_rss(&server).await;
    drop((gateway, worker));
    drop(server);
    let disk = disk_bytes(&dir.path().join("js"));
    let restarted = procs::nats(dir.path());
    let kept = settled_rss(&restarted).await;
    drop(restarted);

    eprintln!("retention: baselines, {calls} bare keys and {calls} message ids");
    let per_key = bare_keys(calls).await;
    let per_id = message_ids(calls, p.concurrency).await;
    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    Retention {
        calls,
        nats_rss_empty_mb: mb(empty),
        nats_rss_after_mb: mb(after),
        nats_rss_restarted_mb: mb(kept),
        kept_per_call_bytes: kept.saturating_sub(empty) as f64 / calls as f64,
        baseline_per_key_bytes: per_key,
        baseline_per_message_id_bytes: per_id,
        disk_per_call_bytes: disk as f64 / calls as f64,
    }
}

/// A nats-server of its own on a fresh store, and a JetStream context on it.
async fn fresh_server() -> (tempfile::TempDir, procs::Nats, jetstream::Context) {
    let dir = tempfile::tempdir().unwrap();
    let server = procs::nats(dir.path());
    let client = async_nats::connect(&server.url).await.unwrap();
    (dir, server, jetstream::new(client))
}

/// Bytes a restarted server holds per key of a bucket of `n` keys.
async fn bare_keys(n: usize) -> f64 {
    let (dir, server, js) = fresh_server().await;
    let bucket = js
        .create_key_value(kv::Config {
            bucket: "keys".into(),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    let empty = settled_rss(&server).await;
    let value = Bytes::from(vec![b'x'; 450]);
    futures::stream::iter(0..n)
        .map(|i| {
            let (bucket, value) = (bucket.clone(), value.clone());
            async move { bucket.put(format!("01a2374f-ca56-747d-b724-{i:012}"), value).await.map(drop) }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    drop(server);
    let restarted = procs::nats(dir.path());
    let kept = settled_rss(&restarted).await;
    kept.saturating_sub(empty) as f64 / n as f64
}

/// Bytes a running server holds per message id in a ten-minute duplicate window, over `n` messages consumed and
/// acked from a work queue as they come.
async fn message_ids(n: usize, concurrency: usize) -> f64 {
    let (_dir, server, js) = fresh_server().await;
    let queue = js
        .create_stream(stream::Config {
            name: "IDS".into(),
            subjects: vec!["ids.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            duplicate_window: Duration::from_secs(600),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer = queue
        .create_consumer(jetstream::consumer::pull::Config { durable_name: Some("c".into()), ..Default::default() })
        .await
        .unwrap();
    let drain = tokio::spawn(async move {
        let mut messages = consumer.messages().await.unwrap();
        for _ in 0..n {
            messages.next().await.unwrap().unwrap().ack().await.unwrap();
        }
    });
    let empty = settled_rss(&server).await;
    let body = Bytes::from(vec![b'x'; 256]);
    futures::stream::iter(0..n)
        .map(|i| {
            let (js, body) = (js.clone(), body.clone());
            async move {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("01a2374f-ca56-747d-b724-{i:012}").as_str());
                js.publish_with_headers("ids.x", headers, body).await?.await.map(drop).map_err(async_nats::Error::from)
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    drain.await.unwrap();
    let held = settled_rss(&server).await;
    held.saturating_sub(empty) as f64 / n as f64
}
