//! Reading a JSON request body on `/system`: one parser for every handler, so each names the failing field
//! and the expected shape the same way.

use axum::{body::Bytes, extract::rejection::BytesRejection, http::StatusCode};

use crate::ApiError;

/// Parses a JSON body whatever its `Content-Type` says, so `curl -d` works as well as any client.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    what: &'static str,
) -> Result<T, ApiError> {
    parse_noting_unknown(body, what).map(|(value, _)| value)
}

/// Like [`parse`], also naming the fields that were not understood (and so ignored), such as a misspelt
/// `asyncc`: OpenFaaS clients send fields Sluice has no use for, so they are reported, not refused.
pub(crate) fn parse_noting_unknown<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    what: &'static str,
) -> Result<(T, Vec<String>), ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge { limit: super::SPEC_BODY_LIMIT },
        _ => ApiError::BodyRead(rejection.body_text()),
    })?;
    let mut json = serde_json::Deserializer::from_slice(&body);
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let noting = serde_ignored::Deserializer::new(&mut json, &mut note);
    let parsed = serde_path_to_error::deserialize(noting).map_err(|e| {
        // Name the field (`async.timeout: invalid duration …`) unless the problem is the document itself.
        let detail = match e.path().to_string().as_str() {
            "." => e.inner().to_string(),
            path => format!("{path}: {}", e.inner()),
        };
        ApiError::BadJson { what, detail }
    })?;
    Ok((parsed, unknown))
}
