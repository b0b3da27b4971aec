//! Typed access to Sluice's KV buckets and kept results, shared by the gateway, workers and connectors.

pub mod calls;
mod follow;
mod function_cache;
mod functions;
mod groups;
mod invocations;
mod latest;
mod namespaces;
mod results;

pub use calls::{CallStore, Modified};
pub use function_cache::FunctionCache;
pub use functions::{Deployed, FunctionStore, SpecChange};
pub use groups::{GroupStore, Reopened};
pub use invocations::{FLUSH_EVERY, InvocationTally, TotalsCopy};
pub use latest::{Latest, latest_under};
pub use namespaces::NamespaceStore;
pub use results::{ResultStore, gone};

/// A KV operation failed; the caller decides whether that is a 503 or a retry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key-value store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("stored {what} {key:?} is not valid JSON: {source}")]
    Corrupt {
        what: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    pub fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(err))
    }
}

/// When the store wrote a message, as the API shows times.
pub fn written_at(at: time::OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(at.unix_timestamp(), at.nanosecond()).unwrap_or_default()
}
