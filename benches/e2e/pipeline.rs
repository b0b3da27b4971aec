//! Orchestration of a fan-out pipeline: a split that fans out N segment calls, joined by one join call that
//! announces itself at an onSuccess URL, on two workers. The wall time from the split's acceptance to the
//! announcement is set against the pipeline's critical path — the split's, the longest segment's and the
//! join's run times as their records give them — and against the functions' own work (their sleeps). What is
//! left is Sluice's: queueing, the fan-out, the group's settling and the hand-offs between steps.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{Params, load, procs};

/// What each step sleeps, s: the functions' own work, the ideal wall time being their sum.
const SPLIT_S: f64 = 0.2;
const SEGMENT_S: f64 = 0.5;
const JOIN_S: f64 = 0.2;

#[derive(Debug, Default, Serialize)]
pub struct Pipeline {
    pub workers: usize,
    pub runs: Vec<PipelineRun>,
}

#[derive(Debug, Default, Serialize, Clone)]
pub struct PipelineRun {
    pub segments: usize,
    /// Accepted split → join's announcement arrived, ms (median of the repeats).
    pub wall_ms: f64,
    /// Split + longest segment + join, each from its record's start to its end, ms.
    pub critical_path_ms: f64,
    /// What the functions sleep on that path, ms: the least any platform could take.
    pub work_ms: f64,
    /// Wall time beyond the critical path, ms: queueing and hand-offs (accept → split → segments → join →
    /// announcement).
    pub orchestration_ms: f64,
    /// The same, per hand-off (four of them), ms.
    pub per_handoff_ms: f64,
    /// Wall time over the functions' work.
    pub wall_over_work: f64,
    /// Messages the workers sent nats-server per call of the pipeline (N + 2 calls).
    pub worker_messages_per_call: f64,
}

fn seconds_between(record: &Value) -> f64 {
    let at = |field: &str| record[field].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok());
    match (at("startedAt"), at("finishedAt")) {
        (Some(start), Some(end)) => (end - start).to_std().unwrap_or_default().as_secs_f64(),
        _ => f64::NAN,
    }
}

async fn record(http: &reqwest::Client, base: &str, id: &str) -> Value {
    http.get(format!("{base}/system/calls/{id}")).send().await.unwrap().json().await.unwrap()
}

/// Deploys the three functions on the running gateway, starts a second worker beside the running one and runs
/// the pipeline for N = 4, 16 and 64 segments (4 and 16 in a quick run), three times each.
pub async fn measure(p: &Params, base: &str, server: &procs::Nats, dir: &std::path::Path) -> Pipeline {
    let mut result = Pipeline { workers: 2, runs: Vec::new() };
    let http = reqwest::Client::new();
    let receiver = load::Receiver::start().await;
    let split = dir.join("pl-split.sh");
    std::fs::write(
        &split,
        format!(
            r#"#!/bin/sh
n=$(cat); calls=""; i=0
while [ $i -lt "$n" ]; do calls="$calls{{\"function\":\"pl-segment\",\"body\":\"$i\"}},"; i=$((i+1)); done
sleep {SPLIT_S}
curl -sf --data-binary "{{\"calls\":[${{calls%,}}],\"join\":{{\"function\":\"pl-join\"}}}}" "$Http_X_Sluice_Fanout_Url" >/dev/null
"#
        ),
    )
    .unwrap();
    let specs = [
        json!({"service": "pl-join", "envProcess": format!("sh -c 'sleep {JOIN_S}; echo joined'"),
               "async": {"onSuccess": {"url": receiver.url}}}),
        json!({"service": "pl-segment", "envProcess": format!("sh -c 'sleep {SEGMENT_S}'")}),
        json!({"service": "pl-split", "envProcess": format!("sh {}", split.display())}),
    ];
    for spec in specs {
        let r = http.post(format!("{base}/system/functions")).json(&spec).send().await.unwrap();
        assert!(r.status().is_success(), "deploy {spec}: {}", r.status());
    }
    let second = procs::worker(&server.url, dir).await;
    let sizes: &[usize] = if p.quick { &[4, 16] } else { &[4, 16, 64] };
    let repeats = if p.quick { 1 } else { 3 };
    for &n in sizes {
        eprintln!("sluice: fan-out pipeline, {n} segments on {} workers", result.workers);
        let mut runs = Vec::new();
        for _ in 0..repeats {
            let sent_before = server.sent_by_client().await;
            let started = Instant::now();
            let accepted =
                load::post_one(&http, &format!("{base}/async-function/pl-split"), Bytes::from(n.to_string()), None)
                    .await
                    .expect("split accepted");
            let join = sluice_contracts::fanout::join_call_id(&accepted.call_id);
            let deadline = Instant::now() + Duration::from_secs(120);
            let arrived = loop {
                if let Some(at) = receiver.arrival(&join) {
                    break at;
                }
                assert!(Instant::now() < deadline, "the join of {n} segments never announced itself");
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            let wall = (arrived - started).as_secs_f64();
            let split = record(&http, base, &accepted.call_id).await;
            let children: Vec<String> =
                split["children"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
            let mut longest: f64 = 0.0;
            for child in &children[..children.len() - 1] {
                longest = longest.max(seconds_between(&record(&http, base, child).await));
            }
            let critical = seconds_between(&split) + longest + seconds_between(&record(&http, base, &join).await);
            let messages = procs::sent_per_call(&sent_before, &server.sent_by_client().await, "sluice-worker", n + 2);
            runs.push(PipelineRun {
                segments: n,
                wall_ms: wall * 1000.0,
                critical_path_ms: critical * 1000.0,
                work_ms: (SPLIT_S + SEGMENT_S + JOIN_S) * 1000.0,
                orchestration_ms: (wall - critical) * 1000.0,
                per_handoff_ms: (wall - critical) * 1000.0 / 4.0,
                wall_over_work: wall / (SPLIT_S + SEGMENT_S + JOIN_S),
                worker_messages_per_call: messages,
            });
        }
        runs.sort_by(|a, b| a.wall_ms.total_cmp(&b.wall_ms));
        result.runs.push(runs[runs.len() / 2].clone());
    }
    drop(second);
    result
}
