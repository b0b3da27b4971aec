//! `POST /hooks/{name}`: any system's webhook becomes a CloudEvent (`source` `/hooks/{name}`).
//!
//! When a secret named `webhook-{name}` exists (`/system/secrets`), every request must be signed with it:
//! GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, or the generic
//! `X-Sluice-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (the callbacks' scheme; `t` within
//! five minutes). A missing or wrong signature is a 401 and nothing is stored. GitHub's `X-GitHub-Event` becomes
//! the type `com.github.<event>` and `X-GitHub-Delivery` the event id, so a redelivered hook runs once.

use axum::{
    body::Body,
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use sha2::Sha256;
use sluice_contracts::{EventMessage, event::subject_token, names, signature};

use crate::{
    http::{ConnectorError, ConnectorState, accept, read_body},
    metrics, triggers,
};

/// `type` of webhook events without a more specific one.
pub const WEBHOOK_TYPE: &str = "sluice.webhook.received";
/// Checks the signature; returns the delivery id it vouches for: a hash of the signed body (GitHub signs only
/// the body) or of the timestamped signature (which changes with every genuine delivery).
pub(crate) fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<String, &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let digest = |bytes: &[u8]| hex::encode(&<Sha256 as sha2::Digest>::digest(bytes)[..16]);
    if let Some(github) = header("x-hub-signature-256") {
        signature::verify_github(secret, github, body)?;
        return Ok(format!("sha256-{}", digest(body)));
    }
    let generic = header("x-sluice-signature").ok_or("the webhook requires a signature")?;
    signature::verify(secret, generic, body, chrono::Utc::now().timestamp())?;
    Ok(format!("sig-{}", digest(generic.as_bytes())))
}

/// `{name}` of `/hooks/{name}`.
#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct HookPath {
    /// The hook's name: its secret is `webhook-{name}`, its events' source `/hooks/{name}`.
    pub name: String,
}

pub async fn receive(
    State(state): State<ConnectorState>,
    Path(HookPath { name }): Path<HookPath>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConnectorError> {
    if !names::is_key_safe(&name, names::MAX_HOOK_NAME) {
        metrics::rejected("webhook", "name");
        return Err(ConnectorError::BadRequest(format!(
            "invalid webhook name: use 1-{} letters, digits, '-', '_' or '.'",
            names::MAX_HOOK_NAME
        )));
    }
    let body = read_body(&headers, body, state.max_body).await.inspect_err(|_| metrics::rejected("webhook", "body"))?;
    let secret = state
        .topology
        .secrets
        .get(names::secret_key(&state.secrets_namespace, &format!("webhook-{name}")))
        .await
        .map_err(|e| ConnectorError::NotStored(format!("reading the webhook secret: {e}")))?;
    let signed_id = match &secret {
        Some(secret) => match verify(secret, &headers, &body) {
            Ok(id) => Some(id),
            Err(why) => {
                metrics::rejected("webhook", "signature");
                tracing::warn!(hook = %name, why, "webhook refused");
                return Err(ConnectorError::Unauthorized(why.to_owned()));
            }
        },
        None => None,
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut event = EventMessage::new(triggers::webhook_source(&name), WEBHOOK_TYPE, body);
    if let Some(kind) = header("x-github-event") {
        event.event_type = format!("com.github.{kind}");
    }
    // A signed delivery's id comes from what the signature covers: the delivery id headers are not signed, so
    // a replayed body with a new one would otherwise run again.
    if let Some(id) = signed_id.or_else(|| header("x-github-delivery").or_else(|| header("x-request-id"))) {
        event.id = id;
    }
    event.content_type = header("content-type");
    let subject = format!("{}.hooks.{}", names::EVENTS_PREFIX, subject_token(&name));
    accept(&state, "webhook", subject, event, &headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_and_generic_signatures() {
        let body = br#"{"ref":"main"}"#;
        let mut headers = HeaderMap::new();
        headers.insert("x-hub-signature-256", signature::sign_github(b"s", body).parse().unwrap());
        assert!(verify(b"s", &headers, body).is_ok());
        assert!(verify(b"other", &headers, body).is_err());

        let t = chrono::Utc::now().timestamp();
        let mut generic = HeaderMap::new();
        generic.insert("x-sluice-signature", signature::sign(b"s", t, body).parse().unwrap());
        assert!(verify(b"s", &generic, body).is_ok());
        assert!(verify(b"s", &generic, b"tampered").is_err());
        assert!(verify(b"s", &HeaderMap::new(), body).is_err());
    }
}
