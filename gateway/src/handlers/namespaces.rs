//! `/system/namespaces` and `/system/namespace/{name}`: the namespaces functions and secrets live in, as the
//! go-sdk (and so `faas-cli namespace`) manages them. The default namespace always exists and cannot go.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;
use sluice_contracts::Namespace;

use super::extract::{Expected, JsonBody};
use crate::{ApiError, App};

impl Expected for Namespace {
    const SHAPE: &'static str = "a namespace ({\"name\": ..., \"labels\": {...}, \"annotations\": {...}})";
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct NamespacePath {
    /// The namespace's name.
    pub name: String,
}

/// `GET /system/namespaces`: every namespace's name, the default one first (OpenFaaS's shape).
pub async fn list(State(app): State<App>) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(app.namespaces.list().await?))
}

/// `POST /system/namespace/`: creates a namespace; 409 when it exists.
pub async fn create(
    State(app): State<App>,
    JsonBody(namespace, _): JsonBody<Namespace>,
) -> Result<StatusCode, ApiError> {
    namespace.validate()?;
    if !app.namespaces.create(&namespace).await? {
        return Err(ApiError::NamespaceExists(namespace.name));
    }
    tracing::info!(namespace = %namespace.name, "namespace created");
    Ok(StatusCode::CREATED)
}

/// `GET /system/namespace/{name}`.
pub async fn get(
    State(app): State<App>,
    Path(NamespacePath { name }): Path<NamespacePath>,
) -> Result<Json<Namespace>, ApiError> {
    app.namespaces.get(&name).await?.map(Json).ok_or(ApiError::UnknownNamespace(name))
}

/// `PUT /system/namespace/{name}`: replaces its labels and annotations. The default namespace has none to change.
pub async fn update(
    State(app): State<App>,
    Path(NamespacePath { name }): Path<NamespacePath>,
    JsonBody(mut namespace, _): JsonBody<Namespace>,
) -> Result<StatusCode, ApiError> {
    if namespace.name.is_empty() {
        namespace.name.clone_from(&name);
    }
    if namespace.name != name {
        return Err(ApiError::BadQuery(format!("name {:?} differs from the path's {name:?}", namespace.name)));
    }
    namespace.validate()?;
    if name == app.namespaces.default_namespace() {
        return Err(ApiError::Conflict(format!("{name:?} is the default namespace; it has no labels to change")));
    }
    if !app.namespaces.update(&namespace).await? {
        return Err(ApiError::UnknownNamespace(name));
    }
    tracing::info!(namespace = %name, "namespace updated");
    Ok(StatusCode::ACCEPTED)
}

/// `DELETE /system/namespace/{name}`: only an empty namespace goes; one that still holds functions or secrets is
/// a 409 naming them, so nothing is orphaned.
pub async fn delete(
    State(app): State<App>,
    Path(NamespacePath { name }): Path<NamespacePath>,
) -> Result<StatusCode, ApiError> {
    if name == app.namespaces.default_namespace() {
        return Err(ApiError::Conflict(format!("{name:?} is the default namespace; it cannot be removed")));
    }
    if !app.namespaces.exists(&name).await? {
        return Err(ApiError::UnknownNamespace(name));
    }
    let functions: Vec<String> = app.functions.list(Some(&name)).await?.into_iter().map(|spec| spec.service).collect();
    let secrets = super::secrets::names_in(&app, &name).await?;
    let mut held = Vec::new();
    if !functions.is_empty() {
        held.push(format!("functions {}", functions.join(", ")));
    }
    if !secrets.is_empty() {
        held.push(format!("secrets {}", secrets.join(", ")));
    }
    if !held.is_empty() {
        return Err(ApiError::NamespaceInUse { name, what: held.join(" and ") });
    }
    app.namespaces.delete(&name).await?;
    tracing::info!(namespace = %name, "namespace removed");
    Ok(StatusCode::OK)
}
