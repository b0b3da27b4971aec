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

/// Most lines `tail` may ask for: the gateway holds that many (twice, at most) to merge the instances' tails.
const MAX_TAIL: u32 = 100_000;

/// How long the gateway waits for any worker to answer a request.
const ANSWER_WITHIN: Duration = Duration::from_millis(1500);

#[derive(Deserialize, schemars::JsonSchema)]
pub struct LogParams {
    name: String,
    #[serde(default)]
    follow: bool,
    /// RFC 3339 time or a duration back from now (`10m`).
    #[serde(default)]
    since: Option<String>,
    /// The last this many lines of all instances together; `-1` (faas-cli's default) or absent for all.
    #[serde(default)]
    tail: Option<i64>,
}

pub async fn logs(
    State(app): State<App>,
    InNamespace(namespace): InNamespace,
    Query(params): Query<LogParams>,
) -> Result<Response, ApiError> {
    let function = sluice_contracts::FunctionRef::new(namespace, params.name.as_str());
    app.deployed(&function).await?;
    let since = params.since.as_deref().map(super::extract::since).transpose()?.map(|at| at.timestamp());
    let tail = match params.tail.filter(|n| *n >= 0) {
        Some(n) if n > MAX_TAIL as i64 => {
            return Err(ApiError::BadQuery(format!("tail {n}: at most {MAX_TAIL} lines, or -1 for all of them")));
        }
        n => n.map(|n| n as u32),
    };
    let query = LogQuery { follow: params.follow, since, tail };
    let client = app.topology.client.clone();
    let inbox = client.new_inbox();
    let unavailable = |e: String| ApiError::Unavailable(format!("asking workers for logs: {e}"));
    let lines = client.subscribe(inbox.clone()).await.map_err(|e| unavailable(e.to_string()))?;
    let pings = client.subscribe(logs::alive_subject(&inbox)).await.map_err(|e| unavailable(e.to_string()))?;
    client
        .publish_with_reply(
            names::logs_subject(&function),
            inbox,
            serde_json::to_vec(&query).expect("queries serialize").into(),
        )
        .await
        .map_err(|e| unavailable(e.to_string()))?;

    let (out, mut body) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    // Without follow, the tail is of all instances together: workers send each instance's last lines, and the
    // gateway keeps the latest of them. Following, each instance's backlog is tailed, then lines flow live.
    let merge = if query.follow { None } else { tail.map(MergedTail::new) };
    tokio::spawn(relay(client, lines, pings, query.follow, merge, out));
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
    mut merge: Option<MergedTail>,
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
                    None if merge.is_some() => merge.as_mut().expect("checked").push(message.payload.to_vec()),
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
    if let Some(merge) = merge {
        for mut line in merge.finish() {
            line.push(b'\n');
            if out.send(line).await.is_err() {
                break;
            }
        }
    }
}

/// The latest `keep` lines of several instances' answers, in time order, held in at most twice that many.
struct MergedTail {
    keep: usize,
    lines: Vec<(Option<chrono::DateTime<chrono::FixedOffset>>, Vec<u8>)>,
}

impl MergedTail {
    fn new(keep: u32) -> Self {
        Self { keep: keep as usize, lines: Vec::new() }
    }

    fn push(&mut self, line: Vec<u8>) {
        // The engine's RFC 3339 times trim trailing zeros, so they are compared as times, not as text.
        let at = serde_json::from_slice::<logs::LogLine>(&line)
            .ok()
            .and_then(|l| chrono::DateTime::parse_from_rfc3339(&l.timestamp).ok());
        self.lines.push((at, line));
        if self.lines.len() >= self.keep.saturating_mul(2).max(1024) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        // A stable sort keeps each instance's own order among lines of the same time.
        self.lines.sort_by_key(|(at, _)| *at);
        let excess = self.lines.len().saturating_sub(self.keep);
        self.lines.drain(..excess);
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        self.trim();
        self.lines.into_iter().map(|(_, line)| line).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(instance: &str, timestamp: &str) -> Vec<u8> {
        let line = logs::LogLine {
            name: "f".into(),
            instance: instance.into(),
            timestamp: timestamp.into(),
            text: "t".into(),
        };
        serde_json::to_vec(&line).unwrap()
    }

    #[test]
    fn the_merged_tail_is_the_latest_lines_of_all_instances_in_time_order() {
        let mut tail = MergedTail::new(3);
        // Two instances answer one after the other; the engine trims trailing zeros of the fraction.
        for (instance, at) in
            [("a", "2026-01-01T00:00:01.5Z"), ("a", "2026-01-01T00:00:03Z"), ("a", "2026-01-01T00:00:05.1Z")]
                .into_iter()
                .chain([("b", "2026-01-01T00:00:02Z"), ("b", "2026-01-01T00:00:04Z"), ("b", "2026-01-01T00:00:05.12Z")])
        {
            tail.push(line(instance, at));
        }
        let kept = tail.finish();
        assert_eq!(
            kept,
            vec![
                line("b", "2026-01-01T00:00:04Z"),
                line("a", "2026-01-01T00:00:05.1Z"),
                line("b", "2026-01-01T00:00:05.12Z")
            ]
        );

        let mut none = MergedTail::new(0);
        none.push(line("a", "2026-01-01T00:00:01Z"));
        assert!(none.finish().is_empty());
        // Far more lines than kept: memory stays bounded, the newest survive.
        let mut many = MergedTail::new(2);
        for second in 0..3000 {
            many.push(line("a", &format!("2026-01-01T01:{:02}:{:02}Z", second / 60, second % 60)));
            assert!(many.lines.len() <= 2 * 1024);
        }
        assert_eq!(many.finish(), vec![line("a", "2026-01-01T01:49:58Z"), line("a", "2026-01-01T01:49:59Z")]);
    }
}
