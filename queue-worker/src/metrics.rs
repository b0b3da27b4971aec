//! Metric names the worker records. `function_name` is `{name}.{namespace}`, as OpenFaaS labels functions.

use sluice_contracts::FunctionRef;

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

pub fn inflight(function: &FunctionRef, delta: f64) {
    metrics::gauge!(INFLIGHT, "function_name" => function.to_string()).increment(delta);
}

pub fn pending(function: &FunctionRef, value: u64) {
    metrics::gauge!(PENDING, "function_name" => function.to_string()).set(value as f64);
}

/// Starts a served function's counters at zero: a counter that first appears at 1 is an increase that
/// Prometheus's `rate` and `increase` never see, so the first dead letter would raise no alert.
pub fn served(function: &FunctionRef) {
    let name = function.to_string();
    for outcome in ["succeeded", "failed"] {
        metrics::counter!(CALLS_TOTAL, "function_name" => name.clone(), "outcome" => outcome).increment(0);
    }
    metrics::counter!(RETRIES_TOTAL, "function_name" => name.clone()).increment(0);
    metrics::counter!(RECORD_READS_TOTAL, "function_name" => name.clone()).increment(0);
    metrics::counter!(DEAD_LETTERS_TOTAL, "function_name" => name).increment(0);
}

pub fn oldest_age(function: &FunctionRef, seconds: f64) {
    metrics::gauge!(OLDEST_AGE_SECONDS, "function_name" => function.to_string()).set(seconds.max(0.0));
}

pub fn replicas(function: &FunctionRef, available: u32) {
    metrics::gauge!(REPLICAS, "function_name" => function.to_string()).set(f64::from(available));
}

pub fn retried(function: &FunctionRef) {
    metrics::counter!(RETRIES_TOTAL, "function_name" => function.to_string()).increment(1);
}

pub fn record_read(function: &FunctionRef) {
    metrics::counter!(RECORD_READS_TOTAL, "function_name" => function.to_string()).increment(1);
}

pub fn dead_lettered(function: &FunctionRef) {
    metrics::counter!(DEAD_LETTERS_TOTAL, "function_name" => function.to_string()).increment(1);
}

pub fn ended(function: &FunctionRef, outcome: &'static str, seconds: f64) {
    metrics::counter!(CALLS_TOTAL, "function_name" => function.to_string(), "outcome" => outcome).increment(1);
    metrics::histogram!(CALL_SECONDS, "function_name" => function.to_string()).record(seconds);
}

pub fn callback(outcome: &'static str) {
    metrics::counter!(CALLBACKS_TOTAL, "outcome" => outcome).increment(1);
}

pub fn overhead(seconds: f64) {
    metrics::histogram!(OVERHEAD_SECONDS).record(seconds.max(0.0));
}
