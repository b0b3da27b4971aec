//! `sluice events list|replay` and `sluice cron next`.

use clap::Subcommand;
use reqwest::Method;
use sluice_contracts::{FunctionStatus, StoredEvent};

use super::Gateway;
use crate::args::GatewayClientArgs;

#[derive(Subcommand)]
pub enum EventsCommand {
    /// List the newest connector events, newest first, with what routing made of each.
    List {
        /// Only events of this CloudEvents source.
        #[arg(long)]
        source: Option<String>,
        /// Only events that matched no function.
        #[arg(long)]
        unmatched: bool,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
    /// Route stored events again (those that matched nothing reach functions deployed since): those stored
    /// since a time, or one by its sequence.
    Replay {
        /// RFC 3339 time or a duration back from now (`1h`).
        #[arg(long, required_unless_present = "sequence", conflicts_with = "sequence")]
        since: Option<String>,
        /// One event, by the sequence `sluice events list` shows.
        #[arg(long)]
        sequence: Option<u64>,
        /// Only to this function.
        #[arg(long)]
        function: Option<String>,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
}

#[derive(Subcommand)]
pub enum CronCommand {
    /// Print the next fire times of a function's schedules.
    Next {
        name: String,
        /// How many per schedule.
        #[arg(short = 'n', long, default_value_t = 5)]
        count: usize,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
}

pub async fn run_events(cmd: EventsCommand) -> anyhow::Result<()> {
    let (since, sequence, function, gateway) = match cmd {
        EventsCommand::List { source, unmatched, limit, gateway } => {
            let gateway = Gateway::new(gateway);
            let mut query = vec![("limit", limit.to_string())];
            query.extend(source.map(|s| ("source", s)));
            query.extend(unmatched.then(|| ("routing", "unmatched".to_owned())));
            let events: Vec<StoredEvent> =
                gateway.send(gateway.request(Method::GET, "/system/events").query(&query)).await?.json().await?;
            println!(
                "{:>8}  {:<25}  {:<10}  {:<30}  {:<30}  SUBJECT",
                "SEQUENCE", "RECEIVED", "ROUTING", "SOURCE", "TYPE"
            );
            for e in events {
                let routing = serde_json::to_value(e.routing)?.as_str().unwrap_or_default().to_owned();
                let subject = e.subject.unwrap_or_default();
                println!(
                    "{:>8}  {:<25}  {routing:<10}  {:<30}  {:<30}  {subject}",
                    e.sequence, e.received_at, e.source, e.event_type
                );
            }
            return Ok(());
        }
        EventsCommand::Replay { since, sequence, function, gateway } => (since, sequence, function, gateway),
    };
    let gateway = Gateway::new(gateway);
    let body = serde_json::json!({
        "since": since, "sequence": sequence, "function": function, "namespace": gateway.namespace()
    });
    let answer: serde_json::Value =
        gateway.send(gateway.request(Method::POST, "/system/events/replay").json(&body)).await?.json().await?;
    println!("{} events read, {} calls routed", answer["events"], answer["calls"]);
    Ok(())
}

pub async fn run_cron(cmd: CronCommand) -> anyhow::Result<()> {
    let CronCommand::Next { name, count, gateway } = cmd;
    let gateway = Gateway::new(gateway);
    let status: FunctionStatus =
        gateway.send(gateway.request(Method::GET, &format!("/system/function/{name}"))).await?.json().await?;
    let schedules = sluice_connectors::cron::next_fire_times(&status.spec, count);
    anyhow::ensure!(!schedules.is_empty(), "{name} has no cron trigger or schedule annotation");
    for (trigger, expression, times) in schedules {
        println!("{name} trigger {trigger} ({expression}):");
        for t in times {
            println!("  {}", t.to_rfc3339());
        }
    }
    Ok(())
}
