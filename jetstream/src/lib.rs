//! Sluice's state in NATS JetStream, and the one way every process reads and writes it.
//!
//! Gateways, queue workers and connectors never talk to each other directly: they meet on JetStream. The
//! shapes of what they exchange are in `sluice-contracts`; this crate is the access:
//!
//! - [`topology`]: connecting to NATS and creating the streams, buckets and object store idempotently;
//! - [`store`]: typed access to the KV buckets (function specs, call records);
//! - [`payloads`]: large bodies in the object store, streamed;
//! - [`queue`]: submitting calls and enqueueing callbacks — the one place work enters the queue;
//! - [`dead_letters`]: writing and reading the dead-letter stream;
//! - [`event_log`]: listing connector events with what routing made of them;
//! - [`migrate`]: moving data stored before namespaces existed into the default namespace;
//! - [`retry`]: retrying a write that failed for a passing reason.

pub mod dead_letters;
pub mod event_log;
pub mod migrate;
pub mod payloads;
pub mod queue;
pub mod retry;
pub mod store;
pub mod topology;

pub use queue::{Queue, QueueError, Submitted};
pub use topology::Topology;
