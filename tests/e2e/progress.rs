//! Live calls: functions report progress to their call's own URL with nothing but curl; the record, the
//! event stream, `sluice call watch` and the progress events show it; heartbeats catch hung calls; forged or
//! malformed reports are refused.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Platform, error_of};

/// A process function that reports 0, 25, … 100 a little over a second apart (the record takes one report a
/// second), after a pause that lets a watcher connect first.
const STAGES: &str = r#"sh -c 'sleep 1; for p in 0 25 50 75 100; do curl -sf -d "$p stage $p" "$Http_X_Sluice_Progress_Url" || exit 9; sleep 1.2; done; echo done'"#;

fn percents(events: &[(String, Value)]) -> Vec<f64> {
    events
        .iter()
        .filter(|(name, _)| name == "progress")
        .map(|(_, r)| r["progress"]["percent"].as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_process_function_reports_progress_seen_in_the_record_the_stream_and_the_cli() {
    let platform = Platform::start(1, &[], &[]).await;
    platform.deploy(json!({"service": "stages", "envProcess": STAGES})).await;
    let call_id = platform.call_async("stages", "", None).await;
    let mut watch = platform.cli();
    watch.args(["call", "watch", &call_id, "--plain"]);
    let watch = watch.output();
    let (events, watched) = tokio::join!(platform.call_events(&call_id, Duration::from_secs(60)), watch);

    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names[0], "state", "the current state comes first: {names:?}");
    assert_eq!(&names[names.len() - 2..], ["succeeded", "end"], "{names:?}");
    assert_eq!(percents(&events), [0.0, 25.0, 50.0, 75.0, 100.0], "every stage, in order: {names:?}");
    let fifty = events.iter().find(|(_, r)| r["progress"]["percent"] == 50.0).unwrap();
    assert_eq!(fifty.1["progress"]["message"], "stage 50");
    assert_eq!(fifty.1["status"], "running");
    assert!(events[..events.len() - 1].iter().all(|(_, r)| r["callId"] == call_id.as_str() && r["attempts"].is_u64()));
    assert_eq!(events.last().unwrap().1["status"], "succeeded");

    let record = platform.record(&call_id).await;
    assert_eq!(record["progress"]["percent"], 100.0);
    assert_eq!(record["progress"]["message"], "stage 100");
    assert!(record["heartbeatAt"].as_str().unwrap() <= record["finishedAt"].as_str().unwrap());

    let watched = watched.unwrap();
    let stderr = String::from_utf8_lossy(&watched.stderr);
    assert!(watched.status.success(), "sluice call watch: {stderr}");
    assert!(stderr.contains("progress 50% running (attempt 1) · stage 50"), "{stderr}");
    assert!(stderr.contains("succeeded"), "{stderr}");
    let shown: Value = serde_json::from_slice(&watched.stdout).expect("the final record as JSON");
    assert_eq!(shown["status"], "succeeded");

    // The CLI's get shows it too, and the progress events are stored beside the completion events.
    let got = platform.cli().args(["call", "get", &call_id]).output().await.unwrap();
    let got: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(got["progress"]["percent"], 100.0);
    let client = async_nats::connect(&platform.nats_url).await.unwrap();
    let stream = async_nats::jetstream::new(client).get_stream("SLUICE_RESULTS").await.unwrap();
    let last = stream.get_last_raw_message_by_subject("sluice.progress.openfaas-fn.stages").await.unwrap();
    assert_eq!(last.headers.get("ce-type").unwrap().as_str(), "sluice.invocation.progress");
    assert_eq!(last.headers.get("X-Call-Id").unwrap().as_str(), call_id);
    let body: Value = serde_json::from_slice(&last.payload).unwrap();
    assert_eq!(body["percent"], 100.0);

    // `invoke --async --wait` follows the same way.
    let out = platform.cli().args(["invoke", "stages", "--async", "--wait", "--plain"]).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("100% running (attempt 1) · stage 100"), "{stderr}");
}

#[tokio::test]
async fn a_silent_call_is_stopped_by_its_heartbeat_timeout_and_a_reporting_one_runs_on() {
    let platform = Platform::start(1, &[], &[]).await;
    let retry = json!({"attempts": 2, "minWait": "1s", "maxWait": "1s"});
    let wedged = r#"sh -c 'curl -sf -d "10 started" "$Http_X_Sluice_Progress_Url"; sleep 3600'"#;
    platform
        .deploy(json!({"service": "wedged", "envProcess": wedged,
                       "async": {"timeout": "1h", "heartbeatTimeout": "2s", "retry": retry}}))
        .await;
    let steady =
        r#"sh -c 'for i in 1 2 3 4 5 6 7; do curl -sf -d "$i" "$Http_X_Sluice_Progress_Url"; sleep 1; done; echo ok'"#;
    platform.deploy(json!({"service": "steady", "envProcess": steady, "async": {"heartbeatTimeout": "2s"}})).await;

    let clock = Instant::now();
    let wedged_call = platform.call_async("wedged", "", None).await;
    let steady_call = platform.call_async("steady", "", None).await;
    let failed = platform.wait_final(&wedged_call, Duration::from_secs(60)).await;
    let took = clock.elapsed();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["attempts"], 2, "a hung attempt is retried per the policy: {failed}");
    assert_eq!(failed["functionStatus"], 504);
    assert!(failed["error"].as_str().unwrap().contains("heartbeatTimeout"), "{failed}");
    assert_eq!(failed["progress"]["message"], "started");
    assert!(took < Duration::from_secs(60), "stopped within the heartbeat timeout, not the 1h timeout");

    let done = platform.wait_final(&steady_call, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "reporting every second outlives a 2s heartbeat timeout: {done}");
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["progress"]["percent"], 7.0);
}

#[tokio::test]
async fn forged_malformed_and_late_reports_are_refused_and_change_nothing() {
    let platform = Platform::start(1, &[], &[]).await;
    let dir = platform.logs.path();
    let gate = dir.join("open");
    let script = format!(
        "sh -c 'echo \"$Http_X_Sluice_Progress_Url\" > {dir}/$Http_X_Call_Id.url; while [ ! -e {gate} ]; do sleep 0.05; done; echo ok'",
        dir = dir.display(),
        gate = gate.display()
    );
    platform.deploy(json!({"service": "holder", "envProcess": script})).await;
    let caller_sent = platform
        .http
        .post(platform.url("/async-function/holder"))
        .header("X-Sluice-Progress-Url", "http://attacker.example/steal")
        .send()
        .await
        .unwrap();
    assert_eq!(caller_sent.status(), 202);
    let a = caller_sent.headers()["x-call-id"].to_str().unwrap().to_owned();
    let b = platform.call_async("holder", "", None).await;
    let url_of = |id: &str| {
        let file = dir.join(format!("{id}.url"));
        async move {
            let start = Instant::now();
            loop {
                if let Ok(url) = std::fs::read_to_string(&file)
                    && !url.trim().is_empty()
                {
                    return url.trim().to_owned();
                }
                assert!(start.elapsed() < Duration::from_secs(30), "{} never written", file.display());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let (url_a, url_b) = (url_of(&a).await, url_of(&b).await);
    assert!(url_a.starts_with("http://127.0.0.1:") && url_a.contains(&format!("/progress/{a}/")), "{url_a}");
    let secret_b = url_b.rsplit('/').next().unwrap();
    let http = reqwest::Client::new();
    let post = |url: String, body: Vec<u8>| {
        let http = http.clone();
        async move { http.post(url).body(body).send().await.unwrap() }
    };

    // Another call's secret, a made-up call, bad percentages, long messages, bodies and JSON.
    let forged = url_a.replace(url_a.rsplit('/').next().unwrap(), secret_b);
    let (status, error) = error_of(post(forged, b"99".to_vec()).await).await;
    assert_eq!((status, error.contains("does not authorise")), (403, true), "{error}");
    let unknown = url_a.replace(&a, "no-such-call");
    let (status, error) = error_of(post(unknown, b"5".to_vec()).await).await;
    assert_eq!((status, error.contains("not running")), (404, true), "{error}");
    for (body, wanted) in [
        (b"150".to_vec(), "from 0 to 100"),
        (br#"{"percent": -3}"#.to_vec(), "from 0 to 100"),
        (br#"{"percent": "half"}"#.to_vec(), "invalid progress report"),
        (format!("5 {}", "m".repeat(5000)).into_bytes(), "at most 4096"),
    ] {
        let (status, error) = error_of(post(url_a.clone(), body).await).await;
        assert_eq!(status, 400, "{error}");
        assert!(error.contains(wanted), "{error}");
    }
    let (status, _) = error_of(post(url_a.clone(), vec![b'1'; 9000]).await).await;
    assert_eq!(status, 413);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for id in [&a, &b] {
        let record = platform.record(id).await;
        assert!(record.get("progress").is_none() && record.get("heartbeatAt").is_none(), "unchanged: {record}");
    }

    // The real report lands on its own call only.
    assert_eq!(post(url_a.clone(), br#"{"percent": 30, "message": "a at 30"}"#.to_vec()).await.status(), 204);
    let start = Instant::now();
    while platform.record(&a).await["progress"]["percent"] != 30.0 {
        assert!(start.elapsed() < Duration::from_secs(10), "the report never reached the record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(platform.record(&b).await.get("progress").is_none());

    // A watcher that goes away leaves nothing behind.
    let events = platform.http.get(platform.url(&format!("/system/calls/{a}/events"))).send().await.unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(watchers(&platform).await, 1.0);
    drop(events);
    let start = Instant::now();
    while watchers(&platform).await != 0.0 {
        assert!(start.elapsed() < Duration::from_secs(30), "a gone watcher is still counted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) =
        error_of(platform.http.get(platform.url("/system/calls/nope/events")).send().await.unwrap()).await;
    assert_eq!(status, 404);

    // A synchronous call has no progress URL, and one a caller sends never reaches the function.
    let show = r#"sh -c 'printf "[%s]" "$Http_X_Sluice_Progress_Url"'"#;
    platform.deploy(json!({"service": "show-url", "envProcess": show})).await;
    let sync = platform
        .http
        .post(platform.url("/function/show-url"))
        .header("X-Sluice-Progress-Url", "http://attacker.example/steal")
        .send()
        .await
        .unwrap();
    assert_eq!(sync.text().await.unwrap(), "[]");

    // Once the call is over, its URL takes nothing more.
    std::fs::write(&gate, "").unwrap();
    platform.wait_final(&a, Duration::from_secs(30)).await;
    let (status, _) = error_of(post(url_a, b"99".to_vec()).await).await;
    assert_eq!(status, 404);
    assert_eq!(platform.record(&a).await["progress"]["percent"], 30.0);
}

async fn watchers(platform: &Platform) -> f64 {
    let text = platform.http.get(platform.url("/metrics")).send().await.unwrap().text().await.unwrap();
    Platform::metric_sum(&text, "sluice_call_watchers")
}

#[tokio::test]
async fn a_chatty_function_costs_one_write_a_second_and_its_latest_report_wins() {
    let platform = Platform::start(1, &[], &[]).await;
    let chatty = r#"sh -c 'i=0; while [ $i -le 100 ]; do curl -sf -d "$i chatter" "$Http_X_Sluice_Progress_Url" || exit 9; i=$((i+1)); done; sleep 1.5; echo ok'"#;
    platform.deploy(json!({"service": "chatty", "envProcess": chatty})).await;
    let clock = Instant::now();
    let call_id = platform.call_async("chatty", "", None).await;
    let done = platform.wait_final(&call_id, Duration::from_secs(60)).await;
    let seconds = clock.elapsed().as_secs_f64();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"]["percent"], 100.0, "the latest report wins: {done}");

    use futures::StreamExt;
    let client = async_nats::connect(&platform.nats_url).await.unwrap();
    let stream = async_nats::jetstream::new(client).get_stream("SLUICE_RESULTS").await.unwrap();
    let mut subjects = stream.info_with_subjects("sluice.progress.openfaas-fn.chatty").await.unwrap();
    let mut events = 0;
    while let Some(subject) = subjects.next().await {
        events += subject.unwrap().1;
    }
    assert!(events >= 2, "101 reports make progress events: {events}");
    assert!((events as f64) <= seconds + 2.0, "{events} progress events in {seconds:.1} s: more than one a second");
}
