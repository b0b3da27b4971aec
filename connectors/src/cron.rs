//! The cron connector: every `cron` trigger (and OpenFaaS `schedule` annotation) ticks into `SLUICE_EVENTS`.
//!
//! Each tick's event id is its scheduled time and its source names the function and trigger, so every replica
//! of the connector publishes the same `Nats-Msg-Id` for a tick and JetStream stores it once: however many
//! replicas run, a tick fires once. A trigger's `catchUp` (default 0) says how many ticks missed while no
//! connector ran are fired on start (the last ones); the rest are skipped. The last tick is read back from the
//! stream itself, so no other state is kept.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sluice_contracts::{EventMessage, FunctionRef, FunctionSpec, event::subject_token, names, schedule::Schedule};
use sluice_jetstream::{
    retry::{self, Backoff},
    store::{FunctionStore, SpecChange},
    topology::Topology,
};
use tokio_util::sync::CancellationToken;

use crate::{metrics, router, triggers};

/// One schedule of one function.
#[derive(Clone, Debug, PartialEq)]
struct Tick {
    /// [`FunctionRef::stable_name`](sluice_contracts::FunctionRef::stable_name) of the function.
    function: String,
    /// Trigger index, or `schedule` for the annotation.
    key: String,
    expression: String,
    timezone: Option<String>,
    catch_up: u32,
}

impl Tick {
    fn source(&self) -> String {
        triggers::cron_source(&self.function, &self.key)
    }

    fn subject(&self) -> String {
        format!("{}.cron.{}.{}", names::EVENTS_PREFIX, subject_token(&self.function), self.key)
    }

    fn event(&self, at: DateTime<Utc>) -> EventMessage {
        let data = serde_json::json!({
            "function": self.function, "trigger": self.key, "schedule": self.expression,
            "timezone": self.timezone, "scheduledTime": at.to_rfc3339(),
        });
        let mut event = EventMessage::new(self.source(), triggers::CRON_TYPE, data.to_string());
        event.id = at.to_rfc3339();
        event.time = Some(at);
        event.subject = Some(self.function.clone());
        event.content_type = Some("application/json".into());
        event
    }
}

/// The schedules a spec declares.
fn ticks_of(spec: &FunctionSpec) -> Vec<Tick> {
    let mut out: Vec<Tick> = spec
        .triggers
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            Some(Tick {
                function: spec.function_ref().stable_name(),
                key: i.to_string(),
                expression: t.cron.clone()?,
                timezone: t.timezone.clone(),
                catch_up: t.catch_up.unwrap_or(0),
            })
        })
        .collect();
    if let Some(expression) = spec.annotations.get("schedule") {
        out.push(Tick {
            function: spec.function_ref().stable_name(),
            key: "schedule".into(),
            expression: expression.clone(),
            timezone: None,
            catch_up: 0,
        });
    }
    out
}

/// When this tick last fired, from the last event on its subject.
async fn last_fired(topology: &Topology, tick: &Tick) -> Option<DateTime<Utc>> {
    let stream = topology.jetstream.get_stream_no_info(names::EVENTS_STREAM).await.ok()?;
    let last = stream.get_last_raw_message_by_subject(&tick.subject()).await.ok()?;
    let time = last.headers.get(names::ce::TIME)?.as_str().to_owned();
    DateTime::parse_from_rfc3339(&time).ok().map(|t| t.with_timezone(&Utc))
}

async fn fire(topology: &Topology, tick: &Tick, at: DateTime<Utc>) {
    // A failed publish is tried again shortly: the tick's id keeps a retry from firing twice.
    let ticks = Backoff { tries: 5, first_wait: std::time::Duration::from_millis(200) };
    let event = tick.event(at);
    match retry::persist("cron tick", ticks, || router::publish(topology, tick.subject(), &event)).await {
        Ok(()) => {
            metrics::accepted("cron");
            tracing::debug!(function = %tick.function, trigger = %tick.key, %at, "cron tick");
        }
        Err(err) => tracing::error!(function = %tick.function, %err, "cron tick not stored; this tick is skipped"),
    }
}

/// Fires one schedule until `stop`.
async fn run_tick(topology: Topology, tick: Tick, stop: CancellationToken) {
    let schedule = match Schedule::parse(&tick.expression, tick.timezone.as_deref()) {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(function = %tick.function, %err, "invalid schedule");
            return;
        }
    };
    let mut after = Utc::now();
    if tick.catch_up > 0
        && let Some(last) = last_fired(&topology, &tick).await
    {
        let missed: Vec<_> = schedule.upcoming(last, 10_000).into_iter().take_while(|t| *t <= after).collect();
        let from = missed.len().saturating_sub(tick.catch_up as usize);
        for at in &missed[from..] {
            fire(&topology, &tick, *at).await;
        }
        if !missed.is_empty() {
            tracing::info!(function = %tick.function, missed = missed.len(), fired = missed.len() - from, "cron caught up");
        }
    }
    loop {
        let Some(next) = schedule.next_after(after) else { return };
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        fire(&topology, &tick, next).await;
        after = next;
    }
}

/// Runs every schedule of every function, following spec changes, until `shutdown`.
pub async fn run(topology: Topology, shutdown: CancellationToken) {
    let store = FunctionStore::new(topology.functions.clone());
    let mut changes = store.follow(shutdown.clone());
    // By (function, trigger key): the schedule running and how to stop it.
    let mut running: HashMap<(FunctionRef, String), (Tick, CancellationToken)> = HashMap::new();
    tracing::info!("cron connector started");
    while let Some(change) = changes.recv().await {
        let (function, wanted) = match change {
            SpecChange::Deployed(deployed) => (deployed.spec.function_ref(), ticks_of(&deployed.spec)),
            SpecChange::Removed(function) => (function, Vec::new()),
            SpecChange::Applied(_) => continue,
        };
        running.retain(|(f, key), (tick, stop)| {
            let keep = *f != function || wanted.iter().any(|w| w.key == *key && w == tick);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for tick in wanted {
            let id = (function.clone(), tick.key.clone());
            if running.contains_key(&id) {
                continue;
            }
            let stop = shutdown.child_token();
            tracing::info!(function = %function, trigger = %tick.key, schedule = %tick.expression, "cron schedule active");
            tokio::spawn(run_tick(topology.clone(), tick.clone(), stop.clone()));
            running.insert(id, (tick, stop));
        }
    }
}

/// The next `n` fire times of every schedule of `spec`, for `sluice cron next`.
pub fn next_fire_times(spec: &FunctionSpec, n: usize) -> Vec<(String, String, Vec<DateTime<Utc>>)> {
    ticks_of(spec)
        .into_iter()
        .filter_map(|t| {
            let schedule = Schedule::parse(&t.expression, t.timezone.as_deref()).ok()?;
            Some((t.key, t.expression, schedule.upcoming(Utc::now(), n)))
        })
        .collect()
}
