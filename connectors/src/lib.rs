//! Event sources and the router.
//!
//! Connectors turn what happens elsewhere — a webhook call, a CloudEvent posted to Sluice, a cron tick, an
//! object landing in an S3/MinIO bucket — into CloudEvents on `SLUICE_EVENTS`. The [`router`] turns each event
//! into calls of the functions whose triggers match. Connectors with HTTP endpoints serve them on the gateway's
//! listener ([`http::routes`]); the router and cron run as tasks in `sluice up` or `sluice connector …`.

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
