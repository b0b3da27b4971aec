//! `/system/functions` and `/system/function/{name}`: function specs in KV, OpenFaaS JSON shapes.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;
use sluice_contracts::{FunctionSpec, FunctionStatus, ReplicaReport, RuntimeKind, Usage, names};
use sluice_jetstream::store::Deployed;
use sluice_outbound::Enforce;

use super::extract::{Expected, InNamespace, JsonBody};
use crate::{ApiError, App};

/// The answer to a deploy: `status`, with the ignored fields named when there are any.
fn deployed(status: StatusCode, function: &str, unknown: Vec<String>) -> axum::response::Response {
    use axum::response::IntoResponse;
    if unknown.is_empty() {
        return status.into_response();
    }
    tracing::warn!(function, fields = ?unknown, "deployed with fields that are not understood and were ignored");
    let warnings: Vec<String> = unknown.iter().map(|f| format!("unknown field {f:?} ignored")).collect();
    (status, Json(serde_json::json!({ "warnings": warnings }))).into_response()
}

/// A container function's replicas over every worker.
#[derive(Default, Clone, Copy)]
struct Replicas {
    desired: u64,
    available: u64,
    usage: Option<Usage>,
}

/// Replicas of container functions (of `only`, when given), by function: the sums of the workers' live
/// reports, read in one pass over KV `sluice_replicas` (keyed `{function}.{worker}`).
async fn replica_counts(app: &App, only: Option<&str>) -> HashMap<String, Replicas> {
    use futures::StreamExt;
    let mut counts = HashMap::new();
    let Ok(keys) = app.topology.replicas.keys().await else { return counts };
    let keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
    let fresh_after = chrono::Utc::now() - sluice_jetstream::topology::REPLICA_REPORT_TTL;
    for key in keys {
        let Some((function, _worker)) = key.split_once('.') else { continue };
        if only.is_some_and(|f| f != function) {
            continue;
        }
        let Ok(Some(value)) = app.topology.replicas.get(&key).await else { continue };
        if let Ok(report) = serde_json::from_slice::<ReplicaReport>(&value)
            && report.updated_at > fresh_after
        {
            let sum: &mut Replicas = counts.entry(function.to_owned()).or_default();
            sum.desired += report.desired as u64;
            sum.available += report.available as u64;
            if let Some(usage) = report.usage {
                sum.usage = Some(sum.usage.map_or(usage, |u| u.plus(usage)));
            }
        }
    }
    counts
}

/// What the API reports of a deployed function: its spec, when it was deployed, and live figures.
fn status(
    deployed: Deployed,
    replicas: &HashMap<String, Replicas>,
    invocations: &HashMap<String, u64>,
) -> FunctionStatus {
    let Deployed { mut spec, deployed_at } = deployed;
    // Process and http functions have no replicas of their own: every worker can serve them.
    let counted = match spec.runtime_kind() {
        RuntimeKind::Docker => replicas.get(&spec.service).copied().unwrap_or_default(),
        RuntimeKind::Process | RuntimeKind::Http => Replicas { desired: 1, available: 1, usage: None },
    };
    let invocation_count = invocations.get(&spec.service).copied().unwrap_or(0);
    spec.namespace = Some(names::DEFAULT_NAMESPACE.to_owned());
    FunctionStatus {
        name: spec.service.clone(),
        spec,
        replicas: counted.desired,
        available_replicas: counted.available,
        invocation_count,
        created_at: deployed_at,
        usage: counted.usage,
    }
}

pub async fn list(State(app): State<App>, _: InNamespace) -> Result<Json<Vec<FunctionStatus>>, ApiError> {
    let (replicas, invocations) = (replica_counts(&app, None).await, app.invocations.totals().await?);
    let deployed = app.functions.list_deployed().await?;
    Ok(Json(deployed.into_iter().map(|d| status(d, &replicas, &invocations)).collect()))
}

pub async fn get(
    State(app): State<App>,
    Path(super::FunctionPath { name }): Path<super::FunctionPath>,
    _: InNamespace,
) -> Result<Json<FunctionStatus>, ApiError> {
    let deployed = app.functions.get_deployed(&name).await?.ok_or(ApiError::UnknownFunction(name))?;
    let replicas = replica_counts(&app, Some(&deployed.spec.service)).await;
    let count = app.invocations.total(&deployed.spec.service).await?;
    let invocations = HashMap::from([(deployed.spec.service.clone(), count)]);
    Ok(Json(status(deployed, &replicas, &invocations)))
}

/// The spec's own checks, plus: the secrets it names exist.
async fn validate(app: &App, spec: &FunctionSpec) -> Result<(), ApiError> {
    spec.validate()?;
    for (i, url) in spec.triggers.iter().enumerate().filter_map(|(i, t)| Some((i, t.callback_url.as_deref()?))) {
        app.cfg.callback_policy.check(url).await.map_err(|denied| {
            ApiError::InvalidSpec(sluice_contracts::ValidationError {
                field: format!("triggers[{i}].callbackUrl"),
                message: format!("{url:?}: {}", denied.0),
            })
        })?;
    }
    if let Some(missing) = super::secrets::first_missing(app, &spec.secrets).await? {
        return Err(ApiError::InvalidSpec(sluice_contracts::ValidationError {
            field: "secrets".into(),
            message: format!("secret {missing:?} does not exist; create it with POST /system/secrets"),
        }));
    }
    Ok(())
}

pub async fn create(
    State(app): State<App>,
    JsonBody(spec, unknown): JsonBody<FunctionSpec>,
) -> Result<axum::response::Response, ApiError> {
    validate(&app, &spec).await?;
    if app.functions.get(&spec.service).await?.is_some() {
        return Err(ApiError::FunctionExists(spec.service));
    }
    app.functions.put(&spec).await?;
    tracing::info!(function = %spec.service, runtime = spec.runtime_kind().as_str(), "function deployed");
    let response = deployed(StatusCode::ACCEPTED, &spec.service, unknown);
    app.function_cache.insert(spec.into());
    Ok(response)
}

pub async fn update(
    State(app): State<App>,
    JsonBody(spec, unknown): JsonBody<FunctionSpec>,
) -> Result<axum::response::Response, ApiError> {
    validate(&app, &spec).await?;
    if app.functions.get(&spec.service).await?.is_none() {
        return Err(ApiError::UnknownFunction(spec.service));
    }
    app.functions.put(&spec).await?;
    tracing::info!(function = %spec.service, "function updated");
    // 202 like a deploy: the go-sdk's Update takes nothing else (faas-cli takes 200 too).
    let response = deployed(StatusCode::ACCEPTED, &spec.service, unknown);
    app.function_cache.insert(spec.into());
    Ok(response)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    function_name: String,
    /// As the go-sdk sends it: absent, empty or the default namespace.
    #[serde(default)]
    namespace: Option<String>,
}

impl Expected for DeleteRequest {
    const SHAPE: &'static str = "a delete request ({\"functionName\": \"...\"})";
}

impl Expected for FunctionSpec {
    const SHAPE: &'static str = "a function spec";
}

pub async fn delete(
    State(app): State<App>,
    JsonBody(request, _): JsonBody<DeleteRequest>,
) -> Result<StatusCode, ApiError> {
    super::extract::check_namespace(request.namespace.as_deref())?;
    if !app.functions.delete(&request.function_name).await? {
        return Err(ApiError::UnknownFunction(request.function_name));
    }
    tracing::info!(function = %request.function_name, "function removed");
    if let Err(err) = app.invocations.forget(&request.function_name).await {
        tracing::warn!(%err, function = %request.function_name, "its invocation count was kept");
    }
    app.function_cache.remove(&request.function_name);
    Ok(StatusCode::OK)
}
