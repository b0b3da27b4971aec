//! The results table, and the JSON file with every figure and its ratio to the baseline.

use std::path::PathBuf;

use crate::{Params, scenarios::Results};

/// (name, value, unit, ratio to baseline, target)
fn rows(r: &Results) -> Vec<(&'static str, f64, &'static str, Option<f64>, &'static str)> {
    let c = &r.cpu_us;
    let m = &r.nats_messages;
    vec![
        ("baseline: JetStream publish-with-ack", r.baseline_publish_per_s, "msg/s", None, ""),
        ("baseline: pull consume + ack", r.baseline_consume_per_s, "msg/s", None, ""),
        ("baseline: publish then consume", r.baseline_pipeline_per_s, "msg/s", None, ""),
        (
            "gateway accept (202)",
            r.accept_per_s,
            "calls/s",
            Some(r.accept_per_s / r.baseline_publish_per_s),
            ">= 0.50 of publish",
        ),
        (
            "end to end, http no-op",
            r.e2e_http_per_s,
            "calls/s",
            Some(r.e2e_http_per_s / r.baseline_pipeline_per_s),
            ">= 0.25 of pipeline, >= 2000/s",
        ),
        (
            "end to end, process (cat)",
            r.e2e_process_per_s,
            "calls/s",
            Some(r.e2e_process_per_s / r.baseline_pipeline_per_s),
            "",
        ),
        ("accept latency p50", r.accept_latency_ms.p50, "ms", None, ""),
        ("accept latency p95", r.accept_latency_ms.p95, "ms", None, ""),
        ("accept latency p99", r.accept_latency_ms.p99, "ms", None, ""),
        ("end-to-end latency p50", r.e2e_latency_ms.p50, "ms", None, ""),
        ("end-to-end latency p95", r.e2e_latency_ms.p95, "ms", None, ""),
        ("end-to-end latency p99", r.e2e_latency_ms.p99, "ms", None, ""),
        ("worker overhead per call p50 (bucket bound)", r.worker_overhead_p50_ms, "ms", None, "< 2 ms"),
        ("worker overhead per call p95 (bucket bound)", r.worker_overhead_p95_ms, "ms", None, ""),
        ("CPU: nats-server per baseline publish", c.nats_per_baseline_publish, "us", None, ""),
        ("CPU: baseline client per publish", c.harness_per_baseline_publish, "us", None, ""),
        ("CPU: nats-server per baseline publish+consume", c.nats_per_baseline_pipeline, "us", None, ""),
        ("CPU: gateway per accept", c.gateway_per_accept, "us", None, ""),
        (
            "CPU: nats-server per accept",
            c.nats_per_accept,
            "us",
            Some(c.nats_per_accept / c.nats_per_baseline_publish),
            "(x publish)",
        ),
        ("CPU: harness per accept", c.harness_per_accept, "us", None, ""),
        ("CPU: worker per e2e call", c.worker_per_e2e_call, "us", None, ""),
        ("CPU: gateway per e2e call", c.gateway_per_e2e_call, "us", None, ""),
        (
            "CPU: nats-server per e2e call",
            c.nats_per_e2e_call,
            "us",
            Some(c.nats_per_e2e_call / c.nats_per_baseline_pipeline),
            "(x pipeline)",
        ),
        ("CPU: harness per e2e call", c.harness_per_e2e_call, "us", None, ""),
        ("NATS messages sent: baseline per message", m.baseline_per_pipeline_message, "msgs", None, "publish, ack"),
        ("NATS messages sent: gateway per accept", m.gateway_per_accept, "msgs", None, ""),
        ("NATS messages sent: worker per e2e call", m.worker_per_e2e_call, "msgs", None, ""),
        ("  of which record reads at a call's start", m.worker_record_reads_per_e2e_call, "msgs", None, ""),
        ("gateway RSS idle", r.gateway_idle_rss_mb, "MiB", None, "< 50"),
        ("worker RSS idle", r.worker_idle_rss_mb, "MiB", None, "< 50"),
        ("gateway peak RSS, whole run", r.gateway_peak_rss_under_load_mb, "MiB", None, ""),
        ("worker peak RSS, whole run", r.worker_peak_rss_under_load_mb, "MiB", None, ""),
        ("large body end to end", r.large_body_seconds, "s", None, ""),
        (
            "gateway peak RSS, large body",
            r.gateway_peak_rss_large_body_mb,
            "MiB",
            Some(r.gateway_peak_rss_large_body_mb / r.large_body_mb),
            "< 2 bodies",
        ),
        (
            "worker peak RSS, large body",
            r.worker_peak_rss_large_body_mb,
            "MiB",
            Some(r.worker_peak_rss_large_body_mb / r.large_body_mb),
            "< 2 bodies",
        ),
        ("baseline: read N specs from KV (one pass)", r.raw_spec_read_ms, "ms", None, ""),
        (
            "list N functions (GET /system/functions)",
            r.list_ms,
            "ms",
            Some(r.list_ms / r.raw_spec_read_ms),
            "(x raw read) N in the JSON",
        ),
        ("live watchers (SSE streams on queued calls)", r.watchers.watchers as f64, "streams", None, ""),
        ("time until every stream had its state", r.watchers.open_seconds, "s", None, ""),
        ("gateway memory per watcher", r.watchers.gateway_kib_per_watcher, "KiB", None, "< 64"),
        ("gateway CPU, watchers open and idle", r.watchers.gateway_idle_cpu_percent, "% core", None, ""),
        ("baseline: KV watches the server accepted", r.watchers.raw_watches_opened as f64, "consumers", None, ""),
        ("baseline: nats-server memory, a KV watch per call", r.watchers.nats_mb_raw_watches, "MiB", None, ""),
        (
            "nats-server memory, the watchers",
            r.watchers.nats_mb_sluice,
            "MiB",
            Some(r.watchers.nats_mb_sluice / r.watchers.nats_mb_raw_watches.max(0.01)),
            "(x raw watches)",
        ),
        ("change to every watcher p50 (cancel all)", r.watchers.change_p50_ms, "ms", None, ""),
        ("change to every watcher p99 (cancel all)", r.watchers.change_p99_ms, "ms", None, ""),
        ("worker RSS before the output flood", r.worker_idle_rss_output_flood_mb, "MiB", None, ""),
        (
            "worker peak RSS, 4 calls flooding output",
            r.worker_peak_rss_output_flood_mb,
            "MiB",
            Some(
                (r.worker_peak_rss_output_flood_mb - r.worker_idle_rss_output_flood_mb)
                    / (r.output_flood_calls.max(1) as f64 * r.output_flood_limit_mb),
            ),
            "(x limit per call) < 2",
        ),
    ]
}

pub fn print(p: &Params, r: &Results) {
    println!();
    println!(
        "Sluice end-to-end benchmark: n={} size={} B concurrency={} latency load={}/s{}",
        p.n,
        p.size,
        p.concurrency,
        p.rate,
        if p.quick { " (quick)" } else { "" }
    );
    println!("{:<46} {:>12} {:<8} {:>8}  target", "measure", "value", "unit", "ratio");
    for (name, value, unit, ratio, target) in rows(r) {
        let ratio = ratio.map(|x| format!("{x:.2}")).unwrap_or_default();
        println!("{name:<46} {value:>12.1} {unit:<8} {ratio:>8}  {target}");
    }
    let pipeline = &r.pipeline;
    println!();
    println!("Fan-out pipeline on {} workers: split → N segments → join → announcement (median run)", pipeline.workers);
    println!(
        "{:>8} {:>10} {:>14} {:>10} {:>16} {:>12} {:>10} {:>14}",
        "segments",
        "wall ms",
        "critical ms",
        "work ms",
        "orchestration ms",
        "per hand-off",
        "wall/work",
        "worker msg/call"
    );
    for run in &pipeline.runs {
        println!(
            "{:>8} {:>10.0} {:>14.0} {:>10.0} {:>16.0} {:>12.1} {:>10.2} {:>14.1}",
            run.segments,
            run.wall_ms,
            run.critical_path_ms,
            run.work_ms,
            run.orchestration_ms,
            run.per_handoff_ms,
            run.wall_over_work,
            run.worker_messages_per_call
        );
    }
    print_idle(&r.idle);
}

/// The idle-cost table: one row per count of functions and of workers.
pub fn print_idle(rows: &[crate::idle::IdleRow]) {
    println!();
    println!("Idle functions (process functions, no calls; CPU over 60 s (5 s quick), % of one core)");
    println!(
        "{:>9} {:>7} {:>9} {:>10} {:>10} {:>9} {:>10} {:>13} {:>9} {:>8} {:>8} {:>11}",
        "functions",
        "workers",
        "nats CPU",
        "worker CPU",
        "gateway",
        "nats MiB",
        "worker MiB",
        "worker msg/s",
        "take-up s",
        "list ms",
        "call ms",
        "each once s"
    );
    for r in rows {
        println!(
            "{:>9} {:>7} {:>9.1} {:>10.1} {:>10.1} {:>9.0} {:>10.0} {:>13.0} {:>9.1} {:>8.1} {:>8.1} {:>11.1}",
            r.functions,
            r.workers,
            r.nats_cpu_percent,
            r.worker_cpu_percent,
            r.gateway_cpu_percent,
            r.nats_rss_mb,
            r.worker_rss_mb,
            r.worker_messages_per_s,
            r.takeup_s,
            r.list_ms,
            r.call_ms,
            r.each_once_s
        );
    }
}

pub fn write_json(p: &Params, r: &Results) -> std::io::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results");
    std::fs::create_dir_all(&dir)?;
    let date = chrono::Utc::now().format("%Y-%m-%d");
    let name = if p.quick { format!("{date}-quick.json") } else { format!("{date}.json") };
    let figures: Vec<serde_json::Value> = rows(r)
        .into_iter()
        .map(|(name, value, unit, ratio, target)| {
            serde_json::json!({"measure": name, "value": value, "unit": unit, "ratio_to_baseline": ratio, "target": target})
        })
        .collect();
    let machine = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
    });
    let doc = serde_json::json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "machine": {"cpu": machine, "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "params": p,
        "figures": figures,
        "raw": r,
    });
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
    Ok(path)
}

pub fn print_fairness(f: &crate::fairness::Fairness) {
    let h = &f.hot_cold;
    println!();
    println!(
        "Fairness: one call to each of {} cold functions, one at a time, accepted to called back (ms)",
        h.cold_functions
    );
    println!("{:>28} {:>8} {:>8} {:>8}", "", "p50", "p95", "max");
    println!("{:>28} {:>8.1} {:>8.1} {:>8}", "alone", h.alone_p50_ms, h.alone_p95_ms, "");
    println!(
        "{:>28} {:>8.1} {:>8.1} {:>8.1}",
        format!("beside {} hot calls", h.hot_backlog),
        h.beside_hot_p50_ms,
        h.beside_hot_p95_ms,
        h.beside_hot_max_ms
    );
    println!(
        "ratio beside / alone at p50: {:.2}; hot calls still queued after the last cold one: {}",
        h.beside_hot_p50_ms / h.alone_p50_ms,
        h.hot_left
    );
    println!();
    println!("Fairness: two backlogged functions sharing one worker's slots (calls finished over the window)");
    println!("{:>14} {:>14} {:>8} {:>8} {:>8}", "maxInflight a", "maxInflight b", "a done", "b done", "a share");
    for s in &f.shares {
        println!(
            "{:>14} {:>14} {:>8} {:>8} {:>8.2}",
            s.max_inflight_a, s.max_inflight_b, s.done_a, s.done_b, s.share_a
        );
    }
}

pub fn print_retention(r: &crate::retention::Retention) {
    println!();
    println!("What nats-server keeps per kept call ({} calls end to end, then the server restarted)", r.calls);
    println!(
        "{:<58} {:>10}",
        "nats-server RSS, streams made, nothing called (MiB)",
        format!("{:.1}", r.nats_rss_empty_mb)
    );
    println!("{:<58} {:>10}", "after the calls (MiB)", format!("{:.1}", r.nats_rss_after_mb));
    println!("{:<58} {:>10}", "restarted on the same store (MiB)", format!("{:.1}", r.nats_rss_restarted_mb));
    println!("{:<58} {:>10.0}", "kept per call, restarted (bytes)", r.kept_per_call_bytes);
    println!("{:<58} {:>10.0}", "baseline: per bare KV key, restarted (bytes)", r.baseline_per_key_bytes);
    println!(
        "{:<58} {:>10.0}",
        "baseline: per message id in a duplicate window (bytes)", r.baseline_per_message_id_bytes
    );
    println!("{:<58} {:>10.0}", "store on disk per call (bytes)", r.disk_per_call_bytes);
    println!("kept per call / bare key: {:.2}", r.kept_per_call_bytes / r.baseline_per_key_bytes.max(1.0));
}

pub fn print_dead_listing(rows: &[crate::dead_listing::ListingRow]) {
    println!();
    println!("Listing dead letters (16 KiB bodies; median of five; ratio to the first row)");
    println!(
        "{:>10} {:>22} {:>8} {:>28} {:>8} {:>30} {:>8}",
        "kept",
        "newest 100 (ms)",
        "ratio",
        "a function's oldest 10 (ms)",
        "ratio",
        "discard, record expired (ms)",
        "ratio"
    );
    let Some(base) = rows.first() else { return };
    for r in rows {
        println!(
            "{:>10} {:>22.1} {:>8.2} {:>28.1} {:>8.2} {:>30.1} {:>8.2}",
            r.letters,
            r.newest_ms,
            r.newest_ms / base.newest_ms,
            r.rare_ms,
            r.rare_ms / base.rare_ms,
            r.unrecorded_discard_ms,
            r.unrecorded_discard_ms / base.unrecorded_discard_ms
        );
    }
}
