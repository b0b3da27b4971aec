//! Authentication of `/system/*` (and, when asked, invocation routes): basic auth like OpenFaaS, or bearer
//! tokens. Secrets are compared in constant time.

use axum::{
    extract::{Request, State},
    http::header::AUTHORIZATION,
    middleware::Next,
    response::Response,
};
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::{ApiError, App};

/// Accepted credentials; a request needs to match one of them.
#[derive(Clone, Default)]
pub struct Credentials {
    /// User and password for `Authorization: Basic`.
    pub basic: Option<(String, String)>,
    /// Tokens for `Authorization: Bearer`.
    pub tokens: Vec<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("basic_user", &self.basic.as_ref().map(|(u, _)| u))
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.basic.is_none() && self.tokens.is_empty()
    }

    /// Whether an `Authorization` header value matches.
    pub fn accepts(&self, authorization: &str) -> bool {
        if let Some(token) = authorization.strip_prefix("Bearer ") {
            // Every token is compared, so timing does not reveal which one matched.
            return self.tokens.iter().fold(false, |ok, t| same(t.as_bytes(), token.trim().as_bytes()) | ok);
        }
        let (Some(encoded), Some((user, password))) = (authorization.strip_prefix("Basic "), &self.basic) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else { return false };
        same(&decoded[..colon], user.as_bytes()) & same(&decoded[colon + 1..], password.as_bytes())
    }
}

/// Middleware: 401 unless the request carries accepted credentials (when any are configured).
pub async fn require(State(app): State<App>, request: Request, next: Next) -> Result<Response, ApiError> {
    if let Some(credentials) = app.cfg.credentials.as_ref().filter(|c| !c.is_empty()) {
        let header = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !credentials.accepts(header) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer() {
        let creds = Credentials { basic: Some(("admin".into(), "s3cret".into())), tokens: vec!["tok".into()] };
        let basic = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s));
        assert!(creds.accepts(&basic("admin:s3cret")));
        assert!(!creds.accepts(&basic("admin:wrong")));
        assert!(!creds.accepts(&basic("admins3cret")));
        assert!(creds.accepts("Bearer tok"));
        assert!(!creds.accepts("Bearer other"));
        assert!(!creds.accepts(""));
    }
}
