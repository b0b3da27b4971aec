//! `sluice`: runs the platform's components and talks to a running gateway.
//!
//! Server commands (`up`, `gateway`, `worker`) parse flags into the crates' configs and wire them together;
//! client commands (`fn`, `invoke`, `call`) call the gateway's HTTP API; `build` talks to the local Docker engine. Errors end the process with one
//! readable line.

mod allocator;
mod args;
mod build;
mod client;
mod openapi;
mod serve;

use clap::{Parser, Subcommand};

/// Asynchronous, event-driven functions on NATS JetStream.
#[derive(Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run gateway and queue worker in one process (starting a local nats-server unless --nats-url is given).
    Up(Box<serve::up::UpArgs>),
    /// Run the HTTP gateway alone.
    Gateway(serve::GatewayArgs),
    /// Run a queue worker alone.
    Worker(serve::WorkerArgs),
    /// Run an event connector alone (router, cron, webhook, or all).
    Connector(serve::connector::ConnectorArgs),
    /// Re-route stored events.
    #[command(subcommand)]
    Events(client::events::EventsCommand),
    /// Cron schedules of functions.
    #[command(subcommand)]
    Cron(client::events::CronCommand),
    /// Deploy, list and remove functions.
    #[command(subcommand)]
    Fn(client::functions::FnCommand),
    /// Call a function.
    Invoke(client::invoke::InvokeArgs),
    /// Inspect and cancel calls.
    #[command(subcommand)]
    Call(client::calls::CallCommand),
    /// List and replay calls that failed for good.
    #[command(subcommand)]
    Dead(client::dead::DeadCommand),
    /// The workers that are up, and what every stream keeps against its limits.
    Health(client::health::HealthArgs),
    /// Make a function image from a local executable, without any registry.
    Build(build::BuildArgs),
    /// Print the OpenAPI document of the HTTP API (what GET /openapi.json answers).
    Openapi,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => serve::up::run(*args).await,
            Command::Gateway(args) => serve::gateway::run(args).await,
            Command::Worker(args) => serve::worker::run(args).await,
            Command::Connector(args) => serve::connector::run(args).await,
            Command::Events(cmd) => client::events::run_events(cmd).await,
            Command::Cron(cmd) => client::events::run_cron(cmd).await,
            Command::Fn(cmd) => client::functions::run(cmd).await,
            Command::Invoke(args) => client::invoke::run(args).await,
            Command::Call(cmd) => client::calls::run(cmd).await,
            Command::Dead(cmd) => client::dead::run(cmd).await,
            Command::Health(args) => client::health::run(args).await,
            Command::Build(args) => build::run(args).await,
            Command::Openapi => openapi::run(),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", args::one_line(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        // Catches two options sharing a name or short flag (a global one included) before a user does.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
