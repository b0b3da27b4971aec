//! Server commands: options, wiring and lifecycle of gateway, worker and connector processes, and of all of
//! them in one (`sluice up`).

pub mod auth;
pub mod connector;
pub mod gateway;
pub mod nats_server;
mod options;
mod progress;
mod shutdown;
mod telemetry;
pub mod up;
pub mod worker;

pub use gateway::{GatewayArgs, GatewayOptions};
pub use options::{CallbackPolicyArgs, ListenOptions, NamespaceArgs, NatsArgs};
pub use worker::{WorkerArgs, WorkerOptions, run_worker};
