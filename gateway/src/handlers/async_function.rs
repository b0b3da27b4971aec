//! `POST /async-function/{name}[/{path}]`: queue a call and answer 202 once JetStream has stored it.

use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{HeaderValue, StatusCode, header::LOCATION},
    response::{IntoResponse, Response},
};
use sluice_contracts::{FunctionRef, names};
use sluice_jetstream::queue::Claim;

use super::invocation;
use crate::{ApiError, App, body, metrics};

pub async fn invoke(
    State(app): State<App>,
    Path(super::FunctionPath { name }): Path<super::FunctionPath>,
    request: Request,
) -> Response {
    let headers = sluice_contracts::trace::carried(request.headers());
    invocation::counted(&app.clone(), &name, &headers, |function| async move {
        enqueue(app, &function, None, request).await
    })
    .await
}

pub async fn invoke_with_path(
    State(app): State<App>,
    Path(super::FunctionSubPath { name, path }): Path<super::FunctionSubPath>,
    request: Request,
) -> Response {
    let app2 = app.clone();
    let headers = sluice_contracts::trace::carried(request.headers());
    invocation::counted(&app2, &name, &headers, |function| async move {
        enqueue(app, &function, Some(&path), request).await
    })
    .await
}

fn accepted(call_id: &str) -> Response {
    let mut response = StatusCode::ACCEPTED.into_response();
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(call_id) {
        headers.insert(names::http_headers::CALL_ID, id);
    }
    if let Ok(location) = HeaderValue::from_str(&format!("/system/calls/{call_id}")) {
        headers.insert(LOCATION, location);
    }
    response
}

async fn enqueue(app: App, function: &FunctionRef, path: Option<&str>, request: Request) -> Result<Response, ApiError> {
    let (parts, request_body): (_, Body) = request.into_parts();
    app.deployed(function).await?;
    let path = path.map(invocation::sub_path).transpose()?;
    let callback_url = invocation::callback_url(&parts.headers, &app.cfg.callback_policy).await?;
    let (call_id, caller_chose_id) = invocation::call_id(&parts.headers)?;
    body::check_declared_length(&app, &parts.headers)?;
    let headers = invocation::forwarded_headers(&app, &parts.headers)?;
    if caller_chose_id && let Some(existing) = app.calls.get(&call_id).await? {
        // The same id again is the same call: queued once, answered alike.
        if existing.function_ref() != *function {
            return Err(ApiError::CallIdTaken { id: call_id, function: app.shown(&existing.function_ref()) });
        }
        return Ok(accepted(&call_id));
    }
    let payload = body::intake(&app, &call_id, request_body).await?;
    let message = invocation::message(function, path, &parts, headers, call_id, callback_url, payload);
    app.queue.submit(&message, Claim::Fresh).await?;
    metrics::queued(function);
    tracing::debug!(call_id = %message.call_id, %function, "call queued");
    Ok(accepted(&message.call_id))
}
