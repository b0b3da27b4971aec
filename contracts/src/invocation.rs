//! One call on the wire: the CloudEvents NATS binding in binary mode.
//!
//! CloudEvent attributes travel as `ce-*` headers (`ce-id` is the call id, `ce-subject` the function), the
//! request body is the raw payload, and the original HTTP request's method, path, query and headers travel
//! as `Sluice-*` headers so the function sees the request unchanged. A body too large for one NATS message
//! is stored in the `sluice_payloads` object store and only its name travels (claim check).
//!
//! The same encoding serves queued calls on the queue shards (`SLUICE_QUEUE_nn`) and synchronous requests on
//! `sluice.sync.{namespace}.{function}`.

use async_nats::HeaderMap as NatsHeaders;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::{
    names::{ce, wire},
    nats_headers::NamedHeaders,
};

/// Where a call's body is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// In the message itself.
    Inline(Bytes),
    /// In the object store under this name.
    Object(String),
}

/// A call as carried between gateway (or router) and worker.
#[derive(Clone, Debug)]
pub struct InvocationMessage {
    pub call_id: String,
    /// The function called; its key travels as `ce-subject`.
    pub function: crate::FunctionRef,
    /// CloudEvents `source`: who queued the call.
    pub source: String,
    pub time: DateTime<Utc>,
    pub method: http::Method,
    /// Path below the function's route (`/a/b` for `/async-function/f/a/b`); empty for none.
    pub path: String,
    /// Raw query string, without `?`.
    pub query: String,
    /// Request headers as the caller sent them, minus hop-by-hop ones.
    pub headers: http::HeaderMap,
    pub callback_url: Option<String>,
    pub payload: Payload,
}

/// A message that is not a valid invocation; such a message can never run and is dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invocation message has no {0} header")]
    Missing(&'static str),
    #[error("invocation header {header} is invalid: {value:?}")]
    Invalid { header: &'static str, value: String },
}

/// Headers that describe one hop rather than the request, and are not forwarded.
pub fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    use http::header::*;
    [CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING, HOST, TE, TRAILER, UPGRADE, PROXY_AUTHORIZATION].contains(name)
        || name.as_str() == "keep-alive"
}

/// Copies HTTP headers into NATS headers, each under `Sluice-Header-{name}`.
pub fn put_http_headers(into: &mut NatsHeaders, headers: &http::HeaderMap) {
    for (name, value) in headers {
        if is_hop_by_hop(name) {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        into.append(format!("{}{}", wire::HEADER_PREFIX, name.as_str()), value);
    }
}

/// `value` fit for a NATS header, which cannot hold a line break: CR and LF written as `%0D` and `%0A`. Callers
/// refuse such text where they can; this keeps a value that slipped through from failing the whole message.
pub fn one_line(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\r', '\n']) {
        std::borrow::Cow::Owned(value.replace('\r', "%0D").replace('\n', "%0A"))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// Reads back headers written by [`put_http_headers`].
pub fn take_http_headers(from: &NatsHeaders) -> http::HeaderMap {
    let mut out = http::HeaderMap::new();
    for (name, values) in from.iter() {
        let name: &str = name.as_ref();
        let Some(http_name) = name.strip_prefix(wire::HEADER_PREFIX) else { continue };
        let Ok(http_name) = http::HeaderName::from_bytes(http_name.as_bytes()) else { continue };
        for value in values {
            if let Ok(value) = http::HeaderValue::from_str(value.as_str()) {
                out.append(http_name.clone(), value);
            }
        }
    }
    out
}

/// The attempt series a message ending one belongs to (a dead letter, a completion event), so a replay's is not
/// taken for the first series' within JetStream's duplicate window: `None` for the call as first queued,
/// [`series_of_replay`] for a replay ([`wire::REPLAY_OF`] on the invocation).
pub fn replay_series(invocation: &NatsHeaders) -> Option<String> {
    invocation.named(wire::REPLAY_OF).map(series_of_replay)
}

/// `r{sequence}`: the series of the replay of the dead letter at `sequence`, as message ids name it.
pub fn series_of_replay(sequence: impl std::fmt::Display) -> String {
    format!("r{sequence}")
}

fn header<'a>(headers: &'a NatsHeaders, name: &'static str) -> Option<&'a str> {
    headers.named(name)
}

fn required<'a>(headers: &'a NatsHeaders, name: &'static str) -> Result<&'a str, DecodeError> {
    header(headers, name).ok_or(DecodeError::Missing(name))
}

impl InvocationMessage {
    /// NATS headers and payload of this call. `Nats-Msg-Id` is the call id, so JetStream stores a
    /// re-sent call once.
    pub fn to_nats(&self, ce_type: &str) -> (NatsHeaders, Bytes) {
        let mut headers = NatsHeaders::new();
        headers.put(wire::NATS_MSG_ID, self.call_id.as_str());
        headers.put(ce::SPECVERSION, ce::VERSION);
        headers.put(ce::ID, self.call_id.as_str());
        headers.put(ce::TYPE, ce_type);
        headers.put(ce::SOURCE, one_line(&self.source).as_ref());
        headers.put(ce::SUBJECT, self.function.key());
        headers.put(ce::TIME, self.time.to_rfc3339());
        if let Some(ct) = self.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
            headers.put(wire::CONTENT_TYPE, ct);
        }
        headers.put(wire::METHOD, self.method.as_str());
        if !self.path.is_empty() {
            headers.put(wire::PATH, one_line(&self.path).as_ref());
        }
        if !self.query.is_empty() {
            headers.put(wire::QUERY, one_line(&self.query).as_ref());
        }
        if let Some(url) = &self.callback_url {
            headers.put(wire::CALLBACK_URL, one_line(url).as_ref());
        }
        put_http_headers(&mut headers, &self.headers);
        let body = match &self.payload {
            Payload::Inline(body) => body.clone(),
            Payload::Object(name) => {
                headers.put(wire::PAYLOAD_OBJECT, name.as_str());
                Bytes::new()
            }
        };
        (headers, body)
    }

    /// Decodes a message written by [`InvocationMessage::to_nats`].
    /// The record of this call as it is queued: what the queue writes before the call is published, and what a
    /// worker starts from when it need not read it.
    pub fn queued_record(&self) -> crate::CallRecord {
        let mut record = crate::CallRecord::queued(&self.call_id, &self.function, self.time);
        record.callback_url = self.callback_url.clone();
        record.parent_call_id = self.parent_call_id().map(str::to_owned);
        record.root_call_id = self.root_call_id().map(str::to_owned);
        record
    }

    /// The call this one was chained from, when it was.
    pub fn parent_call_id(&self) -> Option<&str> {
        self.headers.get(crate::names::http_headers::PARENT_CALL_ID).and_then(|v| v.to_str().ok())
    }

    /// The first call of this call's pipeline, when it has a parent.
    pub fn root_call_id(&self) -> Option<&str> {
        let root = self.headers.get(crate::names::http_headers::ROOT_CALL_ID).and_then(|v| v.to_str().ok());
        root.or(self.parent_call_id())
    }

    /// The fan-out group this call belongs to and its place in it.
    pub fn group(&self) -> Option<(&str, usize)> {
        let header = |name| self.headers.get(name).and_then(|v: &http::HeaderValue| v.to_str().ok());
        let group = header(crate::names::http_headers::GROUP_ID)?;
        let index = header(crate::names::http_headers::GROUP_INDEX)?.parse().ok()?;
        Some((group, index))
    }

    /// How many calls led to this one (0 for a call nobody chained).
    pub fn chain_depth(&self) -> u32 {
        let depth = self.headers.get(crate::names::http_headers::CHAIN_DEPTH).and_then(|v| v.to_str().ok());
        depth.and_then(|d| d.parse().ok()).unwrap_or(0)
    }

    pub fn from_nats(headers: &NatsHeaders, body: Bytes) -> Result<Self, DecodeError> {
        let call_id = required(headers, ce::ID)?.to_owned();
        let subject = required(headers, ce::SUBJECT)?;
        let function = crate::FunctionRef::from_key(subject)
            .ok_or_else(|| DecodeError::Invalid { header: ce::SUBJECT, value: subject.to_owned() })?;
        let source = header(headers, ce::SOURCE).unwrap_or_default().to_owned();
        let time = match header(headers, ce::TIME) {
            Some(t) => DateTime::parse_from_rfc3339(t)
                .map_err(|_| DecodeError::Invalid { header: ce::TIME, value: t.to_owned() })?
                .with_timezone(&Utc),
            None => Utc::now(),
        };
        let method_text = header(headers, wire::METHOD).unwrap_or("POST");
        let method = method_text
            .parse()
            .map_err(|_| DecodeError::Invalid { header: wire::METHOD, value: method_text.to_owned() })?;
        let payload = match header(headers, wire::PAYLOAD_OBJECT) {
            Some(name) => Payload::Object(name.to_owned()),
            None => Payload::Inline(body),
        };
        Ok(Self {
            call_id,
            function,
            source,
            time,
            method,
            path: header(headers, wire::PATH).unwrap_or_default().to_owned(),
            query: header(headers, wire::QUERY).unwrap_or_default().to_owned(),
            headers: take_http_headers(headers),
            callback_url: header(headers, wire::CALLBACK_URL).map(str::to_owned),
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: Payload) -> InvocationMessage {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.append("x-multi", "one".parse().unwrap());
        headers.append("x-multi", "two".parse().unwrap());
        headers.insert("content-length", "4".parse().unwrap());
        InvocationMessage {
            call_id: "0191-abc".into(),
            function: crate::FunctionRef::new("team-a", "upper"),
            source: "/sluice/gateway".into(),
            time: Utc::now(),
            method: http::Method::PUT,
            path: "/a/b".into(),
            query: "x=1&y=2".into(),
            headers,
            callback_url: Some("http://127.0.0.1:9/cb".into()),
            payload,
        }
    }

    #[test]
    fn line_breaks_in_free_text_never_break_the_message() {
        let mut call = sample(Payload::Inline(Bytes::new()));
        (call.path, call.source) = ("/a\r\nb".into(), "/hooks/x\n".into());
        let (headers, _) = call.to_nats(crate::names::CE_TYPE_REQUESTED);
        assert_eq!(headers.get(wire::PATH).unwrap().as_str(), "/a%0D%0Ab");
        assert_eq!(headers.get(ce::SOURCE).unwrap().as_str(), "/hooks/x%0A");
    }

    #[test]
    fn round_trips_through_nats_headers() {
        let call = sample(Payload::Inline(Bytes::from_static(b"body")));
        let (headers, body) = call.to_nats(crate::names::CE_TYPE_REQUESTED);
        assert_eq!(headers.get(wire::NATS_MSG_ID).unwrap().as_str(), "0191-abc");
        assert_eq!(headers.get(ce::TYPE).unwrap().as_str(), "sluice.invocation.requested");
        assert_eq!(headers.get(wire::CONTENT_TYPE).unwrap().as_str(), "application/json");
        let back = InvocationMessage::from_nats(&headers, body).unwrap();
        assert_eq!(back.call_id, call.call_id);
        assert_eq!(back.function, call.function);
        assert_eq!(headers.get(ce::SUBJECT).unwrap().as_str(), "team-a.upper");
        assert_eq!(back.method, http::Method::PUT);
        assert_eq!((back.path.as_str(), back.query.as_str()), ("/a/b", "x=1&y=2"));
        let multi: Vec<_> = back.headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["one", "two"]);
        assert!(back.headers.get("content-length").is_none(), "hop-by-hop headers are dropped");
        assert_eq!(back.payload, Payload::Inline(Bytes::from_static(b"body")));
        assert_eq!(back.callback_url.as_deref(), Some("http://127.0.0.1:9/cb"));
    }

    #[test]
    fn claim_check_carries_only_the_object_name() {
        let (headers, body) = sample(Payload::Object("obj-1".into())).to_nats("t");
        assert!(body.is_empty());
        let back = InvocationMessage::from_nats(&headers, body).unwrap();
        assert_eq!(back.payload, Payload::Object("obj-1".into()));
    }

    #[test]
    fn missing_call_id_is_a_decode_error() {
        let err = InvocationMessage::from_nats(&NatsHeaders::new(), Bytes::new()).unwrap_err();
        assert!(matches!(err, DecodeError::Missing("ce-id")));
    }
}
