//! Metric names the gateway records (OpenFaaS names where OpenFaaS has the metric).

use sluice_contracts::FunctionRef;
use std::time::Duration;

/// Counter of invocations by function and answer code.
pub const INVOCATION_TOTAL: &str = "gateway_function_invocation_total";
/// Histogram of synchronous call durations, seconds.
pub const FUNCTION_SECONDS: &str = "gateway_functions_seconds";
/// Counter of calls accepted onto the queue, by function.
pub const QUEUED_TOTAL: &str = "sluice_gateway_calls_queued_total";

pub fn invocation(function: &FunctionRef, code: u16) {
    metrics::counter!(INVOCATION_TOTAL, "function_name" => function.to_string(), "code" => code.to_string())
        .increment(1);
}

pub fn sync_duration(function: &FunctionRef, code: u16, elapsed: Duration) {
    metrics::histogram!(FUNCTION_SECONDS, "function_name" => function.to_string(), "code" => code.to_string())
        .record(elapsed.as_secs_f64());
}

pub fn queued(function: &FunctionRef) {
    metrics::counter!(QUEUED_TOTAL, "function_name" => function.to_string()).increment(1);
}
