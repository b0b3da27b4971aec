//! Streaming container logs to a gateway, by the protocol of `sluice_contracts::logs`: a begin marker, one
//! message per line, an end marker; a follower goes on while the gateway answers its pings.

use std::{sync::Arc, time::Duration};

use async_nats::HeaderMap;
use futures::StreamExt;
use sluice_contracts::{
    logs::{self, LogQuery, Marker},
    names,
};
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError, notices};

/// How often a follower checks that its reader is still there.
const PING_EVERY: Duration = Duration::from_secs(2);

fn marker(kind: Marker) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(logs::LOGS_MARKER, kind.as_str());
    headers
}

/// Answers log requests for container functions this worker runs, until `shutdown`.
pub async fn listen(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let Some(docker) = worker.runtimes.containers().cloned() else { return Ok(()) };
    notices::each(&worker, names::LOGS_PREFIX, &shutdown, |function, request| {
        let Some(reply) = request.reply.clone() else { return };
        let query: LogQuery = serde_json::from_slice(&request.payload).unwrap_or_default();
        let (client, docker, stop) = (worker.topology.client.clone(), docker.clone(), shutdown.clone());
        tokio::spawn(async move {
            let Ok(mut lines) = docker.logs(&function, query).await else { return };
            let _ = client.publish_with_headers(reply.clone(), marker(Marker::Begin), "".into()).await;
            let alive = logs::alive_subject(&reply);
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    line = lines.next() => match line {
                        Some(line) => {
                            let json = serde_json::to_vec(&line).expect("log lines serialize");
                            if client.publish(reply.clone(), json.into()).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    },
                    _ = ping.tick(), if query.follow => {
                        let answered = tokio::time::timeout(Duration::from_secs(2), client.request(alive.clone(), "".into())).await;
                        if !matches!(answered, Ok(Ok(_))) {
                            break; // the reader went away
                        }
                    }
                }
            }
            let _ = client.publish_with_headers(reply, marker(Marker::End), "".into()).await;
        });
    })
    .await
}
