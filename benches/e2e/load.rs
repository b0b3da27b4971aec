//! HTTP load and the servers it talks to: a no-op upstream function and a callback receiver that notes
//! when each call's callback arrives.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::any, routing::post};
use futures::StreamExt;
use tokio::sync::Notify;

/// A function that answers 200 at once.
pub async fn noop_upstream() -> String {
    let app = Router::new().fallback(any(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[derive(Clone, Default)]
struct Arrivals {
    at: Arc<Mutex<HashMap<String, Instant>>>,
    changed: Arc<Notify>,
}

/// Records the arrival time of each call's callback.
pub struct Receiver {
    pub url: String,
    arrivals: Arrivals,
}

impl Receiver {
    pub async fn start() -> Self {
        let arrivals = Arrivals::default();
        let app = Router::new()
            .route(
                "/cb",
                post(|State(a): State<Arrivals>, headers: HeaderMap, _body: Bytes| async move {
                    let id = headers.get("x-call-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    a.at.lock().unwrap().insert(id, Instant::now());
                    a.changed.notify_waiters();
                    "ok"
                }),
            )
            .with_state(arrivals.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/cb", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, arrivals }
    }

    pub fn count(&self) -> usize {
        self.arrivals.at.lock().unwrap().len()
    }

    pub fn arrival(&self, call_id: &str) -> Option<Instant> {
        self.arrivals.at.lock().unwrap().get(call_id).copied()
    }

    /// Waits until `n` callbacks arrived in all; returns when the last one did.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Instant {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.arrivals.changed.notified();
            {
                let at = self.arrivals.at.lock().unwrap();
                if at.len() >= n {
                    return at.values().max().copied().unwrap();
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("only {} of {n} callbacks arrived within {limit:?}", self.count());
            }
        }
    }
}

/// One accepted call: its id, when it was posted and when the 202 came back.
pub struct Accepted {
    pub call_id: String,
    pub posted: Instant,
    pub answered: Instant,
}

/// Posts `n` async calls with `concurrency` in flight; every one must be accepted. Returns the seconds taken.
///
/// The load generator shares the two cores with what it measures, so it is a plain hyper client whose URI and
/// headers are parsed once: reqwest would parse the URL and keep a copy of each request for its own retries.
pub async fn post_many(url: &str, n: usize, concurrency: usize, body: Bytes, callback: Option<&str>) -> f64 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http::<http_body_util::Full<Bytes>>();
    let uri = url.parse::<hyper::Uri>().expect("a load URL");
    let mut headers = hyper::HeaderMap::new();
    if let Some(cb) = callback {
        headers.insert("x-callback-url", cb.parse().expect("a callback URL fit for a header"));
    }
    let started = Instant::now();
    let accepted = futures::stream::iter(0..n)
        .map(|_| {
            let mut request = hyper::Request::post(uri.clone()).body(http_body_util::Full::new(body.clone())).unwrap();
            *request.headers_mut() = headers.clone();
            let client = &client;
            async move {
                let response = client.request(request).await.ok()?;
                let accepted = response.status() == 202 && response.headers().contains_key("x-call-id");
                // Read to the end so the connection goes back to the pool.
                http_body_util::BodyExt::collect(response.into_body()).await.ok()?;
                accepted.then_some(())
            }
        })
        .buffer_unordered(concurrency)
        .filter(|a| std::future::ready(a.is_some()))
        .count()
        .await;
    assert_eq!(accepted, n, "every call must be accepted");
    started.elapsed().as_secs_f64()
}

pub async fn post_one(http: &reqwest::Client, url: &str, body: Bytes, callback: Option<&str>) -> Option<Accepted> {
    let mut request = http.post(url).body(body);
    if let Some(cb) = callback {
        request = request.header("X-Callback-Url", cb);
    }
    let posted = Instant::now();
    let response = request.send().await.ok()?;
    let answered = Instant::now();
    (response.status() == 202).then(|| Accepted {
        call_id: response.headers()["x-call-id"].to_str().unwrap().to_owned(),
        posted,
        answered,
    })
}

/// The middle of `values` (the upper middle of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Percentile (0–100) of `samples`, in milliseconds.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank] * 1000.0
}
