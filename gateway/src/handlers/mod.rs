//! The route table: one file per route group. The same table generates the OpenAPI document.

mod async_function;
mod call_events;
mod call_result;
mod call_tree;
mod calls;
mod dead;
mod events;
mod extract;
mod functions;
mod health;
mod invocation;
mod logs;
mod namespaces;
mod scale;
mod secrets;
mod sync_function;
mod system;

use aide::{
    axum::{
        ApiRouter,
        routing::{delete_with, get_with, post_with},
    },
    openapi::OpenApi,
    transform::TransformOperation,
};
use axum::{Json, Router, routing::MethodFilter};
use schemars::JsonSchema;
use serde::Deserialize;
use sluice_contracts::ScaleReply;

use crate::{App, openapi};

/// Largest function spec or other `/system` request body.
pub(crate) const SPEC_BODY_LIMIT: usize = 1024 * 1024;

/// `{name}` in a path: a function, optionally `NAME.NAMESPACE` on invocation routes.
#[derive(Deserialize, JsonSchema)]
pub struct FunctionPath {
    /// The function's name: `NAME` (the default namespace) or `NAME.NAMESPACE`.
    pub name: String,
}

/// `{name}/{path}`: a function and the rest of the path, which reaches the function.
#[derive(Deserialize, JsonSchema)]
pub struct FunctionSubPath {
    /// The function's name: `NAME` (the default namespace) or `NAME.NAMESPACE`.
    pub name: String,
    /// The rest of the path, passed to the function.
    pub path: String,
}

/// `{id}` in a path: a call id.
#[derive(Deserialize, JsonSchema)]
pub struct CallPath {
    /// The call id (`X-Call-Id` of the 202).
    pub id: String,
}

/// `{name}/{path}` of a cancellation: a function and one of its calls.
#[derive(Deserialize, JsonSchema)]
pub struct FunctionCallPath {
    /// The function's name.
    pub name: String,
    /// The call id (the path's tail, as on the invocation route beside it).
    #[serde(rename = "path")]
    pub id: String,
}

/// An admin operation: tagged `system`, summarised, behind the admin credentials.
fn tag<'a>(op: TransformOperation<'a>, summary: &str) -> TransformOperation<'a> {
    op.tag("system").summary(summary).security_requirement(openapi::BASIC_AUTH).security_requirement(openapi::BEARER)
}

/// The routes admin credentials guard.
fn system_routes() -> ApiRouter<App> {
    ApiRouter::new()
        .api_route(
            "/system/functions",
            get_with(functions::list, |op| tag(op, "List deployed functions (OpenFaaS FunctionStatus)"))
                .post_with(functions::create, |op| {
                    tag(op, "Deploy a function").response_with::<202, (), _>(|r| {
                        r.description("Deployed; a body with `warnings` names fields that were ignored")
                    })
                })
                .put_with(functions::update, |op| {
                    tag(op, "Update a function").response_with::<202, (), _>(|r| {
                        r.description("Updated; a body with `warnings` names fields that were ignored")
                    })
                })
                .delete_with(functions::delete, |op| {
                    tag(op, "Remove a function").response_with::<200, (), _>(|r| r.description("Removed"))
                }),
        )
        .api_route("/system/function/{name}", get_with(functions::get, |op| tag(op, "Describe one function")))
        .api_route("/system/namespaces", get_with(namespaces::list, |op| tag(op, "List namespaces, the default first")))
        .api_route(
            "/system/namespace/",
            post_with(namespaces::create, |op| {
                tag(op, "Create a namespace").response_with::<201, (), _>(|r| r.description("Created"))
            }),
        )
        .api_route(
            "/system/namespace/{name}",
            get_with(namespaces::get, |op| tag(op, "Describe a namespace"))
                .put_with(namespaces::update, |op| {
                    tag(op, "Change a namespace's labels and annotations")
                        .response_with::<202, (), _>(|r| r.description("Changed"))
                })
                .delete_with(namespaces::delete, |op| {
                    tag(op, "Remove an empty namespace").response_with::<200, (), _>(|r| r.description("Removed"))
                }),
        )
        .api_route(
            "/system/info",
            get_with(system::info, |op| openapi::errors(tag(op, "Provider, version and architecture"))),
        )
        .api_route(
            "/system/alert",
            post_with(system::alert, |op| tag(op, "AlertManager's scaling sink: not used by Sluice (501)")),
        )
        .api_route(
            "/system/scale-function/{name}",
            post_with(scale::scale, |op| {
                tag(op, "Set a container function's replicas")
                    .response_with::<202, Json<ScaleReply>, _>(|r| r.description("A worker scaled the function"))
            }),
        )
        .api_route(
            "/system/logs",
            get_with(logs::logs, |op| {
                tag(op, "A container function's logs").response_with::<200, String, _>(|r| {
                    openapi::media_type(
                        r.description("Newline-delimited JSON, one OpenFaaS logs.Message per line"),
                        "application/x-ndjson",
                    )
                })
            }),
        )
        .api_route(
            "/system/events",
            get_with(events::list, |op| tag(op, "List the newest connector events and what routing made of them")),
        )
        .api_route(
            "/system/events/replay",
            post_with(events::replay, |op| tag(op, "Route stored events again, from a time or one by its sequence")),
        )
        .api_route(
            "/system/secrets",
            get_with(secrets::list, |op| tag(op, "List secret names"))
                .post_with(secrets::create, |op| {
                    tag(op, "Create a secret").response_with::<201, (), _>(|r| r.description("Created"))
                })
                .put_with(secrets::update, |op| {
                    tag(op, "Change a secret's value").response_with::<200, (), _>(|r| r.description("Changed"))
                })
                .delete_with(secrets::delete, |op| {
                    // 200 as faasd answers; faas-cli takes 204 (OpenFaaS's document) for an error.
                    tag(op, "Remove a secret").response_with::<200, (), _>(|r| r.description("Removed"))
                }),
        )
        .api_route("/system/calls", get_with(calls::list, |op| tag(op, "List call records, newest first")))
        .api_route(
            "/system/calls/{id}",
            get_with(calls::get, |op| tag(op, "A call's record"))
                .delete_with(calls::cancel, |op| tag(op, "Cancel a queued or running call")),
        )
        .api_route(
            "/system/calls/{id}/tree",
            get_with(call_tree::tree, |op| {
                tag(op, "The pipeline a call belongs to: its root and every call that went on from another")
            }),
        )
        .api_route(
            "/system/calls/{id}/result",
            get_with(call_result::result, |op| {
                tag(op, "A finished call's result: the function's status, headers and body, while kept")
                    .response_with::<200, Vec<u8>, _>(|r| {
                        openapi::media_type(
                            r.description("The function's response; `X-Function-Status` repeats its status"),
                            "*/*",
                        )
                    })
                    .default_response_with::<Vec<u8>, _>(|r| {
                        openapi::media_type(r.description("The function's response with a status of its own"), "*/*")
                    })
            }),
        )
        .api_route(
            "/system/calls/{id}/events",
            get_with(call_events::events, |op| {
                tag(op, "Follow a call live: its state, then each change, until it is final")
                    .response_with::<200, String, _>(|r| {
                        openapi::media_type(
                            r.description(
                                "Server-Sent Events named for what changed, each carrying the whole record; `end` \
                                 closes the stream",
                            ),
                            "text/event-stream",
                        )
                    })
            }),
        )
        // OpenFaaS Pro's spelling of a cancellation (the path's tail is the call id): an admin action like the
        // other, though it sits beside the invocation routes, which may be open.
        .api_route(
            "/async-function/{name}/{*path}",
            delete_with(calls::cancel_of, |op| tag(op, "Cancel a call of this function (OpenFaaS Pro's route)")),
        )
        .api_route(
            "/system/health",
            get_with(health::health, |op| tag(op, "Workers that are up, and the size of every stream and bucket")),
        )
        .api_route("/system/dead", get_with(dead::list, |op| tag(op, "List dead letters, newest first")))
        .api_route(
            "/system/dead/{id}",
            delete_with(dead::discard, |op| {
                tag(op, "Discard a dead letter; the call can no longer be replayed")
                    .response_with::<204, (), _>(|r| r.description("Discarded"))
            }),
        )
        .api_route(
            "/system/dead/replay",
            post_with(dead::replay_many, |op| {
                tag(op, "Queue many dead calls again: named ones, or the newest of a function").description(
                    "Each call as `POST /system/dead/{id}/replay` queues one; the answer says, call by call, \
                         which were queued and why the others were not (those are left as they were, to be \
                         replayed again). Fanned-out children of one group replayed together take their places \
                         in it again before any is queued, so the group's join runs once, after the last of them.",
                )
            })
            // The route takes this path from `/system/dead/{id}`: a call named `replay` is discarded here.
            .delete_with(dead::discard_named_replay, |op| op.hidden(true)),
        )
        .api_route(
            "/system/dead/{id}/replay",
            post_with(dead::replay, |op| {
                tag(op, "Queue a dead call again")
                    .description(
                        "A new series of attempts from the original request. A fanned-out child takes its place in \
                         its group again; when the group had completed, its join runs again as a new call (a new \
                         `round`), listed under the call that fanned out. A replay cut short by its gateway's \
                         death (the record `queued` again, the letter still listed) is finished by replaying it \
                         again; a call whose letter is past `SLUICE_DEAD`'s limits answers 409.",
                    )
                    .response_with::<202, (), _>(|r| {
                        naming_the_call(r.description("Queued; `X-Call-Id` and `Location` name the call"))
                    })
            }),
        )
}

/// A 202's headers: `X-Call-Id` and `Location` (`/system/calls/{id}`).
fn naming_the_call(
    mut response: aide::transform::TransformResponse<'_, ()>,
) -> aide::transform::TransformResponse<'_, ()> {
    let headers = &mut response.inner().headers;
    headers.insert("X-Call-Id".into(), aide::openapi::ReferenceOr::Item(header_doc("The call's id")));
    headers.insert(
        "Location".into(),
        aide::openapi::ReferenceOr::Item(header_doc("/system/calls/{id}: the call's record")),
    );
    response
}

fn header_doc(description: &str) -> aide::openapi::Header {
    aide::openapi::Header {
        description: Some(description.to_owned()),
        style: Default::default(),
        required: true,
        deprecated: None,
        format: aide::openapi::ParameterSchemaOrContent::Schema(aide::openapi::SchemaObject {
            json_schema: schemars::json_schema!({"type": "string"}),
            example: None,
            external_docs: None,
        }),
        example: None,
        examples: Default::default(),
        extensions: Default::default(),
    }
}

/// A request header an invocation reads.
fn request_header<'a>(op: TransformOperation<'a>, name: &str, description: &str) -> TransformOperation<'a> {
    use aide::openapi::{Parameter, ParameterData, ParameterSchemaOrContent, ReferenceOr, SchemaObject};
    let mut op = op;
    op.inner_mut().parameters.push(ReferenceOr::Item(Parameter::Header {
        parameter_data: ParameterData {
            name: name.to_owned(),
            description: Some(description.to_owned()),
            required: false,
            deprecated: None,
            format: ParameterSchemaOrContent::Schema(SchemaObject {
                json_schema: schemars::json_schema!({"type": "string"}),
                example: None,
                external_docs: None,
            }),
            example: None,
            examples: Default::default(),
            explode: None,
            extensions: Default::default(),
        },
        style: Default::default(),
    }));
    op
}

/// An invocation's documentation: any body in, the function's answer (sync) or a 202 (async) out.
fn invocation_doc(op: TransformOperation<'_>, queued: bool) -> TransformOperation<'_> {
    let op = openapi::errors(op.tag("function"));
    let op = request_header(op, "X-Call-Id", "Your own call id (1-128 of letters, digits, '-', '_', '=', '.')");
    if queued {
        let op = op.summary("Queue a call; the result is POSTed to X-Callback-Url and kept in the call's record");
        let op = request_header(op, "X-Callback-Url", "Where the outcome is POSTed (checked by the callback policy)");
        op.response_with::<202, (), _>(|r| {
            naming_the_call(r.description("Queued and stored; `X-Call-Id` and `Location` name the call"))
        })
    } else {
        op.summary("Call a function and wait for its answer (any method; POST shown)")
            .response_with::<200, Vec<u8>, _>(|r| {
                openapi::media_type(r.description("The function's answer: its headers and body"), "*/*")
            })
            .default_response_with::<Vec<u8>, _>(|r| {
                openapi::media_type(r.description("The function's answer with a status of its own"), "*/*")
            })
    }
}

/// The invocation routes, open unless `--protect-invocations`. Every method reaches a sync function; the
/// document shows POST, as OpenFaaS's does.
fn invocation_routes() -> ApiRouter<App> {
    let others = MethodFilter::GET
        .or(MethodFilter::PUT)
        .or(MethodFilter::PATCH)
        .or(MethodFilter::DELETE)
        .or(MethodFilter::HEAD)
        .or(MethodFilter::OPTIONS);
    ApiRouter::new()
        .api_route("/async-function/{name}", post_with(async_function::invoke, |op| invocation_doc(op, true)))
        // A trailing slash routes as OpenFaaS routes it.
        .api_route("/async-function/{name}/", post_with(async_function::invoke, |op| invocation_doc(op, true)))
        .api_route(
            "/async-function/{name}/{*path}",
            post_with(async_function::invoke_with_path, |op| invocation_doc(op, true)),
        )
        .api_route(
            "/function/{name}",
            post_with(sync_function::invoke, |op| invocation_doc(op, false))
                .merge(axum::routing::on(others, sync_function::invoke)),
        )
        .api_route(
            "/function/{name}/",
            post_with(sync_function::invoke, |op| invocation_doc(op, false))
                .merge(axum::routing::on(others, sync_function::invoke)),
        )
        .api_route(
            "/function/{name}/{*path}",
            post_with(sync_function::invoke_with_path, |op| invocation_doc(op, false))
                .merge(axum::routing::on(others, sync_function::invoke_with_path)),
        )
        // Call bodies are limited and streamed by the invocation handlers themselves.
        .layer(axum::extract::DefaultBodyLimit::disable())
}

fn health_route() -> ApiRouter<App> {
    ApiRouter::new().api_route(
        "/healthz",
        get_with(system::healthz, |op| {
            op.tag("internal")
                .summary("Whether the gateway reaches NATS")
                .response_with::<200, String, _>(|r| r.description("OK"))
                .response_with::<503, String, _>(|r| r.description("NATS disconnected"))
        }),
    )
}

fn metrics_route() -> ApiRouter<App> {
    ApiRouter::new().api_route(
        "/metrics",
        get_with(system::metrics, |op| {
            openapi::errors(op.tag("internal").summary("Prometheus metrics (text format)"))
                .response_with::<200, String, _>(|r| r.description("Prometheus text format"))
                .security_requirement(openapi::BASIC_AUTH)
                .security_requirement(openapi::BEARER)
        }),
    )
}

/// The gateway's routes, `beside` (the connectors' HTTP routes, which the binary merges in) and
/// `GET /openapi.json`, the document of them all.
pub fn router(app: App, beside: ApiRouter) -> Router {
    let admin = app.cfg.access.admin_guard();
    let system = admin.protect_api(system_routes()).layer(axum::extract::DefaultBodyLimit::max(SPEC_BODY_LIMIT));
    // Prometheus may scrape with a token of its own.
    let metrics = app.cfg.access.metrics_guard().protect_api(metrics_route());
    let mut invocations = invocation_routes();
    if app.cfg.protect_invocations {
        invocations = admin.protect_api(invocations);
    }
    let mut api = openapi::frame();
    let router = health_route().merge(system).merge(metrics).merge(invocations).finish_api(&mut api);
    let beside = beside.finish_api(&mut api);
    let document = bytes::Bytes::from(serde_json::to_vec(&openapi::finish(api)).expect("the document serialises"));
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || async move {
                ([(axum::http::header::CONTENT_TYPE, "application/json")], document.clone())
            }),
        )
        .with_state(app)
        .merge(beside)
        .merge(crate::console::routes())
}

/// The OpenAPI document of every route [`router`] serves; `beside` adds the documentation of the routes
/// served beside them.
pub fn document(beside: impl FnOnce(&mut OpenApi)) -> OpenApi {
    let mut api = openapi::frame();
    let _ =
        health_route().merge(system_routes()).merge(metrics_route()).merge(invocation_routes()).finish_api(&mut api);
    beside(&mut api);
    openapi::finish(api)
}
