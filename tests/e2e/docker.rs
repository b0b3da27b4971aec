//! Container functions on the real Docker engine: images made by `sluice build`, deployed, called, rolled,
//! scaled (by hand, from zero, by load), killed and adopted. These tests need a running engine and fail
//! without one.

use std::{
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{CallbackReceiver, Platform};

/// A shell image: `sh` with `cat`, `sleep`, `env` and `curl`, so each test's function is a one-line
/// `envProcess`.
const SHELL_IMAGE: &str = "sluice-test/shell:latest";

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("the docker CLI is installed");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the test image once per test run, with `sluice build`.
pub(crate) fn shell_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let which = |name: &str| {
            let out = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let files: Vec<String> = ["cat", "sleep", "env", "curl"].iter().map(|t| format!("{0}:{0}", which(t))).collect();
        let mut args = vec!["build".to_owned(), "sh".to_owned(), "-t".to_owned(), SHELL_IMAGE.to_owned()];
        for f in files {
            args.extend(["--file".to_owned(), f]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_sluice")).args(&args).output().unwrap();
        assert!(out.status.success(), "sluice build: {}", String::from_utf8_lossy(&out.stderr));
    });
    SHELL_IMAGE
}

/// Running containers of `function` made by workers of `worker_id`.
fn containers(worker_id: &str, function: &str) -> Vec<String> {
    let filter_worker = format!("label=sluice.worker={worker_id}");
    let filter_function = format!("label=sluice.function={function}");
    docker(&["ps", "-q", "--no-trunc", "--filter", &filter_worker, "--filter", &filter_function])
        .lines()
        .map(str::to_owned)
        .collect()
}

pub(crate) async fn wait_containers(
    platform: &Platform,
    worker_id: &str,
    function: &str,
    n: usize,
    limit: Duration,
) -> Vec<String> {
    let start = Instant::now();
    loop {
        let found = containers(worker_id, function);
        if found.len() == n {
            return found;
        }
        let log = platform.workers.last().map(|w| w.log_text()).unwrap_or_default();
        assert!(start.elapsed() < limit, "{function}: {} containers, expected {n}; worker log:\n{log}", found.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn worker_id() -> String {
    format!("test-{}", uuid::Uuid::now_v7().simple())
}

/// Removes whatever a test's workers left behind, even when the test failed.
pub(crate) struct Cleanup(pub(crate) String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label=sluice.worker={}", self.0);
        let ids = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output().unwrap();
        for id in String::from_utf8_lossy(&ids.stdout).lines() {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
    }
}

async fn sync_call(platform: &Platform, function: &str, body: &str) -> (u16, String) {
    let r =
        platform.http.post(platform.url(&format!("/function/{function}"))).body(body.to_owned()).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn function_status(platform: &Platform, function: &str) -> Value {
    platform.http.get(platform.url(&format!("/system/function/{function}"))).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn container_function_deploy_call_scale_roll_and_delete() {
    let image = shell_image();
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let platform = Platform::start(1, &[], &["--worker-id", &id, "--docker", "on"]).await;
    let greet = |greeting: &str| {
        json!({"service": "greet", "image": image, "envVars": {"GREETING": greeting},
               "envProcess": "sh -c 'printf \"%s:\" \"$GREETING\"; cat'",
               "limits": {"memory": "64Mi", "cpu": "0.5"}})
    };
    platform.deploy(greet("one")).await;
    wait_containers(&platform, &id, "greet", 1, Duration::from_secs(60)).await;

    // Sync and async (with callback) calls reach the container.
    let start = Instant::now();
    let (status, body) = loop {
        let (status, body) = sync_call(&platform, "greet", "hello").await;
        if status == 200 || start.elapsed() > Duration::from_secs(30) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((status, body.as_str()), (200, "one:hello"));
    let receiver = CallbackReceiver::start().await;
    let call = platform.call_async("greet", "async", Some(&receiver.url)).await;
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got[0].body.as_ref(), b"one:async");
    assert_eq!(got[0].headers["x-call-id"], call.as_str());

    // The limits reached the engine.
    let container = &containers(&id, "greet")[0];
    let limits = docker(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}", container]);
    assert_eq!(limits.trim(), format!("{} 500000000", 64 << 20));

    // Manual scale: three ready replicas, reported by the API.
    let r = platform
        .http
        .post(platform.url("/system/scale-function/greet"))
        .json(&json!({"serviceName": "greet", "replicas": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let before = wait_containers(&platform, &id, "greet", 3, Duration::from_secs(30)).await;
    let start = Instant::now();
    while function_status(&platform, "greet").await["availableReplicas"] != 3 {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", function_status(&platform, "greet").await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Rolling update under load: every call answers, first from the old spec, then from the new.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let caller = {
        let http = platform.http.clone();
        let url = platform.url("/function/greet");
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !*stop_rx.borrow_and_update() {
                let r = http.post(&url).body("x").send().await.unwrap();
                answers.push((r.status().as_u16(), r.text().await.unwrap()));
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = platform.http.put(platform.url("/system/functions")).json(&greet("two")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let start = Instant::now();
    loop {
        let now = containers(&id, "greet");
        if now.len() == 3 && now.iter().all(|c| !before.contains(c)) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "roll did not finish: {now:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send(true).unwrap();
    let answers = caller.await.unwrap();
    let failed: Vec<_> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(failed.is_empty(), "calls failed during the roll: {failed:?}");
    assert!(answers.iter().any(|(_, b)| b == "one:x") && answers.last().unwrap().1 == "two:x", "{answers:?}");

    // Delete removes every container.
    let r = platform.delete_function("greet").await;
    assert_eq!(r.status(), 200);
    wait_containers(&platform, &id, "greet", 0, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn scales_from_zero_on_an_async_call_and_back_when_idle() {
    let image = shell_image();
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let metrics_port = crate::support::free_port().to_string();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let platform = Platform::start(1, &[], &["--worker-id", &id, "--metrics-listen", &metrics_addr]).await;
    platform.deploy(json!({"service": "lazy", "image": image, "envProcess": "cat", "scale": {"idle": "3s"}})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(containers(&id, "lazy").is_empty(), "a function that scales to zero starts with none");

    let receiver = CallbackReceiver::start().await;
    platform.call_async("lazy", "woke up", Some(&receiver.url)).await;
    let got = receiver.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(got[0].body.as_ref(), b"woke up");
    assert_eq!(containers(&id, "lazy").len(), 1);
    let metrics =
        platform.http.get(format!("http://{metrics_addr}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(Platform::metric_sum(&metrics, "sluice_cold_start_seconds_count") >= 1.0, "{metrics}");

    // Idle for its `scale.idle`: back to zero.
    wait_containers(&platform, &id, "lazy", 0, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn killed_container_is_retried_and_a_restarted_worker_adopts_its_containers() {
    let image = shell_image();
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let worker_args = ["--worker-id", id.as_str(), "--retry-min-wait", "200ms", "--retry-max-wait", "500ms"];
    let mut platform = Platform::start(1, &[], &worker_args).await;
    platform
        .deploy(json!({"service": "nap", "image": image, "envProcess": "sh -c 'sleep 3; cat'",
                       "scale": {"min": 2, "max": 2}, "async": {"maxInflight": 1}}))
        .await;
    let first = wait_containers(&platform, &id, "nap", 2, Duration::from_secs(60)).await;

    // One call per replica; kill one replica mid-call.
    let receiver = CallbackReceiver::start().await;
    let a = platform.call_async("nap", "a", Some(&receiver.url)).await;
    let b = platform.call_async("nap", "b", Some(&receiver.url)).await;
    platform.wait_running(&a).await;
    platform.wait_running(&b).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    docker(&["kill", &first[0]]);
    let got = receiver.wait_for(2, Duration::from_secs(60)).await;
    let mut bodies: Vec<_> = got.iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
    bodies.sort();
    assert_eq!(bodies, ["a", "b"]);
    let mut attempts = Vec::new();
    for call in [&a, &b] {
        attempts.push(platform.wait_final(call, Duration::from_secs(10)).await["attempts"].as_u64().unwrap());
    }
    attempts.sort();
    assert_eq!(attempts, [1, 2], "exactly the killed call was retried, once");
    // The dead replica is replaced.
    let replaced = wait_containers(&platform, &id, "nap", 2, Duration::from_secs(30)).await;
    assert!(!replaced.contains(&first[0]));

    // A new worker with the same id adopts the running containers instead of starting new ones.
    platform.workers[0].kill();
    platform.add_worker(&worker_args);
    let start = Instant::now();
    while platform.workers[1].log_text().matches("replica adopted").count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", platform.workers[1].log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = platform.call_async("nap", "c", Some(&receiver.url)).await;
    receiver.wait_for(3, Duration::from_secs(30)).await;
    assert_eq!(platform.wait_final(&c, Duration::from_secs(10)).await["status"], "succeeded");
    let mut after = containers(&id, "nap");
    let mut replaced = replaced;
    after.sort();
    replaced.sort();
    assert_eq!(after, replaced, "no container started or lost across the restart");
}

#[tokio::test]
async fn autoscales_up_under_a_burst_and_down_when_idle() {
    let image = shell_image();
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let platform = Platform::start(1, &[], &["--worker-id", &id, "--scale-down-window", "3s"]).await;
    platform
        .deploy(json!({"service": "burst", "image": image, "envProcess": "sh -c 'sleep 2; cat'",
                       "scale": {"min": 1, "max": 4, "target": 1}, "async": {"maxInflight": 1}}))
        .await;
    wait_containers(&platform, &id, "burst", 1, Duration::from_secs(60)).await;
    let receiver = CallbackReceiver::start().await;
    for _ in 0..12 {
        platform.call_async("burst", "x", Some(&receiver.url)).await;
    }
    let start = Instant::now();
    let mut peak = 0;
    while receiver.received().len() < 12 {
        peak = peak.max(containers(&id, "burst").len());
        assert!(start.elapsed() < Duration::from_secs(90), "only {} of 12 done", receiver.received().len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(peak, 4, "the burst scales to scale.max");
    wait_containers(&platform, &id, "burst", 1, Duration::from_secs(30)).await;
}

#[tokio::test]
async fn secrets_reach_only_their_function_and_logs_stream() {
    let image = shell_image();
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let platform = Platform::start(1, &[], &["--worker-id", &id]).await;
    let secrets = platform.url("/system/secrets");
    let r = platform.http.post(&secrets).json(&json!({"name": "api-key", "value": "s3cr3t-one"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = platform.http.post(&secrets).json(&json!({"name": "api-key", "value": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let r = platform.http.post(&secrets).json(&json!({"name": "../etc", "value": "x"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let listed = platform.http.get(&secrets).send().await.unwrap().text().await.unwrap();
    assert_eq!(listed, r#"[{"name":"api-key","namespace":"openfaas-fn"}]"#, "names only, never values");

    let reader = |name: &str, secrets: Value| {
        json!({"service": name, "image": image, "secrets": secrets,
               "envProcess": "sh -c 'echo reading-the-key >&2; cat /var/openfaas/secrets/api-key'"})
    };
    let r =
        platform.http.post(platform.url("/system/functions")).json(&reader("x", json!(["nope"]))).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("secrets"));
    platform.deploy(reader("holder", json!(["api-key"]))).await;
    platform.deploy(reader("other", json!([]))).await;
    wait_containers(&platform, &id, "holder", 1, Duration::from_secs(60)).await;
    wait_containers(&platform, &id, "other", 1, Duration::from_secs(60)).await;
    assert_eq!(sync_call(&platform, "holder", "").await, (200, "s3cr3t-one".to_owned()));
    let (status, _) = sync_call(&platform, "other", "").await;
    assert_eq!(status, 500, "a function without the secret cannot read it");

    // A changed secret reaches the running function.
    let r = platform.http.put(&secrets).json(&json!({"name": "api-key", "value": "s3cr3t-two"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let start = Instant::now();
    while sync_call(&platform, "holder", "").await.1 != "s3cr3t-two" {
        assert!(start.elapsed() < Duration::from_secs(10), "secret update not seen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Another namespace's function of the same name mounts its own namespace's secret of the same name.
    let r =
        platform.http.post(platform.url("/system/namespace/")).json(&json!({"name": "team-a"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let theirs = json!({"name": "api-key", "namespace": "team-a", "value": "team-a-key"});
    assert_eq!(platform.http.post(&secrets).json(&theirs).send().await.unwrap().status(), 201);
    let mut spec = reader("holder", json!(["api-key"]));
    spec["namespace"] = json!("team-a");
    platform.deploy(spec).await;
    let start = Instant::now();
    loop {
        match sync_call(&platform, "holder.team-a", "").await {
            (200, text) => {
                assert_eq!(text, "team-a-key");
                break;
            }
            other => assert!(start.elapsed() < Duration::from_secs(60), "team-a's holder never answered: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(sync_call(&platform, "holder", "").await, (200, "s3cr3t-two".to_owned()));

    // Logs: the container's lines, through gateway and worker.
    let logs = platform.url("/system/logs?name=holder&tail=50");
    let r = platform.http.get(&logs).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["text"].as_str().unwrap().contains("watchdog listening")), "{text}");
    assert!(lines.iter().all(|l| l["name"] == "holder" && !l["timestamp"].as_str().unwrap().is_empty()), "{text}");
    let calls = lines.iter().filter(|l| l["text"].as_str().unwrap().contains(" call")).count();
    assert!(calls >= 2, "{text}");
    // A successful call's stderr is in the container log too.
    assert!(lines.iter().any(|l| l["text"].as_str().unwrap().contains("stderr: reading-the-key")), "{text}");
    // `tail` counts lines of the merged stream: the newest three, in time order.
    let r = platform.http.get(platform.url("/system/logs?name=holder&tail=3")).send().await.unwrap();
    let tailed: Vec<Value> = r.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(tailed, lines[lines.len() - 3..], "{text}");
    let r = platform.http.get(platform.url("/system/logs?name=ghost")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Following: a new call's lines (its stderr, then the watchdog's line) arrive on the open stream.
    let mut follow =
        platform.http.get(platform.url("/system/logs?name=holder&follow=true&tail=0")).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    sync_call(&platform, "holder", "").await;
    let mut followed = String::new();
    while !followed.contains(" call") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), follow.chunk()).await;
        let chunk = chunk.unwrap_or_else(|_| panic!("no call line followed; so far: {followed}")).unwrap();
        followed.push_str(&String::from_utf8_lossy(&chunk.expect("the stream stays open")));
    }
    assert!(followed.contains("stderr: reading-the-key"), "{followed}");
    drop(follow);

    for log in [platform.gateway.log_text(), platform.workers[0].log_text()] {
        assert!(!log.contains("s3cr3t"), "a secret value was logged");
    }
}

#[tokio::test]
async fn colourise_turns_a_grayscale_image_into_colour_with_the_same_brightness() {
    let examples = std::path::Path::new(env!("CARGO_BIN_EXE_sluice")).parent().unwrap().join("examples");
    let exe = examples.join("colourise");
    assert!(exe.is_file(), "{} is built by cargo test", exe.display());
    let tag = "sluice-test/colourise:latest";
    let out =
        Command::new(env!("CARGO_BIN_EXE_sluice")).args(["build", exe.to_str().unwrap(), "-t", tag]).output().unwrap();
    assert!(out.status.success(), "sluice build: {}", String::from_utf8_lossy(&out.stderr));
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let platform = Platform::start(1, &[], &["--worker-id", &id]).await;
    platform.deploy(json!({"service": "colourise", "image": tag})).await;
    wait_containers(&platform, &id, "colourise", 1, Duration::from_secs(60)).await;

    // A horizontal gray ramp, as PNG.
    let gray = image::GrayImage::from_fn(256, 16, |x, _| image::Luma([x as u8]));
    let mut png = std::io::Cursor::new(Vec::new());
    gray.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let receiver = CallbackReceiver::start().await;
    let r = platform
        .http
        .post(platform.url("/async-function/colourise"))
        .header("X-Callback-Url", &receiver.url)
        .header("Content-Type", "image/png")
        .body(png.into_inner())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let got = receiver.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(got[0].headers["x-function-status"], "200");
    let colour = image::load_from_memory(&got[0].body).expect("a valid image").to_rgb8();
    assert_eq!(colour.dimensions(), (256, 16));
    let mut coloured = 0;
    for (x, _, pixel) in colour.enumerate_pixels() {
        let [r, g, b] = pixel.0.map(f32::from);
        let luminance = 0.299 * r + 0.587 * g + 0.114 * b;
        assert!((luminance - x as f32).abs() <= 3.0, "brightness kept at x={x}: {luminance}");
        if (r - g).abs().max((g - b).abs()) > 12.0 {
            coloured += 1;
        }
    }
    assert!(coloured > 256 * 16 / 2, "most pixels carry colour: {coloured}");

    let (status, body) = sync_call(&platform, "colourise", "not an image").await;
    assert_eq!(status, 500);
    assert!(body.contains("not a PNG or JPEG"), "{body}");
}

#[tokio::test]
async fn read_only_root_and_the_cli_for_scale_and_logs() {
    let image = shell_image();
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let platform = Platform::start(1, &[], &["--worker-id", &id]).await;
    platform
        .deploy(json!({"service": "ro", "image": image, "readOnlyRootFilesystem": true,
                       "envProcess": "sh -c '(echo x > /probe && echo root-writable) || echo root-read-only; echo scratch > /tmp/t && cat /tmp/t'"}))
        .await;
    wait_containers(&platform, &id, "ro", 1, Duration::from_secs(60)).await;
    let (status, body) = sync_call(&platform, "ro", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "root-read-only\nscratch\n");

    let cli = async |args: &[&str]| {
        let out = platform.cli().args(args).output().await.unwrap();
        assert!(out.status.success(), "sluice {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let scaled = cli(&["fn", "scale", "ro", "2"]).await;
    assert!(scaled.contains("2 desired, 2 available"), "{scaled}");
    assert_eq!(containers(&id, "ro").len(), 2);
    let logs = cli(&["fn", "logs", "ro", "--tail", "20"]).await;
    assert_eq!(logs.matches("watchdog listening").count(), 2, "one start line per replica:\n{logs}");
    // The API's count follows the worker's report.
    let start = Instant::now();
    while function_status(&platform, "ro").await["availableReplicas"] != 2 {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = cli(&["fn", "list"]).await;
    let row = listed.lines().find(|l| l.starts_with("ro ")).unwrap_or_default().to_owned();
    assert!(row.split_whitespace().nth(3) == Some("2"), "replicas column: {listed}");
}

/// A stack file's `com.openfaas.scale.min: 2` and `.max: 3`, as faas-cli deploys them, as labels.
#[tokio::test]
async fn openfaas_scale_labels_set_the_replica_range() {
    let image = shell_image();
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let platform = Platform::start(1, &[], &["--worker-id", &id, "--docker", "on"]).await;
    let labels = json!({"com.openfaas.scale.min": "2", "com.openfaas.scale.max": "3"});
    platform.deploy(json!({"service": "ranged", "image": image, "envProcess": "cat", "labels": labels})).await;
    wait_containers(&platform, &id, "ranged", 2, Duration::from_secs(60)).await;
    let r = platform
        .http
        .post(platform.url("/system/scale-function/ranged"))
        .json(&json!({"serviceName": "ranged", "namespace": "openfaas-fn", "replicas": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["desired"], 3, "a scale past the max label stops at it: {answer}");
    wait_containers(&platform, &id, "ranged", 3, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(containers(&id, "ranged").len(), 3, "never past the max label");

    let bad = json!({"service": "bad", "image": image, "labels": {"com.openfaas.scale.type": "rps"}});
    let r = platform.http.post(platform.url("/system/functions")).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("com.openfaas.scale.type"));
}

/// The image of `examples/slow_start.rs`, built once for the tests that use it.
fn slow_start_image() -> &'static str {
    static BUILT: std::sync::Once = std::sync::Once::new();
    const IMAGE: &str = "sluice-test/slow-start:latest";
    BUILT.call_once(|| {
        let examples = std::path::Path::new(env!("CARGO_BIN_EXE_sluice")).parent().unwrap().join("examples");
        let server = examples.join("slow_start");
        assert!(server.is_file(), "cargo builds examples/slow_start.rs with the tests");
        let server = server.to_str().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["build", server, "-t", IMAGE, "--watchdog", server])
            .output()
            .unwrap();
        assert!(out.status.success(), "sluice build: {}", String::from_utf8_lossy(&out.stderr));
    });
    IMAGE
}

/// A server that listens at once but is ready only seconds later (`examples/slow_start.rs`), in an image
/// with a HEALTHCHECK and in one with only `/_/ready`: no call may fail or use up an attempt while it starts.
#[tokio::test]
async fn replicas_take_calls_only_once_ready() {
    let base = slow_start_image();
    let context = tempfile::tempdir().unwrap();
    let dockerfile = format!(
        "FROM {base}\nHEALTHCHECK --interval=1s --timeout=2s --retries=1 CMD [\"/usr/local/bin/sluice-watchdog\", \"--probe\"]\n"
    );
    std::fs::write(context.path().join("Dockerfile"), dockerfile).unwrap();
    let checked = "sluice-test/slow-start-healthcheck:latest";
    let out = Command::new("docker")
        .args(["build", "-q", "-t", checked, context.path().to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(out.status.success(), "docker build: {}", String::from_utf8_lossy(&out.stderr));

    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let platform = Platform::start(1, &[], &["--worker-id", &id, "--docker", "on"]).await;
    let receiver = CallbackReceiver::start().await;
    for (function, image) in [("by-healthcheck", checked), ("by-ready-path", base)] {
        let spec = json!({"service": function, "image": image, "envVars": {"READY_AFTER": "4"},
                          "async": {"retry": {"attempts": 1}}});
        platform.deploy(spec).await;
        // At once, while the replica starts: each call waits for it rather than failing.
        let call = platform.call_async(function, "queued", Some(&receiver.url)).await;
        let start = Instant::now();
        let (status, body) = loop {
            // Only "no worker serves it yet" is worth asking again; a 500 from a replica not yet ready is not.
            let (status, body) = sync_call(&platform, function, "direct").await;
            if status != 503 || !body.contains("no worker") || start.elapsed() > Duration::from_secs(10) {
                break (status, body);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!((status, body.as_str()), (200, "ready:direct"), "{function}");
        let record = platform.wait_final(&call, Duration::from_secs(60)).await;
        assert_eq!((record["status"].as_str(), record["attempts"].as_u64()), (Some("succeeded"), Some(1)), "{record}");
    }
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    assert!(got.iter().all(|cb| cb.body.as_ref() == b"ready:queued"));
}

/// A replica that stops being ready (`/_/pause` of `examples/slow_start.rs` makes `/_/ready` answer 503 and
/// calls 500 for a while) leaves rotation within a few seconds, so calls meanwhile all go to the other one,
/// and comes back, the same container, once it is ready again.
#[tokio::test]
async fn a_replica_that_stops_being_ready_leaves_rotation_until_ready_again() {
    let image = slow_start_image();
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let platform = Platform::start(1, &[], &["--worker-id", &id, "--docker", "on"]).await;
    platform
        .deploy(json!({"service": "flaky", "image": image, "envVars": {"READY_AFTER": "0"},
                       "scale": {"min": 2, "max": 2}}))
        .await;
    let before = wait_containers(&platform, &id, "flaky", 2, Duration::from_secs(60)).await;
    let available = async || function_status(&platform, "flaky").await["availableReplicas"].as_u64().unwrap_or(0);
    let start = Instant::now();
    while available().await != 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", function_status(&platform, "flaky").await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let r = platform.http.post(platform.url("/function/flaky/_/pause?seconds=15")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "paused");
    let paused_at = Instant::now();
    while available().await != 1 {
        assert!(
            paused_at.elapsed() < Duration::from_secs(10),
            "the unready replica stayed in rotation; worker log:\n{}",
            platform.workers[0].log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Out of rotation: every call goes to the ready replica.
    for i in 0..20 {
        let (status, body) = sync_call(&platform, "flaky", &i.to_string()).await;
        assert_eq!((status, body), (200, format!("ready:{i}")), "call {i}");
    }
    assert!(paused_at.elapsed() < Duration::from_secs(15), "the calls ran while the replica was paused");
    // Ready again: back in rotation, the same container.
    while available().await != 2 {
        assert!(paused_at.elapsed() < Duration::from_secs(45), "the replica did not come back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut after = containers(&id, "flaky");
    let mut before = before;
    after.sort();
    before.sort();
    assert_eq!(after, before, "no container was replaced");
    assert!(platform.workers[0].log_text().contains("replica no longer ready; out of rotation"));
}

/// `usage` of a container function, as `faas-cli describe` shows it: the memory its replicas hold, and the CPU
/// they used between two of the worker's reports (millicores).
#[tokio::test]
async fn container_usage_is_measured() {
    let image = shell_image();
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let platform = Platform::start(1, &[], &["--worker-id", &id, "--docker", "on"]).await;
    platform.deploy(json!({"service": "busy", "image": image, "envProcess": "cat"})).await;
    wait_containers(&platform, &id, "busy", 1, Duration::from_secs(60)).await;
    let start = Instant::now();
    let mut cpu = 0.0;
    while cpu <= 0.0 {
        // Calls between two reports use CPU in the replica (a process per call, and the watchdog's work).
        for _ in 0..10 {
            assert_eq!(sync_call(&platform, "busy", "x").await, (200, "x".to_owned()));
        }
        let status = function_status(&platform, "busy").await;
        let usage = &status["usage"];
        if usage.is_object() {
            assert!(usage["totalMemoryBytes"].as_f64().unwrap() > 0.0, "{status}");
            cpu = usage["cpu"].as_f64().unwrap();
            assert!(cpu >= 0.0, "{status}");
        }
        assert!(start.elapsed() < Duration::from_secs(40), "no CPU measured: {status}");
    }
    // Functions without replicas of their own report none.
    platform.deploy(json!({"service": "local", "envProcess": "cat"})).await;
    assert!(function_status(&platform, "local").await.get("usage").is_none());
}

#[tokio::test]
async fn a_container_function_reports_progress_over_the_function_network() {
    let image = shell_image();
    let id = worker_id();
    let _cleanup = Cleanup(id.clone());
    let platform = Platform::start(1, &[], &["--worker-id", &id]).await;
    // A pause first, so the test's watcher is connected before the first report.
    let script = r#"sh -c 'sleep 1; for p in 20 60 100; do curl -sf -d "$p step $p" "$Http_X_Sluice_Progress_Url" || exit 7; sleep 1.2; done; env'"#;
    platform.deploy(json!({"service": "reporter", "image": image, "envProcess": script})).await;
    wait_containers(&platform, &id, "reporter", 1, Duration::from_secs(60)).await;
    let call_id = platform.call_async("reporter", "", None).await;
    let events = platform.call_events(&call_id, Duration::from_secs(60)).await;
    let percents: Vec<f64> = events
        .iter()
        .filter(|(name, _)| name == "progress")
        .map(|(_, record)| record["progress"]["percent"].as_f64().unwrap())
        .collect();
    assert_eq!(percents, [20.0, 60.0, 100.0], "{events:?}");
    let record = platform.record(&call_id).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["progress"]["message"], "step 100");
    // The URL the container was given is the function network's gateway, not the worker's loopback.
    let network_gateway =
        docker(&["network", "inspect", "sluice", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}"]);
    let env = completion_body(&platform, "reporter").await;
    assert!(
        env.contains(&format!("Http_X_Sluice_Progress_Url=http://{}:", network_gateway.trim())),
        "gateway {network_gateway}: {env}"
    );
}

/// The body of `function`'s latest completion event.
async fn completion_body(platform: &Platform, function: &str) -> String {
    let client = async_nats::connect(&platform.nats_url).await.unwrap();
    let stream = async_nats::jetstream::new(client).get_stream("SLUICE_RESULTS").await.unwrap();
    let last = stream.get_last_raw_message_by_subject(&format!("sluice.results.openfaas-fn.{function}")).await.unwrap();
    String::from_utf8_lossy(&last.payload).into_owned()
}
