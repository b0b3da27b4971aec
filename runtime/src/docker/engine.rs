//! The Docker engine calls the docker runtime makes: create, start, find, inspect and remove function
//! containers, and the network they share with the worker.

use std::{collections::HashMap, time::Duration};

use bollard::{
    Docker,
    models::{ContainerSummaryStateEnum, NetworkCreateRequest},
    query_parameters::{
        CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder, LogsOptions,
        RemoveContainerOptionsBuilder,
    },
};
use futures::Stream;
use sluice_contracts::FunctionSpec;
use tokio::time::Instant;

use super::{
    readiness::{self, Probe},
    shape::{self, FUNCTION_PORT, LABEL_FUNCTION, LABEL_NAMESPACE, LABEL_SPEC, LABEL_WORKER},
};
use crate::RuntimeError;

/// A function container as found on the engine.
#[derive(Clone, Debug)]
pub struct Found {
    pub id: String,
    /// The function's key (`{namespace}.{name}`).
    pub function: String,
    pub spec_hash: String,
    pub running: bool,
    /// `ip:8080` on the function network, when the container has an address there.
    pub addr: Option<String>,
}

fn backend(err: impl std::error::Error + Send + Sync + 'static) -> RuntimeError {
    RuntimeError::Backend(Box::new(err))
}

/// One connection to the local Docker engine, scoped to one worker's containers.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    worker: String,
    network: String,
    /// The network's ID: unambiguous where its name might not be.
    network_id: String,
    /// Readiness probes of new replicas.
    probe: reqwest::Client,
}

impl Engine {
    /// Connects (honouring `DOCKER_HOST`), agrees on an API version and makes sure the network exists.
    pub async fn connect(worker: &str, network: &str) -> Result<Self, RuntimeError> {
        let docker = Docker::connect_with_local_defaults().map_err(backend)?;
        let docker = docker.negotiate_version().await.map_err(backend)?;
        docker.ping().await.map_err(backend)?;
        let mut engine = Self {
            docker,
            worker: worker.to_owned(),
            network: network.to_owned(),
            network_id: String::new(),
            probe: readiness::client(),
        };
        engine.network_id = engine.ensure_network().await?;
        Ok(engine)
    }

    /// The host's address on the function network (its bridge gateway): where containers reach the worker.
    pub async fn network_gateway(&self) -> Result<Option<std::net::IpAddr>, RuntimeError> {
        let options = bollard::query_parameters::InspectNetworkOptions::default();
        let network = self.docker.inspect_network(&self.network_id, Some(options)).await.map_err(backend)?;
        let configs = network.ipam.and_then(|ipam| ipam.config).unwrap_or_default();
        Ok(configs.iter().filter_map(|c| c.gateway.as_deref()).find_map(|g| g.parse().ok()))
    }

    /// IDs of the networks called `self.network`, oldest first. The engine allows several networks of one
    /// name, and workers starting at once can each create one.
    async fn networks_named(&self) -> Result<Vec<String>, RuntimeError> {
        let filters = HashMap::from([("name".to_owned(), vec![format!("^{}$", self.network)])]);
        let options = ListNetworksOptionsBuilder::default().filters(&filters).build();
        let networks = self.docker.list_networks(Some(options)).await.map_err(backend)?;
        let mut found: Vec<(String, String)> = networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(&self.network))
            .filter_map(|n| Some((n.created.map(|c| c.to_string()).unwrap_or_default(), n.id?)))
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }

    /// Makes sure exactly one network of the configured name exists; returns its ID. Racing creators all
    /// keep the oldest and remove the others, so they agree without talking to each other.
    async fn ensure_network(&self) -> Result<String, RuntimeError> {
        let mut ids = self.networks_named().await?;
        if ids.is_empty() {
            let request = NetworkCreateRequest {
                name: self.network.clone(),
                driver: Some("bridge".into()),
                ..Default::default()
            };
            self.docker.create_network(request).await.map_err(backend)?;
            ids = self.networks_named().await?;
        }
        for extra in ids.iter().skip(1) {
            let _ = self.docker.remove_network(extra).await;
        }
        ids.into_iter().next().ok_or_else(|| RuntimeError::Backend(format!("network {} vanished", self.network).into()))
    }

    /// This worker's containers, of one function or of all.
    /// This worker's containers, of the function with key `function` when given.
    pub async fn list(&self, function: Option<&str>) -> Result<Vec<Found>, RuntimeError> {
        let function = match function.map(sluice_contracts::FunctionRef::from_key) {
            Some(None) => return Ok(Vec::new()),
            wanted => wanted.flatten(),
        };
        let mut label = vec![format!("{LABEL_WORKER}={}", self.worker)];
        if let Some(f) = &function {
            label.push(format!("{LABEL_FUNCTION}={}", f.name));
        }
        let filters = HashMap::from([("label".to_owned(), label)]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let containers = self.docker.list_containers(Some(options)).await.map_err(backend)?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                // A container started before namespaces existed has no namespace label: the legacy one.
                let namespace =
                    labels.get(LABEL_NAMESPACE).map_or(sluice_contracts::function_ref::LEGACY_NAMESPACE, |n| n);
                let found = sluice_contracts::FunctionRef::new(namespace, labels.get(LABEL_FUNCTION)?.as_str());
                if function.as_ref().is_some_and(|f| *f != found) {
                    return None;
                }
                let addr = c
                    .network_settings
                    .and_then(|n| n.networks)
                    .and_then(|n| self.endpoint_ip(n))
                    .filter(|ip| !ip.is_empty())
                    .map(|ip| format!("{ip}:{FUNCTION_PORT}"));
                Some(Found {
                    id: c.id?,
                    function: found.key(),
                    spec_hash: labels.get(LABEL_SPEC).cloned().unwrap_or_default(),
                    running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                    addr,
                })
            })
            .collect())
    }

    /// Creates and starts one replica of `spec`; returns it once it accepts connections on port 8080.
    pub async fn start(
        &self,
        spec: &FunctionSpec,
        secrets_dir: Option<&std::path::Path>,
        ready_within: Duration,
    ) -> Result<Found, RuntimeError> {
        let name = format!("sluice-{}-{}", spec.function_ref(), &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let body = shape::create_body(spec, &self.worker, &self.network_id, secrets_dir);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = self.docker.create_container(Some(options), body).await.map_err(backend)?;
        let id = created.id;
        if let Err(err) = self.docker.start_container(&id, None).await {
            self.remove(&id).await;
            return Err(backend(err));
        }
        match self.wait_ready(&id, ready_within).await {
            Ok(addr) => Ok(Found {
                id,
                function: spec.function_ref().key(),
                spec_hash: shape::spec_hash(spec),
                running: true,
                addr: Some(addr),
            }),
            Err(err) => {
                self.remove(&id).await;
                Err(err)
            }
        }
    }

    /// Waits until the container is ready for calls (see [`readiness`]); fails early if it exits, and when
    /// `within` passes says what it was still waiting for.
    pub async fn wait_ready(&self, id: &str, within: Duration) -> Result<String, RuntimeError> {
        let give_up = Instant::now() + within;
        let inspect = self.docker.inspect_container(id, None).await.map_err(backend)?;
        let ip =
            inspect.network_settings.and_then(|n| n.networks).and_then(|n| self.endpoint_ip(n)).ok_or_else(|| {
                RuntimeError::Backend(format!("container {id} has no address on {}", self.network).into())
            })?;
        let addr = format!("{ip}:{FUNCTION_PORT}");
        let has_healthcheck =
            readiness::from_health(inspect.state.and_then(|s| s.health).and_then(|h| h.status)).is_some();
        let mut checks = 0u32;
        loop {
            let probe = match has_healthcheck {
                true => {
                    let state = self.docker.inspect_container(id, None).await.map_err(backend)?.state;
                    let health = state.and_then(|s| s.health).and_then(|h| h.status);
                    readiness::from_health(health).unwrap_or(Probe::NotYet("its HEALTHCHECK went away".into()))
                }
                false => readiness::probe_http(&self.probe, &addr).await,
            };
            let reason = match probe {
                Probe::Ready => return Ok(addr),
                Probe::NotYet(reason) => reason,
            };
            checks += 1;
            if checks.is_multiple_of(10) && !self.is_running(id).await {
                let logs = self.tail_logs(id).await;
                return Err(RuntimeError::Backend(format!("container exited before it was ready: {logs}").into()));
            }
            if Instant::now() >= give_up {
                return Err(RuntimeError::Backend(format!("container not ready within {within:?}: {reason}").into()));
            }
            // A health check changes state at its own interval; a probe is cheap.
            tokio::time::sleep(Duration::from_millis(if has_healthcheck { 200 } else { 50 })).await;
        }
    }

    /// One readiness check of a running replica at `addr`: its HEALTHCHECK when the image has one, else
    /// `GET /_/ready`.
    pub async fn probe_once(&self, id: &str, addr: &str) -> Probe {
        let health = match self.docker.inspect_container(id, None).await {
            Ok(inspect) => inspect.state.and_then(|s| s.health).and_then(|h| h.status),
            Err(err) => return Probe::NotYet(format!("the engine does not know it: {err}")),
        };
        match readiness::from_health(health) {
            Some(probe) => probe,
            None => readiness::probe_http(&self.probe, addr).await,
        }
    }

    /// The container's CPU time so far (nanoseconds) and its memory in use (bytes, without the page cache
    /// the kernel can reclaim, as `docker stats` shows it); `None` when the engine cannot say.
    pub async fn usage_sample(&self, id: &str) -> Option<(u64, u64)> {
        use futures::StreamExt;
        let options = bollard::query_parameters::StatsOptions { stream: false, one_shot: true };
        let stats = self.docker.stats(id, Some(options)).next().await?.ok()?;
        let cpu = stats.cpu_stats?.cpu_usage?.total_usage?;
        let memory = stats.memory_stats?;
        let cache = memory.stats.as_ref().and_then(|s| s.get("inactive_file").or_else(|| s.get("total_inactive_file")));
        Some((cpu, memory.usage?.saturating_sub(cache.copied().unwrap_or(0))))
    }

    /// The container's address on the function network.
    fn endpoint_ip(&self, networks: HashMap<String, bollard::models::EndpointSettings>) -> Option<String> {
        networks
            .into_values()
            .find(|e| e.network_id.as_deref() == Some(&self.network_id))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty())
    }

    /// Whether the container exists and runs.
    pub async fn is_running(&self, id: &str) -> bool {
        match self.docker.inspect_container(id, None).await {
            Ok(c) => c.state.and_then(|s| s.running).unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Removes the container, stopping it first; a container already gone is not an error.
    pub async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        if let Err(err) = self.docker.remove_container(id, Some(options)).await {
            tracing::debug!(container = %id, %err, "container removal");
        }
    }

    async fn tail_logs(&self, id: &str) -> String {
        use futures::StreamExt;
        let options = LogsOptions { stdout: true, stderr: true, tail: "20".into(), ..Default::default() };
        let lines: Vec<String> =
            self.docker.logs(id, Some(options)).filter_map(|l| async { l.ok().map(|l| l.to_string()) }).collect().await;
        lines.concat().trim().to_owned()
    }

    /// The container's output, as the engine streams it.
    pub fn logs(
        &self,
        id: &str,
        follow: bool,
        since_unix: i32,
        tail: Option<u32>,
    ) -> impl Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>> + use<> {
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            since: since_unix,
            timestamps: true,
            tail: tail.map_or_else(|| "all".to_owned(), |t| t.to_string()),
            ..Default::default()
        };
        self.docker.logs(id, Some(options))
    }
}
