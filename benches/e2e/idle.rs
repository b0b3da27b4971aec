//! What deployed but idle functions cost: nats-server's and each worker's CPU over a quiet window, resident
//! memory, the listing's latency, and how soon a call to one idle function among them is called back — for
//! each count of functions and of workers, each on a fresh server.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use serde_json::json;

use crate::{
    Params,
    load::{Receiver, median},
    procs,
};

/// How long CPU is measured over, once every worker has taken every function up and every function has gone
/// idle since (a quick run measures 5 s).
const WINDOW: Duration = Duration::from_secs(60);
/// The workers' `--idle-after`: how long after its last call a function stops being polled (2 minutes by
/// default; shorter here so a row does not wait that long before its window).
const IDLE_AFTER: Duration = Duration::from_secs(20);
const QUICK_WINDOW: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Serialize)]
pub struct IdleRow {
    pub functions: usize,
    pub workers: usize,
    /// % of one core over the window.
    pub nats_cpu_percent: f64,
    pub gateway_cpu_percent: f64,
    /// The busiest worker's.
    pub worker_cpu_percent: f64,
    pub nats_rss_mb: f64,
    /// The largest worker's.
    pub worker_rss_mb: f64,
    /// Messages the workers sent the server per second over the window, all together.
    pub worker_messages_per_s: f64,
    /// From the workers' start to the last callback of one call to each function, made at once.
    pub takeup_s: f64,
    /// Median of five `GET /system/functions`.
    pub list_ms: f64,
    /// Median of five calls, each to another idle function (no consumer, no poll): accepted to called back.
    pub call_ms: f64,
    /// After the window, one call to each function at once: first accepted to last called back.
    pub each_once_s: f64,
}

/// The rows: 0, 1,000 and 10,000 functions with 1 and 4 workers (0 and 100 with one in a quick run), or those
/// asked for.
pub async fn measure(p: &Params) -> Vec<IdleRow> {
    let rows: &[(usize, usize)] = if !p.idle_rows.is_empty() {
        &p.idle_rows
    } else if p.quick {
        &[(0, 1), (100, 1)]
    } else {
        &[(0, 1), (0, 4), (1_000, 1), (1_000, 4), (10_000, 1), (10_000, 4)]
    };
    let window = if p.quick { QUICK_WINDOW } else { WINDOW };
    let mut measured = Vec::new();
    for &(functions, workers) in rows {
        eprintln!("idle: {functions} functions, {workers} workers");
        let row = row(functions, workers, window).await;
        eprintln!("{row:?}");
        measured.push(row);
    }
    measured
}

async fn row(functions: usize, workers: usize, window: Duration) -> IdleRow {
    let dir = tempfile::tempdir().unwrap();
    let server = procs::nats(dir.path());
    let (gateway, base) = procs::gateway(&server.url, dir.path()).await;
    let http = reqwest::Client::new();
    futures::stream::iter(0..functions)
        .for_each_concurrent(32, |i| {
            let (http, base) = (&http, &base);
            async move {
                let spec = json!({"service": format!("idle-{i}"), "envProcess": "cat"});
                let r = http.post(format!("{base}/system/functions")).json(&spec).send().await.unwrap();
                assert!(r.status().is_success(), "deploy idle-{i}: {}", r.status());
            }
        })
        .await;
    let started = Instant::now();
    let mut running = Vec::new();
    for i in 0..workers {
        let id = format!("idle-worker-{i}");
        let idle_after = format!("{}s", IDLE_AFTER.as_secs());
        running.push(
            procs::worker_with(&server.url, dir.path(), &["--worker-id", &id, "--idle-after", &idle_after]).await,
        );
    }
    // One call to each function, all at once: the time to the last callback is how long the workers take to
    // take every function up and run it once.
    let receiver = Receiver::start().await;
    call_each(&http, &base, &receiver, functions, 0).await;
    let takeup_s = started.elapsed().as_secs_f64();
    // Every function is idle from here on: its consumer is let go once no worker has polled it for as long.
    tokio::time::sleep(IDLE_AFTER * 2 + Duration::from_secs(5)).await;

    let cpu = |p: &procs::Proc| p.cpu_seconds();
    let before: Vec<f64> = running.iter().map(|(w, _)| cpu(w)).collect();
    let (nats_before, gateway_before) = (cpu(&server.proc), cpu(&gateway));
    let sent_before = server.sent_by_client().await;
    tokio::time::sleep(window).await;
    let sent_after = server.sent_by_client().await;
    let percent = |seconds: f64| seconds * 100.0 / window.as_secs_f64();
    let worker_messages: f64 = sent_after
        .iter()
        .filter(|(name, _)| name.starts_with("sluice-worker"))
        .map(|(name, after)| after.saturating_sub(sent_before.get(name).copied().unwrap_or(0)) as f64)
        .sum();
    let mut row = IdleRow {
        functions,
        workers,
        nats_cpu_percent: percent(cpu(&server.proc) - nats_before),
        gateway_cpu_percent: percent(cpu(&gateway) - gateway_before),
        worker_cpu_percent: running.iter().zip(&before).map(|((w, _), b)| percent(cpu(w) - b)).fold(0.0, f64::max),
        nats_rss_mb: server.proc.rss() as f64 / 1048576.0,
        worker_rss_mb: running.iter().map(|(w, _)| w.rss() as f64 / 1048576.0).fold(0.0, f64::max),
        worker_messages_per_s: worker_messages / window.as_secs_f64(),
        takeup_s,
        ..Default::default()
    };

    let mut list = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let listed: Vec<serde_json::Value> =
            http.get(format!("{base}/system/functions")).send().await.unwrap().json().await.unwrap();
        list.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(listed.len(), functions);
    }
    row.list_ms = median(list);
    if functions > 0 {
        let mut calls = Vec::new();
        for k in 0..5 {
            let function = format!("idle-{}", (k * 7919) % functions);
            let t = Instant::now();
            call(&http, &base, &receiver, &function, "wake").await;
            let arrived = receiver.wait_for(functions + k + 1, Duration::from_secs(60)).await;
            calls.push((arrived - t).as_secs_f64() * 1000.0);
        }
        row.call_ms = median(calls);
        eprintln!("each once: one call to each of {functions} functions");
        let t = Instant::now();
        let before: Vec<f64> = running.iter().map(|(w, _)| cpu(w)).collect();
        let (nats_before, gateway_before) = (cpu(&server.proc), cpu(&gateway));
        call_each(&http, &base, &receiver, functions, functions + 5).await;
        row.each_once_s = t.elapsed().as_secs_f64();
        let busiest = running.iter().zip(&before).map(|((w, _), b)| cpu(w) - b).fold(0.0, f64::max);
        eprintln!(
            "each once: CPU s nats {:.1}, gateway {:.1}, busiest worker {busiest:.1}",
            cpu(&server.proc) - nats_before,
            cpu(&gateway) - gateway_before
        );
    }
    drop(running);
    drop(gateway);
    row
}

/// One async call of `function`, called back to `receiver`; it must be accepted.
async fn call(http: &reqwest::Client, base: &str, receiver: &Receiver, function: &str, body: &'static str) {
    let r = http
        .post(format!("{base}/async-function/{function}"))
        .header("X-Callback-Url", &receiver.url)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 202, "{function}: {}", r.text().await.unwrap_or_default());
}

/// One call to each function, 64 in flight, and waits for all their callbacks (`before` arrived earlier).
async fn call_each(http: &reqwest::Client, base: &str, receiver: &Receiver, functions: usize, before: usize) {
    futures::stream::iter(0..functions)
        .for_each_concurrent(64, |i| async move { call(http, base, receiver, &format!("idle-{i}"), "once").await })
        .await;
    if functions > 0 {
        receiver.wait_for(before + functions, Duration::from_secs(900)).await;
    }
}
