//! `sluice fn logs NAME [-f]` and `sluice fn scale NAME N`: container functions' logs and replicas.

use anyhow::Context;
use futures::StreamExt;
use reqwest::Method;
use sluice_contracts::logs::LogLine;

use super::Gateway;

/// Prints each line as `<time> <container> <text>` while the gateway streams them.
pub async fn logs(
    gateway: &Gateway,
    name: &str,
    follow: bool,
    since: Option<String>,
    tail: Option<u32>,
) -> anyhow::Result<()> {
    let mut query = vec![("name", name.to_owned()), ("follow", follow.to_string())];
    query.extend(since.map(|s| ("since", s)));
    query.extend(tail.map(|t| ("tail", t.to_string())));
    let response = gateway.send(gateway.request(Method::GET, "/system/logs").query(&query)).await?;
    let mut stream = response.bytes_stream();
    let mut pending = Vec::new();
    while let Some(chunk) = stream.next().await {
        pending.extend_from_slice(&chunk.context("reading the log stream")?);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            match serde_json::from_slice::<LogLine>(&line) {
                Ok(l) => println!("{} {} {}", l.timestamp, l.instance, l.text),
                Err(_) => println!("{}", String::from_utf8_lossy(&line).trim_end()),
            }
        }
    }
    Ok(())
}

/// Asks for `replicas` replicas; prints what the worker reports.
pub async fn scale(gateway: &Gateway, name: &str, replicas: u32) -> anyhow::Result<()> {
    let body = serde_json::json!({"serviceName": name, "replicas": replicas});
    let path = format!("/system/scale-function/{name}");
    let answer: serde_json::Value =
        gateway.send(gateway.request(Method::POST, &path).json(&body)).await?.json().await?;
    println!("{name}: {} desired, {} available", answer["desired"], answer["available"]);
    Ok(())
}
