//! Real servers for end-to-end tests: a `nats-server` per test, `sluice` processes, and an HTTP callback
//! receiver on 127.0.0.1. Everything started here is stopped by its PID when dropped.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use serde_json::Value;
use tokio::sync::Notify;

pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct free ports (all held at once while choosing, so none is handed out twice).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

/// The `nats-server` binary: `SLUICE_NATS_SERVER`, else `PATH`. Missing is a failure, not a skip.
fn nats_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .expect("nats-server (2.10 or newer) is needed on PATH or in SLUICE_NATS_SERVER; ./deploy/test.sh installs it")
}

/// A JetStream-enabled `nats-server` with its storage in a temporary directory.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Extra flags (cluster membership).
    extra: Vec<String>,
}

impl Nats {
    pub fn start() -> Self {
        Self::start_with(free_port(), Vec::new())
    }

    fn start_with(port: u16, extra: Vec<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nats = Self { child: None, port, dir, extra };
        nats.restart();
        nats
    }

    /// Three servers routed into one JetStream cluster on loopback.
    pub fn cluster() -> Vec<Self> {
        let ports = free_ports::<6>();
        let (client_ports, cluster_ports) = (&ports[..3], &ports[3..]);
        let routes = cluster_ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        (0..3)
            .map(|i| {
                Self::start_with(
                    client_ports[i],
                    vec![
                        "-n".into(),
                        format!("node-{i}"),
                        "--cluster_name".into(),
                        "sluice-test".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{}", cluster_ports[i]),
                        "--routes".into(),
                        routes.clone(),
                    ],
                )
            })
            .collect()
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again), on the same port and storage.
    pub fn restart(&mut self) {
        let child = Command::new(nats_binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.dir.path().join("js"))
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10));
    }

    /// Kills the server (SIGKILL), keeping its storage.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_for_port(port: u16, limit: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < limit, "nothing listens on port {port} after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `sluice` process (gateway, worker or up), killed by PID when dropped.
pub struct Sluice {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Sluice {
    pub fn spawn(args: &[&str], log_dir: &Path, name: &str) -> Self {
        Self::spawn_env(args, &[], log_dir, name)
    }

    /// Like [`Sluice::spawn`], with extra environment variables.
    pub fn spawn_env(args: &[&str], env: &[(&str, &str)], log_dir: &Path, name: &str) -> Self {
        let log = log_dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            // The generated admin password of gateways and connectors goes next to the logs.
            .env("SLUICE_DATA_DIR", log_dir)
            // Callback receivers and other test servers are on loopback, which the default policy denies; a
            // test of the default passes SLUICE_CALLBACK_ALLOW empty.
            .env("SLUICE_CALLBACK_ALLOW", "127.0.0.0/8")
            .envs(env.iter().copied().filter(|(_, value)| !value.is_empty()))
            .env("RUST_LOG", "info");
        for (name, _) in env.iter().filter(|(_, value)| value.is_empty()) {
            command.env_remove(name);
        }
        let child = command
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start sluice");
        Self { child: Some(child), log }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: the process dies mid-work, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit; returns whether it exited successfully. Async, so servers on
    /// the test's own runtime (callback receivers) keep answering meanwhile.
    pub async fn terminate(&mut self, limit: Duration) -> bool {
        let mut child = self.child.take().unwrap();
        // SAFETY: signals our own child process, which has not been reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Peak resident memory (VmHWM) in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log says `needle`; panics with the log after `limit`.
    pub async fn wait_for_log(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !self.log_text().contains(needle) {
            assert!(start.elapsed() < limit, "no {needle:?} in the log:\n{}", self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A gateway and workers in separate processes against a test NATS server (or cluster).
pub struct Platform {
    pub nats: Nats,
    /// The other nodes, when `nats` is one of a cluster.
    pub more_nats: Vec<Nats>,
    /// What gateway and workers connect to.
    pub nats_url: String,
    pub gateway: Sluice,
    pub workers: Vec<Sluice>,
    pub base: String,
    /// A client that sends the gateway's generated admin password on every request.
    pub http: reqwest::Client,
    /// The generated admin password (user `admin`, or a bearer token).
    pub admin_password: String,
    pub logs: tempfile::TempDir,
}

/// A client sending `password` as a bearer token on every request (unless a request sets its own).
pub fn admin_client(password: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {password}").parse().unwrap());
    client_with(headers)
}

/// A client that drops idle connections well before the gateway closes them (10 s without a request), so a
/// request never races a closing connection.
pub fn client_with(headers: reqwest::header::HeaderMap) -> reqwest::Client {
    reqwest::Client::builder().default_headers(headers).pool_idle_timeout(Duration::from_secs(4)).build().unwrap()
}

/// A call's event stream at `url` (`GET /system/calls/{id}/events`) read to its end: each event's name and data
/// (the record, or the `end` event's summary).
pub async fn read_call_events(http: &reqwest::Client, url: &str, limit: Duration) -> Vec<(String, Value)> {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = response.bytes_stream().eventsource();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let Ok(Some(event)) = next else { panic!("{url}: no end event within {limit:?}; saw {seen:?}") };
        let event = event.expect("a well-formed event stream");
        let data: Value = serde_json::from_str(&event.data).expect("events carry JSON");
        let end = event.event == "end";
        seen.push((event.event, data));
        if end {
            return seen;
        }
    }
}

/// A CloudEvent posted to `url` in HTTP binary mode, as curl would send it.
pub fn binary_event(
    client: &reqwest::Client,
    url: &str,
    id: &str,
    source: &str,
    kind: &str,
    body: &'static str,
) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", source)
        .header("ce-type", kind)
        .body(body)
}

/// The status and the `error` of a JSON error answer.
pub async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error bodies are JSON");
    (status, body["error"].as_str().expect("an error field").to_owned())
}

impl Platform {
    /// Gateway plus `workers` workers; `extra_gateway` and `extra_worker` are appended to their flags.
    pub async fn start(workers: usize, extra_gateway: &[&str], extra_worker: &[&str]) -> Self {
        Self::start_on(vec![Nats::start()], workers, extra_gateway, extra_worker).await
    }

    /// Like [`Platform::start`], against these servers (all of a cluster's URLs are given to each process).
    pub async fn start_on(mut nodes: Vec<Nats>, workers: usize, extra_gateway: &[&str], extra_worker: &[&str]) -> Self {
        let nats = nodes.remove(0);
        let url = std::iter::once(&nats).chain(&nodes).map(Nats::url).collect::<Vec<_>>().join(",");
        let logs = tempfile::tempdir().unwrap();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["gateway", "--nats-url", &url, "--listen", &listen];
        args.extend_from_slice(extra_gateway);
        let gateway = Sluice::spawn(&args, logs.path(), "gateway");
        let mut platform = Self {
            nats,
            more_nats: nodes,
            nats_url: url.clone(),
            gateway,
            workers: Vec::new(),
            base: format!("http://{listen}"),
            http: client_with(Default::default()),
            admin_password: String::new(),
            logs,
        };
        for _ in 0..workers {
            platform.add_worker(extra_worker);
        }
        platform.wait_healthy().await;
        platform.admin_password = std::fs::read_to_string(platform.logs.path().join("admin-password"))
            .map(|p| p.trim().to_owned())
            .unwrap_or_default();
        if !platform.admin_password.is_empty() {
            platform.http = admin_client(&platform.admin_password);
        }
        platform
    }

    /// `sluice ARGS` as a client of this platform (it finds the generated admin password by itself).
    pub fn cli(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        command.env("SLUICE_GATEWAY", &self.base).env("SLUICE_DATA_DIR", self.logs.path());
        command
    }

    /// Kills the gateway (SIGKILL) and starts a new one on the same address.
    pub async fn restart_gateway(&mut self) {
        self.gateway.kill();
        let listen = self.base.trim_start_matches("http://").to_owned();
        let args = ["gateway", "--nats-url", &self.nats_url, "--listen", &listen];
        self.gateway = Sluice::spawn(&args, self.logs.path(), "gateway-restarted");
        self.wait_healthy().await;
    }

    pub fn add_worker(&mut self, extra: &[&str]) -> usize {
        let url = self.nats_url.clone();
        let mut args = vec!["worker", "--nats-url", &url];
        // Tests share one Docker engine: a worker of its own id per test never touches another's containers.
        let id = format!("test-{}", uuid::Uuid::now_v7().simple());
        if !extra.contains(&"--worker-id") {
            args.extend_from_slice(&["--worker-id", &id]);
        }
        args.extend_from_slice(extra);
        let index = self.workers.len();
        let worker = Sluice::spawn(&args, self.logs.path(), &format!("worker-{index}"));
        let start = Instant::now();
        while !worker.log_text().contains("worker ready") {
            // A new cluster elects its stream leaders first, which takes a while on a busy machine.
            assert!(start.elapsed() < Duration::from_secs(120), "worker not ready; log:\n{}", worker.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.workers.push(worker);
        index
    }

    pub async fn wait_healthy(&self) {
        let start = Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "gateway not healthy; log:\n{}",
                self.gateway.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Deploys a spec and waits until a worker serves it (a sync call answers).
    pub async fn deploy(&self, spec: Value) {
        let r = self.http.post(self.url("/system/functions")).json(&spec).send().await.unwrap();
        assert_eq!(r.status(), 202, "deploy {spec}: {}", r.text().await.unwrap());
    }

    /// `DELETE /system/functions` for `name`.
    pub async fn delete_function(&self, name: &str) -> reqwest::Response {
        let request = serde_json::json!({"functionName": name});
        self.http.delete(self.url("/system/functions")).json(&request).send().await.unwrap()
    }

    /// Stores a new secret.
    pub async fn create_secret(&self, name: &str, value: &str) {
        let secret = serde_json::json!({"name": name, "value": value});
        let r = self.http.post(self.url("/system/secrets")).json(&secret).send().await.unwrap();
        assert_eq!(r.status(), 201, "secret {name}: {}", r.text().await.unwrap());
    }

    /// Queues a call; returns its id.
    pub async fn call_async(&self, function: &str, body: &'static str, callback: Option<&str>) -> String {
        let mut request = self.http.post(self.url(&format!("/async-function/{function}"))).body(body);
        if let Some(cb) = callback {
            request = request.header("X-Callback-Url", cb);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        r.headers()["x-call-id"].to_str().unwrap().to_owned()
    }

    pub async fn record(&self, call_id: &str) -> Value {
        self.get_json(&format!("/system/calls/{call_id}")).await
    }

    /// `GET {path}` on the gateway, read as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.http.get(self.url(path)).send().await.unwrap().json().await.unwrap()
    }

    /// `GET /system/calls/{id}/events` read to its end: each event's name and data (the record, or the `end`
    /// event's summary).
    pub async fn call_events(&self, call_id: &str, limit: Duration) -> Vec<(String, Value)> {
        read_call_events(&self.http, &self.url(&format!("/system/calls/{call_id}/events")), limit).await
    }

    /// Waits until the call is running (its record says so).
    pub async fn wait_running(&self, call_id: &str) {
        let start = Instant::now();
        while self.record(call_id).await["status"] != "running" {
            assert!(start.elapsed() < Duration::from_secs(30), "call {call_id} never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET /system/calls?{query}`.
    pub async fn list_calls(&self, query: &str) -> Vec<Value> {
        self.http.get(self.url(&format!("/system/calls?{query}"))).send().await.unwrap().json().await.unwrap()
    }

    /// Waits until the call's record is final; returns it.
    pub async fn wait_final(&self, call_id: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let record = self.record(call_id).await;
            if matches!(record["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
                return record;
            }
            if start.elapsed() > limit {
                let queue = self.queue_state(record["function"].as_str().unwrap_or_default(), call_id).await;
                panic!(
                    "call {call_id} not final after {limit:?}: {record}\n{queue}\nlogs:\n{}",
                    self.log_lines(call_id)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The function's queue as JetStream sees it, and where the call's message is in it, for failure reports.
    pub async fn queue_state(&self, function: &str, call_id: &str) -> String {
        use futures::StreamExt;
        let Ok(client) = async_nats::connect(&self.nats_url).await else { return "nats unreachable".into() };
        let js = async_nats::jetstream::new(client);
        let function = &sluice_contracts::FunctionRef::new(sluice_contracts::names::DEFAULT_NAMESPACE, function);
        let Ok(mut stream) = js.get_stream(sluice_contracts::names::invocations_stream(function)).await else {
            return "no invocation stream".into();
        };
        let stream_state = stream.info().await.map(|i| format!("{:?}", i.state)).unwrap_or_default();
        let consumer_name = sluice_contracts::names::invoke_consumer(function);
        let consumer = match stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>(&consumer_name).await
        {
            Ok(mut c) => c.info().await.map(|i| format!("{i:?}")).unwrap_or_default(),
            Err(err) => err.to_string(),
        };
        let mut found = Vec::new();
        let reader = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                filter_subject: sluice_contracts::names::invoke_subject(function),
                ..Default::default()
            })
            .await;
        if let Ok(reader) = reader
            && let Ok(mut messages) = reader.messages().await
        {
            while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(1), messages.next()).await {
                let id = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.to_string());
                let info = message.info().map(|i| i.stream_sequence).unwrap_or_default();
                if message.headers.as_ref().is_some_and(|h| format!("{h:?}").contains(call_id)) {
                    found.push(format!("seq {info} id {id:?}"));
                }
            }
        }
        format!("stream: {stream_state}\nconsumer: {consumer}\ncall's messages: {found:?}")
    }

    /// The lines of the gateway's and workers' logs that mention `needle`.
    pub fn log_lines(&self, needle: &str) -> String {
        let processes = std::iter::once(&self.gateway).chain(&self.workers);
        let texts: Vec<String> = processes.map(Sluice::log_text).collect();
        texts.iter().flat_map(|t| t.lines()).filter(|l| l.contains(needle)).collect::<Vec<_>>().join("\n")
    }

    /// The gateway's or a worker's `/metrics` value of a sample line starting with `prefix`, summed.
    pub fn metric_sum(text: &str, prefix: &str) -> f64 {
        text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }
}

/// One callback as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Clone, Default)]
struct Inbox {
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
}

/// An HTTP server on 127.0.0.1 that records every callback POSTed to it.
pub struct CallbackReceiver {
    pub url: String,
    inbox: Inbox,
}

impl CallbackReceiver {
    pub async fn start() -> Self {
        Self::start_at(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    /// A receiver on a listener the test bound (to take over a known port).
    pub async fn start_at(listener: tokio::net::TcpListener) -> Self {
        let inbox = Inbox::default();
        let app = Router::new()
            .route(
                "/cb",
                post(|State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes| async move {
                    inbox.received.lock().unwrap().push(Received { headers, body });
                    inbox.arrived.notify_waiters();
                    "ok"
                }),
            )
            .with_state(inbox.clone());
        let url = format!("http://{}/cb", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inbox }
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` callbacks arrived; panics after `limit`.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.inbox.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("{} of {n} callbacks arrived within {limit:?}", self.received().len());
            }
        }
    }
}
