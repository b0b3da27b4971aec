//! `GET /system/logs?name=&follow=&since=&tail=`: a container function's logs as newline-delimited JSON
//! (OpenFaaS `logs.Message` lines). The workers that run its containers stream the lines over NATS; the
//! gateway merges them and, while following, answers their liveness pings until the client goes away.

use std::time::Duration;

use axum::{
    body::Body,
    extract::State,
    http::{StatusCode, header},
    response::Response,
};
use futures::StreamExt;
use serde::Deserialize;
use sluice_contracts::{
    logs::{self, LogQuery, Marker},
    names,
};

use super::extract::{InNamespace, Query};
use crate::{ApiError, App};

/// How long the gateway waits for any worker to answer a request.
const ANSWER_WITHIN: Duration = Duration::from_millis(1500);

#[derive(Deserialize)]
pub struct LogParams {
    name: String,
    #[serde(default)]
    follow: bool,
    /// RFC 3339 time or a duration back from now (`10m`).
    #[serde(default)]
    since: Option<String>,
    /// Last lines of each instance; `-1` (faas-cli's default) or absent for all of them.
    #[serde(default)]
    tail: Option<i64>,
}

fn since_unix(text: &str) -> Result<i64, ApiError> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp());
    }
    let back = humantime::parse_duration(text)
        .map_err(|_| ApiError::BadQuery(format!("since {text:?}: give an RFC 3339 time or a duration like 10m")))?;
    Ok(chrono::Utc::now().timestamp().saturating_sub(i64::try_from(back.as_secs()).unwrap_or(i64::MAX)))
}

pub async fn logs(
    State(app): State<App>,
    _: InNamespace,
    Query(params): Query<LogParams>,
) -> Result<Response, ApiError> {
    if app.function_cache.get(&params.name).await?.is_none() {
        return Err(ApiError::UnknownFunction(params.name));
    }
    let since = params.since.as_deref().map(since_unix).transpose()?;
    let tail = params.tail.filter(|n| *n >= 0).map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let query = LogQuery { follow: params.follow, since, tail };
    let client = app.topology.client.clone();
    let inbox = client.new_inbox();
    let unavailable = |e: String| ApiError::Unavailable(format!("asking workers for logs: {e}"));
    let lines = client.subscribe(inbox.clone()).await.map_err(|e| unavailable(e.to_string()))?;
    let pings = client.subscribe(logs::alive_subject(&inbox)).await.map_err(|e| unavailable(e.to_string()))?;
    client
        .publish_with_reply(
            names::logs_subject(&params.name),
            inbox,
            serde_json::to_vec(&query).expect("queries serialize").into(),
        )
        .await
        .map_err(|e| unavailable(e.to_string()))?;

    let (out, mut body) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(relay(client, lines, pings, query.follow, out));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(futures::stream::poll_fn(move |cx| {
            body.poll_recv(cx).map(|line| line.map(Ok::<_, std::io::Error>))
        })))
        .expect("a valid response"))
}

/// How many workers have begun and ended their answers.
#[derive(Default)]
struct Answers {
    begun: u32,
    ended: u32,
}

impl Answers {
    fn note(&mut self, marker: Marker) {
        match marker {
            Marker::Begin => self.begun += 1,
            Marker::End => self.ended += 1,
        }
    }

    /// Every worker that began has ended.
    fn all_ended(&self) -> bool {
        self.ended >= self.begun
    }
}

/// Relays the workers' lines to `out` and answers their liveness pings. Without `follow`, ends once every
/// worker that answered within [`ANSWER_WITHIN`] has sent its end marker; with it, when the client goes away.
async fn relay(
    client: async_nats::Client,
    mut lines: async_nats::Subscriber,
    mut pings: async_nats::Subscriber,
    follow: bool,
    out: tokio::sync::mpsc::Sender<Vec<u8>>,
) {
    let started = tokio::time::Instant::now();
    let mut answers = Answers::default();
    loop {
        let wait = if follow || !answers.all_ended() {
            Duration::from_secs(3600)
        } else {
            ANSWER_WITHIN.saturating_sub(started.elapsed())
        };
        tokio::select! {
            message = lines.next() => {
                let Some(message) = message else { break };
                match message.headers.as_ref().and_then(|h| h.get(logs::LOGS_MARKER)) {
                    Some(marker) => {
                        answers.note(Marker::parse(marker.as_str()));
                        if !follow && answers.all_ended() && started.elapsed() >= ANSWER_WITHIN {
                            break;
                        }
                    }
                    None => {
                        let mut line = message.payload.to_vec();
                        line.push(b'\n');
                        if out.send(line).await.is_err() {
                            break; // the client went away
                        }
                    }
                }
            }
            ping = pings.next() => {
                if let Some(reply) = ping.and_then(|p| p.reply) {
                    let _ = client.publish(reply, "".into()).await;
                }
            }
            _ = tokio::time::sleep(wait) => {
                if !follow && answers.all_ended() {
                    break;
                }
            }
            _ = out.closed(), if follow => break,
        }
    }
}
