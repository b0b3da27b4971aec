//! Every contract between Sluice processes, and no I/O.
//!
//! Gateways, queue workers and connectors never talk to each other directly: they meet on NATS JetStream.
//! This crate owns everything that crosses that boundary, so that both sides of every contract compile
//! against one definition (reading and writing JetStream is `sluice-jetstream`'s job):
//!
//! - [`names`]: streams, subjects, KV buckets, consumers and header names, and [`FunctionRef`], the
//!   `(namespace, name)` every one of a function's subjects and keys is made from;
//! - [`FunctionSpec`]: the deployed function (OpenFaaS `FunctionDeployment` plus Sluice fields), with validation;
//! - [`CallRecord`]: the state of one call, as kept in KV `sluice_calls`;
//! - [`InvocationMessage`]: one call on the wire (CloudEvents NATS binding, binary mode);
//! - [`CallbackMessage`](callback::CallbackMessage): a callback waiting in the outbox, and the callback headers;
//! - [`logs`], [`replicas`], [`replay`]: the request/reply protocols between gateway, workers and routers;
//! - [`signature`]: HMAC signing (callbacks) and verifying (webhooks);
//! - [`outbound`]: the rules of the outbound URL policy;
//! - [`credentials`]: admin credentials and how they are checked;
//! - [`StoredEvent`]: a connector event as the events API lists it;
//! - [`trace`]: W3C trace context carried from process to process;
//! - [`handles`]: handles made once per key, such as the metric series every process records per call.
//!
//! ```
//! use sluice_contracts::{names, FunctionSpec};
//! let spec: FunctionSpec = serde_json::from_str(r#"{"service": "upper", "envProcess": "tr a-z A-Z"}"#).unwrap();
//! spec.validate().unwrap();
//! assert_eq!(names::invoke_subject(&spec.function_ref()), "sluice.queue.9.openfaas-fn.upper");
//! assert_eq!(names::invocations_stream(&spec.function_ref()), "SLUICE_QUEUE_09");
//! ```

pub mod answer;
pub mod body;
pub mod call;
pub mod callback;
pub mod causes;
pub mod chain;
pub mod credentials;
pub mod dead;
pub mod duration;
pub mod event;
pub mod fanout;
pub mod function;
pub mod function_ref;
pub mod handles;
pub mod invocation;
pub mod json_schema;
pub mod logs;
pub mod names;
pub mod namespace;
pub mod nats_headers;
pub mod outbound;
pub mod presence;
pub mod progress;
pub mod quantity;
pub mod replay;
pub mod replicas;
pub mod scale_labels;
pub mod schedule;
pub mod signature;
pub mod stored_event;
pub mod timestamp;
pub mod trace;

pub use answer::ErrorBody;
pub use call::{CallRecord, CallStatus, CallTree, CallbackDelivery, CallbackState, ResultState, StoredResult};
pub use dead::DeadLetter;
pub use duration::HumanDuration;
pub use event::EventMessage;
pub use function::{
    AsyncConfig, FunctionSpec, FunctionStatus, Resources, RetryPolicy, RuntimeKind, ScaleConfig, Trigger,
    ValidationError,
};
pub use function_ref::FunctionRef;
pub use invocation::{DecodeError, InvocationMessage, Payload};
pub use namespace::Namespace;
pub use progress::{CallProgress, ProgressReport};
pub use replicas::{ReplicaReport, ScaleReply, ScaleRequest, Usage};
pub use stored_event::{Routing, StoredEvent};
