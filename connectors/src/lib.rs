//! Event sources and the router.
//!
//! Connectors turn what happens elsewhere — a webhook call, a CloudEvent posted to Sluice, a cron tick, an
//! object landing in an S3/MinIO bucket — into CloudEvents on `SLUICE_EVENTS`. The [`router`] turns each event
//! into calls of the functions whose triggers match, through the one queue (`sluice_jetstream::Queue`), and
//! answers gateways' replay requests over NATS. The HTTP endpoints are routers ([`http::webhook_routes`],
//! [`http::ingress_routes`]) that the binary serves beside the gateway's API or on their own; the router and
//! cron run as tasks in `sluice up` or `sluice connector …`.

pub mod cron;
mod hooks;
pub mod http;
mod ingress;
pub mod metrics;
#[cfg(test)]
mod parsers_fuzz;
pub mod router;
pub mod s3;
pub mod triggers;

pub use http::ConnectorState;
pub use router::EventRouter;
