//! What listing dead letters costs as they pile up: `GET /system/dead` (the console's page) and a function's newest
//! (`?function=`, also what `POST /system/dead/replay {"function": …}` reads), with 1,000 dead letters kept and
//! with many more, each carrying a 16 KiB original request; and discarding by id a letter whose call record expired,
//! which searches every letter's headers for it. The first row is the baseline of the same run.

use std::time::{Duration, Instant};

use async_nats::{HeaderMap, jetstream};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use sluice_contracts::{
    FunctionRef,
    names::{self, wire},
};

use crate::{Params, load::median, procs};

#[derive(Debug, Serialize)]
pub struct ListingRow {
    /// Dead letters kept.
    pub letters: usize,
    /// `GET /system/dead?limit=100`, median of five, milliseconds.
    pub newest_ms: f64,
    /// `GET /system/dead?function=rare&limit=10`, whose ten letters are the oldest kept, milliseconds.
    pub rare_ms: f64,
    /// `DELETE /system/dead/{id}` of one of `rare`'s letters, which have no record (searched for), median of five,
    /// milliseconds.
    pub unrecorded_discard_ms: f64,
}

/// Body of each letter: the original request.
const BODY: usize = 16 * 1024;

/// Publishes `n` dead letters of `function`, with headers as a worker writes them.
async fn bury(js: &jetstream::Context, function: &FunctionRef, first: usize, n: usize) {
    let body = Bytes::from(vec![b'x'; BODY]);
    let subject = names::dead_subject(function);
    futures::stream::iter(first..first + n)
        .map(|i| {
            let mut headers = HeaderMap::new();
            headers.insert(names::ce::ID, format!("{}-{i}", function.name));
            headers.insert(names::ce::SUBJECT, function.key());
            headers.insert(wire::DEAD_STATUS, "500");
            headers.insert(wire::DEAD_ERROR, "broken");
            headers.insert(wire::DEAD_ATTEMPTS, "3");
            let (js, subject, body) = (js.clone(), subject.clone(), body.clone());
            async move { js.publish_with_headers(subject, headers, body).await?.await.map(drop) }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await
        .expect("dead letters stored");
}

/// Median of five `GET {url}`, milliseconds; each must answer `expected` letters.
async fn time_listing(http: &reqwest::Client, url: &str, expected: usize) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let letters: Vec<serde_json::Value> = http.get(url).send().await.unwrap().json().await.unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(letters.len(), expected, "{url}");
    }
    median(samples)
}

/// Median of five discards by id of `rare`'s letters `first..first + 5`, none of which has a record, milliseconds.
async fn time_discards(http: &reqwest::Client, base: &str, first: usize) -> f64 {
    let mut samples = Vec::new();
    for i in first..first + 5 {
        let started = Instant::now();
        let r = http.delete(format!("{base}/system/dead/rare-{i}")).send().await.unwrap();
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.status(), 204, "discard rare-{i}: {}", r.text().await.unwrap());
    }
    median(samples)
}

/// Rows of 1,000 and 50,000 dead letters (10,000 with `--quick`); twenty of function `rare`, the oldest, the rest
/// of `often`. Each row discards five of `rare`'s.
pub async fn measure(p: &Params) -> Vec<ListingRow> {
    let dir = tempfile::tempdir().unwrap();
    let server = procs::nats(dir.path());
    let (_gateway, base) = procs::gateway(&server.url, dir.path()).await;
    let js = jetstream::new(async_nats::connect(&server.url).await.unwrap());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let (rare, often) = (FunctionRef::new("openfaas-fn", "rare"), FunctionRef::new("openfaas-fn", "often"));
    bury(&js, &rare, 0, 20).await;
    let mut kept = 20;
    let mut rows = Vec::new();
    for letters in [1_000, if p.quick { 10_000 } else { 50_000 }] {
        eprintln!("dead letters: listing with {letters} kept");
        bury(&js, &often, kept, letters - kept).await;
        kept = letters;
        let newest_ms = time_listing(&http, &format!("{base}/system/dead?limit=100"), 100).await;
        let rare_ms = time_listing(&http, &format!("{base}/system/dead?function=rare&limit=10"), 10).await;
        let unrecorded_discard_ms = time_discards(&http, &base, rows.len() * 5).await;
        rows.push(ListingRow { letters, newest_ms, rare_ms, unrecorded_discard_ms });
    }
    rows
}
