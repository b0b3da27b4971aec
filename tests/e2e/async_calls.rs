//! Async calls end to end: 202, execution, and the callback contract.

use std::time::Duration;

use serde_json::json;

use crate::support::{CallbackReceiver, Platform};

#[tokio::test]
async fn async_call_delivers_callback_with_every_contract_header() {
    let platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    platform
        .deploy(json!({"service": "upper", "envProcess": "tr a-z A-Z", "envVars": {"content_type": "text/x-upper"}}))
        .await;
    let r = platform
        .http
        .post(platform.url("/async-function/upper/some/path?x=1"))
        .header("X-Callback-Url", &receiver.url)
        .body("hello sluice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let call_id = r.headers()["x-call-id"].to_str().unwrap().to_owned();
    assert_eq!(r.headers()["location"].to_str().unwrap(), format!("/system/calls/{call_id}"));
    assert!(uuid::Uuid::parse_str(&call_id).is_ok(), "generated ids are UUIDs: {call_id}");

    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    let cb = &got[0];
    assert_eq!(&cb.body[..], b"HELLO SLUICE");
    let h = |name: &str| cb.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert_eq!(h("x-call-id"), call_id);
    assert_eq!(h("x-function-name"), "upper");
    assert_eq!(h("x-function-status"), "200");
    assert!(h("x-duration-seconds").parse::<f64>().unwrap() >= 0.0);
    assert!(h("x-start-time").parse::<i64>().unwrap() > 0);
    assert_eq!(h("x-sluice-attempt"), "1");
    assert_eq!(h("x-sluice-max-attempts"), "3", "the worker default");
    assert_eq!(h("content-type"), "text/x-upper");
    assert_eq!(h("ce-specversion"), "1.0");
    assert_eq!(h("ce-id"), call_id);
    assert_eq!(h("ce-type"), "sluice.invocation.completed");
    assert_eq!(h("ce-subject"), "upper");
    assert!(!h("ce-source").is_empty() && !h("ce-time").is_empty());

    let record = platform.wait_final(&call_id, Duration::from_secs(10)).await;
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["functionStatus"], 200);
    assert_eq!(record["attempts"], 1);
}

#[tokio::test]
async fn request_reaches_the_function_unchanged() {
    let platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    let script = r#"sh -c 'echo seen-by-the-log >&2; printf "%s|%s|%s|%s|%s|" "$Http_Method" "$Http_Path" "$Http_Query" "$Http_X_Custom" "$Http_Content_Type"; cat'"#;
    platform.deploy(json!({"service": "echo-env", "envProcess": script})).await;
    let r = platform
        .http
        .post(platform.url("/async-function/echo-env/a/b?q=1&r=two"))
        .header("X-Callback-Url", &receiver.url)
        .header("X-Custom", "kept")
        .header("Content-Type", "application/json")
        .body(r#"{"k":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(String::from_utf8_lossy(&got[0].body), r#"POST|/a/b|q=1&r=two|kept|application/json|{"k":1}"#);
    // The function's stderr is not part of its answer, but its log lines are kept in the worker's log.
    platform.workers[0].wait_for_log("function wrote to stderr: seen-by-the-log", Duration::from_secs(10)).await;
}

#[tokio::test]
async fn same_call_id_twice_runs_once_and_calls_back_once() {
    let platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    let runs = platform.logs.path().join("runs.txt");
    let script = format!("sh -c 'echo run >> {}; cat'", runs.display());
    platform.deploy(json!({"service": "once", "envProcess": script})).await;
    for _ in 0..2 {
        let r = platform
            .http
            .post(platform.url("/async-function/once"))
            .header("X-Callback-Url", &receiver.url)
            .header("X-Call-Id", "order-42")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(r.headers()["x-call-id"], "order-42");
    }
    platform.wait_final("order-42", Duration::from_secs(30)).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // The same id a third time, after the call ended, is still the same call.
    let r =
        platform.http.post(platform.url("/async-function/once")).header("X-Call-Id", "order-42").send().await.unwrap();
    assert_eq!(r.status(), 202);
    tokio::time::sleep(Duration::from_secs(2)).await; // room for a duplicate to show up, were there one
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 1);
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn failing_function_is_recorded_as_failed_with_its_error() {
    let platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    platform.deploy(json!({"service": "broken", "envProcess": "sh -c 'echo disk full >&2; exit 2'"})).await;
    let call_id = platform.call_async("broken", "x", Some(&receiver.url)).await;
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got[0].headers["x-function-status"], "500");
    assert_eq!(got[0].headers["ce-type"], "sluice.invocation.failed");
    let record = platform.wait_final(&call_id, Duration::from_secs(10)).await;
    assert_eq!(record["status"], "failed");
    assert_eq!(record["functionStatus"], 500);
    assert!(record["error"].as_str().unwrap().contains("disk full"), "{record}");
}
