//! Timestamps in records written as one string: the same RFC 3339 text chrono's `Serialize` writes, made
//! before serde_json sees it.
//!
//! chrono serializes a time through `collect_str`, so serde_json escapes it piece by piece as `core::fmt`
//! hands it over: about 2,500 instructions a timestamp, and a call's record carries four and is written on
//! every change. Formatting it first (chrono's own `to_rfc3339_opts`, so the text cannot differ) and handing
//! serde_json one `&str` costs a fifth of that. Reading is chrono's, unchanged.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// RFC 3339 in UTC with `Z`, and as many fraction digits (0, 3, 6 or 9) as the time needs: what chrono writes.
fn text(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `#[serde(serialize_with = "crate::timestamp::serialize")]` on a `DateTime<Utc>`.
pub fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&text(time))
}

/// `#[serde(serialize_with = "crate::timestamp::serialize_option")]` on an `Option<DateTime<Utc>>`.
pub fn serialize_option<S: Serializer>(time: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serializer.serialize_some(&Text(time)),
        None => serializer.serialize_none(),
    }
}

struct Text<'a>(&'a DateTime<Utc>);

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(self.0, serializer)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    #[derive(Serialize)]
    struct Fast {
        #[serde(serialize_with = "serialize")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "serialize_option")]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chrono {
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
    }

    fn both(at: DateTime<Utc>, maybe: Option<DateTime<Utc>>) -> (String, String) {
        (serde_json::to_string(&Fast { at, maybe }).unwrap(), serde_json::to_string(&Chrono { at, maybe }).unwrap())
    }

    #[test]
    fn every_fraction_width_and_the_edges_read_as_chrono_writes_them() {
        let second = Utc.with_ymd_and_hms(2026, 12, 2, 11, 25, 53).unwrap();
        for nanos in [0, 40_000_000, 40_737_000, 40_737_123, 999_999_999, 1] {
            let at = second + chrono::Duration::nanoseconds(nanos);
            let (fast, chrono) = both(at, Some(at));
            assert_eq!(fast, chrono);
        }
        let (fast, chrono) = both(second, None);
        assert_eq!(fast, chrono);
        assert!(fast.contains(r#""maybe":null"#), "{fast}");
        // Years chrono writes with a sign, and a leap second.
        for at in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::UNIX_EPOCH] {
            assert_eq!(both(at, Some(at)).0, both(at, Some(at)).1);
        }
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_nano_opt(23, 59, 59, 1_500_000_000);
        let leap = leap.unwrap().and_utc();
        let (fast, chrono) = both(leap, Some(leap));
        assert_eq!(fast, chrono);
        assert!(fast.contains("23:59:60.500Z"), "{fast}");
    }

    proptest! {
        #[test]
        fn any_time_reads_as_chrono_writes_it(seconds in -62_000_000_000_i64..250_000_000_000, nanos in 0_u32..1_000_000_000) {
            let at = DateTime::from_timestamp(seconds, nanos).unwrap();
            let (fast, chrono) = both(at, Some(at));
            prop_assert_eq!(fast, chrono);
        }
    }
}
