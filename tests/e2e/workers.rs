//! Several workers share the work; a crashed worker's call completes elsewhere; SIGTERM drains.

use std::{collections::HashSet, time::Duration};

use serde_json::json;

use crate::support::{CallbackReceiver, Platform, Sluice, free_port};

#[tokio::test]
async fn two_workers_share_200_calls_and_none_runs_twice() {
    let mut platform = Platform::start(0, &[], &[]).await;
    let ports = [free_port(), free_port()];
    for port in ports {
        let listen = format!("127.0.0.1:{port}");
        platform.add_worker(&["--max-inflight", "4", "--metrics-listen", &listen]);
    }
    let runs = platform.logs.path().join("runs.txt");
    let script = format!("sh -c 'echo $Http_X_Call_Id >> {}; sleep 0.1'", runs.display());
    platform.deploy(json!({"service": "shared", "envProcess": script})).await;
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(platform.call_async("shared", "", None).await);
    }
    for id in &ids {
        let record = platform.wait_final(id, Duration::from_secs(120)).await;
        assert_eq!(record["status"], "succeeded", "{record}");
    }
    let lines: Vec<String> = std::fs::read_to_string(&runs).unwrap().lines().map(str::to_owned).collect();
    let unique: HashSet<&String> = lines.iter().collect();
    assert_eq!(lines.len(), 200, "every call ran exactly once");
    assert_eq!(unique.len(), 200);
    let mut per_worker = Vec::new();
    for port in ports {
        let text =
            platform.http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap().text().await.unwrap();
        per_worker.push(Platform::metric_sum(&text, "sluice_queue_calls_total{"));
    }
    assert_eq!(per_worker.iter().sum::<f64>(), 200.0, "{per_worker:?}");
    assert!(per_worker.iter().all(|n| *n > 0.0), "both workers took calls: {per_worker:?}");
}

#[tokio::test]
async fn call_of_a_killed_worker_completes_on_another() {
    let mut platform = Platform::start(1, &[], &["--ack-wait", "2s"]).await;
    let receiver = CallbackReceiver::start().await;
    platform.deploy(json!({"service": "slow", "envProcess": "sh -c 'sleep 3; echo finished'"})).await;
    let call_id = platform.call_async("slow", "", Some(&receiver.url)).await;
    platform.wait_running(&call_id).await;
    platform.workers[0].kill();
    platform.add_worker(&["--ack-wait", "2s"]);
    let got = receiver.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(&got[0].body[..], b"finished\n");
    assert_eq!(got[0].headers["x-sluice-attempt"], "2", "the second delivery ran it");
    let record = platform.wait_final(&call_id, Duration::from_secs(10)).await;
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["attempts"], 2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), 1, "one callback only");
}

#[tokio::test]
async fn sigterm_lets_a_running_call_finish() {
    let mut platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    platform.deploy(json!({"service": "drain", "envProcess": "sh -c 'sleep 2; echo drained'"})).await;
    let call_id = platform.call_async("drain", "", Some(&receiver.url)).await;
    platform.wait_running(&call_id).await;
    assert!(platform.workers[0].terminate(Duration::from_secs(30)).await, "worker exits cleanly after draining");
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(&got[0].body[..], b"drained\n");
    assert_eq!(platform.record(&call_id).await["status"], "succeeded");
}

#[tokio::test]
async fn calls_still_running_after_the_grace_period_are_handed_back() {
    let mut platform = Platform::start(1, &[], &["--grace-period", "500ms"]).await;
    let receiver = CallbackReceiver::start().await;
    let runs = platform.logs.path().join("runs.txt");
    let script = format!("sh -c 'echo run >> {}; sleep 3; echo second'", runs.display());
    platform.deploy(json!({"service": "handback", "envProcess": script})).await;
    let call_id = platform.call_async("handback", "", Some(&receiver.url)).await;
    platform.wait_running(&call_id).await;
    assert!(platform.workers[0].terminate(Duration::from_secs(30)).await, "worker exits cleanly");
    assert!(receiver.received().is_empty(), "the interrupted attempt sent no callback");
    platform.add_worker(&[]);
    let got = receiver.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(&got[0].body[..], b"second\n");
    assert_eq!(got[0].headers["x-sluice-attempt"], "2");
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 2);
}

/// PIDs of `parent`'s children named `name`.
fn children(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, tail)) = stat.rsplit_once(") ") else { continue };
        let comm = head.split_once(" (").map(|(_, c)| c).unwrap_or_default();
        let ppid: u32 = tail.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent && comm == name {
            found.push(entry.file_name().to_string_lossy().parse().unwrap());
        }
    }
    found
}

/// Whether `pid` runs (a zombie nobody reaped does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit_once(") ").is_some_and(|(_, t)| !t.starts_with('Z')))
        .unwrap_or(false)
}

#[tokio::test]
async fn the_embedded_nats_server_dies_with_sluice_up_and_its_store_is_locked() {
    let logs = tempfile::tempdir().unwrap();
    let data = logs.path().join("data");
    let data = data.to_str().unwrap();
    let up_args = |port: u16| {
        let listen = format!("127.0.0.1:{port}");
        vec![
            "up".to_owned(),
            "--listen".into(),
            listen,
            "--data-dir".into(),
            data.into(),
            "--docker".into(),
            "off".into(),
        ]
    };
    let args = up_args(free_port());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut up = Sluice::spawn(&args, logs.path(), "up");
    up.wait_for_log("sluice is up", Duration::from_secs(60)).await;
    let servers = children(up.pid(), "nats-server");
    assert_eq!(servers.len(), 1, "one embedded nats-server");

    // A second `sluice up` on the same store refuses to start.
    let second = up_args(free_port());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice")).args(&second).output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is in use by another sluice up"), "{err}");

    // Killed outright, `sluice up` takes its server with it, and a new one starts on the same store.
    up.kill();
    let start = std::time::Instant::now();
    while alive(servers[0]) {
        assert!(start.elapsed() < Duration::from_secs(15), "nats-server {} outlived sluice up", servers[0]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let args = up_args(free_port());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let again = Sluice::spawn(&args, logs.path(), "up-again");
    again.wait_for_log("sluice is up", Duration::from_secs(60)).await;
}

/// More functions than nats-server 2.15 lets a stream hold consumers by default (1,000): each has its durable
/// consumer on the invocations stream, and the last deployed is served like the first.
#[tokio::test]
async fn more_than_a_thousand_functions_are_each_served() {
    use futures::StreamExt;
    let platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    let deployed = futures::stream::iter(0..1_050)
        .map(|i| {
            let spec = json!({"service": format!("many-{i}"), "envProcess": "cat"});
            platform.http.post(platform.url("/system/functions")).json(&spec).send()
        })
        .buffer_unordered(32)
        .filter(|r| std::future::ready(r.as_ref().is_ok_and(|r| r.status().is_success())))
        .count()
        .await;
    assert_eq!(deployed, 1_050);
    for name in ["many-0", "many-1049"] {
        platform.call_async(name, "served", Some(&receiver.url)).await;
    }
    let got = receiver.wait_for(2, Duration::from_secs(120)).await;
    assert!(got.iter().all(|r| &r.body[..] == b"served"));
}

/// Whether `function`'s consumer is on the server.
async fn has_consumer(platform: &Platform, function: &str) -> bool {
    let client = async_nats::connect(&platform.nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let function = sluice_contracts::FunctionRef::new(sluice_contracts::names::DEFAULT_NAMESPACE, function);
    let stream = js.get_stream(sluice_contracts::names::invocations_stream(&function)).await.unwrap();
    stream.consumer_info(sluice_contracts::names::invoke_consumer(&function)).await.is_ok()
}

async fn wait_without_consumer(platform: &Platform, function: &str) {
    let start = std::time::Instant::now();
    while has_consumer(platform, function).await {
        assert!(start.elapsed() < Duration::from_secs(20), "{function}'s consumer stayed after it went idle");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_idle_functions_consumer_is_let_go_and_its_next_call_brings_it_back() {
    // Idle after 1 s: a function's queue is polled that long without a call, then its consumer is let go.
    let platform = Platform::start(2, &[], &["--idle-after", "1s"]).await;
    let receiver = CallbackReceiver::start().await;
    platform.deploy(json!({"service": "napper", "envProcess": "cat"})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!has_consumer(&platform, "napper").await, "a function never called has no consumer");

    for round in 0..3 {
        let started = std::time::Instant::now();
        let id = platform.call_async("napper", "awake", Some(&receiver.url)).await;
        let got = receiver.wait_for(round + 1, Duration::from_secs(20)).await;
        assert_eq!(&got[round].body[..], b"awake");
        let record = platform.wait_final(&id, Duration::from_secs(10)).await;
        assert_eq!((record["status"].as_str(), record["attempts"].as_u64()), (Some("succeeded"), Some(1)));
        assert!(started.elapsed() < Duration::from_secs(10), "round {round}");
        wait_without_consumer(&platform, "napper").await;
    }

    // A call waiting out a retry delay longer than the idle time keeps its function polled: the consumer
    // holding the delay stays, and the retry comes when it is due, not before and not never.
    let spec = json!({"service": "flops", "envProcess": "sh -c 'cat >/dev/null; exit 1'",
        "async": {"retry": {"attempts": 2, "minWait": "4s", "maxWait": "4s", "codes": [500]}}});
    platform.deploy(spec).await;
    let started = std::time::Instant::now();
    let id = platform.call_async("flops", "x", Some(&receiver.url)).await;
    let record = platform.wait_final(&id, Duration::from_secs(30)).await;
    assert_eq!((record["status"].as_str(), record["attempts"].as_u64()), (Some("failed"), Some(2)), "{record}");
    assert!(started.elapsed() >= Duration::from_secs(4), "the retry waited its delay: {:?}", started.elapsed());
    receiver.wait_for(4, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_function_called_again_and_again_is_never_taken_for_idle() {
    // Calls one after another, each well inside the idle time: the function's polls never end without a call.
    // A loop that took a poll's end (the poll that brought a call) for the end of all of them would go idle
    // after every call and pause before polling again; throughput, not any one call, would show it.
    let mut platform = Platform::start(0, &[], &[]).await;
    let port = free_port();
    platform.add_worker(&["--idle-after", "5s", "--metrics-listen", &format!("127.0.0.1:{port}")]);
    platform.deploy(json!({"service": "steady", "envProcess": "cat"})).await;
    let idle_count = || async {
        let text = platform.http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
        Platform::metric_sum(
            &text.text().await.unwrap(),
            "sluice_queue_idle_total{function_name=\"steady.openfaas-fn\"}",
        )
    };
    for _ in 0..30 {
        let id = platform.call_async("steady", "again", None).await;
        assert_eq!(platform.wait_final(&id, Duration::from_secs(30)).await["status"], "succeeded");
    }
    assert_eq!(idle_count().await, 0.0, "the function went idle between calls");
    // Left alone, it does go idle, and the count shows it.
    let start = std::time::Instant::now();
    while idle_count().await < 1.0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the function never went idle");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_consumer_made_before_idle_functions_let_theirs_go_goes_when_idle_too() {
    // A function's consumer as releases before made it: no inactive threshold, so it would stay for ever.
    let mut platform = Platform::start(0, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    platform.deploy(json!({"service": "veteran", "envProcess": "cat"})).await;
    let js = async_nats::jetstream::new(async_nats::connect(&platform.nats_url).await.unwrap());
    let function = sluice_contracts::FunctionRef::new(sluice_contracts::names::DEFAULT_NAMESPACE, "veteran");
    let stream = js.get_stream(sluice_contracts::names::invocations_stream(&function)).await.unwrap();
    let config = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some(sluice_contracts::names::invoke_consumer(&function)),
        filter_subject: sluice_contracts::names::invoke_subject(&function),
        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
        ..Default::default()
    };
    stream.create_consumer(config).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(has_consumer(&platform, "veteran").await, "with no worker and no threshold, the consumer stays");

    platform.add_worker(&["--idle-after", "1s"]);
    wait_without_consumer(&platform, "veteran").await;
    // And the function still takes calls, its consumer made again as any idle function's is.
    let id = platform.call_async("veteran", "still here", Some(&receiver.url)).await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(&got[0].body[..], b"still here");
    let record = platform.wait_final(&id, Duration::from_secs(10)).await;
    assert_eq!(record["status"], "succeeded");
}
