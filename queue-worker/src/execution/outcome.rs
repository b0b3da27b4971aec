//! What one attempt came to, in the shape every consumer of it (callback, results, record, sync reply) needs.

use bytes::Bytes;
use sluice_runtime::{FunctionResponse, RuntimeError};

/// The end of one attempt: the function's response, or why there was none.
#[derive(Debug)]
pub struct Outcome {
    /// Function status; 504 for a timeout and 502 for any other runtime failure, as a proxy would answer.
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// Why the attempt failed, for the call record.
    pub error: Option<String>,
    /// Whether the runtime failed (no function response at all); such attempts are always worth retrying.
    pub runtime_error: bool,
}

/// Longest piece of a failed function's body quoted in the call record.
const ERROR_EXCERPT: usize = 512;

impl Outcome {
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A failure that happened before any attempt could run (expired, undeliverable).
    pub fn failure(status: u16, error: String) -> Self {
        let body = serde_json::to_vec(&serde_json::json!({ "error": error })).expect("json");
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        Self { status, headers, body: body.into(), error: Some(error), runtime_error: false }
    }

    pub fn content_type(&self) -> Option<&str> {
        self.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
    }

    pub fn from_result(result: Result<FunctionResponse, RuntimeError>) -> Self {
        match result {
            Ok(response) => {
                let status = response.status.as_u16();
                let error = (!response.status.is_success()).then(|| {
                    let excerpt = &response.body[..response.body.len().min(ERROR_EXCERPT)];
                    format!("function returned {status}: {}", String::from_utf8_lossy(excerpt).trim())
                });
                Self { status, headers: response.headers, body: response.body, error, runtime_error: false }
            }
            Err(err) => {
                let status = if matches!(err, RuntimeError::Timeout(_) | RuntimeError::Hung(_)) { 504 } else { 502 };
                let body = serde_json::to_vec(&serde_json::json!({ "error": err.to_string() })).expect("json");
                let mut headers = http::HeaderMap::new();
                headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                Self { status, headers, body: body.into(), error: Some(err.to_string()), runtime_error: true }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn runtime_errors_become_gateway_statuses() {
        let timeout = Outcome::from_result(Err(RuntimeError::Timeout(Duration::from_secs(1))));
        assert_eq!(timeout.status, 504);
        assert!(!timeout.succeeded());
        assert!(timeout.error.unwrap().contains("timed out"));
        let unsupported = Outcome::from_result(Err(RuntimeError::Unsupported("docker")));
        assert_eq!(unsupported.status, 502);
        assert_eq!(unsupported.content_type(), Some("application/json"));
    }

    #[test]
    fn function_failure_keeps_its_body_and_quotes_it() {
        let response = FunctionResponse {
            status: http::StatusCode::INTERNAL_SERVER_ERROR,
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(b"disk full\n"),
            stderr: Bytes::new(),
        };
        let outcome = Outcome::from_result(Ok(response));
        assert_eq!(outcome.status, 500);
        assert_eq!(&outcome.body[..], b"disk full\n");
        assert_eq!(outcome.error.as_deref(), Some("function returned 500: disk full"));
    }
}
