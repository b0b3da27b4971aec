//! The `http` runtime: calls go to an existing HTTP service at the function's `upstream` URL.
//!
//! One pooled client serves every function, so connections to an upstream are reused across calls. A plain
//! `http://` URL (every container's, and most services') goes through hyper's client directly, handed a parsed
//! `Uri`: reqwest parses each request's URL three times over (its redirect layer does even with redirects
//! off), which was a tenth of the worker's instructions per call. `https://` upstreams, and URLs that need
//! encoding before they are a valid `Uri`, go through reqwest, which brings TLS and that encoding.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use sluice_contracts::FunctionSpec;
use tokio::time::Instant;

use crate::{Body, FunctionResponse, Invocation, Runtime, RuntimeConfig, RuntimeError};

/// What a request to a plain `http://` upstream carries.
type PlainBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Forwards calls to `upstream`.
#[derive(Clone, Debug)]
pub struct HttpRuntime {
    plain: Client<HttpConnector, PlainBody>,
    client: reqwest::Client,
    cfg: RuntimeConfig,
}

/// How long an unused pooled connection to an upstream is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Unused pooled connections kept per upstream.
const POOL_PER_HOST: usize = 256;

impl HttpRuntime {
    pub fn new(cfg: RuntimeConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let plain = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_PER_HOST)
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(POOL_PER_HOST)
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true)
            // One attempt is one request: a call's retries are its function's retry policy, and the client's own
            // retries clone every request to be able to.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .build()
            .expect("the HTTP client's settings are valid");
        Self { plain, client, cfg }
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

fn backend(err: impl std::error::Error + Send + Sync + 'static) -> RuntimeError {
    RuntimeError::Backend(Box::new(err))
}

/// A request that got no answer, with every cause (`sluice_contracts::causes`).
#[derive(Debug, thiserror::Error)]
#[error("request to {url} failed: {causes}")]
struct Failed {
    url: String,
    causes: String,
}

impl Failed {
    fn new(url: &http::Uri, err: &(dyn std::error::Error + 'static)) -> Self {
        Self { url: url.to_string(), causes: sluice_contracts::causes::with_causes(err) }
    }
}

impl Runtime for HttpRuntime {
    async fn deploy(&self, spec: &FunctionSpec) -> Result<(), RuntimeError> {
        let upstream = spec.upstream.as_deref().unwrap_or_default();
        reqwest::Url::parse(upstream).map(drop).map_err(backend)
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
        let plain = url.starts_with("http://").then(|| url.parse::<http::Uri>().ok()).flatten();
        let exchange = async {
            match plain {
                Some(uri) => self.send_plain(uri, call).await,
                None => self.send(url, call).await,
            }
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or_else(|_| Err(RuntimeError::Timeout(deadline.saturating_duration_since(started))))
    }

    /// Through hyper, to a plain `http://` upstream.
    async fn send_plain(&self, uri: http::Uri, call: Invocation) -> Result<FunctionResponse, RuntimeError> {
        let body: PlainBody = match call.body {
            Body::Bytes(bytes) => Full::new(bytes).map_err(|never| match never {}).boxed_unsync(),
            Body::Reader(reader) => {
                StreamBody::new(tokio_util::io::ReaderStream::new(reader).map_ok(Frame::data)).boxed_unsync()
            }
        };
        let mut request = http::Request::new(body);
        *request.method_mut() = call.method;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = call.headers;
        // What reqwest sends when the caller gave none; an upstream may route on it.
        request.headers_mut().entry(http::header::ACCEPT).or_insert(http::HeaderValue::from_static("*/*"));
        let response = self.plain.request(request).await.map_err(|err| backend(Failed::new(&uri, &err)))?;
        let (parts, mut incoming) = response.into_parts();
        let mut body = BytesMut::new();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|err| backend(Failed::new(&uri, &err)))?;
            if let Ok(chunk) = frame.into_data() {
                self.keep(&mut body, &chunk)?;
            }
        }
        Ok(FunctionResponse { status: parts.status, headers: parts.headers, body: body.freeze(), stderr: Bytes::new() })
    }

    /// Through reqwest: `https://` upstreams, and URLs that are no valid `Uri` as they are.
    async fn send(&self, url: String, call: Invocation) -> Result<FunctionResponse, RuntimeError> {
        let body = match call.body {
            Body::Bytes(bytes) => reqwest::Body::from(bytes),
            Body::Reader(reader) => reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(reader)),
        };
        let request = self.client.request(call.method, url).headers(call.headers).body(body);
        let response = request.send().await.map_err(backend)?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = BytesMut::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            self.keep(&mut body, &chunk.map_err(backend)?)?;
        }
        Ok(FunctionResponse { status, headers, body: body.freeze(), stderr: Bytes::new() })
    }

    /// Adds `chunk` to a response body, failing once the body would pass the response limit.
    fn keep(&self, body: &mut BytesMut, chunk: &Bytes) -> Result<(), RuntimeError> {
        let limit = self.cfg.max_response_bytes;
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(RuntimeError::Backend(format!("upstream response is larger than {limit} bytes").into()));
        }
        body.extend_from_slice(chunk);
        Ok(())
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
    async fn refused_connection_is_a_backend_error_naming_the_url_and_the_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let rt = HttpRuntime::new(RuntimeConfig::default());
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = rt.invoke(&spec(format!("http://{addr}")), Invocation::post("c", ""), deadline).await.unwrap_err();
        assert!(matches!(err, RuntimeError::Backend(_)), "{err}");
        let text = err.to_string();
        assert!(text.contains(&format!("http://{addr}/")) && text.contains("onnection refused"), "{text}");
    }

    #[tokio::test]
    async fn a_streamed_body_goes_through_and_a_response_past_the_limit_fails() {
        let rt = HttpRuntime::new(RuntimeConfig { max_response_bytes: 64 });
        let mut call = Invocation::post("c", "");
        call.body = Body::Reader(Box::pin(std::io::Cursor::new(b"streamed".to_vec())));
        let deadline = Instant::now() + Duration::from_secs(10);
        let upstream = upstream().await;
        let r = rt.invoke(&spec(upstream.clone()), call, deadline).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&r.body), "POST /base  streamed");
        let big = Invocation::post("c", vec![b'x'; 100]);
        let err = rt.invoke(&spec(upstream), big, deadline).await.unwrap_err();
        assert!(err.to_string().contains("larger than 64 bytes"), "{err}");
    }

    #[tokio::test]
    async fn a_path_that_needs_encoding_goes_through_encoded() {
        // No valid `Uri` as it is, so reqwest sends it, percent-encoded as before.
        let rt = HttpRuntime::new(RuntimeConfig::default());
        let mut call = Invocation::post("c", "p");
        call.path = "/with space".into();
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = rt.invoke(&spec(upstream().await), call, deadline).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&r.body), "POST /base/with%20space  p");
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
