//! Fan-out and fan-in: a running call declares child calls and a join, in a fan-out document it POSTs to its
//! `X-Sluice-Fanout-Url` (or answers with, as `application/vnd.sluice.fanout+json`). When the call succeeds
//! its children are queued as one group; when every child has ended — succeeded, failed for good or
//! cancelled — the join function is called once with the [`Group`]: every child's outcome and where its result
//! is kept. Child and join ids derive from the parent's, so a parent whose outcome is reported twice starts
//! the group once, and the join runs once however many workers finish children at the same moment. A replayed
//! child reopens its place ([`Group::reopen`]); a group reopened after it completed gets a new round and join.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{CallStatus, FunctionRef};

/// The content type of a response that is a fan-out document.
pub const CONTENT_TYPE: &str = "application/vnd.sluice.fanout+json";

/// Most child calls in one group: the group record, with every child's short result inline, stays well under
/// one NATS message.
pub const MAX_CALLS: usize = 256;

/// Largest fan-out document.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Largest body of one child call, as the document gives it.
pub const MAX_CALL_BODY_BYTES: usize = 256 << 10;

/// Largest result the group record keeps inline for the join (as JSON text); a larger one is fetched by its
/// `result` path.
pub const MAX_INLINE_RESULT_BYTES: usize = 2 << 10;

/// Longest error (as JSON text) and content type the group record keeps per child, and largest join context:
/// with [`MAX_CALLS`] children the record stays under 1 MiB, the most a NATS message (and a KV value) holds.
const MAX_ERROR_BYTES: usize = 512;
const MAX_CONTENT_TYPE_BYTES: usize = 128;
pub const MAX_CONTEXT_BYTES: usize = 16 << 10;

/// What a call fans out to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FanOut {
    /// The child calls, 1 to 256.
    pub calls: Vec<ChildCall>,
    /// Called once when every child has ended; without it the group only tracks its children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<Join>,
}

/// One child call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChildCall {
    /// `NAME` (the fanning-out function's namespace) or `NAME.NAMESPACE`.
    pub function: String,
    /// The child's request body: a string is sent as it is (`text/plain` unless `contentType` says otherwise),
    /// anything else as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// The call that gathers a group's outcomes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Join {
    /// `NAME` or `NAME.NAMESPACE`.
    pub function: String,
    /// Handed to the join as it is (an output name, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
}

/// Why a fan-out document was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FanOutError {
    #[error("fan-out document is not valid: {0}")]
    Malformed(String),
    #[error("fan-out document is over {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("fan-out document names no calls")]
    Empty,
    #[error("fan-out document names {0} calls; at most {MAX_CALLS}")]
    TooMany(usize),
    #[error("fan-out calls[{index}]: {reason}")]
    Call { index: usize, reason: String },
    #[error("fan-out join: {0}")]
    Join(String),
}

impl FanOut {
    /// Reads and checks a document (not whether the functions it names are deployed: the worker knows that).
    pub fn parse(bytes: &[u8]) -> Result<Self, FanOutError> {
        if bytes.len() > MAX_DOCUMENT_BYTES {
            return Err(FanOutError::TooLarge);
        }
        let fan_out: Self = serde_json::from_slice(bytes).map_err(|err| FanOutError::Malformed(err.to_string()))?;
        if fan_out.calls.is_empty() {
            return Err(FanOutError::Empty);
        }
        if fan_out.calls.len() > MAX_CALLS {
            return Err(FanOutError::TooMany(fan_out.calls.len()));
        }
        for (index, call) in fan_out.calls.iter().enumerate() {
            let refuse = |reason: String| FanOutError::Call { index, reason };
            check_function(&call.function).map_err(refuse)?;
            if call.body().0.len() > MAX_CALL_BODY_BYTES {
                return Err(refuse(format!("body is over {MAX_CALL_BODY_BYTES} bytes")));
            }
            if let Some(content_type) = &call.content_type
                && http::HeaderValue::from_str(content_type).is_err()
            {
                return Err(refuse(format!("contentType {content_type:?} is not a header value")));
            }
        }
        if let Some(join) = &fan_out.join {
            check_function(&join.function).map_err(FanOutError::Join)?;
            if join.context.as_ref().is_some_and(|c| c.to_string().len() > MAX_CONTEXT_BYTES) {
                return Err(FanOutError::Join(format!("context is over {MAX_CONTEXT_BYTES} bytes")));
            }
        }
        Ok(fan_out)
    }

    /// The functions it names (children, then the join), from a call in `namespace`.
    pub fn functions(&self, namespace: &str) -> Vec<FunctionRef> {
        let children = self.calls.iter().map(|call| FunctionRef::from_qualified(&call.function, namespace));
        children.chain(self.join.iter().map(|join| FunctionRef::from_qualified(&join.function, namespace))).collect()
    }
}

fn check_function(function: &str) -> Result<(), String> {
    if FunctionRef::from_qualified(function, crate::names::DEFAULT_NAMESPACE).is_valid() {
        Ok(())
    } else {
        Err(format!("function {function:?} is not a valid function name"))
    }
}

impl ChildCall {
    /// The request body and its content type.
    pub fn body(&self) -> (Bytes, String) {
        let (body, default_type) = match &self.body {
            None => (Bytes::new(), "text/plain"),
            Some(serde_json::Value::String(text)) => (Bytes::from(text.clone()), "text/plain"),
            Some(value) => (Bytes::from(serde_json::to_vec(value).expect("json")), "application/json"),
        };
        (body, self.content_type.clone().unwrap_or_else(|| default_type.to_owned()))
    }
}

/// A group: the children of one fan-out and how each ended. Kept in KV `sluice_groups` under the id of the
/// call that fanned out, and sent as it is to the join when the last child ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The id of the call that fanned out.
    pub group_id: String,
    /// The function that fanned out (`NAME.NAMESPACE`).
    pub function: String,
    /// The first call of the pipeline.
    pub root_call_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<GroupJoin>,
    /// The join's `context`, as the fan-out document gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
    pub total: usize,
    /// Children ended so far, by how.
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub created_at: DateTime<Utc>,
    /// When the last child ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// How many times a replayed child reopened the group after it had completed (0 until then). Each round
    /// ends with a join of its own, a new call: `join.callId` names the latest.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round: u32,
    pub calls: Vec<GroupCall>,
}

fn is_zero(round: &u32) -> bool {
    *round == 0
}

/// The join of a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupJoin {
    /// `NAME.NAMESPACE`.
    pub function: String,
    pub call_id: String,
}

/// One child of a group, and its outcome once it has one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupCall {
    pub index: usize,
    pub call_id: String,
    /// `NAME.NAMESPACE`.
    pub function: String,
    /// `queued` until the child ends; then `succeeded`, `failed` or `cancelled`.
    pub status: CallStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The child's response when it is short (at most 2 KiB): JSON as JSON, other text as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Where the child's whole result is fetched from the gateway, while it is kept.
    pub result: String,
}

/// How one child ended, as the worker that ended it reports it.
#[derive(Clone, Debug)]
pub struct ChildOutcome {
    pub status: CallStatus,
    pub function_status: Option<u16>,
    pub error: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Group {
    /// A group of `fan_out`'s calls, started by `parent` (a call to `function`, in the pipeline from `root`).
    pub fn new(parent: &str, function: &FunctionRef, root: &str, fan_out: &FanOut) -> Self {
        let namespace = &function.namespace;
        let calls: Vec<GroupCall> = fan_out
            .calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                let call_id = child_call_id(parent, index);
                GroupCall {
                    index,
                    result: format!("/system/calls/{call_id}/result"),
                    call_id,
                    function: FunctionRef::from_qualified(&call.function, namespace).to_string(),
                    status: CallStatus::Queued,
                    function_status: None,
                    error: None,
                    content_type: None,
                    body: None,
                }
            })
            .collect();
        Self {
            group_id: parent.to_owned(),
            function: function.to_string(),
            root_call_id: root.to_owned(),
            join: fan_out.join.as_ref().map(|join| GroupJoin {
                function: FunctionRef::from_qualified(&join.function, namespace).to_string(),
                call_id: join_call_id(parent),
            }),
            context: fan_out.join.as_ref().and_then(|join| join.context.clone()),
            total: calls.len(),
            succeeded: 0,
            failed: 0,
            cancelled: 0,
            created_at: Utc::now(),
            finished_at: None,
            round: 0,
            calls,
        }
    }

    /// Children that have ended.
    pub fn ended(&self) -> usize {
        self.succeeded + self.failed + self.cancelled
    }

    pub fn is_complete(&self) -> bool {
        self.ended() >= self.total
    }

    /// Notes how child `index` ended; `false` when it had ended already (a second report of it), or is no
    /// child of this group.
    pub fn settle(&mut self, index: usize, outcome: &ChildOutcome) -> bool {
        let Some(call) = self.calls.get_mut(index) else { return false };
        if call.status.is_final() {
            return false;
        }
        call.status = outcome.status;
        call.function_status = outcome.function_status;
        call.error = outcome.error.as_deref().map(|e| json_prefix(e, MAX_ERROR_BYTES));
        call.content_type =
            outcome.content_type.as_deref().filter(|t| t.len() <= MAX_CONTENT_TYPE_BYTES).map(str::to_owned);
        call.body = inline_body(outcome.content_type.as_deref(), &outcome.body);
        *self.ended_as(outcome.status) += 1;
        if self.is_complete() {
            self.finished_at = Some(Utc::now());
        }
        true
    }

    /// Puts child `index`, the call `call_id`, back to waiting because it is being replayed: how it ended no
    /// longer counts, and the group completes again when the replay ends. A group that had completed starts a
    /// new round, whose join is a new call: the last round's join ran (or runs) with the outcome replaced here.
    /// `false` when that child has not ended (there is nothing to reopen) or is not in this group.
    pub fn reopen(&mut self, index: usize, call_id: &str) -> bool {
        let was_complete = self.is_complete();
        let Some(call) = self.calls.get_mut(index).filter(|call| call.call_id == call_id) else { return false };
        if !call.status.is_final() {
            return false;
        }
        let ended = std::mem::replace(&mut call.status, CallStatus::Queued);
        call.function_status = None;
        call.error = None;
        call.content_type = None;
        call.body = None;
        let count = self.ended_as(ended);
        *count = count.saturating_sub(1);
        self.finished_at = None;
        if was_complete {
            self.round = self.round.saturating_add(1);
            if let Some(join) = &mut self.join {
                join.call_id = join_call_id_in_round(&self.group_id, self.round);
            }
        }
        true
    }

    /// The count of children that ended as `status`.
    fn ended_as(&mut self, status: CallStatus) -> &mut usize {
        match status {
            CallStatus::Succeeded => &mut self.succeeded,
            CallStatus::Cancelled => &mut self.cancelled,
            _ => &mut self.failed,
        }
    }
}

/// A short response as the join sees it: JSON as JSON, other UTF-8 as a string, nothing otherwise — and nothing
/// when its JSON text would be over [`MAX_INLINE_RESULT_BYTES`] (escaping can make text six times longer).
fn inline_body(content_type: Option<&str>, body: &[u8]) -> Option<serde_json::Value> {
    if body.is_empty() || body.len() > MAX_INLINE_RESULT_BYTES {
        return None;
    }
    let value = match serde_json::from_slice(body) {
        Ok(value) if content_type.is_some_and(|t| t.starts_with("application/json")) => value,
        _ => serde_json::Value::String(std::str::from_utf8(body).ok()?.to_owned()),
    };
    (value.to_string().len() <= MAX_INLINE_RESULT_BYTES).then_some(value)
}

/// The longest prefix of `text` whose JSON text is at most `max` bytes.
fn json_prefix(text: &str, max: usize) -> String {
    let mut kept = String::new();
    let mut size = 2;
    for c in text.chars() {
        size += serde_json::to_string(&c).expect("a char serialises").len() - 2;
        if size > max {
            break;
        }
        kept.push(c);
    }
    kept
}

fn derived_id(prefix: &str, parts: &[&[u8]]) -> String {
    let digest = parts.iter().fold(Sha256::new(), |hash, part| hash.chain_update(part).chain_update(b"\n")).finalize();
    format!("{prefix}{}", hex::encode(&digest[..16]))
}

/// The id of child number `index` of the call `parent`.
pub fn child_call_id(parent: &str, index: usize) -> String {
    derived_id("fo-", &[parent.as_bytes(), b"fanout", index.to_string().as_bytes()])
}

/// The id of the join of the group `group`.
pub fn join_call_id(group: &str) -> String {
    join_call_id_in_round(group, 0)
}

/// The id of the join that ends round `round` of the group `group` (see [`Group::reopen`]).
pub fn join_call_id_in_round(group: &str, round: u32) -> String {
    match round {
        0 => derived_id("jn-", &[group.as_bytes(), b"join"]),
        round => derived_id("jn-", &[group.as_bytes(), b"join", round.to_string().as_bytes()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: CallStatus, body: &str) -> ChildOutcome {
        ChildOutcome {
            status,
            function_status: Some(200),
            error: None,
            content_type: Some("application/json".into()),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn documents_are_checked_with_errors_that_name_the_fault() {
        let ok =
            br#"{"calls":[{"function":"a","body":{"n":1}},{"function":"b.team","body":"x"}],"join":{"function":"j"}}"#;
        let fan_out = FanOut::parse(ok).unwrap();
        assert_eq!(fan_out.calls[0].body(), (Bytes::from_static(br#"{"n":1}"#), "application/json".into()));
        assert_eq!(fan_out.calls[1].body(), (Bytes::from_static(b"x"), "text/plain".into()));
        let names: Vec<String> = fan_out.functions("ns").iter().map(|f| f.stable_name()).collect();
        assert_eq!(names, ["a.ns", "b.team", "j.ns"]);
        assert!(matches!(FanOut::parse(b"{"), Err(FanOutError::Malformed(_))));
        assert!(FanOut::parse(br#"{"calls":[],"join":null}"#) == Err(FanOutError::Empty));
        assert!(matches!(FanOut::parse(br#"{"calls":[{"function":"a"}],"extra":1}"#), Err(FanOutError::Malformed(_))));
        let bad = FanOut::parse(br#"{"calls":[{"function":"a"},{"function":"NO SUCH"}]}"#).unwrap_err();
        assert_eq!(bad.to_string(), "fan-out calls[1]: function \"NO SUCH\" is not a valid function name");
        let many = format!(r#"{{"calls":[{}]}}"#, vec![r#"{"function":"a"}"#; MAX_CALLS + 1].join(","));
        assert_eq!(FanOut::parse(many.as_bytes()), Err(FanOutError::TooMany(MAX_CALLS + 1)));
        let join = FanOut::parse(br#"{"calls":[{"function":"a"}],"join":{"function":""}}"#).unwrap_err();
        assert!(matches!(join, FanOutError::Join(_)));
    }

    #[test]
    fn a_group_counts_each_child_once_and_completes_with_the_last() {
        let fan_out =
            FanOut::parse(br#"{"calls":[{"function":"a"},{"function":"a"}],"join":{"function":"j"}}"#).unwrap();
        let mut group = Group::new("p1", &FunctionRef::new("ns", "split"), "p1", &fan_out);
        assert_eq!(group.calls[1].call_id, child_call_id("p1", 1));
        assert_eq!(group.join.as_ref().unwrap().call_id, join_call_id("p1"));
        assert!(group.settle(0, &outcome(CallStatus::Succeeded, r#"{"key":"seg-0"}"#)));
        assert!(!group.settle(0, &outcome(CallStatus::Failed, "")), "a second report of a child changes nothing");
        assert!(!group.settle(7, &outcome(CallStatus::Failed, "")));
        assert!(!group.is_complete());
        assert!(group.settle(1, &outcome(CallStatus::Failed, "oops")));
        assert!(group.is_complete() && group.finished_at.is_some());
        assert_eq!((group.succeeded, group.failed, group.cancelled), (1, 1, 0));
        assert_eq!(group.calls[0].body, Some(serde_json::json!({"key": "seg-0"})));
        assert_eq!(group.calls[1].body, Some(serde_json::json!("oops")), "not JSON after all: kept as text");
    }

    #[test]
    fn a_replayed_child_reopens_its_place_and_a_completed_group_gets_a_new_join() {
        let fan_out =
            FanOut::parse(br#"{"calls":[{"function":"a"},{"function":"a"}],"join":{"function":"j"}}"#).unwrap();
        let mut group = Group::new("p1", &FunctionRef::new("ns", "split"), "p1", &fan_out);
        let (first, second) = (group.calls[0].call_id.clone(), group.calls[1].call_id.clone());
        assert!(!group.reopen(0, &first), "a child that has not ended has nothing to reopen");
        assert!(group.settle(0, &outcome(CallStatus::Failed, "oops")));
        assert!(!group.reopen(0, &second) && !group.reopen(5, &first), "only the child named, where it is");

        // Reopened before the group completed: the same round, the same join.
        assert!(group.reopen(0, &first));
        assert_eq!((group.failed, group.round, group.calls[0].status), (0, 0, CallStatus::Queued));
        assert_eq!((group.calls[0].body.as_ref(), group.calls[0].function_status), (None, None));
        assert_eq!(group.join.as_ref().unwrap().call_id, join_call_id("p1"));

        // Reopened after: a second round, whose join is another call; the group completes again with the replay.
        assert!(group.settle(0, &outcome(CallStatus::Failed, "oops")));
        assert!(group.settle(1, &outcome(CallStatus::Succeeded, "1")));
        assert!(group.is_complete());
        assert!(group.reopen(0, &first));
        assert!(!group.is_complete() && group.finished_at.is_none());
        assert_eq!((group.succeeded, group.failed, group.round), (1, 0, 1));
        let join = group.join.as_ref().unwrap().call_id.clone();
        assert_eq!(join, join_call_id_in_round("p1", 1));
        assert_ne!(join, join_call_id("p1"));
        assert!(crate::call::is_valid_call_id(&join));
        assert!(group.settle(0, &outcome(CallStatus::Succeeded, "0")));
        assert!(group.is_complete() && group.finished_at.is_some());
        assert_eq!((group.succeeded, group.failed), (2, 0));
        let text = serde_json::to_value(&group).unwrap();
        assert_eq!(text["round"], 1, "the join sees which round it ends");
        let fresh = Group::new("p2", &FunctionRef::new("ns", "split"), "p2", &fan_out);
        assert!(serde_json::to_value(&fresh).unwrap().get("round").is_none(), "a first round is not spelled");

        // Both children reopened together (a replay of both): one more round, not two.
        assert!(group.reopen(0, &first) && group.reopen(1, &second));
        assert_eq!((group.succeeded, group.ended(), group.round), (0, 0, 2));
        assert_eq!(group.join.as_ref().unwrap().call_id, join_call_id_in_round("p1", 2));
    }

    #[test]
    fn a_full_group_of_hostile_outcomes_still_fits_one_message() {
        let calls = vec![ChildCall { function: "a".into(), body: None, content_type: None }; MAX_CALLS];
        let context = serde_json::Value::String("x".repeat(MAX_CONTEXT_BYTES - 2));
        let fan_out = FanOut { calls, join: Some(Join { function: "j".into(), context: Some(context) }) };
        let mut group = Group::new(&"p".repeat(128), &FunctionRef::new("n".repeat(63), "f".repeat(63)), "r", &fan_out);
        let hostile = ChildOutcome {
            status: CallStatus::Failed,
            function_status: Some(500),
            error: Some("\u{1}".repeat(100_000)),
            content_type: Some("text/plain; x=".to_owned() + &"y".repeat(200)),
            body: Bytes::from(vec![1u8; MAX_INLINE_RESULT_BYTES]),
        };
        for index in 0..MAX_CALLS {
            assert!(group.settle(index, &hostile));
        }
        let size = serde_json::to_vec(&group).unwrap().len();
        assert!(size < 1_000_000, "{size} bytes");
        assert_eq!(group.calls[0].body, None, "escaped, it would be six times longer: not inline");
        let big = format!(
            r#"{{"calls":[{{"function":"a"}}],"join":{{"function":"j","context":"{}"}}}}"#,
            "x".repeat(MAX_CONTEXT_BYTES)
        );
        assert_eq!(
            FanOut::parse(big.as_bytes()),
            Err(FanOutError::Join(format!("context is over {MAX_CONTEXT_BYTES} bytes")))
        );
    }

    #[test]
    fn derived_ids_are_valid_stable_and_distinct() {
        assert_eq!(child_call_id("p", 0), child_call_id("p", 0));
        assert_ne!(child_call_id("p", 0), child_call_id("p", 1));
        assert_ne!(child_call_id("p", 0), child_call_id("q", 0));
        assert!(crate::call::is_valid_call_id(&child_call_id("p", 0)));
        assert!(crate::call::is_valid_call_id(&join_call_id("p")));
    }
}
