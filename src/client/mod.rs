//! Client commands: a thin HTTP client over the gateway's API.

pub mod calls;
pub mod dead;
pub mod events;
pub mod functions;
pub mod health;
pub mod invoke;
mod logs;
pub mod spec_file;
pub mod watch;

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, Response};

use crate::args::GatewayClientArgs;

/// The gateway, with credentials applied to every request.
pub struct Gateway {
    http: reqwest::Client,
    args: GatewayClientArgs,
}

impl Gateway {
    pub fn new(mut args: GatewayClientArgs) -> Self {
        if args.token.is_none() && args.user.is_none() {
            args.token = crate::serve::auth::local_admin_password(&args.gateway, &args.data_dir);
        }
        Self { http: reqwest::Client::new(), args }
    }

    /// A request to `path`; a `/system` route gets `?namespace=` when the command names one.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = format!("{}{path}", self.args.gateway.trim_end_matches('/'));
        let mut request = self.http.request(method, url);
        if let Some(namespace) = &self.args.namespace
            && path.starts_with("/system/")
            && !path.starts_with("/system/namespace")
        {
            request = request.query(&[("namespace", namespace)]);
        }
        match (&self.args.token, &self.args.user) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some(user)) => request.basic_auth(user, self.args.password.as_deref()),
            (None, None) => request,
        }
    }

    /// The namespace the command names, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.args.namespace.as_deref()
    }

    /// How an invocation path names `function`: `NAME.NAMESPACE` when the command names a namespace.
    pub fn qualified(&self, function: &str) -> String {
        match self.namespace() {
            Some(namespace) if !function.contains('.') => format!("{function}.{namespace}"),
            _ => function.to_owned(),
        }
    }

    /// Sends `request`; a non-2xx answer becomes an error quoting the gateway's `{"error": ...}`.
    pub async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response = self.send_raw(request).await?;
        Self::check(response).await
    }

    /// Sends `request`, whatever status comes back.
    pub async fn send_raw(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        request
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {} (is `sluice up` running?)", self.args.gateway))
    }

    /// A non-2xx answer as an error quoting the gateway's `{"error": ...}`.
    pub async fn check(response: Response) -> anyhow::Result<Response> {
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or(text);
        bail!("gateway answered {status}: {message}")
    }
}
