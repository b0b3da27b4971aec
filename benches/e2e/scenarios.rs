//! The measurements, in order, on one nats-server: baselines first, then Sluice's gateway alone, then
//! the whole platform.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use crate::{
    Params, baseline,
    load::{self, Receiver, median, percentile},
    procs,
};

/// Every figure of one run.
#[derive(Debug, Default, Serialize)]
pub struct Results {
    pub baseline_publish_per_s: f64,
    pub baseline_consume_per_s: f64,
    /// Publish then consume of the same messages: the raw pipeline Sluice's end to end compares with.
    pub baseline_pipeline_per_s: f64,
    pub accept_per_s: f64,
    pub e2e_http_per_s: f64,
    pub e2e_process_per_s: f64,
    pub accept_latency_ms: Latency,
    pub e2e_latency_ms: Latency,
    pub latency_offered_per_s: u32,
    /// Worker's own time per call (queue to ack, minus the function), p50 and p95 in ms.
    pub worker_overhead_p50_ms: f64,
    pub worker_overhead_p95_ms: f64,
    /// CPU time per message or call, µs, by process and phase.
    pub cpu_us: CpuPerCall,
    /// Messages sent to nats-server per message or call, by client and phase.
    pub nats_messages: MessagesPerCall,
    pub gateway_idle_rss_mb: f64,
    pub worker_idle_rss_mb: f64,
    pub gateway_peak_rss_under_load_mb: f64,
    pub worker_peak_rss_under_load_mb: f64,
    pub large_body_mb: f64,
    pub large_body_seconds: f64,
    pub gateway_peak_rss_large_body_mb: f64,
    pub worker_peak_rss_large_body_mb: f64,
    /// Synchronous calls at once that each write far more than the response limit.
    pub output_flood_calls: usize,
    /// The worker's `--max-response` during them, MiB.
    pub output_flood_limit_mb: f64,
    pub worker_idle_rss_output_flood_mb: f64,
    pub worker_peak_rss_output_flood_mb: f64,
    /// Functions deployed for the listing measurement.
    pub listed_functions: usize,
    /// `GET /system/functions` with them all deployed, median of 5, ms.
    pub list_ms: f64,
    /// Baseline: reading the same specs straight from the bucket's stream (last value per key), median of 5, ms.
    pub raw_spec_read_ms: f64,
    /// Live watchers of calls, against raw KV watches.
    pub watchers: crate::watchers::Watchers,
    /// A fan-out pipeline's wall time against its critical path.
    pub pipeline: crate::pipeline::Pipeline,
    /// What idle functions cost, by count of functions and of workers.
    pub idle: Vec<crate::idle::IdleRow>,
}

/// CPU time per message or call (µs): what each part costs, whatever the machine's speed at the moment.
#[derive(Debug, Default, Serialize)]
pub struct CpuPerCall {
    /// nats-server per message of the publish baseline.
    pub nats_per_baseline_publish: f64,
    /// The baseline's own async-nats client per message published.
    pub harness_per_baseline_publish: f64,
    /// nats-server per message of the publish-then-consume baseline.
    pub nats_per_baseline_pipeline: f64,
    pub gateway_per_accept: f64,
    pub nats_per_accept: f64,
    /// The load generator's HTTP client per accepted call: it shares the two cores with the rest.
    pub harness_per_accept: f64,
    pub gateway_per_e2e_call: f64,
    pub worker_per_e2e_call: f64,
    pub nats_per_e2e_call: f64,
    /// Load generator, no-op function and callback receiver together.
    pub harness_per_e2e_call: f64,
}

/// What each client sends nats-server per message or call (publishes, KV writes and reads, pull requests,
/// acks): the server's work counted in operations rather than time.
#[derive(Debug, Default, Serialize)]
pub struct MessagesPerCall {
    /// The baseline client per message of publish then consume (a publish and an ack).
    pub baseline_per_pipeline_message: f64,
    pub gateway_per_accept: f64,
    pub worker_per_e2e_call: f64,
    /// Of the worker's: record reads at a call's start (`sluice_queue_record_reads_total`), per call.
    pub worker_record_reads_per_e2e_call: f64,
}

/// CPU seconds of a set of processes, read at the start and end of a phase.
struct CpuMeter<'a> {
    procs: Vec<&'a procs::Proc>,
    start: Vec<f64>,
}

impl<'a> CpuMeter<'a> {
    fn start(procs: Vec<&'a procs::Proc>) -> Self {
        let mut start: Vec<f64> = procs.iter().map(|p| p.cpu_seconds()).collect();
        start.push(procs::cpu_seconds("/proc/self/stat"));
        Self { procs, start }
    }

    /// µs per call for each process, then for the harness itself, over `calls`.
    fn per_call(&self, calls: usize) -> Vec<f64> {
        let mut now: Vec<f64> = self.procs.iter().map(|p| p.cpu_seconds()).collect();
        now.push(procs::cpu_seconds("/proc/self/stat"));
        now.iter().zip(&self.start).map(|(b, a)| (b - a) * 1e6 / calls as f64).collect()
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub async fn deploy(http: &reqwest::Client, base: &str, spec: serde_json::Value) {
    let r = http.post(format!("{base}/system/functions")).json(&spec).send().await.unwrap();
    assert!(r.status().is_success(), "deploy {spec}: {}", r.status());
}

/// A Prometheus histogram's cumulative buckets: (upper bound, count), ascending.
/// The sum of a counter's series in a metrics page.
fn counter(metrics: &str, name: &str) -> f64 {
    let prefix = format!("{name}{{");
    metrics.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

fn buckets(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The buckets' growth between two scrapes.
fn bucket_delta(before: &str, after: &str, name: &str) -> Vec<(f64, f64)> {
    let before = buckets(before, name);
    buckets(after, name)
        .into_iter()
        .map(|(le, count)| (le, count - before.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1)))
        .collect()
}

/// A quantile, as the upper bound (ms) of the bucket it falls in.
fn quantile(buckets: &[(f64, f64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets.iter().find(|(_, count)| *count >= q * total).map_or(f64::NAN, |(le, _)| le * 1000.0)
}

/// The worker's count of record reads at a call's start.
const READS: &str = "sluice_queue_record_reads_total";

pub async fn run_all(p: &Params) -> Results {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Results::default();
    let server = procs::nats(dir.path());
    let (nats, nats_url) = (&server.proc, server.url.clone());
    let client = async_nats::connect(&nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);

    eprintln!("baseline: JetStream publish-with-ack, {} x {} B, {} in flight", p.n, p.size, p.concurrency);
    let meter = CpuMeter::start(vec![nats]);
    let sent_before = server.sent_by_client().await;
    let publish_s = baseline::publish(&js, p.n, p.size, p.concurrency).await;
    let cpu = meter.per_call(p.n);
    (r.cpu_us.nats_per_baseline_publish, r.cpu_us.harness_per_baseline_publish) = (cpu[0], cpu[1]);
    let consume_s = baseline::consume(&js, p.n, p.concurrency).await;
    r.cpu_us.nats_per_baseline_pipeline = meter.per_call(p.n)[0];
    r.nats_messages.baseline_per_pipeline_message =
        procs::sent_per_call(&sent_before, &server.sent_by_client().await, "", p.n);
    r.baseline_publish_per_s = p.n as f64 / publish_s;
    r.baseline_consume_per_s = p.n as f64 / consume_s;
    r.baseline_pipeline_per_s = p.n as f64 / (publish_s + consume_s);

    large_body(p, &mut r, &nats_url, dir.path()).await;
    output_flood(p, &mut r, &nats_url, dir.path()).await;

    let (gateway, base) = procs::gateway(&nats_url, dir.path()).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(p.concurrency).build().unwrap();
    let upstream = load::noop_upstream().await;
    let receiver = Receiver::start().await;
    deploy(&http, &base, json!({"service": "accept-only", "runtime": "http", "upstream": upstream})).await;
    deploy(&http, &base, json!({"service": "noop", "runtime": "http", "upstream": upstream})).await;
    deploy(&http, &base, json!({"service": "cat", "envProcess": "cat"})).await;
    let body = Bytes::from(vec![b'x'; p.size]);

    eprintln!("sluice: gateway accept rate (no worker running)");
    r.gateway_idle_rss_mb = mb(gateway.rss());
    let meter = CpuMeter::start(vec![&gateway, nats]);
    let sent_before = server.sent_by_client().await;
    let seconds =
        load::post_many(&format!("{base}/async-function/accept-only"), p.n, p.concurrency, body.clone(), None).await;
    r.accept_per_s = p.n as f64 / seconds;
    let cpu = meter.per_call(p.n);
    (r.cpu_us.gateway_per_accept, r.cpu_us.nats_per_accept, r.cpu_us.harness_per_accept) = (cpu[0], cpu[1], cpu[2]);
    r.nats_messages.gateway_per_accept =
        procs::sent_per_call(&sent_before, &server.sent_by_client().await, "sluice-gateway", p.n);
    let accept_only = sluice_contracts::FunctionRef::new("openfaas-fn", "accept-only");
    let queued = sluice_contracts::names::invoke_subject(&accept_only);
    let stream = sluice_contracts::names::invocations_stream(&accept_only);
    js.get_stream(stream).await.unwrap().purge().filter(queued).await.unwrap();

    let (worker, metrics_url) = procs::worker(&nats_url, dir.path()).await;
    r.worker_idle_rss_mb = mb(worker.rss());
    // A worker reads the records of calls queued in its first two seconds (it cannot yet vouch that no
    // cancellation of theirs went unheard); the phase measures the steady state a running worker is in.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    eprintln!("sluice: end to end, http no-op function with callbacks");
    let meter = CpuMeter::start(vec![&gateway, &worker, nats]);
    let sent_before = server.sent_by_client().await;
    let reads_before = counter(&http.get(&metrics_url).send().await.unwrap().text().await.unwrap(), READS);
    let started = Instant::now();
    let url = format!("{base}/async-function/noop");
    load::post_many(&url, p.n, p.concurrency, body.clone(), Some(&receiver.url)).await;
    let last = receiver.wait_for(p.n, Duration::from_secs(600)).await;
    r.e2e_http_per_s = p.n as f64 / (last - started).as_secs_f64();
    let cpu = meter.per_call(p.n);
    r.cpu_us.gateway_per_e2e_call = cpu[0];
    r.cpu_us.worker_per_e2e_call = cpu[1];
    r.cpu_us.nats_per_e2e_call = cpu[2];
    r.cpu_us.harness_per_e2e_call = cpu[3];
    r.nats_messages.worker_per_e2e_call =
        procs::sent_per_call(&sent_before, &server.sent_by_client().await, "sluice-worker", p.n);
    let reads = counter(&http.get(&metrics_url).send().await.unwrap().text().await.unwrap(), READS) - reads_before;
    r.nats_messages.worker_record_reads_per_e2e_call = reads / p.n as f64;

    eprintln!("sluice: end to end, process function (cat) with callbacks");
    let n_process = (p.n / 4).max(100);
    let before = receiver.count();
    let started = Instant::now();
    let url = format!("{base}/async-function/cat");
    load::post_many(&url, n_process, p.concurrency, body.clone(), Some(&receiver.url)).await;
    let last = receiver.wait_for(before + n_process, Duration::from_secs(600)).await;
    r.e2e_process_per_s = n_process as f64 / (last - started).as_secs_f64();
    r.gateway_peak_rss_under_load_mb = mb(gateway.peak_rss());
    r.worker_peak_rss_under_load_mb = mb(worker.peak_rss());

    eprintln!("sluice: latency at {} calls/s for {} s", p.rate, p.latency_seconds);
    r.latency_offered_per_s = p.rate;
    let before = http.get(&metrics_url).send().await.unwrap().text().await.unwrap();
    let (accept, e2e) = latency(&http, &base, &receiver, p.rate, p.latency_seconds, body.clone()).await;
    r.accept_latency_ms = accept;
    r.e2e_latency_ms = e2e;
    // The overhead of the calls of the latency run alone: the histogram's growth during it.
    let after = http.get(&metrics_url).send().await.unwrap().text().await.unwrap();
    let overhead = bucket_delta(&before, &after, "sluice_queue_overhead_seconds");
    r.worker_overhead_p50_ms = quantile(&overhead, 0.5);
    r.worker_overhead_p95_ms = quantile(&overhead, 0.95);

    // Before the listing's thousands of functions, which a worker starting then would first take up.
    r.pipeline = crate::pipeline::measure(p, &base, &server, dir.path()).await;

    // The listing alone: no worker starting consumers for the functions meanwhile.
    drop(worker);
    listing(p, &mut r, &http, &base, &js).await;
    r.watchers = crate::watchers::measure(p, &base, &gateway, &server, &js).await;
    drop(gateway);
    r.idle = crate::idle::measure(p).await;
    r
}

/// `GET /system/functions` with many functions deployed, against reading their specs straight from KV.
async fn listing(p: &Params, r: &mut Results, http: &reqwest::Client, base: &str, js: &async_nats::jetstream::Context) {
    use futures::StreamExt;
    r.listed_functions = if p.quick { 200 } else { 2_000 };
    eprintln!("sluice: listing {} deployed functions", r.listed_functions);
    futures::stream::iter(0..r.listed_functions)
        .for_each_concurrent(32, |i| deploy(http, base, json!({"service": format!("listed-{i}"), "envProcess": "cat"})))
        .await;
    let mut list = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let listed: Vec<serde_json::Value> =
            http.get(format!("{base}/system/functions")).send().await.unwrap().json().await.unwrap();
        list.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(listed.len() > r.listed_functions, "{} listed", listed.len());
    }
    r.list_ms = median(list);
    let stream = js.get_stream("KV_sluice_functions").await.unwrap();
    let mut raw = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::LastPerSubject,
                filter_subject: "$KV.sluice_functions.>".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let mut read = 0;
        while let Some(message) = messages.next().await {
            let message = message.unwrap();
            read += 1;
            if message.info().unwrap().pending == 0 {
                break;
            }
        }
        raw.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(read > r.listed_functions, "{read} read");
    }
    r.raw_spec_read_ms = median(raw);
}

/// A large body end to end, on a gateway and worker of its own, so their peak memory is the body's doing.
async fn large_body(p: &Params, r: &mut Results, nats_url: &str, dir: &std::path::Path) {
    let (gateway, base) = procs::gateway(nats_url, dir).await;
    let (worker, _) = procs::worker(nats_url, dir).await;
    let http = reqwest::Client::new();
    let receiver = Receiver::start().await;
    deploy(&http, &base, json!({"service": "count", "envProcess": "wc -c", "async": {"timeout": "5m"}})).await;
    eprintln!("sluice: a {} MB body end to end", p.large_body >> 20);
    let large: Bytes = (0..p.large_body).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let before = receiver.count();
    let started = Instant::now();
    let accepted = load::post_one(&http, &format!("{base}/async-function/count"), large, Some(&receiver.url)).await;
    assert!(accepted.is_some(), "large body refused");
    let last = receiver.wait_for(before + 1, Duration::from_secs(600)).await;
    r.large_body_mb = p.large_body as f64 / (1024.0 * 1024.0);
    r.large_body_seconds = (last - started).as_secs_f64();
    r.gateway_peak_rss_large_body_mb = mb(gateway.peak_rss());
    r.worker_peak_rss_large_body_mb = mb(worker.peak_rss());
}

/// Functions that each print far more than the response limit, at once, on a worker of its own: its peak
/// memory is bounded by the limit per call, not by what the functions print.
async fn output_flood(p: &Params, r: &mut Results, nats_url: &str, dir: &std::path::Path) {
    const LIMIT_MB: usize = 64;
    let (gateway, base) = procs::gateway(nats_url, dir).await;
    let (worker, _) = procs::worker_with(nats_url, dir, &["--max-response", &format!("{LIMIT_MB}MiB")]).await;
    let http = reqwest::Client::new();
    let printed = if p.quick { 200_000_000 } else { 1_000_000_000 };
    deploy(&http, &base, json!({"service": "flood", "envProcess": format!("head -c {printed} /dev/zero")})).await;
    r.output_flood_calls = 4;
    r.output_flood_limit_mb = LIMIT_MB as f64;
    r.worker_idle_rss_output_flood_mb = mb(worker.rss());
    eprintln!(
        "sluice: {} calls at once each printing {} MB with a {LIMIT_MB} MiB response limit",
        4,
        printed / 1_000_000
    );
    let calls = (0..r.output_flood_calls).map(|_| http.post(format!("{base}/function/flood")).send());
    for answer in futures::future::join_all(calls).await {
        assert_eq!(answer.unwrap().status(), 502, "an oversized response fails the call");
    }
    r.worker_peak_rss_output_flood_mb = mb(worker.peak_rss());
    drop(gateway);
}

/// Offers `rate` calls a second for `seconds`; returns accept and end-to-end latency percentiles.
async fn latency(
    http: &reqwest::Client,
    base: &str,
    receiver: &Receiver,
    rate: u32,
    seconds: u64,
    body: Bytes,
) -> (Latency, Latency) {
    let url = format!("{base}/async-function/noop");
    let total = rate as u64 * seconds;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    for _ in 0..total {
        ticker.tick().await;
        let (http, url, body, cb) = (http.clone(), url.clone(), body.clone(), receiver.url.clone());
        tasks.push(tokio::spawn(async move { load::post_one(&http, &url, body, Some(&cb)).await }));
    }
    let mut accepted = Vec::new();
    for task in tasks {
        accepted.extend(task.await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while accepted.iter().any(|a| receiver.arrival(&a.call_id).is_none()) {
        assert!(Instant::now() < deadline, "callbacks missing after the latency run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut accept: Vec<f64> = accepted.iter().map(|a| (a.answered - a.posted).as_secs_f64()).collect();
    let mut e2e: Vec<f64> =
        accepted.iter().map(|a| (receiver.arrival(&a.call_id).unwrap() - a.posted).as_secs_f64()).collect();
    let summary =
        |s: &mut Vec<f64>| Latency { p50: percentile(s, 50.0), p95: percentile(s, 95.0), p99: percentile(s, 99.0) };
    (summary(&mut accept), summary(&mut e2e))
}
