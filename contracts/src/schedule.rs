//! Cron schedules of triggers: 5-field (minutes) or 6-field (seconds) expressions, descriptors (`@hourly`,
//! `@daily`, …) and `@every <duration>`, in an IANA time zone (UTC by default) with DST handled by the zone.
//! `@every` ticks are aligned to the Unix epoch, so every connector replica computes the same tick times.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::{Cron, parser::CronParser};

/// When a trigger fires.
#[derive(Clone, Debug)]
pub enum Schedule {
    Cron { cron: Box<Cron>, zone: Tz },
    Every(Duration),
}

impl Schedule {
    /// Parses `expression` in `timezone` (an IANA name; UTC when `None`).
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Self, String> {
        let expression = expression.trim();
        if let Some(every) = expression.strip_prefix("@every") {
            let every = every
                .trim()
                .parse::<crate::HumanDuration>()
                .map_err(|e| format!("@every needs a duration such as 5m or 30s: {e}"))?
                .get();
            if every < Duration::from_secs(1) {
                return Err("@every must be at least 1s".into());
            }
            return Ok(Self::Every(every));
        }
        let zone = match timezone {
            Some(name) => Tz::from_str(name).map_err(|_| format!("unknown time zone {name:?}; use an IANA name"))?,
            None => Tz::UTC,
        };
        let fields = expression.split_whitespace().count();
        if !expression.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(format!("{expression:?} has {fields} fields; cron takes 5 (minutes) or 6 (with seconds)"));
        }
        let cron = CronParser::new().parse(expression).map_err(|e| format!("{expression:?}: {e}"))?;
        let schedule = Self::Cron { cron: Box::new(cron), zone };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(format!("{expression:?} never fires"));
        }
        Ok(schedule)
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(every) => {
                let step = every.as_millis() as i64;
                let next = (after.timestamp_millis().div_euclid(step) + 1) * step;
                DateTime::from_timestamp_millis(next)
            }
            Self::Cron { cron, zone } => {
                let local = after.with_timezone(zone);
                cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
            }
        }
    }

    /// The next `n` ticks after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = after;
        while out.len() < n {
            let Some(next) = self.next_after(at) else { break };
            out.push(next);
            at = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn five_and_six_fields_and_descriptors() {
        let five = Schedule::parse("*/15 * * * *", None).unwrap();
        assert_eq!(five.next_after(utc(2026, 1, 1, 10, 7, 0)), Some(utc(2026, 1, 1, 10, 15, 0)));
        let six = Schedule::parse("*/10 * * * * *", None).unwrap();
        assert_eq!(six.next_after(utc(2026, 1, 1, 10, 0, 1)), Some(utc(2026, 1, 1, 10, 0, 10)));
        let hourly = Schedule::parse("@hourly", None).unwrap();
        assert_eq!(hourly.next_after(utc(2026, 1, 1, 10, 0, 0)), Some(utc(2026, 1, 1, 11, 0, 0)));
        let every = Schedule::parse("@every 5m", None).unwrap();
        assert_eq!(every.next_after(utc(2026, 1, 1, 10, 7, 0)), Some(utc(2026, 1, 1, 10, 10, 0)));
    }

    #[test]
    fn time_zones_follow_daylight_saving() {
        // 09:00 in Amsterdam is 08:00 UTC in winter and 07:00 UTC in summer.
        let nine = Schedule::parse("0 9 * * *", Some("Europe/Amsterdam")).unwrap();
        assert_eq!(nine.next_after(utc(2026, 1, 10, 0, 0, 0)), Some(utc(2026, 1, 10, 8, 0, 0)));
        assert_eq!(nine.next_after(utc(2026, 7, 10, 0, 0, 0)), Some(utc(2026, 7, 10, 7, 0, 0)));
        // 02:30 does not exist on the spring-forward day (29 March 2026); it must not fire twice or at a wrong day.
        let early = Schedule::parse("30 2 * * *", Some("Europe/Amsterdam")).unwrap();
        let ticks = early.upcoming(utc(2026, 3, 28, 12, 0, 0), 3);
        assert_eq!(ticks.len(), 3);
        assert!(ticks.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn bad_expressions_are_explained() {
        assert!(Schedule::parse("* * *", None).unwrap_err().contains("3 fields"));
        assert!(Schedule::parse("61 * * * *", None).is_err());
        assert!(Schedule::parse("@every soon", None).unwrap_err().contains("@every"));
        assert!(Schedule::parse("0 * * * *", Some("Mars/Olympus")).unwrap_err().contains("time zone"));
    }
}
