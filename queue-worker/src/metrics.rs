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

pub fn inflight(function: &FunctionRef, delta: f64) {
    metrics::gauge!(INFLIGHT, "function_name" => function.to_string()).increment(delta);
}

pub fn pending(function: &FunctionRef, value: u64) {
    metrics::gauge!(PENDING, "function_name" => function.to_string()).set(value as f64);
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
