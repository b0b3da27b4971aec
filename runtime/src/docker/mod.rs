//! The `docker` runtime: each function runs as containers on the local Docker engine, serving HTTP on
//! port 8080 (the OpenFaaS watchdog convention), reached by the worker over a shared bridge network.
//!
//! The worker reconciles the engine to the spec (the controller pattern): deploying starts `scale.min` ready
//! replicas; a changed spec rolls them (new ready before old removed); removing a function removes its
//! containers; and after a restart the worker adopts the containers labelled with its worker id instead of
//! starting new ones. Calls go to the least busy ready replica, never past `async.maxInflight` per replica; a
//! call that finds no replica starts one (scale from zero) and waits until it is ready. [`DockerRuntime::tick`]
//! autoscales from demand and replaces containers that died.

mod engine;
pub mod logs;
mod pool;
pub mod readiness;
mod scaling;
mod shape;

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use sluice_contracts::FunctionSpec;
use tokio::time::Instant;

use engine::Engine;
pub use engine::Found;
use pool::{Pool, Replica};
use readiness::Probe;
use scaling::{Load, Scaler};
pub use shape::{LABEL_FUNCTION, LABEL_NAMESPACE, LABEL_SPEC, LABEL_WORKER, SECRETS_PATH, spec_hash};

use crate::{FunctionResponse, HttpRuntime, Invocation, Runtime, RuntimeConfig, RuntimeError};

/// Metric: seconds from a call finding no replica to the new replica being ready.
pub const COLD_START_SECONDS: &str = "sluice_cold_start_seconds";

/// How long a replica whose request failed may take to accept connections again before it is removed.
const RECHECK_WITHIN: Duration = Duration::from_secs(5);
/// How often a ready replica's readiness is checked again (Kubernetes' readiness probe period is 10 s).
const READINESS_EVERY: Duration = Duration::from_secs(3);

/// How the docker runtime manages containers.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// Labels this worker's containers; a worker adopts and removes only containers with its own id.
    pub worker_id: String,
    /// Bridge network shared by the function containers; created when missing.
    pub network: String,
    /// Per-function secret files live in `secrets_dir/{function}/`, mounted read-only into its containers.
    pub secrets_dir: PathBuf,
    /// How long a new container may take to become ready (see `readiness`).
    pub ready_timeout: Duration,
    /// Scale-down stabilisation window.
    pub scale_down_window: Duration,
    /// How long a replica being removed may finish its calls first.
    pub drain_timeout: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            worker_id: "default".into(),
            network: "sluice".into(),
            secrets_dir: std::env::temp_dir().join("sluice-secrets"),
            ready_timeout: Duration::from_secs(60),
            scale_down_window: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(300),
        }
    }
}

/// Replica counts of one function on this worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaCount {
    /// What the worker is scaling to.
    pub desired: u32,
    /// Ready replicas taking calls.
    pub available: u32,
}

struct Function {
    spec: RwLock<Arc<FunctionSpec>>,
    pool: Arc<Pool>,
    desired: AtomicU32,
    /// Serialises scaling, updates and removal of this function.
    control: Arc<tokio::sync::Mutex<Scaler>>,
    /// The last failed cold start, so waiting calls fail with its reason instead of retrying in a loop.
    start_failure: Mutex<Option<(Instant, String)>>,
    /// When its replicas' readiness was last checked.
    readiness_checked: Mutex<Instant>,
    /// Replicas out of rotation until they are ready again: alive, so scaling counts them (as Kubernetes counts
    /// an unready pod) rather than starting others in their place.
    resting: AtomicU32,
}

impl Function {
    fn spec(&self) -> Arc<FunctionSpec> {
        self.spec.read().expect("spec lock").clone()
    }

    /// Replicas in rotation and resting ones.
    fn alive(&self) -> u32 {
        (self.pool.len() as u32).saturating_add(self.resting.load(Ordering::Relaxed))
    }
}

/// The container controller: the one owner of this worker's containers, reconciling the engine to the specs.
///
/// Lock order. `functions` is held only to look up, insert or remove an entry, never across an `await` and
/// never with another lock. A function's `control` (async) serialises its scaling, updates and removal and is
/// the only lock held across `await`s; under it, and only briefly, a function's `spec`, `start_failure` and
/// its pool's own locks may be taken, one at a time. Calls never take `control`: they lease from the pool.
struct Controller {
    engine: Engine,
    http: HttpRuntime,
    cfg: DockerConfig,
    functions: Mutex<HashMap<String, Arc<Function>>>,
}

/// Runs functions as containers on the local Docker engine.
#[derive(Clone)]
pub struct DockerRuntime {
    inner: Arc<Controller>,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime").field("cfg", &self.inner.cfg).finish_non_exhaustive()
    }
}

impl DockerRuntime {
    /// Connects to the engine (`DOCKER_HOST` or the local socket) and prepares the network.
    pub async fn connect(cfg: DockerConfig, runtime: RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine = Engine::connect(&cfg.worker_id, &cfg.network).await?;
        tracing::info!(worker = %cfg.worker_id, network = %cfg.network, "docker engine connected");
        Ok(Self {
            inner: Arc::new(Controller {
                engine,
                http: HttpRuntime::new(runtime),
                cfg,
                functions: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The worker's address as its containers see it (the function network's gateway), if the engine says.
    pub async fn host_address(&self) -> Result<Option<std::net::IpAddr>, RuntimeError> {
        self.inner.engine.network_gateway().await
    }

    pub fn config(&self) -> &DockerConfig {
        &self.inner.cfg
    }

    fn function(&self, spec: &FunctionSpec) -> (Arc<Function>, bool) {
        let mut functions = self.inner.functions.lock().expect("functions lock");
        if let Some(f) = functions.get(&spec.function_ref().key()) {
            return (f.clone(), false);
        }
        let f = Arc::new(Function {
            spec: RwLock::new(Arc::new(spec.clone())),
            pool: Pool::new(spec.max_inflight().unwrap_or(u32::MAX)),
            desired: AtomicU32::new(0),
            control: Arc::new(tokio::sync::Mutex::new(Scaler::new(self.inner.cfg.scale_down_window))),
            start_failure: Mutex::new(None),
            readiness_checked: Mutex::new(Instant::now()),
            resting: AtomicU32::new(0),
        });
        functions.insert(spec.function_ref().key(), f.clone());
        (f, true)
    }

    fn known(&self, name: &str) -> Option<Arc<Function>> {
        self.inner.functions.lock().expect("functions lock").get(name).cloned()
    }

    fn secrets_dir(&self, spec: &FunctionSpec) -> Option<PathBuf> {
        (!spec.secrets.is_empty()).then(|| self.inner.cfg.secrets_dir.join(spec.function_ref().key()))
    }

    /// Starts `n` replicas of `spec` at once and adds the ready ones to the pool.
    async fn start_replicas(&self, f: &Function, spec: &FunctionSpec, n: u32) -> Result<(), RuntimeError> {
        let secrets = self.secrets_dir(spec);
        let starts = (0..n).map(|_| self.inner.engine.start(spec, secrets.as_deref(), self.inner.cfg.ready_timeout));
        let mut last_err = None;
        for result in futures::future::join_all(starts).await {
            match result {
                Ok(found) => {
                    let addr = found.addr.expect("a ready container has an address");
                    tracing::info!(function = %spec.function_ref(), container = %short(&found.id), %addr, "replica ready");
                    f.pool.add(Replica::new(found.id, addr, found.spec_hash));
                }
                Err(err) => {
                    tracing::warn!(function = %spec.function_ref(), %err, "replica failed to start");
                    last_err = Some(err);
                }
            }
        }
        last_err.map_or(Ok(()), Err)
    }

    /// Takes replicas out of rotation, then removes them once their calls are done (in the background).
    fn retire(&self, f: &Arc<Function>, ids: Vec<String>) {
        let retired: Vec<Arc<Replica>> = ids.iter().filter_map(|id| f.pool.take_out(id)).collect();
        let (engine, drain) = (self.inner.engine.clone(), self.inner.cfg.drain_timeout);
        let pool = f.pool.clone();
        tokio::spawn(async move {
            let give_up = Instant::now() + drain;
            for replica in retired {
                while replica.inflight() > 0 && Instant::now() < give_up {
                    let changed = pool.changed.notified();
                    let _ = tokio::time::timeout(Duration::from_millis(200), changed).await;
                }
                engine.remove(&replica.id).await;
                tracing::info!(container = %short(&replica.id), "replica removed");
            }
        });
    }

    /// Brings the function to `n` replicas. Caller holds the function's control lock.
    async fn scale_locked(&self, f: &Arc<Function>, n: u32) -> Result<(), RuntimeError> {
        f.desired.store(n, Ordering::Relaxed);
        let current = f.alive();
        if n > current {
            let spec = f.spec();
            tracing::info!(function = %spec.function_ref(), from = current, to = n, "scaling up");
            self.start_replicas(f, &spec, n - current).await?;
        } else if n < current {
            let mut replicas = f.pool.replicas();
            replicas.sort_by_key(|r| r.inflight());
            // Resting replicas are left to come back (and be scaled down then) or to be removed.
            let ids = replicas.into_iter().take((current - n) as usize).map(|r| r.id.clone()).collect();
            tracing::info!(function = %f.spec().function_ref(), from = current, to = n, "scaling down");
            self.retire(f, ids);
        }
        Ok(())
    }

    /// Adopts this worker's running containers of `spec` from an earlier run; returns the stale ones.
    async fn adopt(&self, f: &Function, spec: &FunctionSpec) -> Result<Vec<String>, RuntimeError> {
        let hash = spec_hash(spec);
        let mut stale = Vec::new();
        for found in self.inner.engine.list(Some(&spec.function_ref().key())).await? {
            let ready = match (&found.addr, found.running && found.spec_hash == hash) {
                (Some(_), true) => self.inner.engine.wait_ready(&found.id, Duration::from_secs(2)).await.ok(),
                _ => None,
            };
            match ready {
                Some(addr) => {
                    tracing::info!(function = %spec.function_ref(), container = %short(&found.id), "replica adopted");
                    f.pool.add(Replica::new(found.id, addr, found.spec_hash));
                }
                None => stale.push(found.id),
            }
        }
        Ok(stale)
    }

    /// Sets the function to `replicas` now (a manual scale); autoscaling resumes after one window.
    pub async fn scale(&self, name: &str, replicas: u32) -> Result<ReplicaCount, RuntimeError> {
        let f = self.known(name).ok_or_else(|| RuntimeError::Backend(format!("{name} is not deployed").into()))?;
        let spec = f.spec();
        let replicas = replicas.min(spec.max_replicas());
        let mut scaler = f.control.lock().await;
        scaler.pin(Instant::now(), replicas);
        self.scale_locked(&f, replicas).await?;
        Ok(self.replicas(name))
    }

    /// Replica counts of a function on this worker.
    /// CPU time (ns) and memory (bytes) of each of `name`'s replicas in rotation, by container.
    pub async fn usage_samples(&self, name: &str) -> Vec<(String, u64, u64)> {
        let Some(f) = self.known(name) else { return Vec::new() };
        let replicas = f.pool.replicas();
        let samples = replicas.iter().map(|r| self.inner.engine.usage_sample(&r.id));
        let found = futures::future::join_all(samples).await;
        replicas.iter().zip(found).filter_map(|(r, s)| s.map(|(cpu, mem)| (r.id.clone(), cpu, mem))).collect()
    }

    pub fn replicas(&self, name: &str) -> ReplicaCount {
        self.known(name).map_or_else(ReplicaCount::default, |f| ReplicaCount {
            desired: f.desired.load(Ordering::Relaxed),
            available: f.pool.len() as u32,
        })
    }

    /// One autoscaling step for `name`, with `queued` calls waiting in its queue. Also replaces replicas whose
    /// container died. Skipped while another change to the function is in progress.
    pub async fn tick(&self, name: &str, queued: u64) {
        let Some(f) = self.known(name) else { return };
        let Ok(mut scaler) = f.control.try_lock() else { return };
        if let Ok(found) = self.inner.engine.list(Some(name)).await {
            let running: HashSet<&str> = found.iter().filter(|c| c.running).map(|c| c.id.as_str()).collect();
            let dead: Vec<String> =
                f.pool.replicas().iter().filter(|r| !running.contains(r.id.as_str())).map(|r| r.id.clone()).collect();
            if !dead.is_empty() {
                tracing::warn!(function = %name, containers = dead.len(), "replicas died; replacing them");
                self.retire(&f, dead);
            }
        }
        self.check_readiness(&f).await;
        let demand = f.pool.demand().saturating_add(queued.min(u32::MAX as u64) as u32);
        let idle_for = if demand > 0 { Duration::ZERO } else { f.pool.last_used().elapsed() };
        let current = f.alive();
        let desired = scaler.desired(&f.spec(), Instant::now(), current, Load { demand, idle_for });
        f.desired.store(desired, Ordering::Relaxed);
        if desired != current
            && let Err(err) = self.scale_locked(&f, desired).await
        {
            tracing::warn!(function = %name, %err, "autoscaling step failed");
        }
    }

    /// Removes every container of `name` (after its calls finish, within the drain timeout).
    pub async fn remove(&self, name: &str) {
        let f = self.inner.functions.lock().expect("functions lock").remove(name);
        if let Some(f) = f {
            let _control = f.control.lock().await;
            let ids = f.pool.replicas().iter().map(|r| r.id.clone()).collect();
            self.retire(&f, ids);
        }
        if let Ok(found) = self.inner.engine.list(Some(name)).await {
            for c in found.into_iter().filter(|c| !c.running) {
                self.inner.engine.remove(&c.id).await;
            }
        }
    }

    /// Removes this worker's containers of functions not in `deployed` (removed while the worker was down).
    pub async fn remove_orphans(&self, deployed: &HashSet<String>) -> Result<(), RuntimeError> {
        for found in self.inner.engine.list(None).await? {
            if !deployed.contains(&found.function) {
                tracing::info!(function = %found.function, container = %short(&found.id), "removing orphan");
                self.inner.engine.remove(&found.id).await;
            }
        }
        Ok(())
    }

    /// A replica for one call: the least busy ready one, else wait for one — starting one if there is none.
    async fn lease(&self, f: &Arc<Function>, deadline: Instant) -> Result<pool::Lease, RuntimeError> {
        let waited_from = Instant::now();
        let mut waiting = None;
        loop {
            let changed = f.pool.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(lease) = f.pool.try_lease() {
                return Ok(lease);
            }
            waiting.get_or_insert_with(|| f.pool.wait_guard());
            if f.pool.len() == 0 {
                self.cold_start(f.clone(), waited_from);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(RuntimeError::Timeout(deadline.saturating_duration_since(waited_from)));
            }
            if let Some((at, reason)) = f.start_failure.lock().expect("failure lock").as_ref()
                && *at >= waited_from
            {
                return Err(RuntimeError::Backend(format!("no replica could be started: {reason}").into()));
            }
        }
    }

    /// Starts a first replica in the background unless one is already starting.
    fn cold_start(&self, f: Arc<Function>, since: Instant) {
        let Ok(mut scaler) = f.control.clone().try_lock_owned() else { return };
        let runtime = self.clone();
        tokio::spawn(async move {
            if f.pool.len() > 0 {
                return;
            }
            let name = f.spec().function_ref().key();
            scaler.pin(Instant::now(), 1);
            match runtime.scale_locked(&f, 1).await {
                Ok(()) => {
                    let seconds = since.elapsed().as_secs_f64();
                    // Labelled `NAME.NAMESPACE`, as every other per-function metric is.
                    let label = f.spec().function_ref().to_string();
                    metrics::histogram!(COLD_START_SECONDS, "function_name" => label).record(seconds);
                    tracing::info!(function = %name, seconds, "cold start");
                }
                Err(err) => {
                    tracing::warn!(function = %name, %err, "cold start failed");
                    *f.start_failure.lock().expect("failure lock") = Some((Instant::now(), err.to_string()));
                    // Wake the waiting calls so they try again (and time out) rather than sleep on.
                    f.pool.changed.notify_waiters();
                }
            }
        });
    }

    /// Every [`READINESS_EVERY`], asks each replica in rotation whether it is still ready (its HEALTHCHECK, else
    /// `GET /_/ready`). One that is not leaves rotation, calls on it going on, and comes back once ready again;
    /// one that stays unready for the readiness timeout is removed, and scaling replaces it.
    async fn check_readiness(&self, f: &Arc<Function>) {
        {
            let mut checked = f.readiness_checked.lock().expect("readiness lock");
            if checked.elapsed() < READINESS_EVERY {
                return;
            }
            *checked = Instant::now();
        }
        let replicas = f.pool.replicas();
        let probes = replicas.iter().map(|r| self.inner.engine.probe_once(&r.id, &r.addr));
        let found = futures::future::join_all(probes).await;
        for (replica, probe) in replicas.into_iter().zip(found) {
            let Probe::NotYet(reason) = probe else { continue };
            tracing::warn!(container = %short(&replica.id), %reason, "replica no longer ready; out of rotation");
            self.rest(f, &replica, self.inner.cfg.ready_timeout);
        }
    }

    /// After a failed request: the replica leaves rotation at once, so a retry goes elsewhere, and comes
    /// back only if its container still accepts connections. Asking the engine whether it runs is not
    /// enough: a container whose process was just killed still shows as running for a moment, and a retry
    /// sent back to it would fail again.
    fn check_replica(&self, f: &Arc<Function>, replica: &Replica) {
        self.rest(f, replica, RECHECK_WITHIN);
    }

    /// Takes `replica` out of rotation until it is ready again, then back in; removed if it is not ready
    /// `within`. It counts as alive meanwhile, so scaling does not start another in its place.
    fn rest(&self, f: &Arc<Function>, replica: &Replica, within: Duration) {
        let Some(replica) = f.pool.take_out(&replica.id) else { return };
        f.resting.fetch_add(1, Ordering::Relaxed);
        let (engine, f) = (self.inner.engine.clone(), f.clone());
        tokio::spawn(async move {
            let ready = engine.wait_ready(&replica.id, within).await;
            f.resting.fetch_sub(1, Ordering::Relaxed);
            match ready {
                Ok(_) => {
                    tracing::info!(container = %short(&replica.id), "replica ready again; back in rotation");
                    f.pool.add(replica);
                }
                Err(err) => {
                    tracing::warn!(container = %short(&replica.id), %err, "replica not ready again; removing it");
                    engine.remove(&replica.id).await;
                }
            }
        });
    }

    /// Containers' output for `name`, merged over its replicas.
    pub async fn logs(&self, name: &str, query: logs::LogQuery) -> Result<logs::LogStream, RuntimeError> {
        let containers = self.inner.engine.list(Some(name)).await?;
        Ok(logs::merge(&self.inner.engine, name, containers, query))
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

impl Runtime for DockerRuntime {
    async fn remove(&self, function: &str) {
        DockerRuntime::remove(self, function).await
    }

    async fn remove_orphans(&self, deployed: &HashSet<String>) -> Result<(), RuntimeError> {
        DockerRuntime::remove_orphans(self, deployed).await
    }

    /// Up to `scale.max` replicas, each taking `async.maxInflight` calls.
    fn instances(&self, spec: &FunctionSpec) -> u32 {
        spec.max_replicas()
    }

    async fn deploy(&self, spec: &FunctionSpec) -> Result<(), RuntimeError> {
        let (f, new) = self.function(spec);
        let _control = f.control.lock().await;
        *f.spec.write().expect("spec lock") = Arc::new(spec.clone());
        f.pool.set_max_per_replica(spec.max_inflight().unwrap_or(u32::MAX));
        let hash = spec_hash(spec);
        let stale = if new { self.adopt(&f, spec).await? } else { Vec::new() };
        let outdated: Vec<String> =
            f.pool.replicas().iter().filter(|r| r.spec_hash != hash).map(|r| r.id.clone()).collect();
        let current = f.pool.len() as u32 - outdated.len() as u32;
        let want = spec.min_replicas().max(outdated.len() as u32).max(current).min(spec.max_replicas());
        let want = if new && spec.min_replicas() == 0 { current } else { want };
        f.desired.store(want, Ordering::Relaxed);
        if want > current {
            tracing::info!(function = %spec.function_ref(), replicas = want, "deploying");
            self.start_replicas(&f, spec, want - current).await?;
        }
        // New replicas are ready: only now do the outdated ones leave.
        if !outdated.is_empty() {
            tracing::info!(function = %spec.function_ref(), replicas = outdated.len(), "rolling update: retiring old replicas");
            self.retire(&f, outdated);
        }
        for id in stale {
            self.inner.engine.remove(&id).await;
        }
        Ok(())
    }

    async fn invoke(
        &self,
        spec: &FunctionSpec,
        call: Invocation,
        deadline: Instant,
    ) -> Result<FunctionResponse, RuntimeError> {
        let f = match self.known(&spec.function_ref().key()) {
            Some(f) => f,
            None => {
                self.deploy(spec).await?;
                self.known(&spec.function_ref().key())
                    .ok_or_else(|| RuntimeError::Backend("function removed meanwhile".into()))?
            }
        };
        let lease = self.lease(&f, deadline).await?;
        let url = HttpRuntime::url(&format!("http://{}", lease.replica.addr), &call);
        let result = self.inner.http.forward(url, call, deadline).await;
        if matches!(result, Err(RuntimeError::Backend(_))) {
            self.check_replica(&f, &lease.replica);
        }
        result
    }
}
