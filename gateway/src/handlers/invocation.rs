//! Turning an HTTP request into an [`InvocationMessage`], shared by the async and sync routes.

use axum::{
    http::{HeaderMap, request::Parts},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use sluice_contracts::{FunctionRef, InvocationMessage, Payload, names, outbound::OutboundPolicy};
use sluice_outbound::Enforce;
use tracing::Instrument;

use crate::{ApiError, App, metrics};

/// Runs `call` for the function an invocation path names (`NAME`, or `NAME.NAMESPACE` as faas-cli and the
/// go-sdk send it) and counts its answer. Only deployed functions are counted: a name a caller made up must
/// not become a metric label. The call runs in a span that continues the trace the request `headers` name.
pub async fn counted<Fut>(
    app: &App,
    qualified: &str,
    headers: &HeaderMap,
    call: impl FnOnce(FunctionRef) -> Fut,
) -> Response
where
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let function = app.function_ref(qualified);
    let span = tracing::info_span!("invoke", otel.kind = "server", %function);
    // Before the span is first entered: a started span keeps the parent it started with.
    sluice_contracts::trace::continue_from_headers(&span, headers);
    let outcome = call(function.clone()).instrument(span).await;
    let deployed = !matches!(outcome, Err(ApiError::UnknownFunction(_) | ApiError::UnknownNamespace(_)));
    let response = outcome.unwrap_or_else(IntoResponse::into_response);
    if deployed {
        metrics::invocation(&function, response.status().as_u16());
    }
    response
}

/// The path after the function's name, as the function will see it: any text but control characters (a
/// decoded `%0A` cannot travel in the call's headers, nor mean anything to a function).
pub fn sub_path(path: &str) -> Result<&str, ApiError> {
    if path.chars().any(char::is_control) {
        return Err(ApiError::BadPath(path.to_owned()));
    }
    Ok(path)
}

/// The call id: the caller's `X-Call-Id` when valid, else a new UUIDv7 (time-ordered, so ids sort by age).
pub fn call_id(headers: &HeaderMap) -> Result<(String, bool), ApiError> {
    match headers.get(names::http_headers::CALL_ID) {
        Some(value) => {
            let id = value.to_str().map_err(|_| ApiError::BadCallId("<non-ASCII>".into()))?.trim();
            if !sluice_contracts::call::is_valid_call_id(id) {
                return Err(ApiError::BadCallId(id.to_owned()));
            }
            Ok((id.to_owned(), true))
        }
        None => Ok((uuid::Uuid::now_v7().to_string(), false)),
    }
}

/// The `X-Callback-Url`, if any, checked against the callback policy (http(s) only, no metadata or
/// link-local addresses, allow and deny lists): a denied URL is refused here and never requested.
pub async fn callback_url(headers: &HeaderMap, policy: &OutboundPolicy) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(names::http_headers::CALLBACK_URL) else { return Ok(None) };
    let bad = |url: &str, reason: String| ApiError::BadCallbackUrl { url: url.to_owned(), reason };
    let text = value.to_str().map_err(|_| bad("<non-ASCII>", "not valid text".into()))?.trim();
    policy.check(text).await.map_err(|denied| bad(text, denied.0))?;
    Ok(Some(text.to_owned()))
}

/// Most bytes of request headers a call carries to its function (they travel in the NATS message).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The request headers a function receives: at most [`MAX_HEADER_BYTES`] of them, never Sluice's own
/// credentials (an `Authorization` the gateway accepts, as with `--protect-invocations`), and never a chained
/// call's lineage headers. The current span (see [`counted`]) is named as the trace parent from here on.
pub fn forwarded_headers(app: &App, headers: &HeaderMap) -> Result<HeaderMap, ApiError> {
    let size: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if size > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge { limit: MAX_HEADER_BYTES });
    }
    let mut headers = headers.clone();
    let ours = |value: &axum::http::HeaderValue| app.cfg.access.is_admin_credential(value.to_str().unwrap_or_default());
    if headers.get(axum::http::header::AUTHORIZATION).is_some_and(ours) {
        headers.remove(axum::http::header::AUTHORIZATION);
    }
    // Lineage is the worker's to state: a caller cannot pass a call off as another's next step.
    for name in sluice_contracts::names::http_headers::LINEAGE {
        headers.remove(name);
    }
    sluice_contracts::trace::pass_on_in_headers(&tracing::Span::current(), &mut headers);
    Ok(headers)
}

/// The message for a call of `function` made by request `parts`, with `headers` forwarded.
pub fn message(
    function: &FunctionRef,
    path: Option<&str>,
    parts: &Parts,
    headers: HeaderMap,
    call_id: String,
    callback_url: Option<String>,
    payload: Payload,
) -> InvocationMessage {
    InvocationMessage {
        call_id,
        function: function.clone(),
        source: names::CE_SOURCE_GATEWAY.to_owned(),
        time: Utc::now(),
        method: parts.method.clone(),
        path: path.map(|p| format!("/{p}")).unwrap_or_default(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers,
        callback_url,
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn callback_urls() {
        let policy = OutboundPolicy::default();
        assert!(callback_url(&HeaderMap::new(), &policy).await.unwrap().is_none());
        assert!(callback_url(&headers("x-callback-url", "http://10.0.0.9:9/cb"), &policy).await.unwrap().is_some());
        for bad in ["ftp://x/y", "not a url", "/relative", "http://", "http://169.254.169.254/latest"] {
            let err = callback_url(&headers("x-callback-url", bad), &policy).await.unwrap_err();
            assert!(matches!(err, ApiError::BadCallbackUrl { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn call_ids() {
        let (generated, supplied) = call_id(&HeaderMap::new()).unwrap();
        assert!(!supplied && uuid::Uuid::parse_str(&generated).is_ok());
        assert_eq!(call_id(&headers("x-call-id", "job-1")).unwrap(), ("job-1".into(), true));
        assert!(call_id(&headers("x-call-id", "a b")).is_err());
    }
}
