//! The progress endpoint: `POST /progress/{call id}/{secret}`, where a running call's function reports how far
//! it got. Every call's attempt gets its own URL (header `X-Sluice-Progress-Url`); the secret in it is that
//! attempt's alone, so a function cannot report for another call. Reports only reach memory here; the attempt
//! writes the latest of them to the call's record at a bounded rate.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use sluice_contracts::{ProgressReport, progress::MAX_REPORT_BYTES};

use crate::running::{Refusal, Running};

/// The route every attempt's progress URL points at.
pub const ROUTE: &str = "/progress";

/// Where functions send progress reports: made before the worker starts, so the process can bind its
/// listeners and serve [`ProgressEndpoint::router`] with the bounds it gives every listener.
#[derive(Clone, Default)]
pub struct ProgressEndpoint {
    pub(crate) running: Arc<Running>,
}

impl ProgressEndpoint {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn router(&self) -> Router {
        Router::new().route(&format!("{ROUTE}/{{call_id}}/{{secret}}"), post(report)).with_state(self.running.clone())
    }
}

fn refuse(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": error.into() }))).into_response()
}

async fn report(
    State(running): State<Arc<Running>>,
    Path((call_id, secret)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REPORT_BYTES).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("a progress report is at most {MAX_REPORT_BYTES} bytes"));
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let report = match ProgressReport::parse(content_type, &bytes) {
        Ok(report) => report,
        Err(err) => return refuse(StatusCode::BAD_REQUEST, err.to_string()),
    };
    match running.report(&call_id, &secret, report) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(Refusal::NotRunning) => refuse(
            StatusCode::NOT_FOUND,
            format!("call {call_id:?} is not running on this worker: unknown, finished, or its attempt ended"),
        ),
        Err(Refusal::WrongSecret) => {
            tracing::warn!(call_id, "progress report with a wrong secret refused");
            refuse(StatusCode::FORBIDDEN, format!("this URL does not authorise reports for call {call_id:?}"))
        }
    }
}
