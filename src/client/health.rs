//! `sluice health`: the workers that are up and what every stream keeps, against its limits (the console's Health
//! page, for a terminal).

use clap::Args;
use reqwest::Method;
use sluice_contracts::presence::{StreamSize, SystemHealth};

use super::Gateway;
use crate::args::GatewayClientArgs;

#[derive(Args)]
pub struct HealthArgs {
    #[command(flatten)]
    gateway: GatewayClientArgs,
}

pub async fn run(args: HealthArgs) -> anyhow::Result<()> {
    let gateway = Gateway::new(args.gateway);
    let health: SystemHealth = gateway.send(gateway.request(Method::GET, "/system/health")).await?.json().await?;
    println!("{:<40} {:>9} {:>10}  {:<8} LAST SEEN", "WORKER", "RUNNING", "FUNCTIONS", "VERSION");
    for w in &health.workers {
        let running = format!("{}/{}", w.inflight, w.max_inflight);
        println!("{:<40} {:>9} {:>10}  {:<8} {}", w.worker_id, running, w.functions, w.version, w.seen_at);
    }
    if health.workers.is_empty() {
        eprintln!("no worker is up: calls are queued but nothing runs them");
    }
    println!();
    println!("{:<24} {:>10} {:>10} {:>9}  LIMITS", "STREAM", "MESSAGES", "MIB", "CONSUMERS");
    for s in &health.streams {
        let mib = format!("{:.1}", s.bytes as f64 / 1_048_576.0);
        println!("{:<24} {:>10} {:>10} {:>9}  {}", s.name, s.messages, mib, s.consumers, limits(s));
    }
    Ok(())
}

/// A stream's limits in words: `none`, or its most bytes, how long it keeps messages and what it does when full.
fn limits(stream: &StreamSize) -> String {
    let mut bounds = Vec::new();
    if let Some(bytes) = stream.max_bytes {
        bounds.push(format!("{:.1} MiB", bytes as f64 / 1_048_576.0));
    }
    if let Some(seconds) = stream.max_age_seconds {
        bounds.push(format!("kept {}", age(seconds)));
    }
    match (bounds.is_empty(), stream.max_bytes) {
        (true, _) => "none".to_owned(),
        (false, Some(_)) => format!("{}; when full: {}", bounds.join(", "), stream.when_full),
        (false, None) => bounds.join(", "),
    }
}

fn age(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(max_bytes: Option<u64>, max_age_seconds: Option<u64>) -> StreamSize {
        StreamSize {
            name: "S".into(),
            messages: 0,
            bytes: 0,
            consumers: 0,
            max_bytes,
            max_age_seconds,
            when_full: "discard oldest".into(),
        }
    }

    #[test]
    fn limits_in_words() {
        assert_eq!(limits(&stream(None, None)), "none");
        assert_eq!(limits(&stream(None, Some(7 * 86_400))), "kept 7d");
        assert_eq!(limits(&stream(Some(1 << 30), Some(86_400))), "1024.0 MiB, kept 1d; when full: discard oldest");
        assert_eq!(limits(&stream(Some(65_536), Some(90))), "0.1 MiB, kept 90s; when full: discard oldest");
    }
}
