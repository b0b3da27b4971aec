//! Callbacks: the contract's headers, and the message a callback waits as in the durable outbox
//! (`SLUICE_CALLBACKS`) until it is delivered.

use async_nats::HeaderMap as NatsHeaders;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::{
    Payload,
    invocation::{put_http_headers, take_http_headers},
    names::{self, ce, wire},
};

/// What a callback reports about a call.
pub struct CallbackFacts<'a> {
    pub call_id: &'a str,
    pub function: &'a crate::FunctionRef,
    /// `ce-type`: completed, failed or cancelled.
    pub ce_type: &'a str,
    pub function_status: u16,
    pub duration_seconds: f64,
    pub started: DateTime<Utc>,
    pub attempt: u32,
    pub max_attempts: u32,
    pub content_type: Option<&'a str>,
}

/// The callback contract's headers (README, "Callbacks"), CloudEvents binary mode included.
pub fn contract_headers(facts: &CallbackFacts<'_>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::with_capacity(16);
    let mut set = |name: http::HeaderName, value: String| {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set(lowercase::CALL_ID, facts.call_id.to_owned());
    set(lowercase::FUNCTION_NAME, facts.function.name.clone());
    set(lowercase::FUNCTION_NAMESPACE, facts.function.namespace.clone());
    set(lowercase::FUNCTION_STATUS, facts.function_status.to_string());
    set(lowercase::DURATION_SECONDS, format!("{:.6}", facts.duration_seconds));
    set(lowercase::START_TIME, facts.started.timestamp_nanos_opt().unwrap_or_default().to_string());
    set(lowercase::ATTEMPT, facts.attempt.to_string());
    set(lowercase::MAX_ATTEMPTS, facts.max_attempts.to_string());
    set(lowercase::CE_SPECVERSION, ce::VERSION.to_owned());
    set(lowercase::CE_ID, facts.call_id.to_owned());
    set(lowercase::CE_TYPE, facts.ce_type.to_owned());
    set(lowercase::CE_SOURCE, names::CE_SOURCE_WORKER.to_owned());
    set(lowercase::CE_SUBJECT, facts.function.name.clone());
    set(lowercase::CE_TIME, Utc::now().to_rfc3339());
    if let Some(content_type) = facts.content_type {
        set(http::header::CONTENT_TYPE, content_type.to_owned());
    }
    headers
}

/// The contract's header names as `http` keeps them (lowercase), made once at compile time.
mod lowercase {
    use http::HeaderName;

    pub const CALL_ID: HeaderName = HeaderName::from_static("x-call-id");
    pub const FUNCTION_NAME: HeaderName = HeaderName::from_static("x-function-name");
    pub const FUNCTION_NAMESPACE: HeaderName = HeaderName::from_static("x-function-namespace");
    pub const FUNCTION_STATUS: HeaderName = HeaderName::from_static("x-function-status");
    pub const DURATION_SECONDS: HeaderName = HeaderName::from_static("x-duration-seconds");
    pub const START_TIME: HeaderName = HeaderName::from_static("x-start-time");
    pub const ATTEMPT: HeaderName = HeaderName::from_static("x-sluice-attempt");
    pub const MAX_ATTEMPTS: HeaderName = HeaderName::from_static("x-sluice-max-attempts");
    pub const CE_SPECVERSION: HeaderName = HeaderName::from_static("ce-specversion");
    pub const CE_ID: HeaderName = HeaderName::from_static("ce-id");
    pub const CE_TYPE: HeaderName = HeaderName::from_static("ce-type");
    pub const CE_SOURCE: HeaderName = HeaderName::from_static("ce-source");
    pub const CE_SUBJECT: HeaderName = HeaderName::from_static("ce-subject");
    pub const CE_TIME: HeaderName = HeaderName::from_static("ce-time");

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::names::{ce, http_headers as h};

        #[test]
        fn each_is_its_contract_name() {
            let pairs = [
                (CALL_ID, h::CALL_ID),
                (FUNCTION_NAME, h::FUNCTION_NAME),
                (FUNCTION_NAMESPACE, h::FUNCTION_NAMESPACE),
                (FUNCTION_STATUS, h::FUNCTION_STATUS),
                (DURATION_SECONDS, h::DURATION_SECONDS),
                (START_TIME, h::START_TIME),
                (ATTEMPT, h::ATTEMPT),
                (MAX_ATTEMPTS, h::MAX_ATTEMPTS),
                (CE_SPECVERSION, ce::SPECVERSION),
                (CE_ID, ce::ID),
                (CE_TYPE, ce::TYPE),
                (CE_SOURCE, ce::SOURCE),
                (CE_SUBJECT, ce::SUBJECT),
                (CE_TIME, ce::TIME),
            ];
            for (name, contract) in pairs {
                assert_eq!(name, http::HeaderName::from_bytes(contract.as_bytes()).unwrap());
            }
        }
    }
}

/// Who a callback is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recipient {
    /// The caller's `X-Callback-Url` (or a trigger's callback URL); its delivery is the record's `callback`.
    #[default]
    Caller,
    /// The function's `async.onSuccess`/`onFailure` URL; its delivery is the record's `destination`.
    Destination,
}

impl Recipient {
    fn as_str(self) -> &'static str {
        match self {
            Self::Caller => "callback",
            Self::Destination => "destination",
        }
    }
}

/// The series a cancellation's callback names in its outbox message id: a cancellation ends the call whatever
/// series of attempts it was in.
pub const CANCELLED_SERIES: &str = "cancelled";

/// A callback waiting in the outbox.
#[derive(Clone, Debug)]
pub struct CallbackMessage {
    pub url: String,
    pub call_id: String,
    pub function: crate::FunctionRef,
    /// The contract headers, as sent.
    pub headers: http::HeaderMap,
    pub body: Payload,
    pub recipient: Recipient,
    /// Which of the call's ends it reports, when not the call as first queued: a replay's attempt series
    /// ([`crate::invocation::replay_series`]), or a cancellation. Each has its own outbox message, so one is not
    /// taken for another within JetStream's duplicate window.
    pub series: Option<String>,
}

impl CallbackMessage {
    /// NATS headers and payload; one outbox message per call and recipient (`Nats-Msg-Id`).
    pub fn to_nats(&self) -> (NatsHeaders, Bytes) {
        let mut headers = NatsHeaders::new();
        headers.insert(wire::NATS_MSG_ID, self.message_id());
        headers.insert(wire::CALLBACK_TARGET, self.url.as_str());
        if self.recipient == Recipient::Destination {
            headers.insert(wire::CALLBACK_RECIPIENT, self.recipient.as_str());
        }
        headers.insert(ce::ID, self.call_id.as_str());
        headers.insert(ce::SUBJECT, self.function.key());
        put_http_headers(&mut headers, &self.headers);
        match &self.body {
            Payload::Inline(body) => (headers, body.clone()),
            Payload::Object(name) => {
                headers.insert(wire::PAYLOAD_OBJECT, name.as_str());
                (headers, Bytes::new())
            }
        }
    }

    /// `{call id}.{recipient}`, and `{call id}.{recipient}.{series}` for any other end of the call.
    fn message_id(&self) -> String {
        let (call_id, recipient) = (self.call_id.as_str(), self.recipient.as_str());
        match &self.series {
            None => [call_id, ".", recipient].concat(),
            Some(series) => [call_id, ".", recipient, ".", series].concat(),
        }
    }

    pub fn from_nats(headers: &NatsHeaders, body: Bytes) -> Option<Self> {
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        let call_id = get(ce::ID)?;
        let recipient = match get(wire::CALLBACK_RECIPIENT).as_deref() {
            Some("destination") => Recipient::Destination,
            _ => Recipient::Caller,
        };
        let series = headers.get(wire::NATS_MSG_ID).and_then(|id| {
            let rest = id.as_str().strip_prefix(call_id.as_str())?.strip_prefix('.')?;
            let series = rest.strip_prefix(recipient.as_str())?.strip_prefix('.')?;
            Some(series.to_owned())
        });
        Some(Self {
            url: get(wire::CALLBACK_TARGET)?,
            function: crate::FunctionRef::from_key(&get(ce::SUBJECT)?)?,
            headers: take_http_headers(headers),
            body: match get(wire::PAYLOAD_OBJECT) {
                Some(name) => Payload::Object(name),
                None => Payload::Inline(body),
            },
            call_id,
            recipient,
            series,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_message_round_trips() {
        let facts = CallbackFacts {
            call_id: "c1",
            function: &crate::FunctionRef::new("team-a", "f"),
            ce_type: names::CE_TYPE_COMPLETED,
            function_status: 200,
            duration_seconds: 1.5,
            started: Utc::now(),
            attempt: 2,
            max_attempts: 3,
            content_type: Some("text/plain"),
        };
        let headers = contract_headers(&facts);
        assert_eq!(headers["x-sluice-attempt"], "2");
        assert_eq!(
            (&headers["x-function-name"], &headers["x-function-namespace"]),
            (&"f".parse().unwrap(), &"team-a".parse().unwrap())
        );
        assert_eq!(headers["ce-type"], "sluice.invocation.completed");
        let message = CallbackMessage {
            url: "http://127.0.0.1:9/cb".into(),
            call_id: "c1".into(),
            function: crate::FunctionRef::new("team-a", "f"),
            headers,
            body: Payload::Inline(Bytes::from_static(b"result")),
            recipient: Recipient::Caller,
            series: None,
        };
        let (nats_headers, body) = message.to_nats();
        let back = CallbackMessage::from_nats(&nats_headers, body).unwrap();
        assert_eq!(back.recipient, Recipient::Caller);
        let destination = CallbackMessage { recipient: Recipient::Destination, ..message.clone() };
        let (nats_headers, body) = destination.to_nats();
        assert_eq!(
            nats_headers.get(wire::NATS_MSG_ID).unwrap().as_str(),
            "c1.destination",
            "not deduplicated with the callback"
        );
        assert_eq!(CallbackMessage::from_nats(&nats_headers, body).unwrap().recipient, Recipient::Destination);
        let replayed = CallbackMessage { series: Some("r12".into()), ..destination.clone() };
        let (nats_headers, body) = replayed.to_nats();
        assert_eq!(
            nats_headers.get(wire::NATS_MSG_ID).unwrap().as_str(),
            "c1.destination.r12",
            "a replay's callback is not taken for the first series'"
        );
        assert_eq!(CallbackMessage::from_nats(&nats_headers, body).unwrap().series.as_deref(), Some("r12"));
        assert_eq!(back.series, None);
        assert_eq!(back.url, message.url);
        assert_eq!(back.function, message.function);
        assert_eq!(back.headers["x-duration-seconds"], "1.500000");
        assert_eq!(back.headers["content-type"], "text/plain");
        assert_eq!(back.body, Payload::Inline(Bytes::from_static(b"result")));
    }
}
