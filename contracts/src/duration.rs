//! Durations written as strings such as `200ms`, `30s` or `2h`, as in function specs.

use std::{fmt, str::FromStr, time::Duration};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest duration a spec may name: a year. Longer ones are refused when parsed, so no later
/// arithmetic on a deadline can overflow.
pub const MAX: Duration = Duration::from_secs(366 * 24 * 3600);

/// Why a duration string is refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DurationError {
    #[error("{0}")]
    Syntax(#[from] humantime::DurationError),
    #[error("longer than the maximum of 366 days")]
    TooLong,
}

/// A [`Duration`] that reads and writes as a human string (`"30s"`, `"1h 30m"`), at most [`MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let duration = humantime::parse_duration(s.trim())?;
        if duration > MAX {
            return Err(DurationError::TooLong);
        }
        Ok(Self(duration))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|err| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({err}); write it like \"200ms\", \"30s\" or \"2h\""
            ))
        })
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration such as \"200ms\", \"30s\", \"5m\" or \"2h\"; at most 366 days.",
            "examples": ["30s"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let d: HumanDuration = serde_json::from_str("\"1h 30m\"").unwrap();
        assert_eq!(d.get(), Duration::from_secs(5400));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1h 30m\"");
        let ms: HumanDuration = "200ms".parse().unwrap();
        assert_eq!(ms.get(), Duration::from_millis(200));
    }

    #[test]
    fn absurd_durations_are_refused_not_overflowed() {
        for text in ["\"300000000000y\"", "\"18446744073709551615s\"", "\"367d\""] {
            let err = serde_json::from_str::<HumanDuration>(text).unwrap_err();
            assert!(err.to_string().contains("invalid duration"), "{text}: {err}");
        }
        assert!("366d".parse::<HumanDuration>().is_ok());
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let err = serde_json::from_str::<HumanDuration>("\"soon\"").unwrap_err();
        assert!(err.to_string().contains("invalid duration \"soon\""), "{err}");
    }
}
