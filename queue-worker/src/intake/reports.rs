//! The worker's endpoint for running functions: `POST /progress/{call id}/{secret}`, where a function reports
//! how far it got, and `POST /fanout/{call id}/{secret}`, where it declares the child calls and join its call
//! fans out to. Every attempt gets its own URLs (headers `X-Sluice-Progress-Url`, `X-Sluice-Fanout-Url`); the
//! secret in them is that attempt's alone, so a function cannot act for another call. Both only reach memory
//! here: the attempt writes the latest report to the call's record at a bounded rate, and starts the declared
//! fan-out when the call succeeds.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use sluice_contracts::{
    ProgressReport,
    fanout::{FanOut, MAX_DOCUMENT_BYTES, child_call_id, join_call_id},
    progress::MAX_REPORT_BYTES,
};

use crate::{
    SpecMap,
    running::{Refusal, Running},
};

/// The route every attempt's progress URL points at.
pub const ROUTE: &str = "/progress";

/// The route every attempt's fan-out URL points at.
pub const FANOUT_ROUTE: &str = "/fanout";

/// Where functions send progress reports: made before the worker starts, so the process can bind its
/// listeners and serve [`ProgressEndpoint::router`] with the bounds it gives every listener.
#[derive(Clone, Default)]
pub struct ProgressEndpoint {
    pub(crate) running: Arc<Running>,
    /// The worker's deployed functions, which a fan-out may name.
    pub(crate) specs: SpecMap,
}

impl ProgressEndpoint {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(&format!("{ROUTE}/{{call_id}}/{{secret}}"), post(report))
            .route(&format!("{FANOUT_ROUTE}/{{call_id}}/{{secret}}"), post(fan_out))
            .with_state(self.clone())
    }
}

fn refuse(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": error.into() }))).into_response()
}

async fn report(
    State(ProgressEndpoint { running, .. }): State<ProgressEndpoint>,
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
        Err(refusal) => refused(refusal, &call_id),
    }
}

fn refused(refusal: Refusal, call_id: &str) -> Response {
    match refusal {
        Refusal::NotRunning => refuse(
            StatusCode::NOT_FOUND,
            format!("call {call_id:?} is not running on this worker: unknown, finished, or its attempt ended"),
        ),
        Refusal::WrongSecret => {
            // Debug, not warn: a hostile function could otherwise fill the worker's log.
            tracing::debug!(call_id, "report with a wrong secret refused");
            refuse(StatusCode::FORBIDDEN, format!("this URL does not authorise reports for call {call_id:?}"))
        }
    }
}

/// Declares the call's fan-out: checked now (form and deployed functions), started when the call succeeds.
/// Answers with the ids the children and the join will have, so a script can follow them.
async fn fan_out(
    State(endpoint): State<ProgressEndpoint>,
    Path((call_id, secret)): Path<(String, String)>,
    body: Body,
) -> Response {
    let function = match endpoint.running.function(&call_id, &secret) {
        Ok(function) => function,
        Err(refusal) => return refused(refusal, &call_id),
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_DOCUMENT_BYTES).await else {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a fan-out document is at most {MAX_DOCUMENT_BYTES} bytes"),
        );
    };
    let fan_out = match FanOut::parse(&bytes) {
        Ok(fan_out) => fan_out,
        Err(err) => return refuse(StatusCode::BAD_REQUEST, err.to_string()),
    };
    if let Some((_, missing)) = crate::fanout::undeployed(&endpoint.specs, &fan_out, &function.namespace) {
        return refuse(StatusCode::BAD_REQUEST, format!("fan-out names {missing}, which is not deployed"));
    }
    let calls: Vec<String> = (0..fan_out.calls.len()).map(|index| child_call_id(&call_id, index)).collect();
    let join = fan_out.join.as_ref().map(|_| join_call_id(&call_id));
    match endpoint.running.declare_fan_out(&call_id, &secret, fan_out) {
        Ok(()) => {
            let answer = serde_json::json!({ "groupId": call_id, "calls": calls, "join": join });
            (StatusCode::ACCEPTED, Json(answer)).into_response()
        }
        Err(refusal) => refused(refusal, &call_id),
    }
}
