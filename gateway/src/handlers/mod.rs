//! The route table: one file per route group.

mod async_function;
mod calls;
mod dead;
mod events;
mod extract;
mod functions;
mod invocation;
mod logs;
mod scale;
mod secrets;
mod sync_function;
mod system;

use axum::{
    Router,
    routing::{any, delete, get, post},
};

use crate::App;

/// Largest function spec or other `/system` request body.
pub(crate) const SPEC_BODY_LIMIT: usize = 1024 * 1024;

/// The gateway's own routes; the binary merges the connectors' HTTP routes beside them.
pub fn router(app: App) -> Router {
    let admin = app.cfg.access.admin_guard();
    let system = Router::new()
        .route(
            "/system/functions",
            get(functions::list).post(functions::create).put(functions::update).delete(functions::delete),
        )
        .route("/system/function/{name}", get(functions::get))
        .route("/system/namespaces", get(system::namespaces))
        .route("/system/info", get(system::info))
        .route("/system/alert", post(system::alert))
        .route("/system/scale-function/{name}", post(scale::scale))
        .route("/system/logs", get(logs::logs))
        .route("/system/events/replay", post(events::replay))
        .route("/system/secrets", get(secrets::list).post(secrets::create).put(secrets::update).delete(secrets::delete))
        .route("/system/calls", get(calls::list))
        .route("/system/calls/{id}", get(calls::get).delete(calls::cancel))
        // OpenFaaS Pro's spelling of a cancellation (the path's tail is the call id): an admin action like the
        // other, though it sits beside the invocation routes, which may be open.
        .route("/async-function/{name}/{*path}", delete(calls::cancel_of))
        .route("/system/dead", get(dead::list))
        .route("/system/dead/{id}/replay", post(dead::replay));
    let system = admin.protect(system).layer(axum::extract::DefaultBodyLimit::max(SPEC_BODY_LIMIT));
    // Prometheus may scrape with a token of its own.
    let metrics = app.cfg.access.metrics_guard().protect(Router::new().route("/metrics", get(system::metrics)));
    let mut invocations = Router::new()
        .route("/async-function/{name}", post(async_function::invoke))
        // A trailing slash routes as OpenFaaS routes it.
        .route("/async-function/{name}/", post(async_function::invoke))
        .route("/async-function/{name}/{*path}", post(async_function::invoke_with_path))
        .route("/function/{name}", any(sync_function::invoke))
        .route("/function/{name}/", any(sync_function::invoke))
        .route("/function/{name}/{*path}", any(sync_function::invoke_with_path))
        // Call bodies are limited and streamed by the invocation handlers themselves.
        .layer(axum::extract::DefaultBodyLimit::disable());
    if app.cfg.protect_invocations {
        invocations = admin.protect(invocations);
    }
    Router::new()
        .route("/healthz", get(system::healthz))
        .merge(system)
        .merge(metrics)
        .merge(invocations)
        .with_state(app)
}
