//! The `http` runtime: calls go to an existing HTTP service at the function's `upstream` URL.
//!
//! One pooled client serves every function, so connections to an upstream are reused across calls.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sluice_contracts::FunctionSpec;
use tokio::time::Instant;

use crate::{Body, FunctionResponse, Invocation, Runtime, RuntimeConfig, RuntimeError};

/// Forwards calls to `upstream`.
#[derive(Clone, Debug)]
pub struct HttpRuntime {
    client: reqwest::Client,
    cfg: RuntimeConfig,
}

impl HttpRuntime {
    pub fn new(cfg: RuntimeConfig) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // One attempt is one request: a call's retries are its function's retry policy, and the client's own
            // retries clone every request to be able to.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .build()
            .expect("the HTTP client's settings are valid");
        Self { client, cfg }
    }

    /// The request URL: upstream, then the call's path and query.
    pub fn url(upstream: &str, call: &Invocation) -> String {
        let mut url = upstream.trim_end_matches('/').to_owned();
        url.push_str(&call.path);
        if !call.query.is_empty() {
            url.push('?');
            url.push_str(&call.query);
        }
        url
    }
}

fn backend(err: reqwest::Error) -> RuntimeError {
    RuntimeError::Backend(Box::new(err))
}

impl Runtime for HttpRuntime {
    async fn deploy(&self, spec: &FunctionSpec) -> Result<(), RuntimeError> {
        let upstream = spec.upstream.as_deref().unwrap_or_default();
        reqwest::Url::parse(upstream).map(drop).map_err(|e| RuntimeError::Backend(Box::new(e)))
    }

    async fn invoke(
        &self,
        spec: &FunctionSpec,
        call: Invocation,
        deadline: Instant,
    ) -> Result<FunctionResponse, RuntimeError> {
        let url = Self::url(spec.upstream.as_deref().unwrap_or_default(), &call);
        self.forward(url, call, deadline).await
    }
}

impl HttpRuntime {
    /// Sends `call` to `url` and reads the whole response, within `deadline`.
    pub(crate) async fn forward(
        &self,
        url: String,
        call: Invocation,
        deadline: Instant,
    ) -> Result<FunctionResponse, RuntimeError> {
        let started = Instant::now();
        let body = match call.body {
            Body::Bytes(bytes) => reqwest::Body::from(bytes),
            Body::Reader(reader) => reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(reader)),
        };
        let request = self.client.request(call.method, url).headers(call.headers).body(body);
        let limit = self.cfg.max_response_bytes;
        let exchange = async {
            let response = request.send().await.map_err(backend)?;
            let status = response.status();
            let headers = response.headers().clone();
            let mut body = BytesMut::new();
            let mut chunks = response.bytes_stream();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(backend)?;
                if body.len() + chunk.len() > limit {
                    return Err(RuntimeError::Backend(
                        format!("upstream response is larger than {limit} bytes").into(),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(FunctionResponse { status, headers, body: body.freeze(), stderr: Bytes::new() })
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or_else(|_| Err(RuntimeError::Timeout(deadline.saturating_duration_since(started))))
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, routing::any};

    use super::*;

    async fn upstream() -> String {
        let app = Router::new().fallback(any(|req: axum::extract::Request| async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let marker = parts.headers.get("x-marker").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            if parts.uri.path() == "/slow" {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            format!("{} {} {} {}", parts.method, parts.uri, marker, String::from_utf8_lossy(&body))
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/base")
    }

    fn spec(upstream: String) -> FunctionSpec {
        FunctionSpec { service: "t".into(), upstream: Some(upstream), ..Default::default() }
    }

    #[tokio::test]
    async fn forwards_method_path_query_headers_and_body() {
        let rt = HttpRuntime::new(RuntimeConfig::default());
        let mut call = Invocation::post("c", "payload");
        call.method = http::Method::PUT;
        call.path = "/x/y".into();
        call.query = "a=1".into();
        call.headers.insert("x-marker", "m1".parse().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = rt.invoke(&spec(upstream().await), call, deadline).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(String::from_utf8_lossy(&r.body), "PUT /base/x/y?a=1 m1 payload");
    }

    #[tokio::test]
    async fn refused_connection_is_a_backend_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let rt = HttpRuntime::new(RuntimeConfig::default());
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = rt.invoke(&spec(format!("http://{addr}")), Invocation::post("c", ""), deadline).await.unwrap_err();
        assert!(matches!(err, RuntimeError::Backend(_)), "{err}");
    }

    #[tokio::test]
    async fn deadline_ends_the_request() {
        let rt = HttpRuntime::new(RuntimeConfig::default());
        let mut call = Invocation::post("c", "");
        call.path = "/slow".into();
        let base = upstream().await.replace("/base", "");
        let deadline = Instant::now() + Duration::from_millis(300);
        let err = rt.invoke(&spec(base), call, deadline).await.unwrap_err();
        assert!(matches!(err, RuntimeError::Timeout(_)), "{err}");
    }
}
