//! The record of one call, kept in KV `sluice_calls` and served by `GET /system/calls/{id}`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a call is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl CallStatus {
    /// Whether the call has its outcome and will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for CallStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| format!("unknown call status {s:?}; use queued, running, succeeded, failed or cancelled"))
    }
}

/// One call's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub call_id: String,
    pub function: String,
    /// The function's namespace; records written before namespaces existed belong to `openfaas-fn`.
    #[serde(default = "legacy_namespace")]
    pub namespace: String,
    pub status: CallStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// HTTP status of the function's last response, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_status: Option<u16>,
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::timestamp::serialize_option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::timestamp::serialize_option")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the call failed, or why its last attempt did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Delivery of the call's callback, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackState>,
    /// The call whose response this call was started with (`async.onSuccess`/`onFailure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_call_id: Option<String>,
    /// Delivery of the call's result to its function's `async.onSuccess`/`onFailure` URL, when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<CallbackState>,
    /// The first call of this call's pipeline, when it is not the first itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_call_id: Option<String>,
    /// The calls this one went on to (`async.onSuccess`/`onFailure`, a fan-out and its join), started or
    /// refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// The function's latest progress report, while it runs and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<crate::CallProgress>,
    /// When the function last reported (progress or a bare heartbeat).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::timestamp::serialize_option")]
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// When a failed attempt is tried again, while the call waits for it.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::timestamp::serialize_option")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Where the call's result (the function's response) is kept, once it is final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<StoredResult>,
    /// Sequence of the call's dead letter in `SLUICE_DEAD`, while it can be replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<u64>,
    /// The dead letter (its sequence in `SLUICE_DEAD`) this call's current series of attempts replays, when it is
    /// a replay: what its outcome, completion event and callbacks are told apart by from the series before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<u64>,
    /// Where the callback goes. Kept for cancellations; the API never shows it, as it may carry credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub callback_url: Option<String>,
}

/// Where a callback's delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallbackDelivery {
    /// Not delivered yet; retried from the outbox.
    Pending,
    Delivered,
    /// Given up: refused by the receiver, or not delivered before it expired.
    Failed,
}

/// A call's callback delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackState {
    pub state: CallbackDelivery,
    /// Deliveries tried so far.
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A call and the calls it went on to, as `GET /system/calls/{id}/tree` shows a pipeline from its root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallTree {
    pub call: CallRecord,
    /// From its start to its end, or to now while it runs; absent before it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// The calls it went on to, in the order they were started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<CallTree>,
}

/// A finished call's kept result: the function's response, served by `GET /system/calls/{id}/result`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredResult {
    /// Sequence of the call's completion event in `SLUICE_RESULTS`, which carries the response.
    pub sequence: u64,
    /// Size of the response body in bytes.
    pub size: u64,
    /// When it goes at the latest (sooner if the results store fills up); absent when kept until then.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::timestamp::serialize_option")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether it can still be fetched, as the gateway found when it served the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ResultState>,
}

/// Whether a kept result can still be fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultState {
    Available,
    /// Its time (`--results-ttl`) is over.
    Expired,
    /// It went early, as the oldest result, to make room when the results store was full.
    Evicted,
}

impl ResultState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Expired => "expired",
            Self::Evicted => "evicted",
        }
    }
}

fn legacy_namespace() -> String {
    crate::function_ref::LEGACY_NAMESPACE.to_owned()
}

impl CallRecord {
    /// Lists `call_id` among the calls this one went on to, once; `false` when it was listed already.
    pub fn add_child(&mut self, call_id: &str) -> bool {
        if self.children.iter().any(|child| child == call_id) {
            return false;
        }
        self.children.push(call_id.to_owned());
        true
    }

    pub fn queued(call_id: &str, function: &crate::FunctionRef, created_at: DateTime<Utc>) -> Self {
        Self {
            call_id: call_id.to_owned(),
            function: function.name.clone(),
            namespace: function.namespace.clone(),
            status: CallStatus::Queued,
            attempts: 0,
            function_status: None,
            created_at,
            started_at: None,
            finished_at: None,
            error: None,
            callback: None,
            parent_call_id: None,
            root_call_id: None,
            destination: None,
            children: Vec::new(),
            progress: None,
            heartbeat_at: None,
            result: None,
            next_attempt_at: None,
            dead_letter: None,
            replay_of: None,
            callback_url: None,
        }
    }

    /// The function the call is to.
    pub fn function_ref(&self) -> crate::FunctionRef {
        crate::FunctionRef::new(self.namespace.as_str(), self.function.as_str())
    }
}

/// Whether `id` can be a KV key, and so a call id: letters, digits, `-`, `_`, `=`, `.`, at most 128.
pub fn is_valid_call_id(id: &str) -> bool {
    crate::names::is_key_safe(id, 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parses_from_query_words() {
        assert_eq!("running".parse::<CallStatus>().unwrap(), CallStatus::Running);
        assert!("done".parse::<CallStatus>().unwrap_err().contains("unknown call status"));
        assert!(CallStatus::Cancelled.is_final() && !CallStatus::Queued.is_final());
    }

    #[test]
    fn record_uses_the_documented_field_names() {
        let record = CallRecord::queued("c1", &crate::FunctionRef::new("team-a", "f"), Utc::now());
        let json = serde_json::to_value(&record).unwrap();
        for field in ["callId", "function", "namespace", "status", "attempts", "createdAt"] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        assert_eq!(json["status"], "queued");
    }

    #[test]
    fn records_from_before_namespaces_belong_to_the_legacy_one() {
        let old = r#"{"callId":"c1","function":"f","status":"queued","attempts":0,"createdAt":"2026-01-01T00:00:00Z"}"#;
        let record: CallRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record.function_ref(), crate::FunctionRef::new("openfaas-fn", "f"));
    }

    #[test]
    fn call_ids_are_kv_safe() {
        assert!(is_valid_call_id("019a8c1e-7d3f-7000-8000-000000000001"));
        assert!(is_valid_call_id("job_42.retry"));
        for bad in ["", "a b", "a*", "a>", ".a", "a.", &"x".repeat(129)] {
            assert!(!is_valid_call_id(bad), "{bad}");
        }
    }
}
