//! Chaining: a function's `async.onSuccess` / `async.onFailure` name the function its finished calls go on to,
//! a URL their result is POSTed to, or both. The next call's input is the finished call's response; it is a
//! call like any other, with an id derived from its parent's, so a parent whose outcome is reported twice still
//! starts it once. The URL gets the result as a callback does (same headers, signature, retries and policy).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::FunctionRef;

/// Where a finished call goes on to: a function, a URL, or both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    /// The function called with the finished call's response: `NAME` (this function's namespace) or
    /// `NAME.NAMESPACE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Where the finished call's result is POSTed, as a callback is (http or https, within the callback
    /// policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Which end of a call leads on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    OnSuccess,
    OnFailure,
}

impl Leg {
    /// The spec field, as errors name it.
    pub fn field(self) -> &'static str {
        match self {
            Self::OnSuccess => "async.onSuccess",
            Self::OnFailure => "async.onFailure",
        }
    }
}

impl Destination {
    /// The function it names, if any, from a spec in `namespace`.
    pub fn target(&self, namespace: &str) -> Option<FunctionRef> {
        self.function.as_deref().map(|function| FunctionRef::from_qualified(function, namespace))
    }
}

/// The id of the call `parent` leads on to: the same parent, leg, target and attempt series always give the same
/// id. `series` is a replay's ([`crate::invocation::replay_series`]), so a replay that fails again goes on to its
/// own step; the call as first queued has none.
pub fn chained_call_id(parent: &str, leg: Leg, target: &FunctionRef, series: Option<&str>) -> String {
    let mut digest = Sha256::new()
        .chain_update(parent.as_bytes())
        .chain_update(if leg == Leg::OnSuccess { b"\nsuccess\n" } else { b"\nfailure\n" })
        .chain_update(target.stable_name().as_bytes());
    if let Some(series) = series {
        digest = digest.chain_update(b"\nseries\n").chain_update(series.as_bytes());
    }
    format!("ch-{}", hex::encode(&digest.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chained_ids_are_stable_and_distinct_per_leg_and_target() {
        let target = FunctionRef::new("ns", "next");
        let id = chained_call_id("parent-1", Leg::OnSuccess, &target, None);
        assert_eq!(id, chained_call_id("parent-1", Leg::OnSuccess, &target, None));
        assert_ne!(id, chained_call_id("parent-1", Leg::OnFailure, &target, None));
        assert_ne!(id, chained_call_id("parent-2", Leg::OnSuccess, &target, None));
        assert_ne!(id, chained_call_id("parent-1", Leg::OnSuccess, &FunctionRef::new("other", "next"), None));
        let replayed = chained_call_id("parent-1", Leg::OnSuccess, &target, Some("r7"));
        assert_ne!(id, replayed, "a replay goes on to a step of its own");
        assert_eq!(replayed, chained_call_id("parent-1", Leg::OnSuccess, &target, Some("r7")));
        assert_ne!(replayed, chained_call_id("parent-1", Leg::OnSuccess, &target, Some("r8")));
        assert!(crate::call::is_valid_call_id(&id) && id.len() == 35);
    }

    #[test]
    fn a_destination_names_a_function_here_or_in_another_namespace() {
        let here = Destination { function: Some("next".into()), url: None };
        assert_eq!(here.target("team-a"), Some(FunctionRef::new("team-a", "next")));
        let there = Destination { function: Some("next.team-b".into()), url: None };
        assert_eq!(there.target("team-a"), Some(FunctionRef::new("team-b", "next")));
        let away = Destination { function: None, url: Some("https://example.com/done".into()) };
        assert_eq!(away.target("team-a"), None);
    }
}
