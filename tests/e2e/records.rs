//! Call records move queued → running → succeeded, and can be listed by function and status.

use std::time::Duration;

use serde_json::json;

use crate::support::Platform;

#[tokio::test]
async fn record_transitions_and_listing() {
    let platform = Platform::start(1, &[], &[]).await;
    let gate = platform.logs.path().join("open");
    // Each call waits until the test opens the gate, so every state can be observed.
    let script = format!("sh -c 'while [ ! -e {} ]; do sleep 0.05; done; echo ok'", gate.display());
    platform.deploy(json!({"service": "gated", "envProcess": script, "async": {"maxInflight": 1}})).await;
    let first = platform.call_async("gated", "", None).await;
    let second = platform.call_async("gated", "", None).await;
    platform.wait_running(&first).await;
    let queued = platform.record(&second).await;
    assert_eq!(queued["status"], "queued", "maxInflight 1 keeps the second call waiting: {queued}");
    assert_eq!(queued["attempts"], 0);
    let running = platform.record(&first).await;
    assert!(running["startedAt"].is_string() && running["finishedAt"].is_null());

    let listed = platform.list_calls("function=gated&status=queued").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["callId"], second.as_str());

    std::fs::write(&gate, "").unwrap();
    for id in [&first, &second] {
        let done = platform.wait_final(id, Duration::from_secs(30)).await;
        assert_eq!(done["status"], "succeeded");
        assert!(done["finishedAt"].as_str().unwrap() >= done["startedAt"].as_str().unwrap());
    }
    let all = platform.list_calls("function=gated").await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["callId"], second.as_str(), "newest first");
    let r = platform.http.get(platform.url("/system/calls?status=bogus")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = platform.http.get(platform.url("/system/calls/does-not-exist")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

/// `--calls-max-bytes` bounds the records by space, the oldest going first, and takes nothing from accepted work:
/// a queued call whose record went (the oldest of all, behind a backlog) still runs, and its record comes back.
#[tokio::test]
async fn capped_records_let_the_oldest_go_and_no_call_is_lost() {
    const CAP: u64 = 64 * 1024;
    let cap = ["--calls-max-bytes", "64KiB"];
    let mut platform = Platform::start(0, &cap, &cap).await;
    platform.deploy(json!({"service": "early", "envProcess": "cat"})).await;
    platform.deploy(json!({"service": "filler", "envProcess": "cat"})).await;
    let early = platform.call_async("early", "first of all", None).await;
    assert_eq!(platform.record(&early).await["status"], "queued");
    let mut fillers = Vec::new();
    for _ in 0..400 {
        fillers.push(platform.call_async("filler", "more", None).await);
    }
    let js = async_nats::jetstream::new(async_nats::connect(&platform.nats_url).await.unwrap());
    let mut bucket = js.get_stream("KV_sluice_calls").await.unwrap();
    let state = bucket.info().await.unwrap().state.clone();
    assert!(state.bytes <= CAP, "records take {} bytes, over the cap", state.bytes);
    assert!(state.messages < 401, "the oldest records went: {} kept", state.messages);
    let r = platform.http.get(platform.url(&format!("/system/calls/{early}"))).send().await.unwrap();
    assert_eq!(r.status(), 404, "the oldest record went first");
    assert_eq!(platform.record(fillers.last().unwrap()).await["status"], "queued", "the newest is kept");
    let health = platform.get_json("/system/health").await;
    let records = health["streams"].as_array().unwrap().iter().find(|s| s["name"] == "KV_sluice_calls").unwrap();
    assert_eq!((&records["maxBytes"], &records["whenFull"]), (&json!(CAP), &json!("discard oldest")), "{records}");

    platform.add_worker(&cap);
    let record = platform.wait_final(&early, Duration::from_secs(60)).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    let result = platform.http.get(platform.url(&format!("/system/calls/{early}/result"))).send().await.unwrap();
    assert_eq!(result.text().await.unwrap(), "first of all");
    let newest = fillers.last().unwrap();
    assert_eq!(platform.wait_final(newest, Duration::from_secs(60)).await["status"], "succeeded");
}
