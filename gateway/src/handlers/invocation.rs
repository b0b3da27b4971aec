//! Turning an HTTP request into an [`InvocationMessage`], shared by the async and sync routes.

use axum::http::{HeaderMap, request::Parts};
use chrono::Utc;
use sluice_schemas::{InvocationMessage, Payload, names, store};

use crate::ApiError;

/// The call id: the caller's `X-Call-Id` when valid, else a new UUIDv7 (time-ordered, so ids sort by age).
pub fn call_id(headers: &HeaderMap) -> Result<(String, bool), ApiError> {
    match headers.get(names::http_headers::CALL_ID) {
        Some(value) => {
            let id = value.to_str().map_err(|_| ApiError::BadCallId("<non-ASCII>".into()))?.trim();
            if !store::calls::is_valid_call_id(id) {
                return Err(ApiError::BadCallId(id.to_owned()));
            }
            Ok((id.to_owned(), true))
        }
        None => Ok((uuid::Uuid::now_v7().to_string(), false)),
    }
}

/// The `X-Callback-Url`, if any, checked to be an absolute http(s) URL.
pub fn callback_url(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(names::http_headers::CALLBACK_URL) else { return Ok(None) };
    let bad = |url: &str, reason| ApiError::BadCallbackUrl { url: url.to_owned(), reason };
    let text = value.to_str().map_err(|_| bad("<non-ASCII>", "not valid text"))?.trim();
    let uri: axum::http::Uri = text.parse().map_err(|_| bad(text, "not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad(text, "only http:// and https:// callbacks are supported")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad(text, "the URL has no host"));
    }
    Ok(Some(text.to_owned()))
}

/// The message for a call of `function` made by request `parts`.
pub fn message(
    function: &str,
    path: Option<&str>,
    parts: &Parts,
    call_id: String,
    callback_url: Option<String>,
    payload: Payload,
) -> InvocationMessage {
    InvocationMessage {
        call_id,
        function: function.to_owned(),
        source: names::CE_SOURCE_GATEWAY.to_owned(),
        time: Utc::now(),
        method: parts.method.clone(),
        path: path.map(|p| format!("/{p}")).unwrap_or_default(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers.clone(),
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

    #[test]
    fn callback_urls() {
        assert!(callback_url(&HeaderMap::new()).unwrap().is_none());
        assert!(callback_url(&headers("x-callback-url", "http://127.0.0.1:9/cb")).unwrap().is_some());
        for bad in ["ftp://x/y", "not a url", "/relative", "http://"] {
            let err = callback_url(&headers("x-callback-url", bad)).unwrap_err();
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
