//! Results kept to fetch: an async call without any callback, its response collected later by
//! `GET /system/calls/{id}/result` or `sluice call result`, until its TTL is over or the store needs the room.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Platform, error_of};

async fn call_with_body(platform: &Platform, function: &str, body: Vec<u8>) -> String {
    let r = platform.http.post(platform.url(&format!("/async-function/{function}"))).body(body).send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    r.headers()["x-call-id"].to_str().unwrap().to_owned()
}

async fn fetch(platform: &Platform, call_id: &str) -> reqwest::Response {
    platform.http.get(platform.url(&format!("/system/calls/{call_id}/result"))).send().await.unwrap()
}

#[tokio::test]
async fn a_large_result_is_fetched_byte_for_byte_without_a_callback() {
    let platform = Platform::start(1, &[], &[]).await;
    platform.deploy(json!({"service": "echo", "envProcess": "cat"})).await;
    let failing = r#"sh -c 'printf "disk full" >&2; exit 3'"#;
    platform.deploy(json!({"service": "broken", "envProcess": failing, "async": {"retry": {"attempts": 1}}})).await;
    let gate = platform.logs.path().join("open");
    let gated = format!("sh -c 'while [ ! -e {} ]; do sleep 0.05; done; echo late'", gate.display());
    platform.deploy(json!({"service": "gated", "envProcess": gated})).await;

    // 20 MB that no two runs share, through the object store both ways.
    let seed = uuid::Uuid::now_v7().as_u128();
    let body: Vec<u8> = (0..20_000_000u64).map(|i| ((i.wrapping_mul(2654435761) ^ seed as u64) >> 7) as u8).collect();
    let call_id = call_with_body(&platform, "echo", body.clone()).await;
    let pending = platform.call_async("gated", "", None).await;
    let (status, error) = error_of(fetch(&platform, &pending).await).await;
    assert_eq!(status, 404);
    assert!(error.contains("its result is kept once it is final"), "{error}");

    let record = platform.wait_final(&call_id, Duration::from_secs(120)).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["result"]["size"], 20_000_000);
    assert_eq!(record["result"]["state"], "available");
    assert!(record["result"]["expiresAt"].as_str().is_some());
    let response = fetch(&platform, &call_id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-function-status"], "200");
    assert_eq!(response.headers()["x-call-id"], call_id.as_str());
    let fetched = response.bytes().await.unwrap();
    assert!(fetched.len() == body.len() && fetched[..] == body[..], "the result is byte-identical");

    let out = platform.logs.path().join("out.bin");
    let file = std::fs::File::create(&out).unwrap();
    let status = platform.cli().args(["call", "result", &call_id]).stdout(file).status().await.unwrap();
    assert!(status.success());
    assert!(std::fs::read(&out).unwrap() == body, "`sluice call result ID > out` writes the same bytes");

    // A failure's response is a result too, with the function's status; the CLI says so and still writes it.
    let failed = platform.call_async("broken", "", None).await;
    platform.wait_final(&failed, Duration::from_secs(30)).await;
    let response = fetch(&platform, &failed).await;
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()["x-function-status"], "500");
    // A process that exits non-zero answers 500 with its exit status and stderr.
    assert_eq!(response.text().await.unwrap(), "exit status: 3: disk full");
    let cli = platform.cli().args(["call", "result", &failed]).output().await.unwrap();
    assert!(!cli.status.success());
    assert_eq!(cli.stdout, b"exit status: 3: disk full");
    assert!(String::from_utf8_lossy(&cli.stderr).contains("500"));

    // Cancelled and unknown calls have none, and say why.
    let r = platform.http.delete(platform.url(&format!("/system/calls/{pending}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, error) = error_of(fetch(&platform, &pending).await).await;
    assert_eq!((status, error.contains("cancelled")), (404, true), "{error}");
    let (status, _) = error_of(fetch(&platform, "no-such-call").await).await;
    assert_eq!(status, 404);
    std::fs::write(&gate, "").unwrap();
}

#[tokio::test]
async fn results_go_after_their_ttl_and_the_oldest_go_first_when_the_store_is_full() {
    let limits = ["--results-ttl", "3s", "--results-max-bytes", "256KiB"];
    let platform = Platform::start(1, &limits, &limits).await;
    platform.deploy(json!({"service": "echo", "envProcess": "cat"})).await;

    // Six results of 64 KiB do not fit in 256 KiB: the first ones make room for the last.
    let mut ids = Vec::new();
    for i in 0..6u8 {
        let id = call_with_body(&platform, "echo", vec![b'a' + i; 64 * 1024]).await;
        platform.wait_final(&id, Duration::from_secs(30)).await;
        ids.push(id);
    }
    let newest = fetch(&platform, ids.last().unwrap()).await;
    assert_eq!(newest.status(), 200);
    assert_eq!(newest.bytes().await.unwrap()[..], vec![b'f'; 64 * 1024][..]);
    let (status, error) = error_of(fetch(&platform, &ids[0]).await).await;
    assert_eq!(status, 404);
    assert!(error.contains("evicted early: the results store was full"), "{error}");
    // The record says so, once the gateway has looked at the store again (at most a second later).
    let start = Instant::now();
    while platform.record(&ids[0]).await["result"]["state"] != "evicted" {
        assert!(start.elapsed() < Duration::from_secs(5), "{}", platform.record(&ids[0]).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // And after the TTL none is left.
    let start = Instant::now();
    loop {
        let response = fetch(&platform, ids.last().unwrap()).await;
        if response.status() == 404 {
            let body: Value = response.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("expired"), "{body}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the result outlived its 3s TTL");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let start = Instant::now();
    while platform.record(ids.last().unwrap()).await["result"]["state"] != "expired" {
        assert!(start.elapsed() < Duration::from_secs(5), "{}", platform.record(ids.last().unwrap()).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
