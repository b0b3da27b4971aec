//! How workers run one call of a function.
//!
//! [`Runtime`] is the seam between the queue worker and whatever executes code: a process per call
//! ([`ProcessRuntime`], the OpenFaaS classic-watchdog contract), an existing HTTP service
//! ([`HttpRuntime`]), and containers on the local Docker engine ([`DockerRuntime`]). The trait is not object-safe (it returns `impl Future`), so
//! [`Runtimes`] dispatches on the spec's [`RuntimeKind`] with a plain `match`.
//!
//! A function's non-2xx answer is a [`FunctionResponse`], not an error: retry policy weighs status codes
//! and [`RuntimeError`]s separately.
//!
//! ```no_run
//! # async fn demo(spec: sluice_contracts::FunctionSpec) -> Result<(), sluice_runtime::RuntimeError> {
//! use sluice_runtime::{Invocation, Runtime, Runtimes};
//! let runtimes = Runtimes::new(Default::default());
//! let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
//! let response = runtimes.invoke(&spec, Invocation::post("call-1", "hello"), deadline).await?;
//! println!("{} {:?}", response.status, response.body);
//! # Ok(()) }
//! ```

pub mod docker;
mod http_runtime;
mod invocation;
mod process;

use std::{collections::HashSet, future::Future, time::Duration};

use sluice_contracts::{FunctionSpec, RuntimeKind};
use tokio::time::Instant;

pub use docker::{DockerConfig, DockerRuntime};
pub use http_runtime::HttpRuntime;
pub use invocation::{Body, FunctionResponse, Invocation};
pub use process::ProcessRuntime;

/// Something that can run calls of a function, and owns whatever the function needs to run: the whole
/// lifecycle of a function on one worker is deploy → invoke … → remove.
pub trait Runtime: Send + Sync {
    /// Readies `spec` for calls (checks the command exists, the upstream answers, starts containers, …); a
    /// changed spec is deployed again and rolls what runs.
    fn deploy(&self, spec: &FunctionSpec) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Releases what `function` (a [key](sluice_contracts::FunctionRef::key)) held (its containers, after their
    /// calls finish). Nothing by default.
    fn remove(&self, function: &str) -> impl Future<Output = ()> + Send {
        let _ = function;
        async {}
    }

    /// Releases what functions no longer in `deployed` (keys) still hold (removed while this worker was down).
    fn remove_orphans(&self, deployed: &HashSet<String>) -> impl Future<Output = Result<(), RuntimeError>> + Send {
        let _ = deployed;
        async { Ok(()) }
    }

    /// How many instances of `spec` this runtime may run at once; `async.maxInflight` holds per instance.
    fn instances(&self, spec: &FunctionSpec) -> u32 {
        let _ = spec;
        1
    }

    /// Runs one call; past `deadline`, fails with [`RuntimeError::Timeout`].
    fn invoke(
        &self,
        spec: &FunctionSpec,
        call: Invocation,
        deadline: Instant,
    ) -> impl Future<Output = Result<FunctionResponse, RuntimeError>> + Send;
}

/// Why a call produced no function response. Every variant is worth another attempt.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("call timed out after {0:?}")]
    Timeout(Duration),
    /// The function sent no progress report for this long (its `async.heartbeatTimeout`) and was stopped.
    #[error("no progress report for {0:?} (async.heartbeatTimeout): the call was stopped as hung")]
    Hung(Duration),
    #[error("function could not be started: {0}")]
    Start(#[source] std::io::Error),
    #[error("runtime backend unavailable: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the {0} runtime is not available on this worker")]
    Unsupported(&'static str),
    #[error("request body could not be read: {0}")]
    Body(#[source] std::io::Error),
    /// A bug met while running the call; it counts as a failed attempt rather than taking the worker's
    /// task (and the call, redelivered forever) down with it.
    #[error("the worker failed while running the call: {0}")]
    Crashed(String),
}

/// Settings shared by the runtimes.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Responses larger than this are cut off and the call fails, so one function cannot exhaust memory.
    pub max_response_bytes: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self { max_response_bytes: 64 * 1024 * 1024 }
    }
}

/// Every runtime this worker has, chosen per call by the function's [`RuntimeKind`].
#[derive(Clone)]
pub struct Runtimes {
    process: ProcessRuntime,
    http: HttpRuntime,
    /// Absent when the worker runs without a Docker engine.
    docker: Option<DockerRuntime>,
}

impl Runtimes {
    pub fn new(cfg: RuntimeConfig) -> Self {
        Self { process: ProcessRuntime::new(cfg.clone()), http: HttpRuntime::new(cfg), docker: None }
    }

    pub fn with_docker(mut self, docker: DockerRuntime) -> Self {
        self.docker = Some(docker);
        self
    }

    /// The container runtime, for what only containers have (replicas, scaling, logs, secret files); absent
    /// when the worker runs without a Docker engine.
    pub fn containers(&self) -> Option<&DockerRuntime> {
        self.docker.as_ref()
    }

    fn docker(&self) -> Result<&DockerRuntime, RuntimeError> {
        self.docker.as_ref().ok_or(RuntimeError::Unsupported("docker"))
    }
}

impl Runtime for Runtimes {
    async fn deploy(&self, spec: &FunctionSpec) -> Result<(), RuntimeError> {
        match spec.runtime_kind() {
            RuntimeKind::Process => self.process.deploy(spec).await,
            RuntimeKind::Http => self.http.deploy(spec).await,
            RuntimeKind::Docker => self.docker()?.deploy(spec).await,
        }
    }

    async fn remove(&self, function: &str) {
        // The worker may no longer know the removed spec's kind; only containers outlive a call.
        if let Some(docker) = &self.docker {
            docker.remove(function).await;
        }
    }

    async fn remove_orphans(&self, deployed: &HashSet<String>) -> Result<(), RuntimeError> {
        match &self.docker {
            Some(docker) => docker.remove_orphans(deployed).await,
            None => Ok(()),
        }
    }

    fn instances(&self, spec: &FunctionSpec) -> u32 {
        match spec.runtime_kind() {
            RuntimeKind::Process => self.process.instances(spec),
            RuntimeKind::Http => self.http.instances(spec),
            RuntimeKind::Docker => self.docker.as_ref().map_or(1, |docker| docker.instances(spec)),
        }
    }

    async fn invoke(
        &self,
        spec: &FunctionSpec,
        call: Invocation,
        deadline: Instant,
    ) -> Result<FunctionResponse, RuntimeError> {
        use futures::FutureExt;
        let run = async {
            match spec.runtime_kind() {
                RuntimeKind::Process => self.process.invoke(spec, call, deadline).await,
                RuntimeKind::Http => self.http.invoke(spec, call, deadline).await,
                RuntimeKind::Docker => self.docker()?.invoke(spec, call, deadline).await,
            }
        };
        // The runtimes hold nothing a panic could leave half-updated for the next call to see.
        std::panic::AssertUnwindSafe(run).catch_unwind().await.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned());
            tracing::error!(function = %spec.function_ref(), what, "a call's runtime panicked");
            Err(RuntimeError::Crashed(what))
        })
    }
}
