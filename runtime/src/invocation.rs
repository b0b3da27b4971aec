//! What a runtime is given (one call's request) and what it gives back.

use std::pin::Pin;

use bytes::Bytes;
use tokio::io::AsyncRead;

/// A request body: in memory, or streamed from the object store for large bodies.
pub enum Body {
    Bytes(Bytes),
    Reader(Pin<Box<dyn AsyncRead + Send>>),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "Body::Bytes({} bytes)", b.len()),
            Self::Reader(_) => f.write_str("Body::Reader"),
        }
    }
}

/// One call's request, as the function should see it.
#[derive(Debug)]
pub struct Invocation {
    pub call_id: String,
    pub method: http::Method,
    /// Path below the function's route, `""` or starting with `/`.
    pub path: String,
    /// Raw query string without `?`.
    pub query: String,
    pub headers: http::HeaderMap,
    pub body: Body,
}

impl Invocation {
    /// A bare `POST` with `body`, for tests and examples.
    pub fn post(call_id: &str, body: impl Into<Bytes>) -> Self {
        Self {
            call_id: call_id.to_owned(),
            method: http::Method::POST,
            path: String::new(),
            query: String::new(),
            headers: http::HeaderMap::new(),
            body: Body::Bytes(body.into()),
        }
    }
}

/// The function's answer, whatever its status.
#[derive(Clone, Debug)]
pub struct FunctionResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// What a process function wrote to stderr (empty for other runtimes), for its logs: a failed call
    /// carries it in its body as well.
    pub stderr: Bytes,
}

impl FunctionResponse {
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
    }
}
