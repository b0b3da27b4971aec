//! Processes the benchmark starts (its own nats-server, sluice gateway and worker), stopped by PID on drop.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed when dropped.
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn status_field(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    }

    /// Resident memory now, bytes.
    pub fn rss(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    /// CPU time (user + system) the process has used so far, seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.pid()))
    }

    /// Peak resident memory so far, bytes.
    pub fn peak_rss(&self) -> u64 {
        self.status_field("VmHWM:")
    }
}

/// User plus system time from a `/proc/…/stat` file, seconds (clock ticks are 1/100 s on Linux).
pub fn cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nats_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_NATS_SERVER") {
        return path.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .expect("nats-server 2.10+ on PATH or in SLUICE_NATS_SERVER (./deploy/test.sh installs one)")
}

/// The nats-server the benchmark runs: its client URL and its monitoring endpoint.
pub struct Nats {
    pub proc: Proc,
    pub url: String,
    monitor: String,
}

impl Nats {
    /// Messages each named client connection has sent the server so far (publishes, requests, acks),
    /// from the server's `/connz`; unnamed connections count as `""`.
    pub async fn sent_by_client(&self) -> std::collections::HashMap<String, u64> {
        let connz: serde_json::Value = reqwest::get(format!("{}/connz?limit=1024", self.monitor))
            .await
            .expect("nats-server monitoring answers")
            .json()
            .await
            .expect("connz is JSON");
        let mut sent = std::collections::HashMap::new();
        for conn in connz["connections"].as_array().into_iter().flatten() {
            let name = conn["name"].as_str().unwrap_or_default().to_owned();
            *sent.entry(name).or_default() += conn["in_msgs"].as_u64().unwrap_or(0);
        }
        sent
    }
}

/// The change in one client's sent messages between two `/connz` readings, per call.
pub fn sent_per_call(
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
    client: &str,
    calls: usize,
) -> f64 {
    let count = |m: &std::collections::HashMap<String, u64>| m.get(client).copied().unwrap_or(0);
    count(after).saturating_sub(count(before)) as f64 / calls as f64
}

/// `nats-server -js` with file storage under `dir`, and its monitoring port open.
pub fn nats(dir: &Path) -> Nats {
    let port = free_port();
    let monitor_port = free_port();
    let child = Command::new(nats_binary())
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-m", &monitor_port.to_string(), "-sd"])
        .arg(dir.join("js"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server");
    wait_for_port(port);
    wait_for_port(monitor_port);
    Nats {
        proc: Proc { child },
        url: format!("nats://127.0.0.1:{port}"),
        monitor: format!("http://127.0.0.1:{monitor_port}"),
    }
}

/// `sluice ARGS`, logging to `dir/NAME.log`.
pub fn sluice(name: &'static str, args: &[&str], dir: &Path) -> Proc {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("RUST_LOG", "warn")
        // The load's callback receiver and no-op function are on loopback, which the default policy denies.
        .env("SLUICE_CALLBACK_ALLOW", "127.0.0.0/8")
        .env("SLUICE_DATA_DIR", dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start sluice");
    Proc { child }
}

/// A gateway on a free port; returns it with its base URL once healthy.
pub async fn gateway(nats_url: &str, dir: &Path) -> (Proc, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let proc =
        // A loopback-only gateway of the benchmark's own: measured without the admin API's credentials, which
        // invocation routes do not check anyway.
        sluice(
            "gateway",
            &["gateway", "--nats-url", nats_url, "--listen", &listen, "--max-body", "256MiB", "--insecure-no-auth"],
            dir,
        );
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    let start = Instant::now();
    while !http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(start.elapsed() < Duration::from_secs(60), "gateway did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (proc, base)
}

/// A worker with its metrics on a free port; returns it with its metrics URL once it serves.
pub async fn worker(nats_url: &str, dir: &Path) -> (Proc, String) {
    worker_with(nats_url, dir, &[]).await
}

/// Like [`worker`], with extra flags.
pub async fn worker_with(nats_url: &str, dir: &Path, extra: &[&str]) -> (Proc, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["worker", "--nats-url", nats_url, "--metrics-listen", &listen];
    args.extend_from_slice(extra);
    let proc = sluice("worker", &args, dir);
    let url = format!("http://{listen}/metrics");
    let http = reqwest::Client::new();
    let start = Instant::now();
    while !http.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(start.elapsed() < Duration::from_secs(60), "worker did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Subscriptions and consumers settle after the metrics listener is up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (proc, url)
}
