//! `sluice dead list|replay|discard`: calls that failed for good.

use clap::Subcommand;
use reqwest::Method;
use sluice_contracts::{
    DeadLetter,
    dead::{DeadReplay, DeadReplayReport},
};

use super::Gateway;
use crate::args::GatewayClientArgs;

#[derive(Subcommand)]
pub enum DeadCommand {
    /// List dead letters, newest first.
    List {
        /// Only this function's.
        #[arg(long)]
        function: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
    /// Queue dead calls again, each as a new series of attempts: the ones named, or a function's newest.
    Replay {
        /// The calls to replay (up to 1,000).
        #[arg(required_unless_present = "function", conflicts_with = "function")]
        ids: Vec<String>,
        /// Instead: this function's newest dead letters.
        #[arg(long)]
        function: Option<String>,
        /// With --function: at most this many (up to 1,000).
        #[arg(long, default_value_t = 100, requires = "function")]
        limit: usize,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
    /// Discard dead letters for good: their calls can no longer be replayed.
    Discard {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
}

pub async fn run(cmd: DeadCommand) -> anyhow::Result<()> {
    match cmd {
        DeadCommand::List { function, limit, gateway } => {
            let gateway = Gateway::new(gateway);
            let mut query = vec![("limit", limit.to_string())];
            query.extend(function.map(|f| ("function", f)));
            let letters: Vec<DeadLetter> =
                gateway.send(gateway.request(Method::GET, "/system/dead").query(&query)).await?.json().await?;
            println!(
                "{:<38} {:<20} {:>6} {:>8}  {:<25}  ERROR",
                "CALL ID", "FUNCTION", "STATUS", "ATTEMPTS", "DEAD AT"
            );
            for d in letters {
                println!(
                    "{:<38} {:<20} {:>6} {:>8}  {:<25}  {}",
                    d.call_id, d.function, d.status, d.attempts, d.dead_at, d.error
                );
            }
        }
        DeadCommand::Replay { ids, function, limit, gateway } => {
            let gateway = Gateway::new(gateway);
            let request = match function {
                Some(function) => DeadReplay { function: Some(function), limit: Some(limit), ..Default::default() },
                None => DeadReplay { call_ids: Some(ids), ..Default::default() },
            };
            let report: DeadReplayReport =
                gateway.send(gateway.request(Method::POST, "/system/dead/replay").json(&request)).await?.json().await?;
            for id in &report.replayed {
                println!("replayed {id}");
            }
            for not in &report.not_replayed {
                eprintln!("not replayed {}: {}", not.call_id, not.error);
            }
            if !report.not_replayed.is_empty() {
                anyhow::bail!(
                    "{} of {} not replayed",
                    report.not_replayed.len(),
                    report.replayed.len() + report.not_replayed.len()
                );
            }
        }
        DeadCommand::Discard { ids, gateway } => {
            let gateway = Gateway::new(gateway);
            let mut failed = 0;
            for id in &ids {
                match gateway.send(gateway.request(Method::DELETE, &format!("/system/dead/{id}"))).await {
                    Ok(_) => println!("discarded {id}"),
                    Err(err) => {
                        eprintln!("not discarded {id}: {err:#}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} of {} not discarded", ids.len());
            }
        }
    }
    Ok(())
}
