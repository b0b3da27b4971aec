//! Shared state of the gateway's handlers.

use std::{ops::Deref, sync::Arc};

use sluice_jetstream::{
    Queue,
    store::{CallStore, FunctionCache, FunctionStore, InvocationTally},
    topology::Topology,
};

use crate::GatewayConfig;

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
    /// Where calls and callbacks are queued.
    pub queue: Queue,
}

impl App {
    /// The gateway's state; its function cache follows KV until `stop`.
    pub fn new(cfg: GatewayConfig, topology: Topology, stop: tokio_util::sync::CancellationToken) -> Self {
        let functions = FunctionStore::new(topology.functions.clone());
        Self(Arc::new(AppState {
            function_cache: FunctionCache::start(functions.clone(), stop),
            functions,
            queue: Queue::new(topology.clone()),
            invocations: InvocationTally::new(topology.invocations.clone()),
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
}
