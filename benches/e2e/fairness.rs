//! Fairness: how long calls to cold functions take while one hot function has a backlog of 10,000, against the
//! same calls with nothing else queued; and the share of a worker each of two backlogged functions gets, with
//! equal and with unequal `maxInflight`.

use std::time::{Duration, Instant};

use axum::{Router, routing::any};
use serde::Serialize;
use serde_json::json;

use crate::{
    Params,
    load::{self, Receiver},
    procs,
    scenarios::deploy,
};

/// How long one call of a busy function takes in its upstream.
const BUSY_CALL: Duration = Duration::from_millis(20);
/// The worker's call slots in both scenarios.
const WORKER_SLOTS: usize = 16;

#[derive(Debug, Default, Serialize)]
pub struct HotCold {
    pub hot_backlog: usize,
    pub cold_functions: usize,
    /// Accepted to called back, cold calls with nothing else queued (ms).
    pub alone_p50_ms: f64,
    pub alone_p95_ms: f64,
    /// The same with the hot function's backlog being worked through.
    pub beside_hot_p50_ms: f64,
    pub beside_hot_p95_ms: f64,
    pub beside_hot_max_ms: f64,
    /// Hot calls still queued when the last cold call was called back.
    pub hot_left: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct Share {
    pub max_inflight_a: u32,
    pub max_inflight_b: u32,
    /// Calls of each finished over the window, both backlogged throughout.
    pub done_a: usize,
    pub done_b: usize,
    /// A's share of the two.
    pub share_a: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Fairness {
    pub hot_cold: HotCold,
    pub shares: Vec<Share>,
}

/// An upstream whose every call takes [`BUSY_CALL`].
async fn busy_upstream() -> String {
    let app = Router::new().fallback(any(|| async {
        tokio::time::sleep(BUSY_CALL).await;
        "ok"
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

pub async fn measure(p: &Params) -> Fairness {
    let (backlog, cold, window) =
        if p.quick { (2_000, 20, Duration::from_secs(3)) } else { (10_000, 100, Duration::from_secs(10)) };
    Fairness {
        hot_cold: hot_cold(backlog, cold).await,
        shares: vec![share(8, 8, backlog, window).await, share(4, 16, backlog, window).await],
    }
}

/// Posts `n` calls of `function` with `concurrency` in flight.
async fn backlog(base: &str, function: &str, n: usize, callback: &str) {
    let url = format!("{base}/async-function/{function}");
    load::post_many(&url, n, 64, bytes::Bytes::from_static(b"work"), Some(callback)).await;
}

/// One call to each cold function, one after another, each waited for: accepted to called back, in seconds.
async fn cold_calls(http: &reqwest::Client, base: &str, cold: usize, receiver: &Receiver) -> Vec<f64> {
    let mut took = Vec::new();
    for i in 0..cold {
        let url = format!("{base}/async-function/cold-{i}");
        let accepted = load::post_one(http, &url, bytes::Bytes::from_static(b"cold"), Some(&receiver.url))
            .await
            .expect("a cold call is accepted");
        let deadline = Instant::now() + Duration::from_secs(120);
        let arrived = loop {
            if let Some(at) = receiver.arrival(&accepted.call_id) {
                break at;
            }
            assert!(Instant::now() < deadline, "cold call {} not called back", accepted.call_id);
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        took.push((arrived - accepted.posted).as_secs_f64());
    }
    took
}

async fn hot_cold(hot_backlog: usize, cold: usize) -> HotCold {
    eprintln!("fairness: {cold} cold functions beside a backlog of {hot_backlog} on a hot one");
    let dir = tempfile::tempdir().unwrap();
    let server = procs::nats(dir.path());
    let (_gateway, base) = procs::gateway(&server.url, dir.path()).await;
    let http = reqwest::Client::new();
    let (busy, noop) = (busy_upstream().await, load::noop_upstream().await);
    deploy(&http, &base, json!({"service": "hot", "runtime": "http", "upstream": busy})).await;
    for i in 0..cold {
        deploy(&http, &base, json!({"service": format!("cold-{i}"), "runtime": "http", "upstream": noop})).await;
    }
    let slots = WORKER_SLOTS.to_string();
    let _worker = procs::worker_with(&server.url, dir.path(), &["--max-inflight", &slots]).await;
    let (receiver, hot_receiver) = (Receiver::start().await, Receiver::start().await);
    // Every cold function once first, so each is taken up before it is timed.
    cold_calls(&http, &base, cold, &receiver).await;
    let mut alone = cold_calls(&http, &base, cold, &receiver).await;
    backlog(&base, "hot", hot_backlog, &hot_receiver.url).await;
    let mut beside = cold_calls(&http, &base, cold, &receiver).await;
    let hot_left = hot_backlog.saturating_sub(hot_receiver.count());
    let row = HotCold {
        hot_backlog,
        cold_functions: cold,
        alone_p50_ms: load::percentile(&mut alone, 50.0),
        alone_p95_ms: load::percentile(&mut alone, 95.0),
        beside_hot_p50_ms: load::percentile(&mut beside, 50.0),
        beside_hot_p95_ms: load::percentile(&mut beside, 95.0),
        beside_hot_max_ms: load::percentile(&mut beside, 100.0),
        hot_left,
    };
    eprintln!("{row:?}");
    row
}

async fn share(max_inflight_a: u32, max_inflight_b: u32, backlog_each: usize, window: Duration) -> Share {
    eprintln!("fairness: two backlogged functions, maxInflight {max_inflight_a} and {max_inflight_b}");
    let dir = tempfile::tempdir().unwrap();
    let server = procs::nats(dir.path());
    let (_gateway, base) = procs::gateway(&server.url, dir.path()).await;
    let http = reqwest::Client::new();
    let busy = busy_upstream().await;
    for (name, limit) in [("a", max_inflight_a), ("b", max_inflight_b)] {
        let spec = json!({"service": name, "runtime": "http", "upstream": busy, "async": {"maxInflight": limit}});
        deploy(&http, &base, spec).await;
    }
    let (done_a, done_b) = (Receiver::start().await, Receiver::start().await);
    // Both queues are full before any worker takes from them.
    backlog(&base, "a", backlog_each, &done_a.url).await;
    backlog(&base, "b", backlog_each, &done_b.url).await;
    let slots = WORKER_SLOTS.to_string();
    let _worker = procs::worker_with(&server.url, dir.path(), &["--max-inflight", &slots]).await;
    let (a0, b0) = (done_a.count(), done_b.count());
    tokio::time::sleep(window).await;
    let (a, b) = (done_a.count() - a0, done_b.count() - b0);
    assert!(a < backlog_each && b < backlog_each, "a backlog ran out inside the window");
    let row = Share { max_inflight_a, max_inflight_b, done_a: a, done_b: b, share_a: a as f64 / (a + b).max(1) as f64 };
    eprintln!("{row:?}");
    row
}
