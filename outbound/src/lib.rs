//! Requests Sluice makes on a caller's behalf (callbacks, SNS subscription confirmations), under the outbound
//! URL policy of [`sluice_contracts::outbound`]: the policy's rules are a contract; resolving names and
//! connecting are I/O, and live here.
//!
//! The check when a URL is accepted ([`Enforce::check`]) is for a fast 400; the check at connect time (the
//! resolver of [`Enforce::client`]) is the one that counts, so DNS rebinding between the two reaches nothing
//! denied.

use std::{
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector, connect::dns::Name},
    rt::{TokioExecutor, TokioTimer},
};

use sluice_contracts::{
    credentials::OUTBOUND_MARKER,
    outbound::{CheckedUrl, OutboundPolicy, PolicyError},
};

/// The outbound policy applied to the network.
pub trait Enforce {
    /// Checks `url`, resolving its host name, so every address it points at is checked.
    fn check(&self, url: &str) -> impl Future<Output = Result<CheckedUrl, PolicyError>> + Send;

    /// An HTTP client for requests under this policy: names resolve only to addresses the policy accepts
    /// (checked at connect time), no redirects are followed, and every request is marked as Sluice's own.
    /// Address literals are checked by [`OutboundPolicy::check_syntax`] before each request.
    fn client(&self, timeout: Duration) -> reqwest::ClientBuilder;

    /// The same for plain `http://` URLs, through hyper directly: a request costs a fraction of reqwest's, whose
    /// redirect layer parses every request's URL twice more even with redirects off.
    fn plain_client(&self, timeout: Duration) -> PlainClient;
}

impl Enforce for OutboundPolicy {
    async fn check(&self, url: &str) -> Result<CheckedUrl, PolicyError> {
        let checked = self.check_syntax(url)?;
        if let Some(url::Host::Domain(name)) = checked.url.host() {
            resolve(self, &name.to_ascii_lowercase()).await?;
        }
        Ok(checked)
    }

    fn client(&self, timeout: Duration) -> reqwest::ClientBuilder {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(OUTBOUND_MARKER, reqwest::header::HeaderValue::from_static("1"));
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // One send is one request: Sluice retries deliveries itself (the callback outbox), and the client's
            // own retries clone every request to be able to.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .no_proxy()
            .default_headers(headers)
            .dns_resolver(Arc::new(PolicyResolver(self.clone())))
    }

    fn plain_client(&self, timeout: Duration) -> PlainClient {
        let mut connector = HttpConnector::new_with_resolver(PolicyResolver(self.clone()));
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(connector);
        PlainClient { client, timeout }
    }
}

/// Plain `http://` requests under the outbound policy ([`Enforce::plain_client`]): names resolve only to
/// addresses the policy accepts, nothing is followed, and every request carries the outbound marker.
#[derive(Clone, Debug)]
pub struct PlainClient {
    client: Client<HttpConnector<PolicyResolver>, Full<Bytes>>,
    timeout: Duration,
}

/// How much of an answer is read, and for how long, so that its connection can be used again.
const DRAIN_LIMIT: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Why a plain request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PlainError {
    #[error("{0} is not a plain http:// URL")]
    NotPlain(String),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error("{0}")]
    Failed(String),
}

impl PlainClient {
    /// POSTs `body` with `headers` to `checked` (an `http://` URL; its address literal, if any, was checked by
    /// the policy as `checked` was made, and a name is checked as it resolves); the answer's status.
    pub async fn post(
        &self,
        checked: &CheckedUrl,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> Result<http::StatusCode, PlainError> {
        let url = &checked.url;
        if url.scheme() != "http" {
            return Err(PlainError::NotPlain(url.to_string()));
        }
        let uri: http::Uri = url.as_str().parse().map_err(|_| PlainError::NotPlain(url.to_string()))?;
        let mut request = http::Request::new(Full::new(body));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        request.headers_mut().insert(OUTBOUND_MARKER, http::HeaderValue::from_static("1"));
        let deadline = tokio::time::Instant::now() + self.timeout;
        let response = tokio::time::timeout_at(deadline, self.client.request(request))
            .await
            .map_err(|_| PlainError::TimedOut(self.timeout))?
            .map_err(|err| PlainError::Failed(sluice_contracts::causes::with_causes(&err)))?;
        let status = response.status();
        // Read what little the receiver answers, so its connection goes back to the pool; a longer or slower
        // answer is cut off and its connection closed. The status stands either way.
        let drain = async {
            let mut body = response.into_body();
            let mut read = 0usize;
            while read <= DRAIN_LIMIT
                && let Some(Ok(frame)) = body.frame().await
            {
                read = read.saturating_add(frame.data_ref().map_or(0, Bytes::len));
            }
        };
        let _ = tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + DRAIN_TIME), drain).await;
        Ok(status)
    }
}

/// Resolves `name`, refusing it when any address it resolves to is denied.
async fn resolve(policy: &OutboundPolicy, name: &str) -> Result<Vec<SocketAddr>, PolicyError> {
    policy.check_name(name)?;
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name, 0))
        .await
        .map_err(|e| PolicyError(format!("host {name:?} does not resolve: {e}")))?
        .collect();
    let ips: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
    policy.check_addresses(Some(name), &ips)?;
    Ok(addresses)
}

/// Name resolution that applies the policy to what it resolves, so the client connects only to checked
/// addresses.
#[derive(Clone, Debug)]
struct PolicyResolver(OutboundPolicy);

impl tower_service::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = PolicyError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, PolicyError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), PolicyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.0.clone();
        let name = name.as_str().to_ascii_lowercase();
        Box::pin(async move { Ok(resolve(&policy, &name).await?.into_iter()) })
    }
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let name = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            let addresses = resolve(&policy, &name).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_contracts::outbound::Rule;

    fn rules(list: &[&str]) -> Vec<Rule> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn this_host_metadata_and_link_local_are_denied_by_default() {
        let policy = OutboundPolicy::default();
        assert!(policy.check("http://10.1.2.3:9000/cb").await.is_ok(), "private ranges are allowed");
        assert!(policy.check("http://172.17.0.2:9000/cb").await.is_ok(), "the Docker bridge is allowed");
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/x",
            "http://metadata.google.internal/",
            "http://127.0.0.1:9000/cb",
            "http://localhost:9000/cb",
            "http://[::1]/x",
            "http://0:8080/",
            "http://0.0.0.0:8080/",
            "http://[::]:8080/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:127.0.0.1]:8080/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://224.0.0.1/",
        ] {
            let err = policy.check(bad).await.unwrap_err();
            assert!(err.0.contains("denied"), "{bad}: {err}");
        }
        assert!(policy.check("ftp://10.0.0.1/x").await.is_err());
        assert!(policy.check("http://10.0.0.1:99999/x").await.unwrap_err().0.contains("valid URL"));
        assert!(policy.check("http://user:pw@10.0.0.1/x").await.is_err());
    }

    #[tokio::test]
    async fn allow_and_deny_lists() {
        let policy = OutboundPolicy::new(
            rules(&["10.0.0.0/8", "*.example.com", "localhost", "127.0.0.0/8"]),
            rules(&["10.9.0.0/16"]),
        );
        assert!(policy.check("http://10.1.2.3/cb").await.is_ok());
        assert!(policy.check("http://10.9.1.1/cb").await.is_err(), "deny wins over allow");
        assert!(policy.check("http://[::ffff:10.9.1.1]/cb").await.is_err(), "mapped addresses are what they carry");
        assert!(policy.check("http://172.16.0.1/cb").await.is_err(), "not in the allow list");
        assert!(policy.check("http://localhost:8080/cb").await.is_ok(), "allowed entries lift default denials");
        let name_only = OutboundPolicy::new(rules(&["localhost"]), vec![]);
        assert!(name_only.check("http://localhost/cb").await.is_err(), "the addresses stay denied");
        let lifted = OutboundPolicy::new(rules(&["169.254.0.0/16"]), vec![]);
        assert!(lifted.check("http://169.254.10.10/cb").await.is_ok(), "an allow entry lifts a default denial");
        let loopback = OutboundPolicy::new(rules(&["127.0.0.1"]), vec![]);
        assert!(loopback.check("http://127.0.0.1:9/cb").await.is_ok());
        let deny_private = OutboundPolicy::new(vec![], rules(&["10.0.0.0/8"]));
        assert!(deny_private.check("http://[::ffff:a01:203]/cb").await.is_err());
    }

    #[tokio::test]
    async fn the_client_refuses_names_that_resolve_to_denied_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // No rule names `localhost`, but it resolves to a denied address: refused when connecting.
        let by_address = OutboundPolicy { allow: vec![], deny: rules(&["127.0.0.0/8", "::1/128"]) };
        let client = by_address.client(Duration::from_secs(2)).build().unwrap();
        let err = client.get(format!("http://localhost:{port}/")).send().await.unwrap_err();
        assert!(format!("{err:?}").contains("denied by the outbound URL policy"), "{err:?}");
        let allowed = OutboundPolicy::new(rules(&["127.0.0.0/8", "::1/128", "localhost"]), vec![]);
        let allowed = allowed.client(Duration::from_secs(2)).build().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            assert!(String::from_utf8_lossy(&buf).to_ascii_lowercase().contains("x-sluice-outbound: 1"));
            socket.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        });
        let ok = allowed.get(format!("http://localhost:{port}/")).send().await.unwrap();
        assert_eq!(ok.status(), 204);
    }

    #[tokio::test]
    async fn the_plain_client_refuses_names_that_resolve_to_denied_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let by_address = OutboundPolicy { allow: vec![], deny: rules(&["127.0.0.0/8", "::1/128"]) };
        let url = |host: &str| by_address.check_syntax(&format!("http://{host}:{port}/cb")).unwrap();
        let plain = by_address.plain_client(Duration::from_secs(2));
        let err = plain.post(&url("localhost"), http::HeaderMap::new(), Bytes::new()).await.unwrap_err();
        assert!(err.to_string().contains("denied by the outbound URL policy"), "{err}");
        let https = by_address.check_syntax("https://localhost/cb").unwrap();
        assert!(matches!(plain.post(&https, http::HeaderMap::new(), Bytes::new()).await, Err(PlainError::NotPlain(_))));

        let allowed = OutboundPolicy::new(rules(&["127.0.0.0/8", "::1/128", "localhost"]), vec![]);
        let plain = allowed.plain_client(Duration::from_secs(2));
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut buf, mut request) = ([0u8; 1024], String::new());
            // Headers and body may come in more than one read.
            while !request.ends_with("body") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early: {request}");
                request.push_str(&String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase());
            }
            assert!(request.starts_with("post /cb http/1.1") && request.contains("x-sluice-outbound: 1"), "{request}");
            assert!(request.contains("x-call-id: c1") && request.ends_with("body"), "{request}");
            socket.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await.unwrap();
        });
        let mut headers = http::HeaderMap::new();
        headers.insert("x-call-id", http::HeaderValue::from_static("c1"));
        let status = plain.post(&url("localhost"), headers, Bytes::from_static(b"body")).await.unwrap();
        assert_eq!(status, 204);
    }

    #[tokio::test]
    async fn the_plain_client_gives_up_at_its_timeout() {
        // Accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let policy = OutboundPolicy::new(rules(&["127.0.0.1"]), vec![]);
        let plain = policy.plain_client(Duration::from_millis(300));
        let url = policy.check_syntax(&format!("http://127.0.0.1:{port}/cb")).unwrap();
        let err = plain.post(&url, http::HeaderMap::new(), Bytes::new()).await.unwrap_err();
        assert!(matches!(err, PlainError::TimedOut(_)), "{err}");
    }

    #[tokio::test]
    async fn an_answer_whose_body_stalls_keeps_its_status() {
        // 200 with a body announced and never sent: the status stands; the body is given up on after a second.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n").await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let policy = OutboundPolicy::new(rules(&["127.0.0.1"]), vec![]);
        let plain = policy.plain_client(Duration::from_secs(10));
        let url = policy.check_syntax(&format!("http://127.0.0.1:{port}/cb")).unwrap();
        let started = std::time::Instant::now();
        let status = plain.post(&url, http::HeaderMap::new(), Bytes::new()).await.unwrap();
        assert_eq!(status, 200);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }
}
