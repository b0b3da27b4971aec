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
    /// What the replicas use, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// CPU and memory used by a function's replicas (OpenFaaS `FunctionUsage`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// CPU in use, in millicores (1000 is one core busy), over the last measurement interval.
    pub cpu: f64,
    /// Memory in use, in bytes, without reclaimable page cache.
    pub total_memory_bytes: f64,
}

impl Usage {
    /// The sum of two measurements (of several replicas or workers).
    pub fn plus(self, other: Usage) -> Usage {
        Usage { cpu: self.cpu + other.cpu, total_memory_bytes: self.total_memory_bytes + other.total_memory_bytes }
    }
}

/// `POST /system/scale-function/{name}` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleRequest {
    /// The function; optional, the path names it too.
    #[serde(default)]
    pub service_name: Option<String>,
    /// The function's namespace; the default one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub replicas: u32,
}

/// A worker's answer to a [`ScaleRequest`] on `sluice.scale.{function}`; the gateway shows `Scaled` as is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ScaleReply {
    /// The worker scaled to `desired`; `available` are ready now.
    Scaled {
        desired: u32,
        available: u32,
    },
    Failed {
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_replies_keep_their_json_shape() {
        let scaled = ScaleReply::Scaled { desired: 2, available: 1 };
        assert_eq!(serde_json::to_value(&scaled).unwrap(), serde_json::json!({"desired": 2, "available": 1}));
        let failed: ScaleReply = serde_json::from_str(r#"{"error": "no engine"}"#).unwrap();
        assert_eq!(failed, ScaleReply::Failed { error: "no engine".into() });
    }
}
