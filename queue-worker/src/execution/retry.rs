//! When a failed attempt is tried again, and after how long: per-function `async.retry` over worker
//! defaults, exponential backoff with full jitter, and `Retry-After` honoured within bounds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngExt;
use sluice_contracts::FunctionSpec;

use crate::outcome::Outcome;

/// Status codes retried when a function's spec names none: timeouts, throttling and server errors.
pub const DEFAULT_RETRY_CODES: &[u16] = &[408, 429, 500, 502, 503, 504];

/// Worker-wide retry defaults, used where a function's spec says nothing.
#[derive(Clone, Debug)]
pub struct RetryDefaults {
    pub attempts: u32,
    pub min_wait: Duration,
    pub max_wait: Duration,
}

impl Default for RetryDefaults {
    fn default() -> Self {
        Self { attempts: 3, min_wait: Duration::from_secs(1), max_wait: Duration::from_secs(300) }
    }
}

/// The retry rules of one function.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrySettings {
    pub attempts: u32,
    pub codes: Vec<u16>,
    pub min_wait: Duration,
    pub max_wait: Duration,
    pub max_age: Option<Duration>,
}

/// What to do after an attempt.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// The call has its outcome: success, or a failure that retrying would not change.
    Final,
    /// Try again after this long.
    Retry(Duration),
}

impl RetrySettings {
    pub fn resolve(spec: &FunctionSpec, defaults: &RetryDefaults) -> Self {
        let config = spec.async_config.as_ref();
        let retry = config.and_then(|c| c.retry.as_ref());
        let min_wait = retry.and_then(|r| r.min_wait).map_or(defaults.min_wait, |d| d.get());
        Self {
            attempts: retry.and_then(|r| r.attempts).unwrap_or(defaults.attempts).max(1),
            codes: retry.and_then(|r| r.codes.clone()).unwrap_or_else(|| DEFAULT_RETRY_CODES.to_vec()),
            min_wait,
            max_wait: retry.and_then(|r| r.max_wait).map_or(defaults.max_wait, |d| d.get()).max(min_wait),
            max_age: config.and_then(|c| c.max_age).map(|d| d.get()),
        }
    }

    /// Whether a call created at `created` is too old to start now.
    pub fn expired(&self, created: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.max_age.is_some_and(|max| (now - created).to_std().is_ok_and(|age| age > max))
    }

    /// After attempt number `attempt` (1-based) ended with `outcome`.
    pub fn decide(&self, outcome: &Outcome, attempt: u32) -> Decision {
        let retryable = outcome.runtime_error || self.codes.contains(&outcome.status);
        if outcome.succeeded() || !retryable || attempt >= self.attempts {
            return Decision::Final;
        }
        let asked = matches!(outcome.status, 429 | 503).then(|| retry_after(&outcome.headers, Utc::now())).flatten();
        Decision::Retry(match asked {
            Some(wait) => wait.min(self.max_wait),
            None => self.backoff(attempt),
        })
    }

    /// Full jitter over an exponentially growing ceiling: uniform in [min_wait, min(max_wait, min_wait·2^(n-1))].
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.min_wait.saturating_mul(1u32 << attempt.saturating_sub(1).min(20)).min(self.max_wait);
        if ceiling <= self.min_wait {
            return self.min_wait;
        }
        rand::rng().random_range(self.min_wait..=ceiling)
    }
}

/// `Retry-After` as seconds or an HTTP date, as a wait from `now`.
pub fn retry_after(headers: &http::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sluice_contracts::FunctionSpec;

    use super::*;

    fn outcome(status: u16, retry_after: Option<&str>) -> Outcome {
        let mut headers = http::HeaderMap::new();
        if let Some(value) = retry_after {
            headers.insert(http::header::RETRY_AFTER, value.parse().unwrap());
        }
        Outcome { status, headers, body: Bytes::new(), error: None, runtime_error: false }
    }

    fn settings(json: &str) -> RetrySettings {
        let spec: FunctionSpec = serde_json::from_str(json).unwrap();
        RetrySettings::resolve(&spec, &RetryDefaults::default())
    }

    #[test]
    fn spec_overrides_defaults() {
        let s = settings(
            r#"{"service":"f","envProcess":"x","async":{"retry":{"attempts":5,"codes":[500],"minWait":"2s"}}}"#,
        );
        assert_eq!((s.attempts, s.codes.as_slice(), s.min_wait), (5, &[500][..], Duration::from_secs(2)));
        let d = settings(r#"{"service":"f","envProcess":"x"}"#);
        assert_eq!(d.attempts, 3);
        assert_eq!(d.codes, DEFAULT_RETRY_CODES);
    }

    #[test]
    fn decisions() {
        let s = settings(
            r#"{"service":"f","envProcess":"x","async":{"retry":{"attempts":3,"minWait":"1s","maxWait":"10s"}}}"#,
        );
        assert_eq!(s.decide(&outcome(200, None), 1), Decision::Final);
        assert_eq!(s.decide(&outcome(400, None), 1), Decision::Final, "other 4xx fail at once");
        assert!(matches!(s.decide(&outcome(500, None), 1), Decision::Retry(_)));
        assert_eq!(s.decide(&outcome(500, None), 3), Decision::Final, "attempts used up");
        assert_eq!(s.decide(&outcome(503, Some("4")), 1), Decision::Retry(Duration::from_secs(4)));
        assert_eq!(s.decide(&outcome(429, Some("3600")), 1), Decision::Retry(Duration::from_secs(10)), "bounded");
        let mut crashed = outcome(502, None);
        crashed.runtime_error = true;
        let no_codes = RetrySettings { codes: vec![], ..s.clone() };
        assert!(matches!(no_codes.decide(&crashed, 1), Decision::Retry(_)), "runtime errors are always retried");
    }

    #[test]
    fn backoff_grows_within_bounds() {
        let s = settings(r#"{"service":"f","envProcess":"x","async":{"retry":{"minWait":"100ms","maxWait":"1s"}}}"#);
        assert_eq!(s.backoff(1), Duration::from_millis(100));
        for attempt in 2..30 {
            let wait = s.backoff(attempt);
            assert!(wait >= Duration::from_millis(100) && wait <= Duration::from_secs(1), "{attempt}: {wait:?}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = Utc::now();
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        let later = (now + chrono::Duration::seconds(30)).to_rfc2822();
        headers.insert(http::header::RETRY_AFTER, later.parse().unwrap());
        let wait = retry_after(&headers, now).unwrap();
        assert!(wait > Duration::from_secs(28) && wait <= Duration::from_secs(30), "{wait:?}");
        headers.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn max_age() {
        let s = settings(r#"{"service":"f","envProcess":"x","async":{"maxAge":"1m"}}"#);
        let now = Utc::now();
        assert!(!s.expired(now - chrono::Duration::seconds(30), now));
        assert!(s.expired(now - chrono::Duration::seconds(90), now));
    }
}
