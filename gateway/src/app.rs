//! Shared state of the gateway's handlers.

use std::sync::Arc;

use sluice_schemas::{
    store::{CallStore, FunctionStore},
    topology::Topology,
};

use crate::GatewayConfig;

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct App {
    pub cfg: Arc<GatewayConfig>,
    pub topology: Topology,
    pub functions: FunctionStore,
    pub calls: CallStore,
}

impl App {
    pub fn new(cfg: GatewayConfig, topology: Topology) -> Self {
        Self {
            functions: FunctionStore::new(topology.functions.clone()),
            calls: CallStore::new(topology.calls.clone(), topology.jetstream.clone()),
            cfg: Arc::new(cfg),
            topology,
        }
    }

    /// Bodies up to this size travel inside the NATS message; larger ones go to the object store.
    /// A quarter of the max payload is left for the headers that carry the request.
    pub fn inline_body_limit(&self) -> usize {
        self.topology.max_payload / 4 * 3
    }
}
