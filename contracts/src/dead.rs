//! Dead letters as the API lists them (`GET /system/dead`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One call that failed for good, as kept in `SLUICE_DEAD`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub call_id: String,
    pub function: String,
    pub namespace: String,
    /// Last function status; 0 when there was no response.
    pub status: u16,
    pub error: String,
    pub attempts: u32,
    /// When the call was dead-lettered (RFC 3339).
    pub dead_at: String,
    /// Sequence in `SLUICE_DEAD`; replay takes the one the call record names.
    pub sequence: u64,
}
