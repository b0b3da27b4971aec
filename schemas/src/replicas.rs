//! Replica counts of container functions, as workers report them and the API shows them, and the manual
//! scale request (OpenFaaS `ScaleServiceRequest`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One worker's replicas of one function, in KV `sluice_replicas` under `{function}.{worker}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaReport {
    /// Replicas the worker is scaling to.
    pub desired: u32,
    /// Ready replicas taking calls.
    pub available: u32,
    pub updated_at: DateTime<Utc>,
}

/// `POST /system/scale-function/{name}` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleRequest {
    /// The function; optional, the path names it too.
    #[serde(default)]
    pub service_name: Option<String>,
    pub replicas: u32,
}
