//! A flood of calls to one function does not stall another function's calls.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use crate::support::{CallbackReceiver, Platform};

#[tokio::test]
async fn flood_on_one_function_does_not_stall_another() {
    let platform = Platform::start(1, &[], &["--max-inflight", "4"]).await;
    let receiver = CallbackReceiver::start().await;
    platform.deploy(json!({"service": "flood", "envProcess": "sleep 1"})).await;
    platform.deploy(json!({"service": "single", "envProcess": "echo made it"})).await;
    let accepted = futures::stream::iter(0..10_000)
        .map(|_| platform.http.post(platform.url("/async-function/flood")).send())
        .buffer_unordered(32)
        .filter(|r| std::future::ready(r.as_ref().is_ok_and(|r| r.status() == 202)))
        .count()
        .await;
    assert_eq!(accepted, 10_000);
    let single = platform.call_async("single", "", Some(&receiver.url)).await;
    let got = receiver.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(&got[0].body[..], b"made it\n");
    assert_eq!(platform.wait_final(&single, Duration::from_secs(10)).await["status"], "succeeded");
    // At 4 calls a second the flood is nowhere near done: "single" did not wait behind it.
    let done = platform.list_calls("function=flood&status=succeeded&limit=100000").await;
    assert!(done.len() < 1_000, "{} flood calls finished before the single call", done.len());
}
