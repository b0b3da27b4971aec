//! Who may use the admin API: basic auth like OpenFaaS, or bearer tokens. Secrets are compared in constant
//! time. Shared by the gateway (`/system/*`, `/metrics`) and the CloudEvents ingress.

use base64::Engine;
use subtle::ConstantTimeEq;

/// Shortest password or token accepted: shorter ones can be guessed online.
pub const MIN_SECRET_LEN: usize = 12;

/// The user name of a generated admin credential (OpenFaaS's `faas-cli login` default).
pub const ADMIN_USER: &str = "admin";

/// Request header Sluice puts on every request it makes on a caller's behalf (callbacks, SNS confirmations);
/// admin routes refuse requests that carry it, so a URL a caller names can never reach them.
pub const OUTBOUND_MARKER: &str = "x-sluice-outbound";

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

/// Why a configured secret is refused at start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WeakSecret {
    #[error("{what} is empty")]
    Empty { what: String },
    #[error("{what} is {len} characters long; use at least {MIN_SECRET_LEN}")]
    TooShort { what: String, len: usize },
}

/// Refuses an empty or short password or token; `what` names it in the message.
pub fn check_strength(what: &str, secret: &str) -> Result<(), WeakSecret> {
    let len = secret.chars().count();
    match len {
        0 => Err(WeakSecret::Empty { what: what.to_owned() }),
        n if n < MIN_SECRET_LEN => Err(WeakSecret::TooShort { what: what.to_owned(), len: n }),
        _ => Ok(()),
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.basic.is_none() && self.tokens.is_empty()
    }

    /// One generated secret, accepted as the password of [`ADMIN_USER`] and as a bearer token.
    pub fn admin(secret: &str) -> Self {
        Self { basic: Some((ADMIN_USER.to_owned(), secret.to_owned())), tokens: vec![secret.to_owned()] }
    }

    /// These credentials and `other`'s tokens.
    pub fn with_tokens(mut self, other: impl IntoIterator<Item = String>) -> Self {
        self.tokens.extend(other);
        self
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

    /// Whether a request with these headers may pass: it carries accepted credentials and was not made by
    /// Sluice on a caller's behalf.
    pub fn admits(&self, headers: &http::HeaderMap) -> bool {
        if headers.contains_key(OUTBOUND_MARKER) {
            return false;
        }
        let header = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        self.accepts(header)
    }
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

    #[test]
    fn outbound_requests_are_never_admitted() {
        let creds = Credentials::admin("a-long-enough-secret");
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, "Bearer a-long-enough-secret".parse().unwrap());
        assert!(creds.admits(&headers));
        headers.insert(OUTBOUND_MARKER, "1".parse().unwrap());
        assert!(!creds.admits(&headers));
    }

    #[test]
    fn weak_secrets() {
        assert_eq!(check_strength("the password", ""), Err(WeakSecret::Empty { what: "the password".into() }));
        assert!(check_strength("x", "short").unwrap_err().to_string().contains("at least 12"));
        assert!(check_strength("x", "twelve chars").is_ok());
    }
}
