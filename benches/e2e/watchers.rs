//! Live watchers: W clients following W queued calls through `GET /system/calls/{id}/events`, against the
//! baseline of W raw KV watches (one server-side consumer each, what a watcher per call costs done naively):
//! what the watchers cost the gateway and nats-server, and how long a change takes to reach every one of them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

use crate::{Params, load, procs};

#[derive(Debug, Default, Serialize)]
pub struct Watchers {
    /// Calls watched, one stream each.
    pub watchers: usize,
    /// Time until every stream had its first event, s.
    pub open_seconds: f64,
    /// Gateway memory per open stream, KiB.
    pub gateway_kib_per_watcher: f64,
    /// Gateway CPU with all streams open and nothing changing, % of a core.
    pub gateway_idle_cpu_percent: f64,
    /// nats-server memory growth with the streams open, MiB.
    pub nats_mb_sluice: f64,
    /// Baseline: nats-server memory growth with one raw KV watch per call, MiB.
    pub nats_mb_raw_watches: f64,
    /// Baseline: raw KV watches the server accepted (one consumer each), and why it refused the next.
    pub raw_watches_opened: usize,
    pub raw_watch_refusal: Option<String>,
    /// Cancelling every call: from the DELETE to that call's `end` event, p50 and p99, ms.
    pub change_p50_ms: f64,
    pub change_p99_ms: f64,
}

/// Queues W calls to `accept-only` (no worker runs), follows each, measures, then cancels them all.
pub async fn measure(
    p: &Params,
    base: &str,
    gateway: &procs::Proc,
    server: &procs::Nats,
    js: &async_nats::jetstream::Context,
) -> Watchers {
    // One connection per watcher: the same raise every Sluice listener makes at start.
    sluice_gateway::listen::raise_open_files_limit();
    let mut w = Watchers { watchers: if p.quick { 200 } else { 2_000 }, ..Default::default() };
    eprintln!("sluice: {} live watchers of {} queued calls", w.watchers, w.watchers);
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let url = format!("{base}/async-function/accept-only");
    let ids: Vec<String> = futures::stream::iter(0..w.watchers)
        .map(|_| load::post_one(&http, &url, Bytes::from_static(b"x"), None))
        .buffer_unordered(32)
        .map(|accepted| accepted.expect("accepted").call_id)
        .collect()
        .await;

    let (gateway_before, nats_before) = (gateway.rss(), server.proc.rss());
    let opened = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    // A client per stream set: the pool would otherwise cap connections to the gateway.
    let streams = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let followers: Vec<_> = ids
        .iter()
        .map(|id| {
            let (streams, opened) = (streams.clone(), opened.clone());
            let url = format!("{base}/system/calls/{id}/events");
            tokio::spawn(async move {
                let response = streams.get(url).send().await.expect("the stream opens");
                assert_eq!(response.status(), 200);
                let mut body = response.bytes_stream();
                let mut first = true;
                let mut text = String::new();
                while let Some(chunk) = body.next().await {
                    text.push_str(&String::from_utf8_lossy(&chunk.expect("the stream goes on")));
                    if first && text.contains("\n\n") {
                        first = false;
                        opened.fetch_add(1, Ordering::Relaxed);
                    }
                    if text.contains("event: end") {
                        return Instant::now();
                    }
                }
                panic!("the stream closed before its end event");
            })
        })
        .collect();
    while opened.load(Ordering::Relaxed) < w.watchers {
        assert!(started.elapsed() < Duration::from_secs(120), "streams did not open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.open_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.gateway_kib_per_watcher = gateway.rss().saturating_sub(gateway_before) as f64 / 1024.0 / w.watchers as f64;
    w.nats_mb_sluice = server.proc.rss().saturating_sub(nats_before) as f64 / (1024.0 * 1024.0);
    let cpu_before = gateway.cpu_seconds();
    let window = Duration::from_secs(if p.quick { 2 } else { 10 });
    tokio::time::sleep(window).await;
    w.gateway_idle_cpu_percent = (gateway.cpu_seconds() - cpu_before) / window.as_secs_f64() * 100.0;

    let cancelled: Vec<Instant> = futures::stream::iter(&ids)
        .map(|id| {
            let http = http.clone();
            let url = format!("{base}/system/calls/{id}");
            async move {
                let sent = Instant::now();
                assert_eq!(http.delete(url).send().await.unwrap().status(), 200);
                sent
            }
        })
        .buffered(32)
        .collect()
        .await;
    let mut latencies = Vec::with_capacity(ids.len());
    for (follower, sent) in followers.into_iter().zip(cancelled) {
        let ended = follower.await.expect("a follower ends");
        latencies.push(ended.saturating_duration_since(sent).as_secs_f64());
    }
    w.change_p50_ms = load::percentile(&mut latencies, 50.0);
    w.change_p99_ms = load::percentile(&mut latencies, 99.0);

    // Baseline: a KV watch per call, each its own consumer on the server.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let nats_before = server.proc.rss();
    let calls = js.get_key_value("sluice_calls").await.unwrap();
    let mut raw = Vec::with_capacity(ids.len());
    for id in &ids {
        match calls.watch(id).await {
            Ok(watch) => raw.push(watch),
            Err(err) => {
                // What a watch per watcher runs into: the server's limit on consumers.
                w.raw_watch_refusal = Some(err.to_string());
                break;
            }
        }
    }
    w.raw_watches_opened = raw.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.nats_mb_raw_watches = server.proc.rss().saturating_sub(nats_before) as f64 / (1024.0 * 1024.0);
    drop(raw);
    w
}
