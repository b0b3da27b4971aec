//! `POST /system/scale-function/{name}`: manual scaling of a container function. The gateway has no engine of
//! its own, so it asks the workers over NATS (`sluice.scale.{name}`) and answers with what one of them did.

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use sluice_contracts::{FunctionRef, RuntimeKind, ScaleReply, ScaleRequest, names};

use super::extract::{Expected, InNamespace, JsonBody};
use crate::{ApiError, App};

/// Scaling up waits for the new containers to be ready; this bounds the wait.
const SCALE_TIMEOUT: Duration = Duration::from_secs(120);

impl Expected for ScaleRequest {
    const SHAPE: &'static str = "a scale request ({\"replicas\": N})";
}

pub async fn scale(
    State(app): State<App>,
    Path(super::FunctionPath { name }): Path<super::FunctionPath>,
    InNamespace(namespace): InNamespace,
    JsonBody(request, _): JsonBody<ScaleRequest>,
) -> Result<(StatusCode, Json<ScaleReply>), ApiError> {
    // The go-sdk names the namespace in the body as well as the query; the body's, when given, is the one used.
    let namespace = match request.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(named) if named != namespace => app.namespace(Some(named)).await?,
        _ => namespace,
    };
    if request.service_name.as_ref().is_some_and(|s| *s != name) {
        return Err(ApiError::BadQuery(format!(
            "serviceName {:?} differs from the path's {name:?}",
            request.service_name
        )));
    }
    let function = FunctionRef::new(namespace, name.as_str());
    let spec = app.deployed(&function).await?;
    if spec.runtime_kind() != RuntimeKind::Docker {
        return Err(ApiError::BadQuery(format!(
            "{name} is a {} function; only container functions have replicas",
            spec.runtime_kind().as_str()
        )));
    }
    let payload = serde_json::to_vec(&request).expect("requests serialize");
    let ask = async_nats::Request::new().payload(payload.into()).timeout(Some(SCALE_TIMEOUT));
    let reply = app
        .topology
        .client
        .send_request(names::scale_subject(&function), ask)
        .await
        .map_err(|_| ApiError::NoWorker(name.clone()))?;
    let answer: ScaleReply = serde_json::from_slice(&reply.payload)
        .map_err(|e| ApiError::CallFailed(format!("unreadable answer from a worker: {e}")))?;
    if let ScaleReply::Failed { error } = answer {
        return Err(ApiError::CallFailed(format!("scaling {name}: {error}")));
    }
    tracing::info!(%function, replicas = request.replicas, "function scaled");
    Ok((StatusCode::ACCEPTED, Json(answer)))
}
