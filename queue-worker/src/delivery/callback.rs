//! Sending one callback: the URL policy, the signature, the POST.

use std::time::Duration;

use bytes::Bytes;
use sluice_contracts::{names::http_headers as h, outbound::OutboundPolicy};
use sluice_outbound::Enforce;

use crate::metrics;

/// How callbacks are sent and retried.
#[derive(Clone, Debug)]
pub struct CallbackConfig {
    /// Time one delivery may take.
    pub timeout: Duration,
    /// Signs each callback (`X-Sluice-Signature`) when set.
    pub secret: Option<Vec<u8>>,
    /// How long an undelivered callback is retried from the outbox before it is given up.
    pub expiry: Duration,
    /// Wait before the first retry from the outbox; doubles up to `max_wait`.
    pub min_wait: Duration,
    pub max_wait: Duration,
    /// Which URLs may receive callbacks.
    pub policy: OutboundPolicy,
    /// Outbox deliveries this worker makes at once.
    pub concurrency: usize,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            secret: None,
            expiry: Duration::from_secs(24 * 3600),
            min_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(300),
            policy: OutboundPolicy::default(),
            concurrency: 32,
        }
    }
}

/// Why a delivery did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another try later (connection failure, timeout, 408, 429, 5xx).
    #[error("{0}")]
    Retryable(String),
    /// Will not succeed by trying again (denied URL, other 4xx).
    #[error("{0}")]
    Refused(String),
}

/// Pooled HTTP clients for callbacks: hyper's for plain `http://` URLs, reqwest's for `https://`.
pub struct Callbacks {
    plain: sluice_outbound::PlainClient,
    client: reqwest::Client,
    pub cfg: CallbackConfig,
}

impl Callbacks {
    pub fn new(cfg: CallbackConfig) -> Self {
        let client = cfg
            .policy
            .client(cfg.timeout)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .expect("the HTTP client's settings are valid");
        Self { plain: cfg.policy.plain_client(cfg.timeout), client, cfg }
    }

    /// One delivery of a callback with the contract `headers` and `body`.
    pub async fn send(&self, url: &str, headers: &http::HeaderMap, body: Bytes) -> Result<(), DeliveryError> {
        // Checked here for a clear refusal; the client's resolver enforces it again at connect time.
        let checked = match self.cfg.policy.check(url).await {
            Ok(checked) => checked,
            Err(denied) => {
                metrics::callback(metrics::Delivery::Refused);
                return Err(DeliveryError::Refused(format!("callback URL refused: {denied}")));
            }
        };
        let mut headers = headers.clone();
        if let Some(secret) = &self.cfg.secret {
            let signature = sluice_contracts::signature::sign(secret, chrono::Utc::now().timestamp(), &body);
            let name = http::HeaderName::try_from(h::SIGNATURE).expect("a valid header name");
            headers.insert(name, http::HeaderValue::from_str(&signature).expect("a signature is ASCII"));
        }
        let answered = if checked.url.scheme() == "http" {
            self.plain.post(&checked, headers, body).await.map_err(|err| err.to_string())
        } else {
            let request = self.client.post(checked.url).headers(headers).body(body);
            request.send().await.map(|response| response.status()).map_err(|err| err.to_string())
        };
        match answered {
            Ok(status) if status.is_success() => {
                metrics::callback(metrics::Delivery::Delivered);
                Ok(())
            }
            Ok(status) => {
                let status = status.as_u16();
                metrics::callback(metrics::Delivery::Failed);
                let error = format!("callback receiver answered {status}");
                if status == 408 || status == 429 || status >= 500 {
                    Err(DeliveryError::Retryable(error))
                } else {
                    Err(DeliveryError::Refused(error))
                }
            }
            Err(err) => {
                metrics::callback(metrics::Delivery::Failed);
                Err(DeliveryError::Retryable(format!("callback not delivered: {err}")))
            }
        }
    }
}
