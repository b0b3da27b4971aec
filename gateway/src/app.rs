//! Shared state of the gateway's handlers.

use std::{ops::Deref, sync::Arc};

use sluice_jetstream::{
    Queue,
    store::{CallStore, FunctionCache, FunctionStore, InvocationTally, NamespaceStore, TotalsCopy},
    topology::Topology,
};

use sluice_contracts::{FunctionRef, FunctionSpec};

use crate::{ApiError, GatewayConfig};

/// What every handler can reach. Cloned for every request, so it is one reference-counted pointer: the
/// JetStream handles inside carry whole stream configurations and are costly to copy.
#[derive(Clone)]
pub struct App(Arc<AppState>);

impl Deref for App {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.0
    }
}

/// The gateway's shared state.
pub struct AppState {
    pub cfg: Arc<GatewayConfig>,
    pub topology: Topology,
    pub functions: FunctionStore,
    /// The specs invocation routes read, from memory.
    pub function_cache: Arc<FunctionCache>,
    pub calls: CallStore,
    /// Finished invocations per function, as the workers count them.
    pub invocations: InvocationTally,
    /// The same totals kept in memory, for listings.
    pub invocation_totals: Arc<TotalsCopy>,
    /// The namespaces functions and secrets live in.
    pub namespaces: NamespaceStore,
    /// Where calls and callbacks are queued.
    pub queue: Queue,
    /// Finished calls' kept results.
    pub results: sluice_jetstream::store::ResultStore,
    /// Calls followed live (`/system/calls/{id}/events`).
    pub call_watch: Arc<crate::call_watch::CallWatch>,
    /// Cancelled when the gateway stops: live streams end then rather than hold the shutdown up.
    pub stop: tokio_util::sync::CancellationToken,
}

impl App {
    /// The gateway's state; its function cache follows KV until `stop`.
    pub fn new(cfg: GatewayConfig, topology: Topology, stop: tokio_util::sync::CancellationToken) -> Self {
        let functions = FunctionStore::new(topology.functions.clone());
        Self(Arc::new(AppState {
            function_cache: FunctionCache::start(functions.clone(), stop.clone()),
            results: sluice_jetstream::store::ResultStore::new(topology.jetstream.clone()),
            call_watch: crate::call_watch::CallWatch::new(topology.calls.clone(), stop.clone()),
            invocation_totals: TotalsCopy::start(topology.invocations.clone(), stop.clone()),
            stop,
            functions,
            queue: Queue::new(topology.clone()),
            invocations: InvocationTally::new(topology.invocations.clone()),
            namespaces: NamespaceStore::new(topology.namespaces.clone(), cfg.default_namespace.clone()),
            calls: CallStore::new(topology.calls.clone(), topology.jetstream.clone()),
            cfg: Arc::new(cfg),
            topology,
        }))
    }
}

impl AppState {
    /// Bodies up to this size travel inside the NATS message; larger ones go to the object store.
    pub fn inline_body_limit(&self) -> usize {
        self.topology.inline_limit()
    }

    /// The namespace a request names (`?namespace=` or a body's `namespace`): the default one when absent or
    /// empty, else one that exists; an unknown one is a 404 naming it, never ignored.
    pub async fn namespace(&self, requested: Option<&str>) -> Result<String, ApiError> {
        match requested.filter(|n| !n.is_empty()) {
            None => Ok(self.namespaces.default_namespace().to_owned()),
            Some(name) if self.namespaces.exists(name).await? => Ok(name.to_owned()),
            Some(name) => Err(ApiError::UnknownNamespace(name.to_owned())),
        }
    }

    /// The function an invocation path names: `NAME` (in the default namespace) or `NAME.NAMESPACE`.
    pub fn function_ref(&self, qualified: &str) -> FunctionRef {
        FunctionRef::from_qualified(qualified, self.namespaces.default_namespace())
    }

    /// How answers name a function: its name alone in the default namespace, else `NAME.NAMESPACE`.
    pub fn shown(&self, function: &FunctionRef) -> String {
        if function.namespace == self.namespaces.default_namespace() {
            function.name.clone()
        } else {
            function.to_string()
        }
    }

    /// A deployed function's spec; a 404 names the function, or its namespace when that does not exist.
    pub async fn deployed(&self, function: &FunctionRef) -> Result<Arc<FunctionSpec>, ApiError> {
        if let Some(spec) = self.function_cache.get(function).await? {
            return Ok(spec);
        }
        if !self.namespaces.exists(&function.namespace).await? {
            return Err(ApiError::UnknownNamespace(function.namespace.clone()));
        }
        Err(ApiError::UnknownFunction(self.shown(function)))
    }
}
