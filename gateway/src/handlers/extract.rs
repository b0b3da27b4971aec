//! Reading requests on `/system`: one JSON body parser and one query-string extractor for every handler, so
//! each names the failing field and the expected shape the same way, and answers in the API's JSON error shape.

use axum::{body::Bytes, extract::rejection::BytesRejection, http::StatusCode};

use crate::ApiError;

/// What a JSON body should be, for the error when it is not: `a scale request ({"replicas": N})`.
pub trait Expected {
    const SHAPE: &'static str;
}

/// A JSON body (or YAML, under a YAML content type), parsed whatever else its `Content-Type` says (so `curl -d`
/// works as well as any client), with the fields that were not understood and so ignored, such as a misspelt
/// `asyncc`: OpenFaaS clients send fields Sluice has no use for, so they are reported, not refused.
pub struct JsonBody<T>(pub T, pub Vec<String>);

impl<T: serde::de::DeserializeOwned + Expected, S: Send + Sync> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let yaml = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| YAML_TYPES.iter().any(|y| t.trim_start().starts_with(y)));
        let mut body = Bytes::from_request(request, state).await;
        if yaml && let Ok(text) = &body {
            // The same document as JSON, so what follows (unknown fields noted, errors naming the field) is one.
            let value: serde_json::Value = serde_yaml::from_slice(text)
                .map_err(|e| ApiError::BadJson { what: T::SHAPE, detail: format!("not valid YAML: {e}") })?;
            body = Ok(Bytes::from(serde_json::to_vec(&value).expect("a JSON value serialises")));
        }
        parse_noting_unknown(body, T::SHAPE).map(|(value, unknown)| Self(value, unknown))
    }
}

/// Content types under which a body is read as YAML (a spec pasted in the console, `curl --data-binary @f.yml`).
const YAML_TYPES: [&str; 4] = ["application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"];

fn parse_noting_unknown<T: serde::de::DeserializeOwned>(
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

impl<T: schemars::JsonSchema> aide::OperationInput for JsonBody<T> {
    fn operation_input(ctx: &mut aide::generate::GenContext, operation: &mut aide::openapi::Operation) {
        axum::Json::<T>::operation_input(ctx, operation);
    }
}

/// A typed query string; a malformed one is a 400 with `{"error": ...}` naming the problem.
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(query)| Self(query))
            .map_err(|rejection| ApiError::BadQuery(rejection.body_text()))
    }
}

impl<T: schemars::JsonSchema> aide::OperationInput for Query<T> {
    fn operation_input(ctx: &mut aide::generate::GenContext, operation: &mut aide::openapi::Operation) {
        axum::extract::Query::<T>::operation_input(ctx, operation);
    }
}

/// `?namespace=` on a `/system` route, as the go-sdk and faas-cli send it: the default namespace when absent
/// or empty, else one that exists; an unknown one is a 404 naming it, never silently ignored.
pub struct InNamespace(pub String);

impl axum::extract::FromRequestParts<crate::App> for InNamespace {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, app: &crate::App) -> Result<Self, ApiError> {
        let Query(Namespace { namespace }) = Query::from_request_parts(parts, app).await?;
        app.namespace(namespace.as_deref()).await.map(Self)
    }
}

/// The query parameter [`InNamespace`] reads.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Namespace {
    /// The namespace, as faas-cli sends it; the default one (`openfaas-fn` unless configured) when absent.
    namespace: Option<String>,
}

impl aide::OperationInput for InNamespace {
    fn operation_input(ctx: &mut aide::generate::GenContext, operation: &mut aide::openapi::Operation) {
        Query::<Namespace>::operation_input(ctx, operation);
    }
}

/// A `?function=` filter: a function name, never a pattern (it becomes part of a NATS subject filter).
pub fn check_function_filter(function: Option<&str>) -> Result<(), ApiError> {
    match function {
        Some(name) if !sluice_contracts::function::is_dns_label(name) => Err(ApiError::BadQuery(format!(
            "function {name:?} is not a function name (lowercase letters, digits and '-', at most 63)"
        ))),
        _ => Ok(()),
    }
}

/// A `since` (query or body): an RFC 3339 time, or a duration back from now such as `10m` or `1h`.
pub fn since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    let back = humantime::parse_duration(text).ok().and_then(|d| chrono::Duration::from_std(d).ok());
    back.and_then(|back| chrono::Utc::now().checked_sub_signed(back))
        .ok_or_else(|| ApiError::BadQuery(format!("since {text:?}: give an RFC 3339 time or a duration like 1h")))
}
