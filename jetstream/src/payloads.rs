//! Claim-checked bodies in the `sluice_payloads` object store: written so that a failed write leaves nothing
//! behind, and read back with bounded memory.
//!
//! [`put`] writes an object the way the object store does (chunks, then the metadata that makes them an
//! object) but knows the chunks' subject, so when the body is refused halfway (over the size limit, the
//! client gone, the store full) the chunks already written are purged at once instead of filling the disk
//! until they age out.
//!
//! The object store's own reader uses a push consumer that lets the server send the whole object ahead of
//! the reader, so a slow function would see the entire body buffered in the worker. This reader pulls a few
//! chunks at a time instead, so memory stays at a few chunks whatever the body's size.

use std::{pin::Pin, time::Duration};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncRead;

use sluice_contracts::names;

use crate::topology::Topology;

/// Chunks requested per pull: with the default 128 KiB chunks, about half a megabyte in flight.
const CHUNKS_PER_PULL: usize = 4;

/// A streamed body.
pub type BodyReader = Pin<Box<dyn AsyncRead + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("stored body {name:?} unavailable: {source}")]
    Unavailable {
        name: String,
        #[source]
        source: async_nats::Error,
    },
}

/// Why a body was not stored; whatever part of it was written is gone again.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("reading the body: {0}")]
    Read(#[source] std::io::Error),
    #[error("storing the body: {0}")]
    Store(String),
}

/// Chunk size of stored bodies (the object store's default).
const CHUNK: usize = 128 * 1024;

/// Stores what `data` yields as object `name`; on any failure, removes the chunks written so far.
pub async fn put(
    topology: &Topology,
    name: &str,
    data: &mut (impl AsyncRead + Unpin),
) -> Result<async_nats::jetstream::object_store::ObjectInfo, PutError> {
    // Written again (a retried result): the old chunks go once the new object stands.
    let replaced = topology.payloads.info(name).await.ok().map(|old| old.nuid);
    let nuid = uuid::Uuid::now_v7().simple().to_string();
    let written = write(topology, name, &nuid, &chunk_subject(&nuid), data).await;
    let stale = if written.is_ok() { replaced } else { Some(nuid) };
    if let Some(stale) = stale {
        let purged = async {
            let stream = topology.jetstream.get_stream_no_info(format!("OBJ_{}", names::PAYLOADS_BUCKET)).await?;
            stream.purge().filter(chunk_subject(&stale)).await?;
            Ok::<_, async_nats::Error>(())
        };
        if let Err(err) = purged.await {
            tracing::warn!(%err, object = %name, "chunks no object uses are left until they expire");
        }
    }
    written
}

fn chunk_subject(nuid: &str) -> String {
    format!("$O.{}.C.{nuid}", names::PAYLOADS_BUCKET)
}

async fn write(
    topology: &Topology,
    name: &str,
    nuid: &str,
    chunk_subject: &str,
    data: &mut (impl AsyncRead + Unpin),
) -> Result<async_nats::jetstream::object_store::ObjectInfo, PutError> {
    use async_nats::jetstream::object_store::{ObjectInfo, ObjectOptions};
    use base64::Engine;
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
    let store = |e: &dyn std::fmt::Display| PutError::Store(e.to_string());
    let (mut size, mut count) = (0usize, 0usize);
    let mut digest = sha2::Sha256::new();
    let mut buffer = bytes::BytesMut::with_capacity(CHUNK);
    loop {
        // A whole chunk per message, however the reader splits its data.
        while buffer.len() < CHUNK {
            if data.read_buf(&mut buffer).await.map_err(PutError::Read)? == 0 {
                break;
            }
        }
        if buffer.is_empty() {
            break;
        }
        let chunk = buffer.split_to(buffer.len().min(CHUNK)).freeze();
        digest.update(&chunk);
        size += chunk.len();
        count += 1;
        let ack = topology.jetstream.publish(chunk_subject.to_owned(), chunk).await.map_err(|e| store(&e))?;
        ack.await.map_err(|e| store(&e))?;
        buffer.reserve(CHUNK);
    }
    let info = ObjectInfo {
        name: name.to_owned(),
        description: None,
        metadata: Default::default(),
        headers: None,
        options: Some(ObjectOptions { link: None, max_chunk_size: Some(CHUNK) }),
        bucket: names::PAYLOADS_BUCKET.to_owned(),
        nuid: nuid.to_owned(),
        size,
        chunks: count,
        modified: Some(time::OffsetDateTime::now_utc()),
        digest: Some(format!("SHA-256={}", base64::engine::general_purpose::URL_SAFE.encode(digest.finalize()))),
        deleted: false,
    };
    let meta_subject =
        format!("$O.{}.M.{}", names::PAYLOADS_BUCKET, base64::engine::general_purpose::URL_SAFE.encode(name));
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Rollup", "sub");
    let meta = serde_json::to_vec(&info).map_err(|e| store(&e))?;
    let ack =
        topology.jetstream.publish_with_headers(meta_subject, headers, meta.into()).await.map_err(|e| store(&e))?;
    ack.await.map_err(|e| store(&e))?;
    Ok(info)
}

fn io_error(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

/// Opens object `name` for streaming.
pub async fn open(topology: &Topology, name: &str) -> Result<BodyReader, PayloadError> {
    let unavailable = |source: async_nats::Error| PayloadError::Unavailable { name: name.to_owned(), source };
    let info = topology.payloads.info(name).await.map_err(|e| unavailable(e.into()))?;
    if info.chunks == 0 {
        return Ok(Box::pin(tokio::io::empty()));
    }
    let stream = topology
        .jetstream
        .get_stream_no_info(format!("OBJ_{}", names::PAYLOADS_BUCKET))
        .await
        .map_err(|e| unavailable(e.into()))?;
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: format!("$O.{}.C.{}", names::PAYLOADS_BUCKET, info.nuid),
            ack_policy: AckPolicy::None,
            deliver_policy: DeliverPolicy::All,
            inactive_threshold: Duration::from_secs(60),
            memory_storage: true,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(e.into()))?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(CHUNKS_PER_PULL)
        .messages()
        .await
        .map_err(|e| unavailable(e.into()))?;
    let (expected_chunks, expected_size) = (info.chunks, info.size);
    let mut seen = (0usize, 0usize);
    let chunks = messages.take(expected_chunks).map_err(|e| io_error(format!("reading stored body: {e}"))).and_then(
        move |message| {
            seen.0 += 1;
            seen.1 += message.payload.len();
            // Without acks nothing is redelivered, so a gap in the consumer's sequence is a lost chunk.
            let in_order = message.info().is_ok_and(|i| i.consumer_sequence == seen.0 as u64);
            let complete = seen.0 < expected_chunks || seen.1 == expected_size;
            let result = match (in_order, complete) {
                (true, true) => Ok(message.payload.clone()),
                (false, _) => Err(io_error(format!("stored body chunk {} arrived out of order", seen.0))),
                (true, false) => Err(io_error(format!("stored body has {} bytes, expected {expected_size}", seen.1))),
            };
            std::future::ready(result)
        },
    );
    Ok(Box::pin(tokio_util::io::StreamReader::new(chunks)))
}
