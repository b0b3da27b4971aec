//! The OpenAPI 3.1 document of the gateway's HTTP API, generated from the route table (`handlers::routes`)
//! and the types its handlers read and answer; served at `GET /openapi.json` and checked in as
//! `docs/openapi.json`.

use aide::{
    generate::GenContext,
    openapi::{self, MediaType, OpenApi, Operation, ReferenceOr, SchemaObject, SecurityScheme, StatusCode},
};
use sluice_contracts::ErrorBody;

use crate::ApiError;

/// Security scheme names, as operations refer to them.
pub const BASIC_AUTH: &str = "basicAuth";
pub const BEARER: &str = "bearerToken";

/// The statuses an [`ApiError`] can answer with, and what each means.
const ERROR_STATUSES: [(u16, &str); 10] = [
    (400, "The request is malformed; `error` names the field or parameter"),
    (401, "Credentials are missing or wrong"),
    (404, "The function, call, secret or namespace does not exist"),
    (409, "The object exists already, or changed underneath the request"),
    (413, "The body is larger than the limit"),
    (431, "The headers are larger than the limit"),
    (501, "A route OpenFaaS has that Sluice answers differently; `error` says what to use"),
    (502, "The function failed to answer"),
    (503, "NATS, JetStream or a worker is out of reach for now; try again"),
    (504, "The function did not answer in time"),
];

impl aide::OperationOutput for ApiError {
    type Inner = ErrorBody;

    fn inferred_responses(
        ctx: &mut GenContext,
        _operation: &mut Operation,
    ) -> Vec<(Option<StatusCode>, openapi::Response)> {
        let schema = ctx.schema.subschema_for::<ErrorBody>();
        ERROR_STATUSES
            .iter()
            .map(|(status, description)| {
                let media = MediaType {
                    schema: Some(SchemaObject { json_schema: schema.clone(), example: None, external_docs: None }),
                    ..Default::default()
                };
                let response = openapi::Response {
                    description: (*description).to_owned(),
                    content: [("application/json".to_owned(), media)].into_iter().collect(),
                    ..Default::default()
                };
                (Some(StatusCode::Code(*status)), response)
            })
            .collect()
    }
}

/// Adds the error answers to an operation whose handler's own type does not carry them (a raw response).
pub fn errors(mut op: aide::transform::TransformOperation<'_>) -> aide::transform::TransformOperation<'_> {
    use aide::OperationOutput;
    let operation = op.inner_mut();
    let inferred = aide::generate::in_context(|ctx| ApiError::inferred_responses(ctx, operation));
    let responses = operation.responses.get_or_insert_with(Default::default);
    for (status, response) in inferred {
        if let Some(status) = status {
            responses.responses.entry(status).or_insert(ReferenceOr::Item(response));
        }
    }
    op
}

/// A response documented under `content_type` (what the handler sends) rather than the one its Rust type implies.
pub fn media_type<'t, T>(
    mut response: aide::transform::TransformResponse<'t, T>,
    content_type: &str,
) -> aide::transform::TransformResponse<'t, T> {
    let content = &mut response.inner().content;
    let media = content.drain(..).next().map(|(_, media)| media).unwrap_or_default();
    content.insert(content_type.to_owned(), media);
    response
}

/// The document's frame: title, version, security schemes; the routes fill in the paths.
pub fn frame() -> OpenApi {
    let mut api = OpenApi {
        info: openapi::Info {
            title: "Sluice".into(),
            description: Some(
                "Asynchronous, event-driven functions on NATS JetStream, with the OpenFaaS gateway API.".into(),
            ),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let components = api.components.get_or_insert_with(Default::default);
    let scheme = |scheme: &str, description: &str| {
        ReferenceOr::Item(SecurityScheme::Http {
            scheme: scheme.into(),
            bearer_format: None,
            description: Some(description.into()),
            extensions: Default::default(),
        })
    };
    components.security_schemes.insert(BASIC_AUTH.into(), scheme("basic", "The admin credentials (faas-cli login)."));
    components.security_schemes.insert(
        BEARER.into(),
        scheme("bearer", "The admin password as a bearer token; /metrics also takes --metrics-token."),
    );
    api
}

/// Finishes a generated document: axum's catch-all segments (`{*path}`) written as OpenAPI parameters.
pub fn finish(mut api: OpenApi) -> OpenApi {
    if let Some(paths) = api.paths.as_mut() {
        paths.paths =
            std::mem::take(&mut paths.paths).into_iter().map(|(path, item)| (path.replace("{*", "{"), item)).collect();
    }
    api
}

/// The OpenAPI document as served, with the documentation of the routes served beside the gateway's own
/// (`beside` adds it), pretty-printed with a final newline, as checked in at `docs/openapi.json`.
pub fn document_text(beside: impl FnOnce(&mut OpenApi)) -> String {
    let mut text = serde_json::to_string_pretty(&crate::handlers::document(beside)).expect("the document serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    /// Every route's types can be described: a route that cannot fails here rather than leaving a gap.
    #[test]
    fn the_document_generates_without_errors() {
        aide::generate::on_error(|err| panic!("OpenAPI generation: {err}"));
        let document: serde_json::Value = serde_json::from_str(&super::document_text(|_| {})).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert!(document["paths"]["/system/functions"]["post"].is_object());
    }
}
