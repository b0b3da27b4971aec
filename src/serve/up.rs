//! `sluice up`: gateway, queue worker and every connector (router, cron, webhooks, S3) in one process, with a
//! local nats-server unless one is given.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sluice_contracts::FunctionSpec;
use sluice_jetstream::store::FunctionStore;

use super::{
    CallbackPolicyArgs, GatewayOptions, NatsArgs, WorkerOptions, nats_server::NatsServer, shutdown, telemetry,
};
use crate::{args::LogArgs, client::spec_file};

#[derive(Args, Clone, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Where the embedded nats-server keeps its data.
    #[arg(long, env = "SLUICE_DATA_DIR", default_value_os_t = crate::args::default_data_dir())]
    pub data_dir: PathBuf,
    /// Function spec files (JSON or YAML) to deploy at start.
    #[arg(long = "deploy", value_name = "FILE")]
    pub deploy: Vec<PathBuf>,
    #[command(flatten)]
    pub gateway: GatewayOptions,
    #[command(flatten)]
    pub worker: WorkerOptions,
    #[command(flatten)]
    pub policy: CallbackPolicyArgs,
    #[command(flatten)]
    pub s3: super::connector::S3Options,
    #[command(flatten)]
    pub log: LogArgs,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let _traces = telemetry::init(&args.log, "sluice")?;
    let metrics = telemetry::metrics_recorder()?;
    let gateway_cfg = args.gateway.config(metrics, &args.policy, &args.data_dir)?;
    let worker_cfg = args.worker.config(args.policy.policy())?;
    let specs = args.deploy.iter().map(|f| spec_file::read(f)).collect::<anyhow::Result<Vec<_>>>()?;
    let embedded = match &args.nats.nats_url {
        Some(_) => None,
        None => Some(NatsServer::start(&args.data_dir).await?),
    };
    let url = args.nats.nats_url.clone().or_else(|| embedded.as_ref().map(|s| s.url.clone())).expect("one is set");
    let result = serve(&args, &url, gateway_cfg, worker_cfg, specs.into_iter().flatten().collect()).await;
    if let Some(server) = embedded {
        server.stop().await;
    }
    result
}

async fn serve(
    args: &UpArgs,
    url: &str,
    gateway_cfg: sluice_gateway::GatewayConfig,
    worker_cfg: sluice_queue_worker::WorkerConfig,
    specs: Vec<FunctionSpec>,
) -> anyhow::Result<()> {
    let topology = args.nats.topology(url, "sluice-up").await?;
    let functions = FunctionStore::new(topology.functions.clone());
    let namespaces =
        sluice_jetstream::store::NamespaceStore::new(topology.namespaces.clone(), &gateway_cfg.default_namespace);
    for mut spec in specs {
        spec.validate().with_context(|| format!("function {}", spec.service))?;
        // A spec without a namespace goes where the gateway puts a bare name.
        let namespace = spec.namespace.get_or_insert_with(|| gateway_cfg.default_namespace.clone());
        anyhow::ensure!(
            namespaces.exists(namespace).await?,
            "function {}: namespace {namespace:?} does not exist (create it with POST /system/namespace/)",
            spec.service
        );
        functions.put(&spec).await?;
        tracing::info!(function = %spec.function_ref(), "deployed at start");
    }
    let stop = shutdown::on_signal();
    let listener = tokio::net::TcpListener::bind(gateway_cfg.listen)
        .await
        .with_context(|| format!("listening on {}", gateway_cfg.listen))?;
    tracing::info!(listen = %listener.local_addr()?, nats = %url, "sluice is up");
    let beside =
        super::connector::http_routes(&topology, &gateway_cfg.access, &args.policy, &gateway_cfg.default_namespace);
    let gateway = sluice_gateway::serve(listener, gateway_cfg, topology.clone(), beside, stop.clone());
    let runtimes = args.worker.docker.runtimes().await?;
    let mut connectors = super::connector::spawn_background(&topology, &stop);
    connectors.extend(args.s3.spawn(&topology, &stop));
    let worker = super::run_worker(worker_cfg, &args.worker.progress, runtimes, topology, stop.clone());
    let (gateway, worker) = tokio::join!(
        async {
            let r = gateway.await;
            stop.cancel(); // a gateway that fails takes the worker down with it
            r
        },
        async {
            let r = worker.await;
            stop.cancel(); // and a worker that fails, the gateway
            r
        }
    );
    for task in connectors {
        let _ = task.await;
    }
    gateway.context("gateway failed")?;
    worker
}
