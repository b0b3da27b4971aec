//! `sluice gateway`: the HTTP API on its own, serving the connectors' HTTP routes beside it.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Args;
use sluice_gateway::GatewayConfig;

use super::{CallbackPolicyArgs, ListenOptions, NatsArgs, auth, connector, shutdown, telemetry};
use crate::args::{self, LogArgs};

/// Gateway options.
#[derive(Args, Clone, Debug)]
pub struct GatewayOptions {
    /// Address the HTTP API listens on.
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Largest request body accepted (bigger ones get a 413).
    #[arg(long, env = "SLUICE_MAX_BODY", default_value = "128MiB", value_parser = args::byte_size)]
    pub max_body: usize,
    /// Timeout of synchronous calls whose function sets none.
    #[arg(long, env = "SLUICE_SYNC_TIMEOUT", default_value = "60s", value_parser = args::duration)]
    pub sync_timeout: Duration,
    #[command(flatten)]
    pub auth: auth::AuthOptions,
    #[command(flatten)]
    pub listen_limits: ListenOptions,
    /// Require the credentials on /function and /async-function too.
    #[arg(long, env = "SLUICE_PROTECT_INVOCATIONS")]
    pub protect_invocations: bool,
    #[command(flatten)]
    pub namespace: super::NamespaceArgs,
}

impl GatewayOptions {
    pub fn config(
        &self,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
        policy: &CallbackPolicyArgs,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<GatewayConfig> {
        let access = self.auth.access(data_dir)?;
        anyhow::ensure!(
            !self.protect_invocations || access.admin.is_some(),
            "--protect-invocations contradicts --insecure-no-auth"
        );
        Ok(GatewayConfig {
            listen: self.listen,
            max_body_bytes: self.max_body,
            access,
            protect_invocations: self.protect_invocations,
            sync_timeout: self.sync_timeout,
            callback_policy: policy.policy(),
            limits: self.listen_limits.limits(),
            metrics: Some(metrics),
            default_namespace: self.namespace.default_namespace.clone(),
        })
    }
}

#[derive(Args, Clone, Debug)]
pub struct GatewayArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Where the generated admin password is kept (when no credentials are given).
    #[arg(long, env = "SLUICE_DATA_DIR", default_value_os_t = args::default_data_dir())]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub gateway: GatewayOptions,
    #[command(flatten)]
    pub policy: CallbackPolicyArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

/// `sluice gateway`.
pub async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let _traces = telemetry::init(&args.log, "sluice-gateway")?;
    let metrics = telemetry::metrics_recorder()?;
    let cfg = args.gateway.config(metrics, &args.policy, &args.data_dir)?;
    let topology = args.nats.topology(args.nats.required_url()?, "sluice-gateway").await?;
    let stop = shutdown::on_signal();
    let beside = connector::http_routes(&topology, &cfg.access, &args.policy, &cfg.default_namespace);
    sluice_gateway::run(cfg, topology, beside, stop).await.context("gateway failed")
}
