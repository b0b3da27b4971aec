//! The function-logs protocol between a gateway and the workers running a function's containers.
//!
//! A gateway sends a [`LogQuery`] on `sluice.logs.{function}` with a reply inbox. Every worker that runs the
//! function's containers answers on that inbox: a message with the [`LOGS_MARKER`] header `begin`, one
//! message per [`LogLine`] (JSON, no marker), and one with the marker `end`. A follower goes on until the
//! gateway stops answering pings on [`alive_subject`] of the inbox.

use serde::{Deserialize, Serialize};

/// Header that marks a worker's first and last message on a logs inbox.
pub const LOGS_MARKER: &str = crate::names::wire::LOGS_MARKER;

/// A worker's marker: [`Marker::Begin`] before its lines, [`Marker::End`] after them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Begin,
    End,
}

impl Marker {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Begin => "begin",
            Self::End => "end",
        }
    }

    /// The marker a message's header value names; anything but `begin` ends a worker's answer.
    pub fn parse(value: &str) -> Self {
        if value == "begin" { Self::Begin } else { Self::End }
    }
}

/// Where a following worker asks whether its reader is still there.
pub fn alive_subject(inbox: &str) -> String {
    format!("{inbox}.alive")
}

/// Which lines to read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    /// Keep streaming new lines until the reader goes away.
    #[serde(default)]
    pub follow: bool,
    /// Only lines written at or after this Unix time (seconds).
    #[serde(default)]
    pub since: Option<i64>,
    /// Only the last this many lines of each container.
    #[serde(default)]
    pub tail: Option<u32>,
}

/// One line a function wrote (OpenFaaS `logs.Message`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// The function.
    pub name: String,
    /// The container that wrote it.
    pub instance: String,
    /// RFC 3339 time the engine recorded the line.
    pub timestamp: String,
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_lines_keep_openfaas_field_names() {
        for marker in [Marker::Begin, Marker::End] {
            assert_eq!(Marker::parse(marker.as_str()), marker);
        }
        let line = LogLine { name: "f".into(), instance: "abc".into(), timestamp: "t".into(), text: "hi".into() };
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(json, serde_json::json!({"name": "f", "instance": "abc", "timestamp": "t", "text": "hi"}));
        assert_eq!(serde_json::from_str::<LogQuery>("{}").unwrap(), LogQuery::default());
        assert_eq!(alive_subject("_INBOX.x"), "_INBOX.x.alive");
    }
}
