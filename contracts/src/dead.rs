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
    /// Sequence in `SLUICE_DEAD`; replay takes the one the call record names (this one when the record expired).
    pub sequence: u64,
}

/// The most dead calls one `POST /system/dead/replay` takes.
pub const MAX_DEAD_REPLAY: usize = 1_000;

/// Which dead calls `POST /system/dead/replay` queues again: named ones (`callIds`), or the newest of one
/// function (`function`, in the request's namespace, at most `limit`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadReplay {
    /// The calls to replay, 1 to 1,000 of them; each once however often it is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_ids: Option<Vec<String>>,
    /// Instead: the newest dead letters of this function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// With `function`: at most this many (100 unless given, at most 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// How a `POST /system/dead/replay` went, call by call, in the order they were named or listed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadReplayReport {
    /// Queued again, each as a new series of attempts.
    pub replayed: Vec<String>,
    /// Not queued, and why; each is as it was and can be replayed again.
    pub not_replayed: Vec<NotReplayed>,
}

/// A dead call a replay did not queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotReplayed {
    pub call_id: String,
    pub error: String,
}
