//! Every way a request can fail, and the status and JSON body each one gets.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;
use sluice_contracts::ValidationError;
use sluice_jetstream::{QueueError, store::StoreError};

/// A request the gateway could not serve; rendered as `{"error": "..."}` with a matching status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("function {0:?} not found")]
    UnknownFunction(String),
    #[error("call {0:?} not found")]
    UnknownCall(String),
    #[error("namespace {0:?} not found; GET /system/namespaces lists them, POST /system/namespace/ creates one")]
    UnknownNamespace(String),
    #[error("namespace {0:?} already exists")]
    NamespaceExists(String),
    #[error("namespace {name:?} is not empty: it still holds {what}")]
    NamespaceInUse { name: String, what: String },
    #[error("function {0:?} already exists; use PUT /system/functions to update it")]
    FunctionExists(String),
    #[error("invalid function spec: {0}")]
    InvalidSpec(#[from] ValidationError),
    #[error("request body is not valid JSON for {what}: {detail}")]
    BadJson { what: &'static str, detail: String },
    #[error("invalid X-Callback-Url {url:?}: {reason}")]
    BadCallbackUrl { url: String, reason: String },
    #[error("invalid X-Call-Id {0:?}: use 1-128 letters, digits, '-', '_', '=' or '.'")]
    BadCallId(String),
    #[error("call id {id:?} is already used by a call to function {function:?}")]
    CallIdTaken { id: String, function: String },
    #[error("call {id:?} is already {status}")]
    CallFinished { id: String, status: &'static str },
    /// The call has no result to fetch (yet, any more, or at all); the message says which.
    #[error("call {id:?} {why}")]
    NoResult { id: String, why: String },
    #[error("call {0:?} has no dead letter to replay")]
    NotDead(String),
    #[error("invalid query: {0}")]
    BadQuery(String),
    #[error("invalid path {0:?}: control characters cannot be passed to a function")]
    BadPath(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("request body could not be read: {0}")]
    BodyRead(String),
    #[error("request headers are larger than the limit of {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("authentication required")]
    Unauthorized,
    #[error("call was not persisted, try again: {0}")]
    NotPersisted(String),
    /// Something the request needs to read or ask for is out of reach for now.
    #[error("unavailable, try again: {0}")]
    Unavailable(String),
    /// State changed underneath the request (a worker moved the call meanwhile).
    #[error("{0}")]
    Conflict(String),
    #[error("state store unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("no worker is serving function {0:?}")]
    NoWorker(String),
    #[error("function {function:?} did not answer within {seconds} s")]
    SyncTimeout { function: String, seconds: u64 },
    #[error("function call failed: {0}")]
    CallFailed(String),
    #[error("secret {0:?} already exists; use PUT /system/secrets to change it")]
    SecretExists(String),
    #[error("secret {0:?} not found")]
    UnknownSecret(String),
    #[error("no event to replay at sequence {0} (GET /system/events lists those kept)")]
    UnknownEvent(u64),
    /// A route OpenFaaS has that Sluice answers differently; the message says what to use instead.
    #[error("not implemented: {0}")]
    NotImplemented(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownFunction(_)
            | Self::UnknownCall(_)
            | Self::NoResult { .. }
            | Self::UnknownSecret(_)
            | Self::UnknownEvent(_)
            | Self::UnknownNamespace(_) => StatusCode::NOT_FOUND,
            Self::FunctionExists(_)
            | Self::SecretExists(_)
            | Self::NamespaceExists(_)
            | Self::NamespaceInUse { .. }
            | Self::CallIdTaken { .. }
            | Self::CallFinished { .. }
            | Self::NotDead(_)
            | Self::Conflict(_) => StatusCode::CONFLICT,
            Self::InvalidSpec(_)
            | Self::BadJson { .. }
            | Self::BadCallbackUrl { .. }
            | Self::BadCallId(_)
            | Self::BadQuery(_)
            | Self::BadPath(_)
            | Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotPersisted(_) | Self::Unavailable(_) | Self::Store(_) | Self::NoWorker(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::SyncTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::CallFailed(_) => StatusCode::BAD_GATEWAY,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Unavailable(reason) => Self::NotPersisted(reason),
            QueueError::Store(err) => Self::Store(err),
            QueueError::UnknownCall(id) => Self::UnknownCall(id),
            QueueError::NotDead(id) => Self::NotDead(id),
            err @ QueueError::NotACall { .. } => Self::CallFailed(err.to_string()),
            err @ (QueueError::Changed
            | QueueError::LetterGone { .. }
            | QueueError::ReplayUnfinished(_)
            | QueueError::ReplayUnderWay(_)) => Self::Conflict(err.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "request failed");
        }
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"sluice\""),
            );
        }
        response
    }
}
