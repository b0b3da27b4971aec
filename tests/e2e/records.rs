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
