//! Bodies larger than the NATS max payload travel through the object store, streamed, not held whole.

use std::time::Duration;

use serde_json::json;

use crate::support::{CallbackReceiver, Platform};

const FIFTY_MB: usize = 50 * 1024 * 1024;

#[tokio::test]
async fn fifty_megabyte_body_end_to_end_with_bounded_memory() {
    let platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    platform.deploy(json!({"service": "count", "envProcess": "wc -c"})).await;
    let body: Vec<u8> = (0..FIFTY_MB).map(|i| (i % 251) as u8).collect();
    // What the processes take before any body: their own code, pools and buffers, not the body's doing.
    let (worker_idle, gateway_idle) = (platform.workers[0].peak_rss(), platform.gateway.peak_rss());
    let r = platform
        .http
        .post(platform.url("/async-function/count"))
        .header("X-Callback-Url", &receiver.url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let got = receiver.wait_for(1, Duration::from_secs(120)).await;
    assert_eq!(String::from_utf8_lossy(&got[0].body).trim(), FIFTY_MB.to_string());
    let worker_peak = platform.workers[0].peak_rss();
    let gateway_peak = platform.gateway.peak_rss();
    eprintln!(
        "peak RSS with a 50 MB body: worker {} MiB (idle {} MiB), gateway {} MiB (idle {} MiB)",
        worker_peak >> 20,
        worker_idle >> 20,
        gateway_peak >> 20,
        gateway_idle >> 20
    );
    // Holding the body even once would add 50 MB to a process's peak.
    assert!(worker_peak - worker_idle < FIFTY_MB as u64, "worker peak RSS {worker_peak}, idle {worker_idle}");
    assert!(gateway_peak - gateway_idle < FIFTY_MB as u64, "gateway peak RSS {gateway_peak}, idle {gateway_idle}");
}

#[tokio::test]
async fn large_sync_request_and_response() {
    let platform = Platform::start(1, &[], &[]).await;
    platform.deploy(json!({"service": "echo", "envProcess": "cat"})).await;
    let body: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 241) as u8).collect();
    let r = platform.http.post(platform.url("/function/echo")).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let back = r.bytes().await.unwrap();
    assert_eq!(back.len(), body.len());
    assert!(back[..] == body[..], "the 5 MB body came back intact");
}

#[tokio::test]
async fn stored_bodies_no_call_needs_are_swept() {
    let platform = Platform::start(1, &[], &["--payloads-sweep-every", "1s", "--payloads-orphan-age", "0s"]).await;
    let js = async_nats::jetstream::new(async_nats::connect(&platform.nats_url).await.unwrap());
    let store = js.get_object_store(sluice_contracts::names::PAYLOADS_BUCKET).await.unwrap();
    // A body under a name no call has, as a gateway that died mid-intake leaves behind.
    store.put("orphan-body", &mut &b"left behind"[..]).await.unwrap();
    // A failed call's large body stays for its dead letter's replay.
    platform
        .deploy(serde_json::json!({"service": "fails", "envProcess": "false", "async": {"retry": {"attempts": 1}}}))
        .await;
    let r = platform.http.post(platform.url("/async-function/fails")).body(vec![b'z'; 2 << 20]).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let id = r.headers()["x-call-id"].to_str().unwrap().to_owned();
    let record = platform.wait_final(&id, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "failed", "{record}");
    let start = std::time::Instant::now();
    // A deleted object's info says so.
    while store.info("orphan-body").await.is_ok_and(|info| !info.deleted) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the orphan was not swept:\n{}",
            platform.log_lines("bodies")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(store.info(&id).await.is_ok_and(|info| !info.deleted), "the dead letter's body was swept");
}
