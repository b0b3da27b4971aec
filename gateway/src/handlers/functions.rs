//! `/system/functions` and `/system/function/{name}`: function specs in KV, OpenFaaS JSON shapes.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::Deserialize;
use sluice_contracts::chain::Leg;
use sluice_contracts::{FunctionRef, FunctionSpec, FunctionStatus, ReplicaReport, RuntimeKind, Usage};
use sluice_jetstream::store::Deployed;
use sluice_outbound::Enforce;

use super::extract::{Expected, InNamespace, JsonBody};
use crate::{ApiError, App};

/// The answer to a deploy: `status`, with the ignored fields named when there are any.
fn deployed(status: StatusCode, function: &FunctionRef, unknown: Vec<String>) -> axum::response::Response {
    use axum::response::IntoResponse;
    if unknown.is_empty() {
        return status.into_response();
    }
    tracing::warn!(%function, fields = ?unknown, "deployed with fields that are not understood and were ignored");
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

/// Replicas of the container functions of `namespace` (of its function `only`, when given), by function
/// name: the sums of the workers' live reports, read in one pass over their keys in KV `sluice_replicas`
/// (keyed `{namespace}.{function}.{worker}`).
async fn replica_counts(app: &App, namespace: &str, only: Option<&str>) -> HashMap<String, Replicas> {
    let mut counts = HashMap::new();
    let prefix = match only {
        Some(name) => FunctionRef::new(namespace, name).key(),
        None => namespace.to_owned(),
    };
    let Ok(entries) = sluice_jetstream::store::latest_under(&app.topology.replicas, Some(&prefix), true).await else {
        return counts;
    };
    let fresh_after = chrono::Utc::now() - sluice_jetstream::topology::REPLICA_REPORT_TTL;
    for entry in entries {
        let Some(rest) = entry.key.strip_prefix(namespace).and_then(|k| k.strip_prefix('.')) else { continue };
        let Some((function, _worker)) = rest.split_once('.') else { continue };
        if let Ok(report) = serde_json::from_slice::<ReplicaReport>(&entry.value)
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
    let Deployed { spec, deployed_at } = deployed;
    // Process and http functions have no replicas of their own: every worker can serve them.
    let counted = match spec.runtime_kind() {
        RuntimeKind::Docker => replicas.get(&spec.service).copied().unwrap_or_default(),
        RuntimeKind::Process | RuntimeKind::Http => Replicas { desired: 1, available: 1, usage: None },
    };
    // A stored spec always names its namespace (the store fills it in for specs older than namespaces).
    let invocation_count = invocations.get(&spec.service).copied().unwrap_or(0);
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

/// The functions of one namespace (`?namespace=`, the default one when absent).
pub async fn list(
    State(app): State<App>,
    InNamespace(namespace): InNamespace,
) -> Result<Json<Vec<FunctionStatus>>, ApiError> {
    // Specs and totals come from the gateway's copies, once they have every change their buckets have now.
    let (replicas, invocations, deployed) = tokio::join!(
        replica_counts(&app, &namespace, None),
        app.invocation_totals.totals(&namespace),
        app.function_cache.deployed_in(&namespace)
    );
    let (invocations, deployed) = (invocations?, deployed?);
    Ok(Json(deployed.into_iter().map(|d| status(d, &replicas, &invocations)).collect()))
}

pub async fn get(
    State(app): State<App>,
    Path(super::FunctionPath { name }): Path<super::FunctionPath>,
    InNamespace(namespace): InNamespace,
) -> Result<Json<FunctionStatus>, ApiError> {
    let function = FunctionRef::new(namespace.as_str(), name.as_str());
    let deployed =
        app.functions.get_deployed(&function).await?.ok_or_else(|| ApiError::UnknownFunction(app.shown(&function)))?;
    let replicas = replica_counts(&app, &namespace, Some(&name)).await;
    let count = app.invocations.total(&function).await?;
    let invocations = HashMap::from([(name, count)]);
    Ok(Json(status(deployed, &replicas, &invocations)))
}

/// The spec's own checks, plus: its namespace and the secrets it names (in that namespace) exist. Fills in the
/// namespace when the spec names none.
async fn validate(app: &App, spec: &mut FunctionSpec) -> Result<(), ApiError> {
    spec.validate()?;
    spec.namespace = Some(app.namespace(spec.namespace.as_deref()).await?);
    for (i, url) in spec.triggers.iter().enumerate().filter_map(|(i, t)| Some((i, t.callback_url.as_deref()?))) {
        app.cfg.callback_policy.check(url).await.map_err(|denied| {
            ApiError::InvalidSpec(sluice_contracts::ValidationError {
                field: format!("triggers[{i}].callbackUrl"),
                message: format!("{url:?}: {}", denied.0),
            })
        })?;
    }
    check_destinations(app, spec).await?;
    refuse_loops(app, spec).await?;
    let namespace = spec.function_ref().namespace;
    if let Some(missing) = super::secrets::first_missing(app, &namespace, &spec.secrets).await? {
        return Err(ApiError::InvalidSpec(sluice_contracts::ValidationError {
            field: "secrets".into(),
            message: format!(
                "secret {missing:?} does not exist in namespace {namespace:?}; create it with POST /system/secrets"
            ),
        }));
    }
    Ok(())
}

/// `async.onSuccess`/`onFailure`: a URL within the callback policy, a function that is deployed (deploy a
/// pipeline from its end; `sluice fn deploy` orders a file's specs so).
async fn check_destinations(app: &App, spec: &FunctionSpec) -> Result<(), ApiError> {
    let invalid =
        |field: String, message: String| ApiError::InvalidSpec(sluice_contracts::ValidationError { field, message });
    for leg in [Leg::OnSuccess, Leg::OnFailure] {
        if let Some(url) = spec.destination_url(leg) {
            let denied = app.cfg.callback_policy.check(url).await.err();
            if let Some(denied) = denied {
                return Err(invalid(format!("{}.url", leg.field()), format!("{url:?}: {}", denied.0)));
            }
        }
    }
    for (leg, target) in spec.destinations() {
        if app.functions.get(&target).await?.is_none() {
            let message = format!(
                "function {} is not deployed; deploy the functions a pipeline goes on to first",
                app.shown(&target)
            );
            return Err(invalid(format!("{}.function", leg.field()), message));
        }
    }
    Ok(())
}

/// Functions looked at, at most, when following a new spec's destinations through the deployed ones.
const MAX_CHAIN_WALK: usize = 1024;

/// Refuses a spec whose `async.onSuccess`/`onFailure` lead back to it through the deployed functions' own:
/// its calls would go round for ever (the workers' depth limit would cut them, but only after many runs).
async fn refuse_loops(app: &App, spec: &FunctionSpec) -> Result<(), ApiError> {
    let me = spec.function_ref();
    for (leg, first) in spec.destinations() {
        let mut stack = vec![(first, vec![me.clone()])];
        let mut seen = std::collections::HashSet::new();
        while let Some((at, mut path)) = stack.pop() {
            path.push(at.clone());
            if at == me {
                let shown: Vec<String> = path.iter().map(|f| app.shown(f)).collect();
                return Err(ApiError::InvalidSpec(sluice_contracts::ValidationError {
                    field: leg.field().to_owned(),
                    message: format!("{} leads back to this function: its calls would loop", shown.join(" → ")),
                }));
            }
            if seen.len() >= MAX_CHAIN_WALK || !seen.insert(at.clone()) {
                continue;
            }
            if let Some(next) = app.function_cache.get(&at).await? {
                stack.extend(next.destinations().into_iter().map(|(_, to)| (to, path.clone())));
            }
        }
    }
    Ok(())
}

pub async fn create(
    State(app): State<App>,
    JsonBody(mut spec, unknown): JsonBody<FunctionSpec>,
) -> Result<axum::response::Response, ApiError> {
    validate(&app, &mut spec).await?;
    let function = spec.function_ref();
    if app.functions.get(&function).await?.is_some() {
        return Err(ApiError::FunctionExists(app.shown(&function)));
    }
    app.functions.put(&spec).await?;
    tracing::info!(%function, runtime = spec.runtime_kind().as_str(), "function deployed");
    let response = deployed(StatusCode::ACCEPTED, &function, unknown);
    app.function_cache.insert(spec.into());
    Ok(response)
}

pub async fn update(
    State(app): State<App>,
    JsonBody(mut spec, unknown): JsonBody<FunctionSpec>,
) -> Result<axum::response::Response, ApiError> {
    validate(&app, &mut spec).await?;
    let function = spec.function_ref();
    if app.functions.get(&function).await?.is_none() {
        return Err(ApiError::UnknownFunction(app.shown(&function)));
    }
    app.functions.put(&spec).await?;
    tracing::info!(%function, "function updated");
    // 202 like a deploy: the go-sdk's Update takes nothing else (faas-cli takes 200 too).
    let response = deployed(StatusCode::ACCEPTED, &function, unknown);
    app.function_cache.insert(spec.into());
    Ok(response)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    function_name: String,
    /// The function's namespace; the default one when absent or empty.
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
    let namespace = app.namespace(request.namespace.as_deref()).await?;
    let function = FunctionRef::new(namespace, request.function_name);
    if !app.functions.delete(&function).await? {
        return Err(ApiError::UnknownFunction(app.shown(&function)));
    }
    tracing::info!(%function, "function removed");
    if let Err(err) = app.invocations.forget(&function).await {
        tracing::warn!(%err, %function, "its invocation count was kept");
    }
    app.function_cache.remove(&function);
    Ok(StatusCode::OK)
}
