//! `ANY /function/{name}[/{path}]`: a synchronous call, run by a worker over NATS request/reply.

use std::time::{Duration, Instant};

use async_nats::RequestErrorKind;
use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{HeaderValue, StatusCode},
    response::Response,
};
use futures::StreamExt;
use sluice_contracts::{FunctionRef, invocation::take_http_headers, names};

use super::invocation;
use crate::{ApiError, App, body, metrics};

pub async fn invoke(
    State(app): State<App>,
    Path(super::FunctionPath { name }): Path<super::FunctionPath>,
    request: Request,
) -> Response {
    let headers = sluice_contracts::trace::carried(request.headers());
    invocation::counted(
        &app.clone(),
        &name,
        &headers,
        |function| async move { call(app, &function, None, request).await },
    )
    .await
}

pub async fn invoke_with_path(
    State(app): State<App>,
    Path(super::FunctionSubPath { name, path }): Path<super::FunctionSubPath>,
    request: Request,
) -> Response {
    let app2 = app.clone();
    let headers = sluice_contracts::trace::carried(request.headers());
    invocation::counted(
        &app2,
        &name,
        &headers,
        |function| async move { call(app, &function, Some(&path), request).await },
    )
    .await
}

async fn call(app: App, function: &FunctionRef, path: Option<&str>, request: Request) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (parts, request_body): (_, Body) = request.into_parts();
    let spec = app.deployed(function).await?;
    let path = path.map(invocation::sub_path).transpose()?;
    body::check_declared_length(&app, &parts.headers)?;
    let headers = invocation::forwarded_headers(&app, &parts.headers)?;
    let call_id = uuid::Uuid::now_v7().to_string();
    let payload = body::intake(&app, &call_id, request_body).await?;
    let message = invocation::message(function, path, &parts, headers, call_id, None, payload);
    let (headers, bytes) = message.to_nats(names::CE_TYPE_REQUESTED);
    let timeout = spec.timeout().unwrap_or(app.cfg.sync_timeout);
    // The worker enforces the timeout; the extra second lets its 504 arrive before ours.
    let request =
        async_nats::Request::new().headers(headers).payload(bytes).timeout(Some(timeout + Duration::from_secs(1)));
    let reply = app.topology.client.send_request(names::sync_subject(function), request).await;
    app.queue.discard(&message.payload).await;
    let reply = reply.map_err(|err| match err.kind() {
        RequestErrorKind::NoResponders => ApiError::NoWorker(app.shown(function)),
        RequestErrorKind::TimedOut => {
            ApiError::SyncTimeout { function: app.shown(function), seconds: timeout.as_secs() }
        }
        _ => ApiError::CallFailed(err.to_string()),
    })?;
    let reply_headers = reply.headers.unwrap_or_default();
    let status = reply_headers
        .get(names::wire::STATUS)
        .and_then(|s| s.as_str().parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match reply_headers.get(names::wire::PAYLOAD_OBJECT) {
        Some(object) => stream_object(&app, object.as_str().to_owned()).await?,
        None => Body::from(reply.payload),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = take_http_headers(&reply_headers);
    if let Ok(id) = HeaderValue::from_str(&message.call_id) {
        response.headers_mut().insert(names::http_headers::CALL_ID, id);
    }
    metrics::sync_duration(function, status.as_u16(), started.elapsed());
    Ok(response)
}

/// Streams a large response from the object store, then deletes it.
async fn stream_object(app: &App, name: String) -> Result<Body, ApiError> {
    let store = app.topology.payloads.clone();
    let object = sluice_jetstream::payloads::open(&app.topology, &name)
        .await
        .map_err(|e| ApiError::CallFailed(format!("response body lost: {e}")))?;
    let cleanup = futures::stream::once(async move {
        if let Err(err) = store.delete(&name).await {
            tracing::warn!(object = %name, %err, "could not delete a delivered response body");
        }
    })
    .filter_map(|()| async { None });
    Ok(Body::from_stream(tokio_util::io::ReaderStream::new(object).chain(cleanup)))
}
