//! End-to-end benchmark of Sluice against raw JetStream, measured in one run on one `nats-server`.
//!
//! `cargo bench --bench e2e` (add `-- --quick` for a smoke run under a minute; `--n`, `--size`,
//! `--concurrency` and `--rate` change the load; `--only-idle` measures what idle functions cost, alone;
//! `--only-retention` what nats-server keeps per kept call; `--only-dead-listing` what listing dead letters costs as
//! they pile up). It prints a table and writes `benches/results/<date>.json`
//! with every figure and its ratio to the baseline measured in the same run.

mod baseline;
mod dead_listing;
mod fairness;
mod idle;
mod load;
mod pipeline;
mod procs;
mod report;
mod retention;
mod scenarios;
mod watchers;

use std::time::Duration;

/// Load parameters.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Params {
    /// Messages or calls per throughput measurement.
    pub n: usize,
    /// Body size in bytes.
    pub size: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Offered load (calls/s) of the latency measurement, below saturation.
    pub rate: u32,
    /// How long the latency measurement offers its load.
    pub latency_seconds: u64,
    /// Size of the large-body measurement.
    pub large_body: usize,
    pub quick: bool,
    /// Only the idle-cost rows (`--only-idle`).
    pub only_idle: bool,
    /// Only the fairness scenarios (`--only-fairness`).
    pub only_fairness: bool,
    /// Only what nats-server keeps per kept call (`--only-retention`).
    pub only_retention: bool,
    /// Only what listing dead letters costs (`--only-dead-listing`).
    pub only_dead_listing: bool,
    /// The idle-cost rows to measure, as `functions x workers` (`--idle-rows 10000x4,1000x1`); the default set
    /// when empty.
    pub idle_rows: Vec<(usize, usize)>,
}

impl Params {
    fn from_args() -> Self {
        let mut p = Self {
            n: 20_000,
            size: 256,
            concurrency: 64,
            rate: 500,
            latency_seconds: 10,
            large_body: 50 * 1024 * 1024,
            quick: false,
            only_idle: false,
            only_fairness: false,
            only_retention: false,
            only_dead_listing: false,
            idle_rows: Vec::new(),
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let value = || args.get(i + 1).and_then(|v| v.parse::<usize>().ok()).expect("a number after the flag");
            match args[i].as_str() {
                "--quick" => p.quick = true,
                "--only-idle" => p.only_idle = true,
                "--only-fairness" => p.only_fairness = true,
                "--only-retention" => p.only_retention = true,
                "--only-dead-listing" => p.only_dead_listing = true,
                "--idle-rows" => {
                    let rows = args.get(i + 1).expect("rows after --idle-rows, like 10000x4,1000x1");
                    p.idle_rows = rows
                        .split(',')
                        .map(|row| {
                            let (f, w) = row.split_once('x').expect("a row is FUNCTIONSxWORKERS");
                            (f.parse().expect("a count of functions"), w.parse().expect("a count of workers"))
                        })
                        .collect();
                    i += 1;
                }
                "--n" => (p.n, i) = (value(), i + 1),
                "--size" => (p.size, i) = (value(), i + 1),
                "--concurrency" => (p.concurrency, i) = (value(), i + 1),
                "--rate" => (p.rate, i) = (value() as u32, i + 1),
                "--bench" => {} // cargo bench passes it to every bench binary
                other => panic!(
                    "unknown flag {other}; use --quick, --only-idle, --idle-rows, --only-fairness, --only-retention, \
                     --only-dead-listing, --n, --size, --concurrency, --rate"
                ),
            }
            i += 1;
        }
        if p.quick {
            p.n = p.n.min(2_000);
            p.latency_seconds = 3;
            p.rate = p.rate.min(200);
            p.large_body = 10 * 1024 * 1024;
        }
        p
    }
}

fn main() {
    let params = Params::from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if params.only_idle {
        let rows = runtime.block_on(idle::measure(&params));
        report::print_idle(&rows);
        return;
    }
    if params.only_retention {
        let measured = runtime.block_on(retention::measure(&params));
        report::print_retention(&measured);
        return;
    }
    if params.only_dead_listing {
        let rows = runtime.block_on(dead_listing::measure(&params));
        report::print_dead_listing(&rows);
        return;
    }
    if params.only_fairness {
        let measured = runtime.block_on(fairness::measure(&params));
        report::print_fairness(&measured);
        return;
    }
    let results = runtime.block_on(scenarios::run_all(&params));
    report::print(&params, &results);
    let path = report::write_json(&params, &results).expect("write the results file");
    eprintln!("results written to {}", path.display());
    // The servers are stopped by their guards; give them a moment before the process exits.
    std::thread::sleep(Duration::from_millis(100));
}
