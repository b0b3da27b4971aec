//! A running call's progress: the report a function sends to its progress URL, and what the call's record
//! keeps of it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest progress message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Largest report body accepted (a message plus JSON around it).
pub const MAX_REPORT_BYTES: usize = 8 * 1024;

/// One report from a running function: a percentage and/or a message. Neither is a heartbeat alone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProgressReport {
    /// How far the call got, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// What it is doing, at most 4 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The latest progress of a call, as its record shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallProgress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the function reported it.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// Why a report was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReportError {
    #[error("invalid progress report: {0}")]
    Json(String),
    #[error("percent must be a number from 0 to 100, not {0}")]
    Percent(String),
    #[error("message is {0} bytes; at most {MAX_MESSAGE_BYTES} are kept")]
    MessageTooLong(usize),
    #[error("a progress report must be UTF-8 text or JSON")]
    NotText,
}

impl ProgressReport {
    /// Reads a report: JSON (`{"percent": 42, "message": "frame 120/300"}`) when the body is sent as
    /// `application/json` or starts with `{`; otherwise text, `42`, `42% frame 120/300` or `frame 120/300` (a
    /// leading number is the percentage). An empty body is a heartbeat.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, ReportError> {
        let text = std::str::from_utf8(body).map_err(|_| ReportError::NotText)?.trim();
        let json = content_type.is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("application/json"));
        let report = if json || text.starts_with('{') {
            if text.is_empty() {
                Self::default()
            } else {
                serde_json::from_str(text).map_err(|e| ReportError::Json(e.to_string()))?
            }
        } else {
            Self::from_text(text)?
        };
        report.checked()
    }

    fn from_text(text: &str) -> Result<Self, ReportError> {
        if text.is_empty() {
            return Ok(Self::default());
        }
        let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let number = first.strip_suffix('%').unwrap_or(first);
        let looks_numeric = number.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.');
        if !looks_numeric {
            return Ok(Self { percent: None, message: Some(text.to_owned()) });
        }
        let percent = number.parse::<f64>().map_err(|_| ReportError::Percent(format!("{first:?}")))?;
        let message = Some(rest.trim()).filter(|m| !m.is_empty()).map(str::to_owned);
        Ok(Self { percent: Some(percent), message })
    }

    fn checked(self) -> Result<Self, ReportError> {
        if let Some(percent) = self.percent
            && !(percent.is_finite() && (0.0..=100.0).contains(&percent))
        {
            return Err(ReportError::Percent(percent.to_string()));
        }
        if let Some(message) = &self.message
            && message.len() > MAX_MESSAGE_BYTES
        {
            return Err(ReportError::MessageTooLong(message.len()));
        }
        Ok(self)
    }

    /// Whether the report says nothing but "still alive".
    pub fn is_heartbeat(&self) -> bool {
        self.percent.is_none() && self.message.is_none()
    }
}

impl CallProgress {
    /// `previous` with `report` over it: what the report leaves out keeps its last value.
    pub fn merged(previous: Option<&CallProgress>, report: &ProgressReport, at: DateTime<Utc>) -> Self {
        Self {
            percent: report.percent.or(previous.and_then(|p| p.percent)),
            message: report.message.clone().or_else(|| previous.and_then(|p| p.message.clone())),
            updated_at: at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> Result<ProgressReport, ReportError> {
        ProgressReport::parse(Some("application/x-www-form-urlencoded"), body.as_bytes())
    }

    #[test]
    fn text_reports_lead_with_an_optional_percentage() {
        assert_eq!(text("42").unwrap(), ProgressReport { percent: Some(42.0), message: None });
        let both = text("42.5% frame 120/300\n").unwrap();
        assert_eq!(both, ProgressReport { percent: Some(42.5), message: Some("frame 120/300".into()) });
        assert_eq!(text("decoding").unwrap().message.as_deref(), Some("decoding"));
        assert!(text("").unwrap().is_heartbeat());
        assert!(matches!(text("4x2 frames"), Err(ReportError::Percent(_))));
    }

    #[test]
    fn json_reports_are_strict() {
        let report = ProgressReport::parse(None, br#"{"percent": 100, "message": "done"}"#).unwrap();
        assert_eq!(report.percent, Some(100.0));
        let typo = ProgressReport::parse(Some("application/json"), br#"{"progress": 5}"#).unwrap_err();
        assert!(typo.to_string().contains("unknown field"), "{typo}");
        assert!(ProgressReport::parse(Some("application/json"), b"").unwrap().is_heartbeat());
    }

    #[test]
    fn out_of_range_or_oversized_reports_are_refused() {
        for bad in ["101", "-1", "100.01", "1e3"] {
            assert!(matches!(text(bad), Err(ReportError::Percent(_))), "{bad}");
        }
        assert!(matches!(ProgressReport::parse(None, br#"{"percent": 1e400}"#), Err(ReportError::Json(_))));
        let long = format!("5 {}", "x".repeat(MAX_MESSAGE_BYTES + 1));
        assert!(matches!(text(&long), Err(ReportError::MessageTooLong(_))));
        assert_eq!(ProgressReport::parse(None, &[0xff, 0xfe]), Err(ReportError::NotText));
    }

    #[test]
    fn a_partial_report_keeps_what_it_leaves_out() {
        let at = Utc::now();
        let first = CallProgress::merged(None, &text("40 decoding").unwrap(), at);
        let second = CallProgress::merged(Some(&first), &text("encoding").unwrap(), at);
        assert_eq!((second.percent, second.message.as_deref()), (Some(40.0), Some("encoding")));
    }
}
