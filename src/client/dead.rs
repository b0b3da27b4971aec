//! `sluice dead list|replay`: calls that failed for good.

use clap::Subcommand;
use reqwest::Method;
use sluice_contracts::DeadLetter;

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
    /// Queue a dead call again, as a new series of attempts.
    Replay {
        id: String,
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
        DeadCommand::Replay { id, gateway } => {
            let gateway = Gateway::new(gateway);
            gateway.send(gateway.request(Method::POST, &format!("/system/dead/{id}/replay"))).await?;
            println!("replayed {id}");
        }
    }
    Ok(())
}
