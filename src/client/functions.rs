//! `sluice fn deploy|list|get|logs|scale|rm`.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use sluice_contracts::{AsyncConfig, FunctionSpec, FunctionStatus, RuntimeKind};

use super::{Gateway, spec_file};
use crate::args::{self, GatewayClientArgs};

#[derive(Subcommand)]
pub enum FnCommand {
    /// Deploy (or update) functions from a spec file or from flags.
    Deploy(DeployArgs),
    /// List deployed functions.
    List {
        #[command(flatten)]
        gateway: GatewayClientArgs,
        /// Print the full JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one function's spec and status as JSON.
    Get {
        name: String,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
    /// Show a container function's logs.
    Logs {
        name: String,
        /// Keep printing new lines.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only lines since this time (RFC 3339) or this long ago (`10m`).
        #[arg(long)]
        since: Option<String>,
        /// Only the last N lines of each container.
        #[arg(long)]
        tail: Option<u32>,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
    /// Set a container function's replicas now (autoscaling resumes after its window).
    Scale {
        name: String,
        replicas: u32,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
    /// Remove a function.
    Rm {
        name: String,
        #[command(flatten)]
        gateway: GatewayClientArgs,
    },
}

#[derive(Args)]
pub struct DeployArgs {
    /// Spec file (JSON or YAML; one spec or a list).
    #[arg(short = 'f', long = "file", conflicts_with_all = ["name"])]
    pub file: Option<PathBuf>,
    /// Function name.
    #[arg(long, required_unless_present = "file")]
    pub name: Option<String>,
    /// Command run per call (process runtime).
    #[arg(long, conflicts_with_all = ["upstream", "image"])]
    pub process: Option<String>,
    /// URL calls are forwarded to (http runtime).
    #[arg(long, conflicts_with = "image")]
    pub upstream: Option<String>,
    /// Container image (docker runtime).
    #[arg(long)]
    pub image: Option<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Calls of this function one worker runs at once.
    #[arg(long)]
    pub max_inflight: Option<u32>,
    /// Timeout of one attempt.
    #[arg(long, value_parser = args::duration)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub gateway: GatewayClientArgs,
}

impl DeployArgs {
    fn specs(&self) -> anyhow::Result<Vec<FunctionSpec>> {
        if let Some(file) = &self.file {
            return spec_file::read(file);
        }
        let mut env_vars = BTreeMap::new();
        for pair in &self.env {
            let (k, v) = pair.split_once('=').with_context(|| format!("--env {pair:?} is not KEY=VALUE"))?;
            env_vars.insert(k.to_owned(), v.to_owned());
        }
        let runtime = match (&self.process, &self.upstream, &self.image) {
            (Some(_), _, _) => RuntimeKind::Process,
            (_, Some(_), _) => RuntimeKind::Http,
            (_, _, Some(_)) => RuntimeKind::Docker,
            _ => bail!("say how the function runs: --process CMD, --upstream URL or --image IMAGE"),
        };
        let async_config = (self.max_inflight.is_some() || self.timeout.is_some()).then(|| AsyncConfig {
            max_inflight: self.max_inflight,
            timeout: self.timeout.map(Into::into),
            ..Default::default()
        });
        Ok(vec![FunctionSpec {
            service: self.name.clone().expect("clap requires --name without --file"),
            env_process: self.process.clone(),
            upstream: self.upstream.clone(),
            image: self.image.clone(),
            runtime: Some(runtime),
            env_vars,
            async_config,
            ..Default::default()
        }])
    }
}

pub async fn run(cmd: FnCommand) -> anyhow::Result<()> {
    match cmd {
        FnCommand::Deploy(args) => {
            let gateway = Gateway::new(args.gateway.clone());
            for spec in spec_file::in_deploy_order(args.specs()?) {
                deploy(&gateway, &spec).await?;
            }
            Ok(())
        }
        FnCommand::List { gateway, json } => list(&Gateway::new(gateway), json).await,
        FnCommand::Get { name, gateway } => {
            let gateway = Gateway::new(gateway);
            let status: FunctionStatus =
                gateway.send(gateway.request(Method::GET, &format!("/system/function/{name}"))).await?.json().await?;
            println!("{}", serde_json::to_string_pretty(&status)?);
            Ok(())
        }
        FnCommand::Logs { name, follow, since, tail, gateway } => {
            super::logs::logs(&Gateway::new(gateway), &name, follow, since, tail).await
        }
        FnCommand::Scale { name, replicas, gateway } => {
            super::logs::scale(&Gateway::new(gateway), &name, replicas).await
        }
        FnCommand::Rm { name, gateway } => {
            let gateway = Gateway::new(gateway);
            let body = serde_json::json!({ "functionName": name, "namespace": gateway.namespace() });
            gateway.send(gateway.request(Method::DELETE, "/system/functions").json(&body)).await?;
            println!("removed {name}");
            Ok(())
        }
    }
}

/// Creates the function, or updates it when it exists.
async fn deploy(gateway: &Gateway, spec: &FunctionSpec) -> anyhow::Result<()> {
    spec.validate().with_context(|| format!("function {:?}", spec.service))?;
    let mut spec = spec.clone();
    if spec.namespace.is_none() {
        spec.namespace = gateway.namespace().map(str::to_owned);
    }
    let spec = &spec;
    let created = gateway.send_raw(gateway.request(Method::POST, "/system/functions").json(spec)).await?;
    if created.status() == StatusCode::CONFLICT {
        gateway.send(gateway.request(Method::PUT, "/system/functions").json(spec)).await?;
        println!("updated {}", spec.service);
    } else {
        Gateway::check(created).await?;
        println!("deployed {}", spec.service);
    }
    Ok(())
}

async fn list(gateway: &Gateway, json: bool) -> anyhow::Result<()> {
    let functions: Vec<FunctionStatus> =
        gateway.send(gateway.request(Method::GET, "/system/functions")).await?.json().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&functions)?);
        return Ok(());
    }
    println!("{:<32} {:<8} {:>11} {:>9}  TARGET", "NAME", "RUNTIME", "INVOCATIONS", "REPLICAS");
    for f in functions {
        let target =
            f.spec.env_process.as_deref().or(f.spec.upstream.as_deref()).or(f.spec.image.as_deref()).unwrap_or("");
        println!(
            "{:<32} {:<8} {:>11} {:>9}  {target}",
            f.spec.service,
            f.spec.runtime_kind().as_str(),
            f.invocation_count,
            f.available_replicas
        );
    }
    Ok(())
}
