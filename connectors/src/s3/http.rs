//! S3 notifications over HTTP: MinIO's webhook target (`POST /connectors/s3/minio`, answering its `HEAD` probe)
//! and AWS S3 → SNS → HTTPS subscriptions (`POST /connectors/s3/sns`, confirming `SubscriptionConfirmation`s and
//! unwrapping `Notification`s).
//!
//! Both need the secret `connector-s3-token` (`/system/secrets`): MinIO sends it as `Authorization: Bearer <token>`
//! (MinIO's `MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN`), SNS subscriptions carry it in the endpoint URL
//! (`…/connectors/s3/sns?token=<token>`). Without the secret the endpoints answer 403, so nobody can forge
//! object events; a wrong or missing token gets a 401.
//!
//! A `SubscribeURL` is visited only when its host is an SNS endpoint (`sns.<region>.amazonaws.com[.cn]`, over
//! https) or one the operator allowed (`--sns-subscribe-host`), under the outbound URL policy, without
//! following redirects; the sender learns only whether it worked.

use axum::{
    Json,
    body::Body,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;
use sluice_contracts::outbound::{OutboundPolicy, Rule, canonical};
use sluice_outbound::Enforce;
use std::time::Duration;
use subtle::ConstantTimeEq;

use super::records::{self, Notification};
use crate::{
    http::{ConnectorError, ConnectorState, read_body, store},
    metrics,
};

/// Name of the secret that S3 notification requests must present, when it exists.
pub const TOKEN_SECRET: &str = "connector-s3-token";

/// Confirms SNS subscriptions: which hosts may be visited, under which outbound policy.
pub struct SnsConfirmer {
    policy: OutboundPolicy,
    /// Hosts allowed besides AWS's SNS endpoints.
    hosts: Vec<Rule>,
    client: reqwest::Client,
}

impl SnsConfirmer {
    pub fn new(policy: OutboundPolicy, hosts: Vec<Rule>) -> Self {
        let client = policy.client(Duration::from_secs(10)).build().expect("the HTTP client's settings are valid");
        Self { policy, hosts, client }
    }

    /// Whether `url` may be visited to confirm a subscription.
    fn allowed(&self, url: &url::Url) -> bool {
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let aws = url.scheme() == "https" && is_sns_endpoint(&host);
        let ip = host.trim_matches(['[', ']']).parse().ok().map(canonical);
        let by_rule =
            self.hosts.iter().any(|rule| rule.matches_host(&host) || ip.is_some_and(|ip| rule.matches_ip(ip)));
        aws || by_rule
    }

    /// Visits `url`; the error says nothing of the remote answer, which goes to the log only.
    async fn confirm(&self, url: &str) -> Result<(), ConnectorError> {
        let checked = self
            .policy
            .check_syntax(url)
            .map_err(|e| ConnectorError::Forbidden(format!("SubscribeURL refused: {e}")))?;
        if !self.allowed(&checked.url) {
            return Err(ConnectorError::Forbidden(
                "SubscribeURL refused: its host is not an SNS endpoint (https://sns.<region>.amazonaws.com) \
                 nor allowed by --sns-subscribe-host"
                    .into(),
            ));
        }
        self.policy.check(url).await.map_err(|e| ConnectorError::Forbidden(format!("SubscribeURL refused: {e}")))?;
        match self.client.get(checked.url).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                tracing::warn!(status = %response.status(), "SNS subscription confirmation refused by the remote end");
                Err(ConnectorError::Upstream("the subscription could not be confirmed".into()))
            }
            Err(err) => {
                tracing::warn!(%err, "SNS subscription confirmation failed");
                Err(ConnectorError::Upstream("the subscription could not be confirmed".into()))
            }
        }
    }
}

/// S3's rule: 3-63 lowercase letters, digits, `.` and `-` (bucket names become subject tokens).
fn is_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// `sns.<region>.amazonaws.com` or `sns.<region>.amazonaws.com.cn`.
fn is_sns_endpoint(host: &str) -> bool {
    let rest = host.strip_suffix(".amazonaws.com").or_else(|| host.strip_suffix(".amazonaws.com.cn"));
    let Some(region) = rest.and_then(|r| r.strip_prefix("sns.")) else { return false };
    !region.is_empty() && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

async fn check_token(state: &ConnectorState, given: Option<&str>) -> Result<(), ConnectorError> {
    let expected = state
        .topology
        .secrets
        .get(sluice_contracts::names::secret_key(&state.secrets_namespace, TOKEN_SECRET))
        .await
        .map_err(|e| ConnectorError::NotStored(format!("reading the connector token: {e}")))?;
    match expected {
        None => {
            metrics::rejected("s3", "no token configured");
            Err(ConnectorError::Forbidden(format!(
                "S3 notifications are refused until the secret {TOKEN_SECRET:?} is set; send it as a bearer token \
                 (MinIO) or as ?token= in the subscription URL (SNS)"
            )))
        }
        Some(expected) if given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(&expected))) => Ok(()),
        Some(_) => {
            metrics::rejected("s3", "token");
            Err(ConnectorError::Unauthorized("a valid connector token is required".into()))
        }
    }
}

/// Stores one event per record; answers 202 with their ids.
async fn accept_records(state: &ConnectorState, notification: Notification) -> Result<Response, ConnectorError> {
    if let Some(bad) = notification.records.iter().find(|r| !is_bucket_name(&r.s3.bucket.name)) {
        metrics::rejected("s3", "bucket");
        return Err(ConnectorError::BadRequest(format!("{:?} is not an S3 bucket name", bad.s3.bucket.name)));
    }
    let mut ids = Vec::new();
    for record in &notification.records {
        let event = records::to_event(record);
        store(state, "s3", records::subject(&record.s3.bucket.name), &event).await?;
        ids.push(event.id);
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"events": ids}))).into_response())
}

fn parse_records(bytes: &[u8]) -> Result<Notification, ConnectorError> {
    serde_json::from_slice(bytes).map_err(|e| {
        metrics::rejected("s3", "malformed");
        ConnectorError::BadRequest(format!("not an S3 event notification (Records): {e}"))
    })
}

/// MinIO probes its webhook target with `HEAD` before it sends events.
pub async fn minio_probe() -> StatusCode {
    StatusCode::OK
}

pub async fn minio(
    State(state): State<ConnectorState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConnectorError> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    check_token(&state, bearer).await?;
    let body = read_body(&headers, body, state.max_body).await?;
    accept_records(&state, parse_records(&body)?).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn sns_endpoints() {
        assert!(super::is_sns_endpoint("sns.us-east-1.amazonaws.com"));
        assert!(super::is_sns_endpoint("sns.cn-north-1.amazonaws.com.cn"));
        assert!(!super::is_sns_endpoint("evil.com"));
        assert!(!super::is_sns_endpoint("sns..amazonaws.com"));
        assert!(!super::is_sns_endpoint("bucket.s3.amazonaws.com"));
        assert!(!super::is_sns_endpoint("sns.us-east-1.amazonaws.com.evil.com"));
    }
}

#[derive(Deserialize)]
pub(crate) struct SnsMessage {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "SubscribeURL", default)]
    subscribe_url: Option<String>,
    #[serde(rename = "TopicArn", default)]
    topic_arn: String,
}

/// `?token=` of the SNS endpoint (SNS cannot send headers of its own).
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct SnsQuery {
    /// The secret `connector-s3-token`.
    pub token: Option<String>,
}

pub async fn sns(
    State(state): State<ConnectorState>,
    Query(query): Query<SnsQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConnectorError> {
    check_token(&state, query.token.as_deref()).await?;
    let body = read_body(&headers, body, state.max_body).await?;
    let message: SnsMessage = serde_json::from_slice(&body).map_err(|e| {
        metrics::rejected("s3", "malformed");
        ConnectorError::BadRequest(format!("not an SNS message: {e}"))
    })?;
    match message.kind.as_str() {
        "SubscriptionConfirmation" => {
            let url = message
                .subscribe_url
                .ok_or_else(|| ConnectorError::BadRequest("SubscriptionConfirmation without SubscribeURL".into()))?;
            state.sns.confirm(&url).await?;
            tracing::info!(topic = %message.topic_arn, "SNS subscription confirmed");
            Ok((StatusCode::OK, Json(json!({"confirmed": message.topic_arn}))).into_response())
        }
        "Notification" => {
            // S3 sends a test event when notifications are configured; it names no object.
            let inner: serde_json::Value = serde_json::from_str(&message.message).unwrap_or_default();
            if inner.get("Records").is_none() {
                return Ok((StatusCode::OK, Json(json!({"events": []}))).into_response());
            }
            accept_records(&state, parse_records(message.message.as_bytes())?).await
        }
        _ => Ok(StatusCode::OK.into_response()),
    }
}
