//! Event replay between a gateway and the event routers: the gateway sends a [`ReplayRequest`] on
//! [`REPLAY_SUBJECT`](crate::names::REPLAY_SUBJECT) (one router of the queue group answers) and relays the
//! [`ReplayReply`]. The router owns the trigger matching, so the gateway needs none of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Route the events stored since `since` again (only to `function`, a function's
/// [key](crate::FunctionRef::key), when given); with `sequence`, only the event stored there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayRequest {
    pub since: DateTime<Utc>,
    #[serde(default)]
    pub function: Option<String>,
    /// One event, by its sequence in `SLUICE_EVENTS`; `since` is then not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// What a router did with a [`ReplayRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ReplayReply {
    /// Events read, and calls queued (or found already queued) for them.
    Replayed {
        events: u64,
        calls: u64,
    },
    Failed {
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_read_back_as_what_they_were() {
        for reply in [ReplayReply::Replayed { events: 3, calls: 2 }, ReplayReply::Failed { error: "no".into() }] {
            let json = serde_json::to_string(&reply).unwrap();
            assert_eq!(serde_json::from_str::<ReplayReply>(&json).unwrap(), reply);
        }
        let json = serde_json::to_value(ReplayReply::Replayed { events: 1, calls: 0 }).unwrap();
        assert_eq!(json, serde_json::json!({"events": 1, "calls": 0}));
    }
}
