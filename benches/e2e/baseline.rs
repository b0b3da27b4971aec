//! The limit Sluice is measured against: plain async-nats JetStream publish-with-ack and pull-consume-ack.

use std::time::Instant;

use async_nats::jetstream::{self, consumer::pull, stream};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

/// Publishes `n` messages of `size` bytes with `concurrency` acks outstanding; returns seconds taken.
pub async fn publish(js: &jetstream::Context, n: usize, size: usize, concurrency: usize) -> f64 {
    js.create_or_update_stream(stream::Config {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    let payload = Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|_| {
            let (js, payload) = (js.clone(), payload.clone());
            async move { js.publish("bench.raw", payload).await?.await.map(drop).map_err(async_nats::Error::from) }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    started.elapsed().as_secs_f64()
}

/// Pulls and acks the `n` messages `publish` stored; returns seconds taken.
pub async fn consume(js: &jetstream::Context, n: usize, concurrency: usize) -> f64 {
    let stream = js.get_stream("BENCH").await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config { durable_name: Some("bench".into()), ..Default::default() })
        .await
        .unwrap();
    let started = Instant::now();
    let mut messages = consumer.stream().max_messages_per_batch(concurrency.max(1) * 4).messages().await.unwrap();
    for _ in 0..n {
        let message = messages.next().await.unwrap().unwrap();
        message.ack().await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    js.delete_stream("BENCH").await.unwrap();
    elapsed
}
