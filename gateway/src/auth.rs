//! Guards for admin routes: `/system/*`, `/metrics`, the CloudEvents ingress and, when asked, invocations.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use sluice_contracts::credentials::{Credentials, OUTBOUND_MARKER};

use crate::ApiError;

/// What a guarded route accepts. `None` admits anyone (only with `--insecure-no-auth`), but never a request
/// Sluice itself makes on a caller's behalf.
#[derive(Clone, Debug)]
pub struct Guard(Option<Arc<Credentials>>);

impl Guard {
    pub fn new(credentials: Option<Credentials>) -> Self {
        Self(credentials.filter(|c| !c.is_empty()).map(Arc::new))
    }

    /// Admits what this guard admits, and these extra bearer tokens.
    pub fn with_tokens(&self, tokens: &[String]) -> Self {
        match &self.0 {
            Some(c) if !tokens.is_empty() => Self(Some(Arc::new((**c).clone().with_tokens(tokens.iter().cloned())))),
            _ => self.clone(),
        }
    }

    /// Whether anyone may pass.
    pub fn is_open(&self) -> bool {
        self.0.is_none()
    }

    fn admits(&self, headers: &axum::http::HeaderMap) -> bool {
        match &self.0 {
            Some(credentials) => credentials.admits(headers),
            None => !headers.contains_key(OUTBOUND_MARKER),
        }
    }

    /// `router` with every route behind this guard.
    pub fn protect<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        router.route_layer(middleware::from_fn_with_state(self.clone(), require))
    }

    /// [`Guard::protect`] for routes that are documented in the OpenAPI document.
    pub fn protect_api<S: Clone + Send + Sync + 'static>(
        &self,
        router: aide::axum::ApiRouter<S>,
    ) -> aide::axum::ApiRouter<S> {
        router.route_layer(middleware::from_fn_with_state(self.clone(), require))
    }
}

/// Who may use the guarded routes: the admin credentials, and extra bearer tokens for `/metrics` and `/events`.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// `None` only with `--insecure-no-auth`.
    pub admin: Option<Credentials>,
    pub metrics_tokens: Vec<String>,
    pub events_tokens: Vec<String>,
    /// Whether `/events` takes events from anyone (`--insecure-open-events`).
    pub open_events: bool,
}

impl Access {
    /// The guard of `/system/*` (and of invocations, when protected).
    pub fn admin_guard(&self) -> Guard {
        Guard::new(self.admin.clone())
    }

    /// The guard of `/metrics`.
    pub fn metrics_guard(&self) -> Guard {
        self.admin_guard().with_tokens(&self.metrics_tokens)
    }

    /// The guard of `/events`.
    pub fn events_guard(&self) -> Guard {
        if self.open_events { Guard::new(None) } else { self.admin_guard().with_tokens(&self.events_tokens) }
    }

    /// Whether an `Authorization` header value is one of Sluice's own admin credentials.
    pub fn is_admin_credential(&self, authorization: &str) -> bool {
        self.admin.as_ref().is_some_and(|c| c.accepts(authorization))
    }
}

/// Sent by the console with its requests: a 401 then comes without `WWW-Authenticate`, so the browser does not
/// take over with its own password prompt (the console asks itself).
pub const CONSOLE_HEADER: &str = "x-sluice-console";

/// Middleware: 401 unless the guard admits the request.
async fn require(State(guard): State<Guard>, request: Request, next: Next) -> Result<Response, ApiError> {
    if !guard.admits(request.headers()) {
        if request.headers().contains_key(CONSOLE_HEADER) {
            let mut refused = ApiError::Unauthorized.into_response();
            refused.headers_mut().remove(axum::http::header::WWW_AUTHENTICATE);
            return Ok(refused);
        }
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(request).await)
}
