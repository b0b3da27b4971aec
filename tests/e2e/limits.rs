//! Listener bounds: stalled and idle clients are cut off, connections past the cap are refused at once, and
//! the gateway keeps answering meanwhile.

use std::time::Duration;

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::Platform;

/// Reads what the server sends until it closes the connection; `None` if it is still open after `limit`.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut got)).await;
    read.ok().map(|_| String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn stalled_clients_are_cut_off_and_connections_capped() {
    let flags = ["--header-timeout", "2s", "--body-timeout", "2s", "--max-connections", "300"];
    let platform = Platform::start(0, &flags, &[]).await;
    platform.deploy(json!({"service": "f", "envProcess": "cat"})).await;
    let addr = platform.base.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for i in 0..270 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let sent: &[u8] = match i % 3 {
            0 => b"",
            1 => b"GET /healthz HTTP/1.1\r\nHost: sluice\r\nX-Slow: ",
            _ => b"POST /async-function/f HTTP/1.1\r\nHost: sluice\r\nContent-Length: 1000\r\n\r\nthe start",
        };
        stream.write_all(sent).await.unwrap();
        stalled.push((i % 3, stream));
    }
    // Still answering, to a client of its own.
    let fresh = reqwest::Client::new();
    assert_eq!(fresh.get(platform.url("/healthz")).send().await.unwrap().status(), 200);
    // Past the cap (270 stalled + the client above + the platform's pool): a 503 at once, then closed.
    let mut refused = 0;
    let mut extra = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n").await.unwrap();
        let mut first = [0u8; 12];
        if let Ok(Ok(12)) = tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut first)).await
            && &first == b"HTTP/1.1 503"
        {
            refused += 1;
        }
        extra.push(stream);
    }
    assert!(refused >= 10, "{refused} of 40 connections past the cap were refused with a 503");
    drop(extra);
    // Every stalled connection is closed by the server: idle and mid-header ones silently, mid-body ones
    // with an error answer.
    for (kind, stream) in &mut stalled {
        let got = until_closed(stream, Duration::from_secs(15)).await;
        let got = got.unwrap_or_else(|| panic!("a stalled connection (kind {kind}) is still open"));
        if *kind == 2 {
            assert!(got.starts_with("HTTP/1.1 4"), "mid-body stall: {got:?}");
        }
    }
    drop(stalled);
    // New connections: a pooled one left idle meanwhile has been cut off by the server (as it should be), and
    // reusing it would race that close.
    let after = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    assert_eq!(after.get(platform.url("/healthz")).send().await.unwrap().status(), 200);
    let accepted = after.post(platform.url("/async-function/f")).body("after").send().await.unwrap();
    assert_eq!(accepted.status(), 202);
}

#[tokio::test]
async fn a_flood_of_output_fails_the_call_without_filling_memory() {
    let platform = Platform::start(1, &[], &["--max-response", "4MiB"]).await;
    platform.deploy(json!({"service": "flood", "envProcess": "head -c 400000000 /dev/zero"})).await;
    let calls = (0..4).map(|_| platform.http.post(platform.url("/function/flood")).send());
    for r in futures::future::join_all(calls).await {
        let r = r.unwrap();
        assert_eq!(r.status(), 502);
        let text = r.text().await.unwrap();
        assert!(text.contains("more than 4194304 bytes"), "{text}");
    }
    let peak = platform.workers[0].peak_rss();
    eprintln!("worker peak RSS after four 400 MB floods with a 4 MiB limit: {} MiB", peak >> 20);
    assert!(peak < 100 << 20, "the worker held {} MiB", peak >> 20);
}
