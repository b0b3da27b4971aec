//! Delivering a call's outcome to its `X-Callback-Url`, with the headers of the callback contract.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sluice_schemas::names::{self, ce, http_headers as h};

use crate::{metrics, outcome::Outcome};

/// How callbacks are sent.
#[derive(Clone, Debug)]
pub struct CallbackConfig {
    /// Deliveries tried before a callback is given up.
    pub attempts: u32,
    /// Time one delivery may take.
    pub timeout: Duration,
    /// Wait before the second delivery; doubles after each failure.
    pub first_wait: Duration,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self { attempts: 6, timeout: Duration::from_secs(30), first_wait: Duration::from_millis(500) }
    }
}

/// One callback to send.
pub struct Callback<'a> {
    pub url: &'a str,
    pub call_id: &'a str,
    pub function: &'a str,
    pub started: DateTime<Utc>,
    pub duration: Duration,
    pub attempt: u32,
    pub max_attempts: u32,
    pub outcome: &'a Outcome,
}

/// A pooled HTTP client for callbacks.
pub struct Callbacks {
    client: reqwest::Client,
    cfg: CallbackConfig,
}

impl Callbacks {
    pub fn new(cfg: CallbackConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .expect("the HTTP client's settings are valid");
        Self { client, cfg }
    }

    fn request(&self, cb: &Callback<'_>, body: Bytes) -> reqwest::RequestBuilder {
        let ce_type = if cb.outcome.succeeded() { names::CE_TYPE_COMPLETED } else { names::CE_TYPE_FAILED };
        let mut request = self
            .client
            .post(cb.url)
            .header(h::CALL_ID, cb.call_id)
            .header(h::FUNCTION_NAME, cb.function)
            .header(h::FUNCTION_STATUS, cb.outcome.status)
            .header(h::DURATION_SECONDS, format!("{:.6}", cb.duration.as_secs_f64()))
            .header(h::START_TIME, cb.started.timestamp_nanos_opt().unwrap_or_default())
            .header(h::ATTEMPT, cb.attempt)
            .header(h::MAX_ATTEMPTS, cb.max_attempts)
            .header(ce::SPECVERSION, ce::VERSION)
            .header(ce::ID, cb.call_id)
            .header(ce::TYPE, ce_type)
            .header(ce::SOURCE, names::CE_SOURCE_WORKER)
            .header(ce::SUBJECT, cb.function)
            .header(ce::TIME, Utc::now().to_rfc3339())
            .body(body);
        if let Some(content_type) = cb.outcome.content_type() {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        request
    }

    /// Sends the callback, retrying connection failures, 408, 429 and 5xx with doubling waits.
    pub async fn deliver(&self, cb: &Callback<'_>) -> Result<(), String> {
        let mut wait = self.cfg.first_wait;
        let mut last_error = String::new();
        for attempt in 1..=self.cfg.attempts {
            match self.request(cb, cb.outcome.body.clone()).send().await {
                Ok(response) if response.status().is_success() => {
                    metrics::callback("delivered");
                    return Ok(());
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    last_error = format!("callback receiver answered {status}");
                    if !(status == 408 || status == 429 || status >= 500) {
                        break; // the receiver refuses this callback; sending it again changes nothing
                    }
                }
                Err(err) => last_error = format!("callback not delivered: {err}"),
            }
            if attempt < self.cfg.attempts {
                tracing::debug!(attempt, error = %last_error, "callback failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
        metrics::callback("failed");
        Err(last_error)
    }
}
