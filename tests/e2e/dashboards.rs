//! The Grafana dashboards and Prometheus alert rules of `deploy/`, against a real Prometheus (Debian's package)
//! scraping a running gateway and worker: every panel's query returns series once calls, retries, dead letters,
//! callbacks, a queue and a container function have happened, and the alert rules load, evaluate and fire.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    docker::{Cleanup, shell_image, wait_containers, worker_id},
    support::{CallbackReceiver, Platform, free_port},
};

/// A `prometheus` on a free port, killed by PID when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `gateway` (job `sluice-gateway`) and `worker` (job `sluice-worker`) every second with `token`,
    /// and evaluates the checked-in alert rules every second.
    async fn start(gateway: &str, worker: &str, token: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml");
        std::fs::copy(rules, dir.path().join("alerts.yml")).unwrap();
        std::fs::write(dir.path().join("token"), token).unwrap();
        let job = |name: &str, target: &str| {
            json!({"job_name": name, "authorization": {"credentials_file": dir.path().join("token")},
                   "static_configs": [{"targets": [target]}]})
        };
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [dir.path().join("alerts.yml")],
            "scrape_configs": [job("sluice-gateway", gateway), job("sluice-worker", worker)],
        });
        // JSON is YAML.
        std::fs::write(dir.path().join("prometheus.yml"), config.to_string()).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (apt-get install prometheus); ./deploy/test.sh installs it");
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while !reqwest::get(format!("{url}/-/ready")).await.is_ok_and(|r| r.status() == 200) {
            assert!(start.elapsed() < Duration::from_secs(30), "prometheus did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, url, _dir: dir }
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let r = reqwest::Client::new().get(format!("{}{path}", self.url)).query(query).send().await.unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
        body["data"].clone()
    }

    /// The series a query returns now.
    async fn series(&self, expr: &str) -> Vec<Value> {
        self.api("/api/v1/query", &[("query", expr)]).await["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every query of a dashboard, with Grafana's variables filled in as Grafana would.
fn queries(file: &str, function: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana").join(file);
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let expr = expr.replace("$__rate_interval", "1m").replace("$__range", "5m").replace("$function", function);
            found.push((panel["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    found
}

#[tokio::test]
async fn every_panel_shows_data_and_the_alerts_load_and_fire() {
    let image = shell_image();
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let metrics_port = free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let mut platform =
        Platform::start(1, &[], &["--worker-id", &id, "--docker", "on", "--metrics-listen", &metrics_listen]).await;
    let prometheus =
        Prometheus::start(platform.base.trim_start_matches("http://"), &metrics_listen, &platform.admin_password).await;

    // Work of every kind: calls with callbacks, a retried call that fails for good, a queue, a container function.
    let receiver = CallbackReceiver::start().await;
    platform.deploy(json!({"service": "echo", "envProcess": "cat"})).await;
    platform
        .deploy(json!({"service": "broken", "envProcess": "sh -c 'exit 3'",
                       "async": {"retry": {"attempts": 2, "minWait": "100ms", "maxWait": "100ms"}}}))
        .await;
    platform.deploy(json!({"service": "slow", "envProcess": "sleep 30", "async": {"maxInflight": 1}})).await;
    // It scales from zero, so its first call is a cold start.
    platform.deploy(json!({"service": "boxed", "image": image, "envProcess": "cat", "scale": {"idle": "60s"}})).await;
    for _ in 0..5 {
        platform.call_async("echo", "hi", Some(&receiver.url)).await;
    }
    // Counters start at zero when a worker takes a function up, so even the first dead letter is an increase
    // Prometheus sees: wait for that zero to be scraped.
    let start = Instant::now();
    while prometheus.series("sluice_dead_letters_total{function_name=\"broken.openfaas-fn\"}").await.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(30), "the dead-letter counter never showed up at zero");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let broken = platform.call_async("broken", "", None).await;
    for _ in 0..3 {
        platform.call_async("slow", "", None).await;
    }
    let boxed = platform.call_async("boxed", "in a box", None).await;
    assert_eq!(platform.wait_final(&boxed, Duration::from_secs(60)).await["status"], "succeeded");
    wait_containers(&platform, &id, "boxed", 1, Duration::from_secs(10)).await;
    assert_eq!(platform.wait_final(&broken, Duration::from_secs(30)).await["status"], "failed");
    receiver.wait_for(5, Duration::from_secs(30)).await;

    // Every query of both dashboards returns series (rates need two scrapes, the queue gauges a worker sample).
    let mut panels = queries("sluice-overview.json", "echo.openfaas-fn");
    panels.extend(queries("sluice-function.json", "broken.openfaas-fn"));
    assert!(panels.len() >= 20, "{panels:?}");
    let start = Instant::now();
    loop {
        let mut empty = Vec::new();
        for (title, expr) in &panels {
            if prometheus.series(expr).await.is_empty() {
                empty.push(format!("{title}: {expr}"));
            }
        }
        if empty.is_empty() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let targets = prometheus.api("/api/v1/targets", &[]).await;
            panic!("panels without data:\n{}\ntargets: {targets}", empty.join("\n"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The queue's figures are the real ones (sampled every 5 s): the three calls not finished (one running, two
    // waiting behind it), the oldest for a while now.
    let value = |series: Vec<Value>| series.first().and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok());
    let start = Instant::now();
    loop {
        let waiting = value(prometheus.series("max(sluice_queue_pending{function_name=\"slow.openfaas-fn\"})").await);
        let oldest =
            value(prometheus.series("max(sluice_queue_oldest_age_seconds{function_name=\"slow.openfaas-fn\"})").await);
        if waiting == Some(3.0) && oldest.is_some_and(|age| age > 0.0) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "queue of slow: {waiting:?} waiting, oldest {oldest:?} s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The stores' gauges, read at each scrape of the gateway: the stored bodies' cap, which refuses new ones when
    // full, and the calls' records, as many as `/system/health` counts.
    let payloads_cap = "sluice_store_max_bytes{stream=\"OBJ_sluice_payloads\",when_full=\"refuse new\"}";
    assert_eq!(value(prometheus.series(payloads_cap).await), Some((8u64 << 30) as f64));
    let health = platform.get_json("/system/health").await;
    let records = health["streams"].as_array().unwrap().iter().find(|s| s["name"] == "KV_sluice_calls").unwrap();
    let start = Instant::now();
    while value(prometheus.series("sluice_store_messages{stream=\"KV_sluice_calls\"}").await)
        != records["messages"].as_f64()
    {
        assert!(start.elapsed() < Duration::from_secs(20), "the records' gauge never matched {records}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The rules load and evaluate cleanly; the dead letter fires its alert, and a worker gone raises another.
    let rules = prometheus.api("/api/v1/rules", &[]).await;
    let loaded: Vec<&Value> = rules["groups"][0]["rules"].as_array().unwrap().iter().collect();
    assert_eq!(loaded.len(), 5, "{rules}");
    assert!(loaded.iter().all(|r| r["health"] == "ok"), "{rules}");
    let alert_state = |alerts: &Value, name: &str| {
        let list = alerts["alerts"].as_array().cloned().unwrap_or_default();
        list.iter().find(|a| a["labels"]["alertname"] == name).map(|a| a["state"].as_str().unwrap().to_owned())
    };
    let start = Instant::now();
    loop {
        let alerts = prometheus.api("/api/v1/alerts", &[]).await;
        assert_eq!(alert_state(&alerts, "SluiceNoLiveWorker"), None, "a worker is up: {alerts}");
        if alert_state(&alerts, "SluiceDeadLetters").as_deref() == Some("firing") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the dead letter raised no alert: {alerts}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    platform.workers[0].kill();
    let start = Instant::now();
    loop {
        let alerts = prometheus.api("/api/v1/alerts", &[]).await;
        if alert_state(&alerts, "SluiceNoLiveWorker").is_some() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no alert for the missing worker: {alerts}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
