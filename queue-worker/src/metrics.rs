//! Metric names the worker records. `function_name` is `{name}.{namespace}`, as OpenFaaS labels functions.
//!
//! What every call records goes through handles registered once per function ([`Handles`]).

use std::sync::{Arc, LazyLock};

use metrics::{Counter, Gauge, Histogram};
use sluice_contracts::{FunctionRef, handles::Handles};

/// Calls ended, by function and outcome (`succeeded`, `failed`).
pub const CALLS_TOTAL: &str = "sluice_queue_calls_total";
/// Calls running now, by function.
pub const INFLIGHT: &str = "sluice_queue_inflight";
/// Calls waiting in a function's queue, sampled from its consumer.
pub const PENDING: &str = "sluice_queue_pending";
/// Call duration in the runtime, seconds.
pub const CALL_SECONDS: &str = "sluice_queue_call_seconds";
/// The worker's own time per call, seconds: from taking it off the queue to its ack, minus the function.
pub const OVERHEAD_SECONDS: &str = "sluice_queue_overhead_seconds";
/// Callback deliveries, by outcome.
pub const CALLBACKS_TOTAL: &str = "sluice_callbacks_total";
/// Age of the oldest call waiting in (or taken from and not yet acked off) a function's queue, seconds; 0 when
/// none waits. Sampled with `PENDING`.
pub const OLDEST_AGE_SECONDS: &str = "sluice_queue_oldest_age_seconds";
/// Containers of a function this worker runs that are ready, by function (sum over workers for the total).
pub const REPLICAS: &str = "sluice_function_replicas";
/// Attempts that failed and were handed back to be tried again, by function.
pub const RETRIES_TOTAL: &str = "sluice_queue_retries_total";
/// Calls that failed for good and went to the dead letters, by function.
pub const DEAD_LETTERS_TOTAL: &str = "sluice_dead_letters_total";
/// Attempts that read their call's record before starting, by function: redeliveries, calls queued more than
/// two minutes before, and calls this worker heard cancelled or could not vouch for. Other first deliveries
/// start from the record as it was queued.
pub const RECORD_READS_TOTAL: &str = "sluice_queue_record_reads_total";
/// Times a function's polls ended with no call (none came for `--idle-after`, or the server let its consumer
/// go), so this worker stopped polling it and waits for a call to be published; by function.
pub const IDLE_TOTAL: &str = "sluice_queue_idle_total";

/// The series a function's calls record, registered when the function's first call needs them.
struct Series {
    inflight: Gauge,
    succeeded: Counter,
    failed: Counter,
    seconds: Histogram,
    retries: Counter,
    record_reads: Counter,
    dead_letters: Counter,
}

impl Series {
    fn register(function: &FunctionRef) -> Self {
        let name = function.to_string();
        Self {
            inflight: metrics::gauge!(INFLIGHT, "function_name" => name.clone()),
            succeeded: metrics::counter!(CALLS_TOTAL, "function_name" => name.clone(), "outcome" => "succeeded"),
            failed: metrics::counter!(CALLS_TOTAL, "function_name" => name.clone(), "outcome" => "failed"),
            seconds: metrics::histogram!(CALL_SECONDS, "function_name" => name.clone()),
            retries: metrics::counter!(RETRIES_TOTAL, "function_name" => name.clone()),
            record_reads: metrics::counter!(RECORD_READS_TOTAL, "function_name" => name.clone()),
            dead_letters: metrics::counter!(DEAD_LETTERS_TOTAL, "function_name" => name),
        }
    }
}

/// Every served function's handles; as many as the series they name, which the recorder keeps anyway.
static HANDLES: LazyLock<Handles<FunctionRef, Arc<Series>>> = LazyLock::new(Default::default);

fn series(function: &FunctionRef) -> Arc<Series> {
    HANDLES.get(function, || Arc::new(Series::register(function)))
}

pub fn inflight(function: &FunctionRef, delta: f64) {
    series(function).inflight.increment(delta);
}

pub fn pending(function: &FunctionRef, value: u64) {
    metrics::gauge!(PENDING, "function_name" => function.to_string()).set(value as f64);
}

/// Starts a served function's counters at zero: a counter that first appears at 1 is an increase that
/// Prometheus's `rate` and `increase` never see, so the first dead letter would raise no alert.
pub fn served(function: &FunctionRef) {
    let series = series(function);
    for counter in [&series.succeeded, &series.failed, &series.retries, &series.record_reads, &series.dead_letters] {
        counter.increment(0);
    }
}

pub fn oldest_age(function: &FunctionRef, seconds: f64) {
    metrics::gauge!(OLDEST_AGE_SECONDS, "function_name" => function.to_string()).set(seconds.max(0.0));
}

pub fn replicas(function: &FunctionRef, available: u32) {
    metrics::gauge!(REPLICAS, "function_name" => function.to_string()).set(f64::from(available));
}

pub fn retried(function: &FunctionRef) {
    series(function).retries.increment(1);
}

pub fn record_read(function: &FunctionRef) {
    series(function).record_reads.increment(1);
}

pub fn dead_lettered(function: &FunctionRef) {
    series(function).dead_letters.increment(1);
}

/// A call ended: succeeded or failed, after `seconds` in its runtime.
pub fn ended(function: &FunctionRef, succeeded: bool, seconds: f64) {
    let series = series(function);
    if succeeded { &series.succeeded } else { &series.failed }.increment(1);
    series.seconds.record(seconds);
}

/// Callback deliveries by outcome.
pub enum Delivery {
    Delivered,
    Failed,
    Refused,
}

pub fn callback(outcome: Delivery) {
    static DELIVERED: LazyLock<Counter> =
        LazyLock::new(|| metrics::counter!(CALLBACKS_TOTAL, "outcome" => "delivered"));
    static FAILED: LazyLock<Counter> = LazyLock::new(|| metrics::counter!(CALLBACKS_TOTAL, "outcome" => "failed"));
    static REFUSED: LazyLock<Counter> = LazyLock::new(|| metrics::counter!(CALLBACKS_TOTAL, "outcome" => "refused"));
    match outcome {
        Delivery::Delivered => &DELIVERED,
        Delivery::Failed => &FAILED,
        Delivery::Refused => &REFUSED,
    }
    .increment(1);
}

pub fn overhead(seconds: f64) {
    static OVERHEAD: LazyLock<Histogram> = LazyLock::new(|| metrics::histogram!(OVERHEAD_SECONDS));
    OVERHEAD.record(seconds.max(0.0));
}

/// The function's polls ended with no call; rare (once an idle period), so looked up by name.
pub fn went_idle(function: &FunctionRef) {
    metrics::counter!(IDLE_TOTAL, "function_name" => function.to_string()).increment(1);
}
