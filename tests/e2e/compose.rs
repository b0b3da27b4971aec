//! The compose deployment (`deploy/compose/`), for real: its image built from this build's binary with
//! `build.sh`, started with `up.sh` (three NATS nodes, two gateways, two workers with the Docker socket,
//! connectors, Prometheus), calls to a container function through both gateways while one NATS node and one
//! worker are killed, every accepted call succeeding, Prometheus scraping what is left; then, with both back, the
//! video example (`deploy/compose/video/`) on it as container functions against its S3 server; and a clean stop.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    docker::shell_image,
    support::{client_with, free_ports, read_call_events},
    video,
};

const IMAGE: &str = "sluice:e2e";
const VIDEO_IMAGE: &str = "sluice-video:e2e";

/// One compose project, taken down (with its data and function containers) when dropped.
struct Deployment {
    project: String,
    env: Vec<(String, String)>,
    _secrets: tempfile::TempDir,
}

impl Deployment {
    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose")
    }

    /// `program` with this deployment's settings in its environment.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    fn script(&self, name: &str, args: &[&str]) -> std::process::Output {
        let out =
            self.command(Self::dir().join(name)).args(args).output().unwrap_or_else(|e| panic!("{name} runs: {e}"));
        assert!(
            out.status.success(),
            "{name} {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn compose(&self, args: &[&str]) -> String {
        let out = self
            .command("docker-compose")
            .current_dir(Self::dir())
            .args(["-p", &self.project])
            .args(args)
            .output()
            .expect("docker-compose is installed (deploy/test.sh installs it)");
        assert!(out.status.success(), "docker-compose {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until a function container of one of the workers (on this deployment's function network) runs a
    /// call — its `sleep` shows among the container's processes — and names that worker.
    async fn worker_running_a_call(&self) -> &'static str {
        let network = format!("network={}-functions", self.project);
        let start = Instant::now();
        loop {
            for worker in ["worker-1", "worker-2"] {
                let ids = Command::new("docker")
                    .args(["ps", "-q", "--filter", &network, "--filter", &format!("label=sluice.worker={worker}")])
                    .output()
                    .unwrap();
                for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                    let top = Command::new("docker").args(["top", id]).output().unwrap();
                    if String::from_utf8_lossy(&top.stdout).contains("sleep") {
                        return worker;
                    }
                }
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no worker ran a call");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The exit code of a service's stopped container.
    fn exit_code(&self, service: &str) -> String {
        let id = self.compose(&["ps", "-q", service]).trim().to_owned();
        let out = Command::new("docker").args(["inspect", "-f", "{{.State.ExitCode}}", &id]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self.command(Self::dir().join("down.sh")).args(["--volumes", "-p", &self.project]).output();
    }
}

/// Sends one call, again and again (as a client does) until a gateway accepts it: the caller's `X-Call-Id`
/// makes a repeat the same call. Returns how many refusals came first.
async fn call_until_accepted(http: &reqwest::Client, gateway: &str, id: &str) -> u32 {
    let start = Instant::now();
    let mut refused = 0;
    loop {
        let sent = http
            .post(format!("{gateway}/async-function/compose-echo"))
            .header("X-Call-Id", id)
            .body(format!("call {id}"))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if sent.as_ref().is_ok_and(|r| r.status() == 202) {
            return refused;
        }
        refused += 1;
        assert!(start.elapsed() < Duration::from_secs(60), "{id} never accepted: {sent:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn the_compose_deployment_loses_no_call_when_a_nats_node_and_a_worker_die() {
    let image = shell_image();
    let project = format!("sluice-e2e-{}", std::process::id());
    let [gateway_1, gateway_2, prometheus, s3] = free_ports::<4>();
    let secrets = tempfile::tempdir().unwrap();
    let password = "compose-admin-password-0123";
    std::fs::write(secrets.path().join("admin-password"), password).unwrap();
    std::fs::write(secrets.path().join("metrics-token"), "compose-metrics-token-0123").unwrap();
    let env = [
        ("SLUICE_IMAGE", IMAGE.to_owned()),
        ("SLUICE_BINARY", env!("CARGO_BIN_EXE_sluice").to_owned()),
        ("SLUICE_SECRETS_DIR", secrets.path().display().to_string()),
        ("SLUICE_GATEWAY_1_PORT", gateway_1.to_string()),
        ("SLUICE_GATEWAY_2_PORT", gateway_2.to_string()),
        ("SLUICE_PROMETHEUS_PORT", prometheus.to_string()),
        ("SLUICE_FUNCTIONS_NETWORK", format!("{project}-functions")),
        ("SLUICE_VIDEO_IMAGE", VIDEO_IMAGE.to_owned()),
        ("SLUICE_S3_PORT", s3.to_string()),
    ];
    let deployment = Deployment {
        project: project.clone(),
        env: env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        _secrets: secrets,
    };
    // Grafana is not started here (no image of it can be had), but what it would mount must exist: the
    // provisioning files and the dashboards, whose queries `dashboards.rs` runs against a real Prometheus.
    let config: serde_yaml::Value =
        serde_yaml::from_str(&deployment.compose(&["--profile", "grafana", "config"])).unwrap();
    let mounts = config["services"]["grafana"]["volumes"].as_sequence().expect("grafana mounts files");
    for mount in mounts {
        let source = mount.as_str().unwrap().split(':').next().unwrap();
        assert!(Path::new(source).exists(), "grafana mounts {source}, which does not exist");
    }
    let dashboards = Deployment::dir().join("../grafana");
    assert!(dashboards.join("sluice-overview.json").is_file() && dashboards.join("sluice-function.json").is_file());

    deployment.script("build.sh", &[]);
    deployment.script("up.sh", &["-p", &project]);

    let mut headers = reqwest::header::HeaderMap::new();
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("admin:{password}"));
    headers.insert(reqwest::header::AUTHORIZATION, format!("Basic {basic}").parse().unwrap());
    let http = client_with(headers);
    let gateways = [format!("http://127.0.0.1:{gateway_1}"), format!("http://127.0.0.1:{gateway_2}")];
    let start = Instant::now();
    loop {
        let health = http.get(format!("{}/system/health", gateways[1])).send().await;
        let health: Option<Value> = match health {
            Ok(r) if r.status() == 200 => r.json().await.ok(),
            _ => None,
        };
        let workers = health.as_ref().and_then(|h| h["workers"].as_array()).map_or(0, Vec::len);
        let first_up = http.get(format!("{}/healthz", gateways[0])).send().await.is_ok_and(|r| r.status() == 200);
        if workers == 2 && first_up {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the deployment did not come up: {health:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let spec = json!({"service": "compose-echo", "image": image, "envProcess": "sh -c 'sleep 3; cat'"});
    let r = http.post(format!("{}/system/functions", gateways[0])).json(&spec).send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    // Calls through both gateways; a NATS node and a worker are killed after the first forty.
    let mut ids = Vec::new();
    let mut refused = 0;
    let mut killed = "worker-1";
    for i in 0..80 {
        if i == 40 {
            // Killed mid-call: a worker one of whose function containers is running a call.
            killed = deployment.worker_running_a_call().await;
            deployment.compose(&["kill", "nats-2", killed]);
        }
        let id = format!("compose-{i}");
        refused += call_until_accepted(&http, &gateways[i % 2], &id).await;
        ids.push(id);
    }
    // Every accepted call ends well, those the dead worker was running included (they come back to the other).
    let start = Instant::now();
    let (mut attempts_beyond_first, mut most_attempts) = (0, 0);
    for id in &ids {
        loop {
            let record: Value = match http.get(format!("{}/system/calls/{id}", gateways[1])).send().await {
                Ok(r) if r.status() == 200 => r.json().await.unwrap_or_default(),
                _ => Value::Null,
            };
            if record["status"] == "succeeded" {
                let attempts = record["attempts"].as_u64().unwrap_or(1);
                attempts_beyond_first += attempts - 1;
                most_attempts = most_attempts.max(attempts);
                let result = http.get(format!("{}/system/calls/{id}/result", gateways[0])).send().await.unwrap();
                assert_eq!(result.text().await.unwrap(), format!("call {id}"));
                break;
            }
            assert_ne!(record["status"], "failed", "{record}");
            assert!(start.elapsed() < Duration::from_secs(240), "{id} did not succeed: {record}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // The killed worker was mid-call (`worker_running_a_call`); its call ran again on the other. The record's
    // attempt count need not show it: a consumer whose leader was on the killed NATS node counts deliveries
    // afresh.
    // A worker waits out the failover for the call records instead of handing calls back again and again: each
    // hand-back would count as an attempt and eat into the function's retries.
    assert!(most_attempts <= 3, "a call took {most_attempts} attempts through the failover");
    eprintln!(
        "80 calls succeeded; {attempts_beyond_first} attempts after a first; {refused} sends were refused during the \
         failover and sent again"
    );

    // Prometheus, with the shipped scrape configuration, sees both gateways, the worker left and the connectors.
    let query = format!("http://127.0.0.1:{prometheus}/api/v1/query");
    let start = Instant::now();
    loop {
        let up: Value = reqwest::Client::new()
            .get(&query)
            .query(&[("query", "sum by (job) (up == 1)")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jobs: Vec<(String, String)> = up["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["metric"]["job"].as_str().unwrap().to_owned(), s["value"][1].as_str().unwrap().to_owned()))
            .collect();
        let want = |job: &str, n: &str| jobs.iter().any(|(j, v)| j == job && v == n);
        if want("sluice-gateway", "2") && want("sluice-worker", "1") && want("sluice-connector", "1") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "Prometheus scrapes {jobs:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // The killed node and worker come back, and the video example runs on the whole deployment.
    deployment.compose(&["start", "nats-2", killed]);
    let start = Instant::now();
    loop {
        let health: Value =
            http.get(format!("{}/system/health", gateways[0])).send().await.unwrap().json().await.unwrap();
        if health["workers"].as_array().is_some_and(|w| w.len() == 2) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the killed worker did not come back: {health}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    video_job(&deployment, &http, &gateways, s3, prometheus).await;

    // A clean stop: every Sluice process ends on SIGTERM with status 0.
    deployment.compose(&["stop", "-t", "40"]);
    for service in ["gateway-1", "gateway-2", "worker-1", "worker-2", "connectors"] {
        assert_eq!(deployment.exit_code(service), "0", "{service} did not stop cleanly");
    }
}

/// The video example on the deployment, as an operator runs it: `video/build.sh` makes its image and
/// `video/start.sh` starts the S3 server and deploys the functions; a grayscale clip put in videos-in comes back
/// colourised in videos-out. A segment's calls are followed live through the other gateway (progress frame by
/// frame), the tree shows every call, and Prometheus counts them.
async fn video_job(deployment: &Deployment, http: &reqwest::Client, gateways: &[String; 2], s3: u16, prometheus: u16) {
    deployment.script("video/build.sh", &[]);
    deployment.script("video/start.sh", &["-p", &deployment.project]);

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clip.mp4");
    let gray = video::grayscale_clip(&input);
    let s3_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/video/s3.py");
    let chore = |args: &[&str]| {
        let out = Command::new("python3")
            .arg(&s3_py)
            .args(args)
            .envs([
                ("S3_ENDPOINT", format!("http://127.0.0.1:{s3}")),
                ("AWS_ACCESS_KEY_ID", "test".into()),
                ("AWS_SECRET_ACCESS_KEY", "test".into()),
                ("AWS_REGION", "us-east-1".into()),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "s3.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    chore(&["put", input.to_str().unwrap(), "reels/clip.mp4"]);

    // A segment's call, followed live while it runs: its progress arrives frame by frame, then its success.
    let calls = |function: &'static str| async move {
        let url = format!("{}/system/calls?function={function}", gateways[0]);
        http.get(url).send().await.unwrap().json::<Vec<Value>>().await.unwrap()
    };
    let start = Instant::now();
    let segment = loop {
        let pieces = calls("video-colourise").await;
        if let Some(running) =
            pieces.iter().find(|c| !["succeeded", "failed", "cancelled"].contains(&c["status"].as_str().unwrap()))
        {
            break running["callId"].as_str().unwrap().to_owned();
        }
        assert!(pieces.len() < 4, "every segment ended before one could be followed: {pieces:?}");
        assert!(start.elapsed() < Duration::from_secs(120), "no segment was called: {:?}", calls("video-split").await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wait = Duration::from_secs(video::SLUICE_VIDEO_WAIT);
    let seen = read_call_events(http, &format!("{}/system/calls/{segment}/events", gateways[1]), wait).await;
    let names: Vec<&str> = seen.iter().map(|(name, _)| name.as_str()).collect();
    let (progress, succeeded) =
        (names.iter().position(|n| *n == "progress"), names.iter().position(|n| *n == "succeeded"));
    assert!(progress.zip(succeeded).is_some_and(|(p, s)| p < s), "progress, then success, followed live: {seen:?}");
    assert!(!["succeeded", "failed"].contains(&seen[0].1["status"].as_str().unwrap()), "followed from before its end");

    // The join ends the job; the output is the input in colour.
    let start = Instant::now();
    loop {
        let joins = calls("video-join").await;
        match joins.first().and_then(|j| j["status"].as_str()) {
            Some("succeeded") => break,
            Some("failed") => panic!("the join failed: {joins:?}"),
            _ => {}
        }
        assert!(start.elapsed() < wait, "no join within {wait:?}: {:?}", calls("video-colourise").await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let output = dir.path().join("clip.colour.mp4");
    chore(&["get", "reels/clip.colour.mp4", output.to_str().unwrap()]);
    video::assert_colourised(&output, &gray);

    let splits = calls("video-split").await;
    let [split] = &splits[..] else { panic!("one split: {splits:?}") };
    let url = format!("{}/system/calls/{}/tree", gateways[1], split["callId"].as_str().unwrap());
    let tree: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    let next = tree["next"].as_array().unwrap();
    assert_eq!(next.len(), 5, "four segments and the join: {tree}");
    assert!(next.iter().all(|n| n["call"]["status"] == "succeeded"), "{tree}");

    // Prometheus has counted the segments' calls: the series the dashboards' calls-by-outcome panels show.
    let query = format!("http://127.0.0.1:{prometheus}/api/v1/query");
    let promql = r#"sum(sluice_queue_calls_total{function_name=~"video-colourise.*",outcome="succeeded"})"#;
    let start = Instant::now();
    loop {
        let answer: Value =
            reqwest::Client::new().get(&query).query(&[("query", promql)]).send().await.unwrap().json().await.unwrap();
        let counted: f64 =
            answer["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or_default();
        if counted >= 4.0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "Prometheus has not counted the segments: {answer}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
