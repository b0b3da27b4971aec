//! `sluice call get|watch|result|tree|cancel|list`.

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use sluice_contracts::{CallRecord, CallTree};

use super::Gateway;
use crate::args::GatewayClientArgs;

#[derive(Subcommand)]
pub enum CallCommand {
    /// Show one call's record as JSON (with its progress and last heartbeat while it runs).
    Get {
        id: String,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
    /// Follow a call live: a progress bar with the function's message and the elapsed time, until the call is
    /// final; then its record.
    Watch {
        id: String,
        /// One line per change instead of a progress bar (the default when stderr is not a terminal).
        #[arg(long)]
        plain: bool,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
    /// Write a finished call's result (the function's response body) to stdout, e.g. `> out.png`.
    Result {
        id: String,
        /// Also print the function's status and headers to stderr.
        #[arg(long)]
        headers: bool,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
    /// Show the pipeline a call belongs to: its root and every call that went on from another.
    Tree {
        id: String,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
    /// Cancel a queued or running call.
    Cancel {
        id: String,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
    /// List recent calls, newest first.
    List {
        /// Only calls of this function.
        #[arg(long)]
        function: Option<String>,
        /// Only calls in this status (queued, running, succeeded, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
}

pub async fn get(gateway: &Gateway, id: &str) -> anyhow::Result<CallRecord> {
    Ok(gateway.send(gateway.request(Method::GET, &format!("/system/calls/{id}"))).await?.json().await?)
}

/// Streams the call's result to stdout; fails when the function's status was not a success.
async fn result(gateway: &Gateway, id: &str, show_headers: bool) -> anyhow::Result<()> {
    use futures::StreamExt;
    use std::io::Write;
    let response = gateway.send_raw(gateway.request(Method::GET, &format!("/system/calls/{id}/result"))).await?;
    // A result carries the function's own status, a failure too; only an answer without it is the gateway's.
    let response = match response.headers().contains_key(sluice_contracts::names::http_headers::FUNCTION_STATUS) {
        true => response,
        false => Gateway::check(response).await?,
    };
    let status = response.status();
    if show_headers {
        eprintln!("{status}");
        for (name, value) in response.headers() {
            eprintln!("{name}: {}", value.to_str().unwrap_or("(binary)"));
        }
    }
    let mut body = response.bytes_stream();
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        out.write_all(&chunk.context("reading the result")?)?;
    }
    out.flush()?;
    anyhow::ensure!(status.is_success(), "the function answered {status}");
    Ok(())
}

/// One line per call, each step drawn under the call it went on from.
fn print_tree(tree: &CallTree) {
    print_node(tree, "", "");
}

/// `tree`'s line after `lead` (its branch), then its steps, each after `rest` (the branches still open above).
fn print_node(tree: &CallTree, lead: &str, rest: &str) {
    let call = &tree.call;
    let duration = tree.duration_seconds.map(|s| format!(" {s:.1}s")).unwrap_or_default();
    let percent = call.progress.as_ref().and_then(|p| p.percent).map(|p| format!(" {p:.0}%")).unwrap_or_default();
    let error = call.error.as_deref().map(|e| format!(" · {e}")).unwrap_or_default();
    println!("{lead}{} {} {}{duration}{percent}{error}", call.function, call.call_id, call.status.as_str());
    for (i, next) in tree.next.iter().enumerate() {
        let last = i + 1 == tree.next.len();
        let (branch, below) = if last { ("└─ ", "   ") } else { ("├─ ", "│  ") };
        print_node(next, &format!("{rest}{branch}"), &format!("{rest}{below}"));
    }
}

pub async fn run(cmd: CallCommand) -> anyhow::Result<()> {
    match cmd {
        CallCommand::Get { id, gateway } => {
            let record = get(&Gateway::new(gateway), &id).await?;
            println!("{}", serde_json::to_string_pretty(&record)?);
        }
        CallCommand::Watch { id, plain, gateway } => {
            let record = super::watch::watch(&Gateway::new(gateway), &id, plain).await?;
            super::watch::conclude(&record)?;
        }
        CallCommand::Result { id, headers, gateway } => result(&Gateway::new(gateway), &id, headers).await?,
        CallCommand::Tree { id, gateway } => {
            let gateway = Gateway::new(gateway);
            let tree: CallTree =
                gateway.send(gateway.request(Method::GET, &format!("/system/calls/{id}/tree"))).await?.json().await?;
            print_tree(&tree);
        }
        CallCommand::Cancel { id, gateway } => {
            let gateway = Gateway::new(gateway);
            let record: CallRecord =
                gateway.send(gateway.request(Method::DELETE, &format!("/system/calls/{id}"))).await?.json().await?;
            println!("cancelled {} ({} attempts made)", record.call_id, record.attempts);
        }
        CallCommand::List { function, status, limit, gateway } => {
            let gateway = Gateway::new(gateway);
            let mut query = vec![("limit", limit.to_string())];
            query.extend(function.map(|f| ("function", f)));
            query.extend(status.map(|s| ("status", s)));
            let records: Vec<CallRecord> =
                gateway.send(gateway.request(Method::GET, "/system/calls").query(&query)).await?.json().await?;
            println!("{:<38} {:<20} {:<10} {:>8} {:>6}  CREATED", "CALL ID", "FUNCTION", "STATUS", "ATTEMPTS", "CODE");
            for r in records {
                let code = r.function_status.map(|c| c.to_string()).unwrap_or_default();
                println!(
                    "{:<38} {:<20} {:<10} {:>8} {:>6}  {}",
                    r.call_id,
                    r.function,
                    r.status.as_str(),
                    r.attempts,
                    code,
                    r.created_at.to_rfc3339()
                );
            }
        }
    }
    Ok(())
}
