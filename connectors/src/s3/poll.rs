//! Polling any S3 API (AWS, MinIO, Ceph, moto …) for new objects, for stores that cannot send notifications.
//!
//! Every interval, each bucket (and prefix) named by a function's S3 trigger is listed with ListObjectsV2. An
//! object whose key and ETag were not seen before becomes an `s3:ObjectCreated:Put` event; what was seen is
//! remembered in KV `sluice_s3_seen`, so a restart neither misses nor repeats an object, and any number of
//! pollers can run (an event's id is its bucket, key and ETag, so two pollers publishing one object store one
//! event). The endpoint and path-style addressing are options; credentials and region come from the usual AWS
//! environment and config files.

use std::{collections::BTreeSet, time::Duration};

use async_nats::jetstream::kv;
use aws_sdk_s3::Client;
use sha2::{Digest, Sha256};
use sluice_contracts::{EventMessage, names};
use sluice_jetstream::{store::FunctionStore, topology::Topology};
use tokio_util::sync::CancellationToken;

use super::records::subject;
use crate::{metrics, router, triggers::S3_TYPE_PREFIX};

/// Where and how often to poll.
#[derive(Clone, Debug)]
pub struct PollConfig {
    /// S3 API endpoint; the AWS default when absent.
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which MinIO and moto need.
    pub path_style: bool,
    pub interval: Duration,
}

async fn client(cfg: &PollConfig) -> Client {
    let shared = aws_config::load_from_env().await;
    let mut builder = aws_sdk_s3::config::Builder::from(&shared).force_path_style(cfg.path_style);
    if let Some(endpoint) = &cfg.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    if shared.region().is_none() {
        builder = builder.region(aws_sdk_s3::config::Region::new("us-east-1"));
    }
    Client::from_conf(builder.build())
}

fn seen_key(bucket: &str, key: &str) -> String {
    hex::encode(
        Sha256::new().chain_update(bucket.as_bytes()).chain_update(b"\n").chain_update(key.as_bytes()).finalize(),
    )
}

/// The (bucket, prefix) pairs the deployed functions' S3 triggers name.
async fn targets(topology: &Topology) -> BTreeSet<(String, String)> {
    let Ok(specs) = FunctionStore::new(topology.functions.clone()).list(None).await else { return BTreeSet::new() };
    specs
        .iter()
        .flat_map(|spec| spec.triggers.iter().filter_map(|t| t.s3.as_ref()))
        .map(|s3| (s3.bucket.clone(), s3.prefix.clone().unwrap_or_default()))
        .collect()
}

/// One object as an event.
fn object_event(bucket: &str, key: &str, size: Option<i64>, etag: &str) -> EventMessage {
    let name = "s3:ObjectCreated:Put";
    let data = serde_json::json!({"bucket": bucket, "key": key, "size": size, "etag": etag, "eventName": name});
    let mut event = EventMessage::new(format!("s3://{bucket}"), format!("{S3_TYPE_PREFIX}created"), data.to_string());
    event.id = format!("{name}:{bucket}/{key}:{etag}");
    event.subject = Some(key.to_owned());
    event.content_type = Some("application/json".into());
    event
}

/// Lists one bucket/prefix and announces what is new; returns how many objects were new.
async fn poll_once(
    s3: &Client,
    topology: &Topology,
    seen: &kv::Store,
    bucket: &str,
    prefix: &str,
) -> Result<usize, String> {
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    let mut new = 0;
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| format!("listing {bucket}/{prefix}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        for object in page.contents() {
            let (Some(key), etag) = (object.key(), object.e_tag().unwrap_or_default().trim_matches('"')) else {
                continue;
            };
            let id = seen_key(bucket, key);
            if seen.get(&id).await.map_err(|e| e.to_string())?.is_some_and(|v| v.as_ref() == etag.as_bytes()) {
                continue;
            }
            let event = object_event(bucket, key, object.size(), etag);
            router::publish(topology, subject(bucket), &event).await.map_err(|e| e.to_string())?;
            seen.put(&id, etag.to_owned().into()).await.map_err(|e| e.to_string())?;
            metrics::accepted("s3");
            new += 1;
        }
    }
    Ok(new)
}

/// Polls until `shutdown`.
pub async fn run(topology: Topology, cfg: PollConfig, shutdown: CancellationToken) -> Result<(), String> {
    let seen = topology
        .jetstream
        .create_or_update_key_value(kv::Config {
            bucket: names::S3_SEEN_BUCKET.to_owned(),
            history: 1,
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("creating KV {}: {e}", names::S3_SEEN_BUCKET))?;
    let s3 = client(&cfg).await;
    tracing::info!(endpoint = ?cfg.endpoint, interval = ?cfg.interval, "polling S3");
    let mut every = tokio::time::interval(cfg.interval);
    loop {
        tokio::select! { _ = shutdown.cancelled() => return Ok(()), _ = every.tick() => {} }
        for (bucket, prefix) in targets(&topology).await {
            match poll_once(&s3, &topology, &seen, &bucket, &prefix).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(%bucket, %prefix, new = n, "new objects found"),
                Err(err) => tracing::warn!(%bucket, %err, "polling failed; trying again next interval"),
            }
        }
    }
}
