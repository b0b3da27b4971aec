//! `/system/secrets`: secrets for container functions (OpenFaaS `Secret` JSON), one set per namespace, kept in
//! KV `sluice_secrets` under `{namespace}.{name}`. Values go in and never come out: listing shows names only,
//! and nothing here logs a value.

use axum::{Json, extract::State, http::StatusCode};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sluice_contracts::{function::is_secret_name, names};

use super::extract::{Expected, InNamespace, JsonBody};
use crate::{ApiError, App};

/// A secret as posted: `value` (text) or `rawValue` (base64 bytes), as OpenFaaS takes them.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretBody {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    raw_value: Option<String>,
}

impl Expected for SecretBody {
    const SHAPE: &'static str = "a secret ({\"name\": ..., \"value\": ...})";
}

/// A secret as listed (OpenFaaS `Secret` without its value).
#[derive(Serialize, schemars::JsonSchema)]
pub struct SecretName {
    name: String,
    namespace: String,
}

fn store_error(err: impl std::fmt::Display) -> ApiError {
    ApiError::NotPersisted(format!("secret store: {err}"))
}

impl SecretBody {
    /// The secret's namespace, name and value.
    async fn checked(self, app: &App) -> Result<(String, String, Vec<u8>), ApiError> {
        let namespace = app.namespace(self.namespace.as_deref()).await?;
        if !is_secret_name(&self.name) {
            return Err(ApiError::BadQuery(format!(
                "secret name {:?}: use letters, digits, '-', '_' and '.', not starting with '.'",
                self.name
            )));
        }
        // As OpenFaaS reads a secret: `rawValue` when it holds anything, else `value` (faas-cli sends both).
        let value = match (self.value, self.raw_value.filter(|raw| !raw.trim().is_empty())) {
            (_, Some(raw)) => base64::engine::general_purpose::STANDARD
                .decode(raw.trim())
                .map_err(|e| ApiError::BadQuery(format!("rawValue is not base64: {e}")))?,
            (Some(text), None) => text.into_bytes(),
            (None, None) => return Err(ApiError::BadQuery("give value or rawValue".into())),
        };
        Ok((namespace, self.name, value))
    }
}

async fn exists(app: &App, namespace: &str, name: &str) -> Result<bool, ApiError> {
    if !is_secret_name(name) {
        return Ok(false); // not a key that can exist, nor a valid KV key
    }
    Ok(app.topology.secrets.get(names::secret_key(namespace, name)).await.map_err(store_error)?.is_some())
}

/// The names of one namespace's secrets, read by their keys' prefix.
pub async fn names_in(app: &App, namespace: &str) -> Result<Vec<String>, ApiError> {
    let entries = sluice_jetstream::store::latest_under(&app.topology.secrets, Some(namespace), false).await?;
    let prefix = format!("{namespace}.");
    let mut names: Vec<String> =
        entries.into_iter().filter_map(|entry| Some(entry.key.strip_prefix(&prefix)?.to_owned())).collect();
    names.sort();
    Ok(names)
}

pub async fn list(
    State(app): State<App>,
    InNamespace(namespace): InNamespace,
) -> Result<Json<Vec<SecretName>>, ApiError> {
    let names = names_in(&app, &namespace).await?;
    Ok(Json(names.into_iter().map(|name| SecretName { name, namespace: namespace.clone() }).collect()))
}

pub async fn create(State(app): State<App>, JsonBody(secret, _): JsonBody<SecretBody>) -> Result<StatusCode, ApiError> {
    let (namespace, name, value) = secret.checked(&app).await?;
    if exists(&app, &namespace, &name).await? {
        return Err(ApiError::SecretExists(name));
    }
    app.topology.secrets.put(names::secret_key(&namespace, &name), value.into()).await.map_err(store_error)?;
    tracing::info!(secret = %name, %namespace, "secret created");
    Ok(StatusCode::CREATED)
}

pub async fn update(State(app): State<App>, JsonBody(secret, _): JsonBody<SecretBody>) -> Result<StatusCode, ApiError> {
    let (namespace, name, value) = secret.checked(&app).await?;
    if !exists(&app, &namespace, &name).await? {
        return Err(ApiError::UnknownSecret(name));
    }
    app.topology.secrets.put(names::secret_key(&namespace, &name), value.into()).await.map_err(store_error)?;
    tracing::info!(secret = %name, %namespace, "secret updated");
    Ok(StatusCode::OK)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct DeleteSecret {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

impl Expected for DeleteSecret {
    const SHAPE: &'static str = "a secret to delete ({\"name\": ...})";
}

pub async fn delete(
    State(app): State<App>,
    JsonBody(DeleteSecret { name, namespace }, _): JsonBody<DeleteSecret>,
) -> Result<StatusCode, ApiError> {
    let namespace = app.namespace(namespace.as_deref()).await?;
    if !exists(&app, &namespace, &name).await? {
        return Err(ApiError::UnknownSecret(name));
    }
    app.topology.secrets.delete(names::secret_key(&namespace, &name)).await.map_err(store_error)?;
    tracing::info!(secret = %name, %namespace, "secret removed");
    Ok(StatusCode::OK)
}

/// The first secret `secrets` names that is not in `namespace`, if any (checked at deploy).
pub async fn first_missing(app: &App, namespace: &str, secrets: &[String]) -> Result<Option<String>, ApiError> {
    for name in secrets {
        if !exists(app, namespace, name).await? {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}
