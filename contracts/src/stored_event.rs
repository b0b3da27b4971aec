//! A connector event as the events API lists it: its CloudEvents attributes, where it sits in `SLUICE_EVENTS`
//! and what routing made of it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the event router made of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Routing {
    /// Routed: it queued a call to every function whose triggers matched it.
    Matched,
    /// Routed, but no function's triggers matched it (or it was refused); `sluice events replay` routes it
    /// again to functions deployed since.
    Unmatched,
    /// Not routed yet (no router has confirmed it).
    Waiting,
}

/// One event kept in `SLUICE_EVENTS`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    /// Sequence in `SLUICE_EVENTS`; replay one event by it.
    pub sequence: u64,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The event's own time (RFC 3339), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// When JetStream stored it (RFC 3339).
    pub received_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Size of the data in bytes.
    pub size: usize,
    /// The start of the data as text (at most [`StoredEvent::PREVIEW`] bytes, invalid UTF-8 replaced).
    pub preview: String,
    pub routing: Routing,
    /// Why it matched nothing, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl StoredEvent {
    /// Bytes of data shown in [`StoredEvent::preview`].
    pub const PREVIEW: usize = 512;

    /// The preview of `data`: its first [`Self::PREVIEW`] bytes as text, cut at a character boundary.
    pub fn preview_of(data: &[u8]) -> String {
        let head = &data[..data.len().min(Self::PREVIEW)];
        let text = String::from_utf8_lossy(head);
        if data.len() > Self::PREVIEW { format!("{}…", text.trim_end_matches('\u{FFFD}')) } else { text.into_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_is_short_and_says_when_cut() {
        assert_eq!(StoredEvent::preview_of(b"{\"a\":1}"), "{\"a\":1}");
        let long = "é".repeat(400);
        let preview = StoredEvent::preview_of(long.as_bytes());
        assert!(preview.ends_with('…'));
        assert!(!preview.contains('\u{FFFD}'), "a character cut in two is dropped, not shown as garbage");
        assert_eq!(preview.chars().count(), 257);
    }

    #[test]
    fn routing_reads_as_the_api_writes_it() {
        assert_eq!(serde_json::to_value(Routing::Unmatched).unwrap(), "unmatched");
    }
}
