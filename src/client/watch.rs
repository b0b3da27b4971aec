//! Following a call live (`sluice call watch ID`, `sluice invoke --async --wait`): reads the call's event
//! stream and draws a progress bar with the function's message and the elapsed time, or, with `--plain` or
//! when stderr is not a terminal, one line per change; then prints the final record.

use std::{io::IsTerminal, time::Duration};

use anyhow::Context;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use sluice_contracts::{CallRecord, CallStatus};

use super::Gateway;

/// Times a dropped stream is opened again before giving up (a gateway restarting, a proxy timing out).
const RECONNECTS: u32 = 5;

/// Follows `call_id` until it is final; returns its last record.
pub async fn watch(gateway: &Gateway, call_id: &str, plain: bool) -> anyhow::Result<CallRecord> {
    let plain = plain || !std::io::stderr().is_terminal();
    let view = View::new(plain);
    let mut last: Option<CallRecord> = None;
    let mut dropped = 0;
    loop {
        let request = gateway.request(Method::GET, &format!("/system/calls/{call_id}/events"));
        let response = gateway.send(request).await?;
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(err) => {
                    tracing::debug!(%err, "event stream interrupted");
                    break;
                }
            };
            if event.event == "end" {
                view.finish();
                return last.context("the call's record expired before it was seen");
            }
            let record: CallRecord = serde_json::from_str(&event.data)
                .with_context(|| format!("the gateway sent a {:?} event that is not a call record", event.event))?;
            view.show(&event.event, &record);
            last = Some(record);
        }
        dropped += 1;
        anyhow::ensure!(dropped <= RECONNECTS, "the call's event stream keeps dropping");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Prints the final record and fails unless the call succeeded.
pub fn conclude(record: &CallRecord) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(record)?);
    anyhow::ensure!(record.status == CallStatus::Succeeded, "call {} {}", record.call_id, record.status.as_str());
    Ok(())
}

/// How changes are shown.
enum View {
    Bar(ProgressBar),
    Lines(std::time::Instant),
}

impl View {
    fn new(plain: bool) -> Self {
        if plain {
            return Self::Lines(std::time::Instant::now());
        }
        let bar = ProgressBar::new(100);
        let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos:>3}% {msg}")
            .expect("a valid template")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        Self::Bar(bar)
    }

    fn show(&self, change: &str, record: &CallRecord) {
        let progress = record.progress.as_ref();
        let percent = progress.and_then(|p| p.percent);
        let mut line = format!("{} (attempt {})", record.status.as_str(), record.attempts.max(1));
        if let Some(message) = progress.and_then(|p| p.message.as_deref()) {
            line.push_str(" · ");
            line.push_str(message);
        }
        if let Some(error) = record.error.as_deref().filter(|_| record.status != CallStatus::Succeeded) {
            line.push_str(" · ");
            line.push_str(error);
        }
        match self {
            Self::Bar(bar) => {
                let done = record.status == CallStatus::Succeeded;
                bar.set_position(if done { 100 } else { percent.map_or(0, |p| p.round() as u64) });
                bar.set_message(line);
            }
            Self::Lines(started) => {
                let percent = percent.map(|p| format!(" {p:.0}%")).unwrap_or_default();
                eprintln!("[{:>6.1}s] {change}{percent} {line}", started.elapsed().as_secs_f64());
            }
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish();
        }
    }
}
