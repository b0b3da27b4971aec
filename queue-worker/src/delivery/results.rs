//! Completion events on `sluice.results.{namespace}.{function}`: one per call, for chaining and audit, and kept
//! as the call's result to fetch.

use async_nats::HeaderMap;
use chrono::Utc;
use sluice_contracts::{
    Payload, StoredResult,
    invocation::put_http_headers,
    names::{self, ce, http_headers as h, wire},
    nats_headers::NamedHeaders,
};

use crate::{Worker, outcome::Outcome};

/// The facts of a finished call the event reports.
pub struct Completion<'a> {
    pub call_id: &'a str,
    pub function: &'a sluice_contracts::FunctionRef,
    pub attempt: u32,
    /// The attempt series it ends: `None` as first queued, else the replay's
    /// ([`replay_series`](sluice_contracts::invocation::replay_series)).
    pub series: Option<&'a str>,
    pub duration: std::time::Duration,
    pub outcome: &'a Outcome,
}

/// Where a published outcome is: its body (for the callback outbox) and the kept result (for the record).
pub struct Published {
    pub body: Payload,
    pub result: StoredResult,
}

/// The message id of the completion event that ends a call's attempt series, and the stored body's name when
/// the result is too large for the event: `{call id}.result`, and `{call id}.result.r{sequence}` for a replay.
pub fn result_name(call_id: &str, series: Option<&str>) -> String {
    match series {
        None => [call_id, ".result"].concat(),
        Some(series) => [call_id, ".result.", series].concat(),
    }
}

/// The call a stored body named by [`result_name`] belongs to; `None` for any other name.
pub fn call_of_result(name: &str) -> Option<&str> {
    if let Some(call_id) = name.strip_suffix(".result") {
        return Some(call_id);
    }
    let (call_id, sequence) = name.rsplit_once(".result.r")?;
    (!sequence.is_empty() && sequence.bytes().all(|b| b.is_ascii_digit())).then_some(call_id)
}

/// Publishes the completion event and waits for JetStream to store it. A large body goes to the object
/// store first and the event names it. The event is also the call's kept result.
pub async fn publish(worker: &Worker, done: &Completion<'_>) -> Result<Published, async_nats::Error> {
    let ce_type = if done.outcome.succeeded() { names::CE_TYPE_COMPLETED } else { names::CE_TYPE_FAILED };
    let mut headers = HeaderMap::new();
    // One event per attempt series even when a redelivered call finishes twice; a replay's is its own.
    let name = result_name(done.call_id, done.series);
    headers.put(wire::NATS_MSG_ID, name.as_str());
    headers.put(ce::SPECVERSION, ce::VERSION);
    headers.put(ce::ID, done.call_id);
    headers.put(ce::TYPE, ce_type);
    headers.put(ce::SOURCE, names::CE_SOURCE_WORKER);
    headers.put(ce::SUBJECT, done.function.key());
    headers.put(ce::TIME, Utc::now().to_rfc3339());
    headers.put(h::CALL_ID, done.call_id);
    headers.put(h::FUNCTION_STATUS, done.outcome.status.to_string());
    headers.put(h::DURATION_SECONDS, format!("{:.6}", done.duration.as_secs_f64()));
    headers.put(h::ATTEMPT, done.attempt.to_string());
    if let Some(content_type) = done.outcome.content_type() {
        headers.put(wire::CONTENT_TYPE, content_type);
    }
    put_http_headers(&mut headers, &done.outcome.headers);
    let (body, stored) = if done.outcome.body.len() > worker.inline_limit {
        let mut reader = &done.outcome.body[..];
        sluice_jetstream::payloads::put(&worker.topology, name.as_str(), &mut reader).await?;
        headers.put(wire::PAYLOAD_OBJECT, name.as_str());
        (bytes::Bytes::new(), Payload::Object(name))
    } else {
        (done.outcome.body.clone(), Payload::Inline(done.outcome.body.clone()))
    };
    let subject = names::results_subject(done.function);
    // A duplicate (a redelivered call finishing twice) is acknowledged with the first event's sequence.
    let ack = worker.topology.jetstream.publish_with_headers(subject, headers, body).await?.await?;
    let ttl = chrono::Duration::from_std(worker.topology.results_ttl).ok().filter(|ttl| !ttl.is_zero());
    let result = StoredResult {
        sequence: ack.sequence,
        size: done.outcome.body.len() as u64,
        expires_at: ttl.map(|ttl| Utc::now() + ttl),
        state: None,
    };
    Ok(Published { body: stored, result })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attempt_series_has_its_own_result_name_and_names_its_call() {
        assert_eq!(result_name("abc", None), "abc.result");
        assert_eq!(result_name("abc", Some("r17")), "abc.result.r17");
        for series in [None, Some("r17")] {
            assert_eq!(call_of_result(&result_name("a.b", series)), Some("a.b"));
        }
        assert_eq!(call_of_result("abc"), None, "a request body");
        assert_eq!(call_of_result("abc.sync-response"), None);
        assert_eq!(call_of_result("abc.result.r"), None);
        assert_eq!(call_of_result("abc.result.rx1"), None);
    }
}
