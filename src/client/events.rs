//! `sluice events replay` and `sluice cron next`.

use clap::Subcommand;
use reqwest::Method;
use sluice_contracts::FunctionStatus;

use super::Gateway;
use crate::args::GatewayClientArgs;

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Route the events stored since a time again (those that matched nothing reach functions deployed since).
    Replay {
        /// RFC 3339 time or a duration back from now (`1h`).
        #[arg(long)]
        since: String,
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
    let EventsCommand::Replay { since, function, gateway } = cmd;
    let gateway = Gateway::new(gateway);
    let body = serde_json::json!({"since": since, "function": function, "namespace": gateway.namespace()});
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
