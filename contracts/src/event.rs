//! An event on `SLUICE_EVENTS`: a CloudEvent in the NATS binding's binary mode (`ce-*` headers, the data as the
//! raw payload), as connectors publish it and the router reads it.

use std::collections::BTreeMap;

use async_nats::HeaderMap as NatsHeaders;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::names::{ce, wire};

/// One CloudEvent.
#[derive(Clone, Debug, PartialEq)]
pub struct EventMessage {
    pub id: String,
    pub source: String,
    pub event_type: String,
    pub subject: Option<String>,
    pub time: Option<DateTime<Utc>>,
    /// `datacontenttype`.
    pub content_type: Option<String>,
    /// Extension attributes, by lowercase name.
    pub extensions: BTreeMap<String, String>,
    pub data: Bytes,
}

/// A message on `SLUICE_EVENTS` that is not a CloudEvent.
#[derive(Debug, thiserror::Error)]
#[error("not a CloudEvent: {0}")]
pub struct EventError(pub String);

/// Attributes with a header of their own; every other `ce-*` header is an extension.
const CORE: [&str; 6] = [ce::SPECVERSION, ce::ID, ce::TYPE, ce::SOURCE, ce::SUBJECT, ce::TIME];

/// A NATS subject token made of `text`: characters NATS gives a meaning (`.`, `*`, `>`, spaces) become `_`.
pub fn subject_token(text: &str) -> String {
    let token: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    if token.is_empty() { "_".to_owned() } else { token }
}

impl EventMessage {
    /// A new event with a fresh id and the current time.
    pub fn new(source: impl Into<String>, event_type: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            source: source.into(),
            event_type: event_type.into(),
            subject: None,
            time: Some(Utc::now()),
            content_type: None,
            extensions: BTreeMap::new(),
            data: data.into(),
        }
    }

    /// What identifies the event for de-duplication: CloudEvents makes `source` + `id` unique.
    pub fn dedup_id(&self) -> String {
        let digest = Sha256::new()
            .chain_update(self.source.as_bytes())
            .chain_update(b"\n")
            .chain_update(self.id.as_bytes())
            .finalize();
        hex::encode(&digest[..16])
    }

    /// The id of the call this event makes to `function`: the same event and function always give the same
    /// id, so a redelivered or re-published event queues the call once; the same event gives two functions of
    /// one name in two namespaces two calls.
    pub fn call_id_for(&self, function: &crate::FunctionRef) -> String {
        let function = function.stable_name();
        let digest = Sha256::new()
            .chain_update(self.source.as_bytes())
            .chain_update(b"\n")
            .chain_update(self.id.as_bytes())
            .chain_update(b"\n")
            .chain_update(function.as_bytes())
            .finalize();
        format!("ev-{}", hex::encode(&digest[..16]))
    }

    /// Headers and payload on NATS; `Nats-Msg-Id` makes a re-published event stored once.
    pub fn to_nats(&self) -> (NatsHeaders, Bytes) {
        let mut headers = NatsHeaders::new();
        headers.insert(wire::NATS_MSG_ID, self.dedup_id().as_str());
        // An S3 key or an event's attribute may hold a line break, which a NATS header cannot.
        for (name, value) in self.ce_headers() {
            headers.insert(crate::invocation::one_line(&name).as_ref(), crate::invocation::one_line(&value).as_ref());
        }
        if let Some(ct) = &self.content_type {
            headers.insert(wire::CONTENT_TYPE, crate::invocation::one_line(ct).as_ref());
        }
        (headers, self.data.clone())
    }

    /// The `ce-*` headers of binary mode, for NATS and for HTTP alike.
    pub fn ce_headers(&self) -> Vec<(String, String)> {
        let mut out = vec![
            (ce::SPECVERSION.to_owned(), ce::VERSION.to_owned()),
            (ce::ID.to_owned(), self.id.clone()),
            (ce::SOURCE.to_owned(), self.source.clone()),
            (ce::TYPE.to_owned(), self.event_type.clone()),
        ];
        if let Some(subject) = &self.subject {
            out.push((ce::SUBJECT.to_owned(), subject.clone()));
        }
        if let Some(time) = &self.time {
            out.push((ce::TIME.to_owned(), time.to_rfc3339()));
        }
        out.extend(self.extensions.iter().map(|(k, v)| (format!("ce-{k}"), v.clone())));
        out
    }

    /// The event as HTTP headers of binary mode, for the function it invokes.
    pub fn http_headers(&self) -> http::HeaderMap {
        let mut out = http::HeaderMap::new();
        for (name, value) in self.ce_headers() {
            if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(name), http::HeaderValue::try_from(value)) {
                out.insert(name, value);
            }
        }
        if let Some(ct) = self.content_type.as_deref().and_then(|c| http::HeaderValue::try_from(c).ok()) {
            out.insert(http::header::CONTENT_TYPE, ct);
        }
        out
    }

    /// Decodes a message written by [`EventMessage::to_nats`] (or by any binary-mode publisher).
    pub fn from_nats(headers: &NatsHeaders, data: Bytes) -> Result<Self, EventError> {
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        let required = |name: &'static str| get(name).ok_or_else(|| EventError(format!("no {name} header")));
        let time = match get(ce::TIME) {
            Some(t) => Some(
                DateTime::parse_from_rfc3339(&t)
                    .map_err(|e| EventError(format!("ce-time {t:?}: {e}")))?
                    .with_timezone(&Utc),
            ),
            None => None,
        };
        let mut extensions = BTreeMap::new();
        for (name, values) in headers.iter() {
            let name = name.to_string().to_ascii_lowercase();
            if let Some(ext) = name.strip_prefix("ce-")
                && !CORE.contains(&name.as_str())
                && let Some(value) = values.first()
            {
                extensions.insert(ext.to_owned(), value.as_str().to_owned());
            }
        }
        Ok(Self {
            id: required(ce::ID)?,
            source: required(ce::SOURCE)?,
            event_type: required(ce::TYPE)?,
            subject: get(ce::SUBJECT),
            time,
            content_type: get(wire::CONTENT_TYPE),
            extensions,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_round_trip_keeps_every_attribute() {
        let mut event = EventMessage::new("/hooks/github", "com.github.push", "{}");
        event.subject = Some("refs/heads/main".into());
        event.content_type = Some("application/json".into());
        event.extensions.insert("traceparent".into(), "00-abc".into());
        let (headers, data) = event.to_nats();
        let back = EventMessage::from_nats(&headers, data).unwrap();
        assert_eq!(back.id, event.id);
        assert_eq!(back.subject, event.subject);
        assert_eq!(back.extensions, event.extensions);
        assert_eq!(back.time.map(|t| t.timestamp_micros()), event.time.map(|t| t.timestamp_micros()));
    }

    #[test]
    fn an_s3_key_with_a_line_break_still_makes_a_message() {
        let mut event = EventMessage::new("s3://in", "sluice.s3.object.created", "{}");
        event.subject = Some("photos/a\nb.jpg".into());
        let (headers, _) = event.to_nats();
        assert_eq!(headers.get(ce::SUBJECT).unwrap().as_str(), "photos/a%0Ab.jpg");
    }

    #[test]
    fn call_ids_depend_on_event_and_function_only() {
        let event = EventMessage::new("/s", "t", "");
        let f = |namespace: &str, name: &str| crate::FunctionRef::new(namespace, name);
        let default = crate::names::DEFAULT_NAMESPACE;
        assert_eq!(event.call_id_for(&f(default, "f")), event.clone().call_id_for(&f(default, "f")));
        assert_ne!(event.call_id_for(&f(default, "f")), event.call_id_for(&f(default, "g")));
        assert_ne!(event.call_id_for(&f(default, "f")), event.call_id_for(&f("team-a", "f")));
        assert!(crate::call::is_valid_call_id(&event.call_id_for(&f("team-a", "f"))));
    }

    #[test]
    fn subject_tokens_are_safe() {
        assert_eq!(subject_token("my.bucket name>"), "my_bucket_name_");
        assert_eq!(subject_token(""), "_");
    }
}
