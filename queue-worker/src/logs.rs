//! Streaming container logs to a gateway. A gateway asks on `sluice.logs.{function}` with a reply inbox; every
//! worker running that function's containers answers with a begin marker, one message per log line, and an
//! end marker. A follower goes on until the gateway stops answering pings on `{inbox}.alive`.

use std::{sync::Arc, time::Duration};

use async_nats::HeaderMap;
use futures::StreamExt;
use sluice_runtime::docker::logs::LogQuery;
use sluice_schemas::names;
use tokio_util::sync::CancellationToken;

use crate::{Worker, WorkerError};

/// How often a follower checks that its reader is still there.
const PING_EVERY: Duration = Duration::from_secs(2);

fn marker(kind: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(names::wire::LOGS_MARKER, kind);
    headers
}

/// Answers log requests for container functions this worker runs, until `shutdown`.
pub async fn listen(worker: Arc<Worker>, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let Some(docker) = worker.runtimes.docker.clone() else { return Ok(()) };
    let subject = format!("{}.*", names::LOGS_PREFIX);
    let mut requests =
        worker.topology.client.subscribe(subject).await.map_err(|e| WorkerError::Subscribe(e.to_string()))?;
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = requests.next() => match r { Some(r) => r, None => return Ok(()) },
        };
        let Some(reply) = request.reply.clone() else { continue };
        let function = request.subject.as_str().rsplit('.').next().unwrap_or_default().to_owned();
        let query: LogQuery = serde_json::from_slice(&request.payload).unwrap_or_default();
        let (client, docker, stop) = (worker.topology.client.clone(), docker.clone(), shutdown.clone());
        tokio::spawn(async move {
            let Ok(mut lines) = docker.logs(&function, query).await else { return };
            let _ = client.publish_with_headers(reply.clone(), marker("begin"), "".into()).await;
            let alive = format!("{reply}.alive");
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
            let _ = client.publish_with_headers(reply, marker("end"), "".into()).await;
        });
    }
}
