//! `GET /system/calls/{id}/result`: a finished call's result, the function's response as it gave it (status,
//! headers, body; a large body streamed from the object store), for as long as it is kept. A call that is not
//! final yet, was cancelled, or whose result expired or was evicted gets a 404 saying which.

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderValue, StatusCode},
    response::Response,
};
use sluice_contracts::{CallStatus, ResultState, invocation::take_http_headers, names};

use crate::{ApiError, App};

pub async fn result(
    State(app): State<App>,
    Path(super::CallPath { id }): Path<super::CallPath>,
) -> Result<Response, ApiError> {
    let record = app.calls.get(&id).await?.ok_or_else(|| ApiError::UnknownCall(id.clone()))?;
    let no_result = |why: String| ApiError::NoResult { id: id.clone(), why };
    match record.status {
        CallStatus::Cancelled => return Err(no_result("was cancelled: it has no result".into())),
        status if !status.is_final() => {
            return Err(no_result(format!("is {}: its result is kept once it is final", status.as_str())));
        }
        _ => {}
    }
    let stored = record.result.ok_or_else(|| no_result("finished before its result could be kept".into()))?;
    let gone = |state: ResultState| match state {
        ResultState::Evicted => no_result("result was evicted early: the results store was full".into()),
        _ => no_result("result expired (results are kept for --results-ttl)".into()),
    };
    let Some(event) = app.results.get(&stored).await? else {
        return Err(gone(sluice_jetstream::store::gone(&stored)));
    };
    let headers = &event.headers;
    // A sequence names one event for ever, but a mistaken record must never serve another call's result.
    if headers.get(names::http_headers::CALL_ID).map(|v| v.as_str()) != Some(id.as_str()) {
        return Err(gone(sluice_jetstream::store::gone(&stored)));
    }
    let body = match headers.get(names::wire::PAYLOAD_OBJECT) {
        Some(object) => match sluice_jetstream::payloads::open(&app.topology, object.as_str()).await {
            Ok(reader) => Body::from_stream(tokio_util::io::ReaderStream::new(reader)),
            Err(_) => return Err(gone(sluice_jetstream::store::gone(&stored))),
        },
        None => Body::from(event.payload),
    };
    let status = headers
        .get(names::http_headers::FUNCTION_STATUS)
        .and_then(|s| s.as_str().parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = take_http_headers(headers);
    let put = |response: &mut Response, name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name, value);
        }
    };
    put(&mut response, names::http_headers::CALL_ID, &id);
    put(&mut response, names::http_headers::FUNCTION_STATUS, status.as_str());
    Ok(response)
}
