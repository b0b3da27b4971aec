//! Synchronous calls, served by a worker over NATS request/reply.

use serde_json::json;

use crate::support::Platform;

#[tokio::test]
async fn sync_call_returns_the_function_response() {
    let platform = Platform::start(1, &[], &[]).await;
    platform.deploy(json!({"service": "upper", "envProcess": "tr a-z A-Z"})).await;
    let r = platform.http.post(platform.url("/function/upper")).body("sync please").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-call-id"));
    assert_eq!(r.text().await.unwrap(), "SYNC PLEASE");

    let script = r#"sh -c 'printf "%s %s %s" "$Http_Method" "$Http_Path" "$Http_Query"'"#;
    platform.deploy(json!({"service": "where", "envProcess": script})).await;
    let r = platform.http.get(platform.url("/function/where/deep/path?a=b")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "GET /deep/path a=b");
}

#[tokio::test]
async fn sync_call_to_http_upstream_and_failures() {
    let platform = Platform::start(1, &[], &[]).await;
    let upstream = crate::support::CallbackReceiver::start().await; // answers "ok" to POST /cb
    let base = upstream.url.trim_end_matches("/cb").to_owned();
    platform.deploy(json!({"service": "proxied", "runtime": "http", "upstream": base})).await;
    let r = platform.http.post(platform.url("/function/proxied/cb")).body("hi").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    assert_eq!(&upstream.received()[0].body[..], b"hi");

    platform.deploy(json!({"service": "slow", "envProcess": "sleep 5", "async": {"timeout": "300ms"}})).await;
    let r = platform.http.post(platform.url("/function/slow")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("timed out"), "{body}");
}

#[tokio::test]
async fn sync_call_without_any_worker_is_a_503() {
    let platform = Platform::start(0, &[], &[]).await;
    platform.deploy(json!({"service": "lonely", "envProcess": "cat"})).await;
    let r = platform.http.post(platform.url("/function/lonely")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("no worker"), "{body}");
}

#[tokio::test]
async fn sync_calls_respect_max_inflight_with_429s() {
    let platform = Platform::start(1, &[], &[]).await;
    platform.deploy(json!({"service": "one-at-a-time", "envProcess": "sleep 2", "async": {"maxInflight": 1}})).await;
    let calls = (0..6).map(|_| platform.http.post(platform.url("/function/one-at-a-time")).send());
    let mut statuses: Vec<u16> =
        futures::future::join_all(calls).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 429, 429, 429, 429, 429]);
}
