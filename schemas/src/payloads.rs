//! Reading a claim-checked body back from the `sluice_payloads` object store with bounded memory.
//!
//! The object store's own reader uses a push consumer that lets the server send the whole object ahead of
//! the reader, so a slow function would see the entire body buffered in the worker. This reader pulls a few
//! chunks at a time instead, so memory stays at a few chunks whatever the body's size.

use std::{pin::Pin, time::Duration};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncRead;

use crate::{names, topology::Topology};

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
