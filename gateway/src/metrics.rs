//! Metric names the gateway records (OpenFaaS names where OpenFaaS has the metric).
//!
//! Each call's series are handles registered on first use ([`Handles`]): only deployed functions and HTTP status
//! codes become labels, so the handles are as many as the series the recorder keeps anyway.

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use metrics::{Counter, Histogram};
use sluice_contracts::{FunctionRef, handles::Handles};

/// Counter of invocations by function and answer code.
pub const INVOCATION_TOTAL: &str = "gateway_function_invocation_total";
/// Histogram of synchronous call durations, seconds.
pub const FUNCTION_SECONDS: &str = "gateway_functions_seconds";
/// Counter of calls accepted onto the queue, by function.
pub const QUEUED_TOTAL: &str = "sluice_gateway_calls_queued_total";

/// Gauges of each stream, bucket and object store, by `stream` (its JetStream name), set at each scrape: messages
/// and bytes held, and the most bytes it may hold (with `when_full`: `discard oldest` or `refuse new`), when capped.
pub const STORE_MESSAGES: &str = "sluice_store_messages";
pub const STORE_BYTES: &str = "sluice_store_bytes";
pub const STORE_MAX_BYTES: &str = "sluice_store_max_bytes";

/// Sets the stores' gauges from `streams`.
pub fn stores(streams: &[sluice_contracts::presence::StreamSize]) {
    for s in streams {
        metrics::gauge!(STORE_MESSAGES, "stream" => s.name.clone()).set(s.messages as f64);
        metrics::gauge!(STORE_BYTES, "stream" => s.name.clone()).set(s.bytes as f64);
        if let Some(max) = s.max_bytes {
            metrics::gauge!(STORE_MAX_BYTES, "stream" => s.name.clone(), "when_full" => s.when_full.clone())
                .set(max as f64);
        }
    }
}

/// One function's series by answer code: looked up by function, then by code, so a call copies no name.
#[derive(Default)]
struct ByCode {
    invocations: Handles<u16, Counter>,
    durations: Handles<u16, Histogram>,
}

static BY_FUNCTION: LazyLock<Handles<FunctionRef, Arc<ByCode>>> = LazyLock::new(Default::default);
static QUEUED: LazyLock<Handles<FunctionRef, Counter>> = LazyLock::new(Default::default);

fn by_code(function: &FunctionRef) -> Arc<ByCode> {
    BY_FUNCTION.get(function, Default::default)
}

pub fn invocation(function: &FunctionRef, code: u16) {
    by_code(function)
        .invocations
        .get(
            &code,
            || metrics::counter!(INVOCATION_TOTAL, "function_name" => function.to_string(), "code" => code.to_string()),
        )
        .increment(1);
}

pub fn sync_duration(function: &FunctionRef, code: u16, elapsed: Duration) {
    by_code(function)
        .durations
        .get(&code, || {
            metrics::histogram!(FUNCTION_SECONDS, "function_name" => function.to_string(), "code" => code.to_string())
        })
        .record(elapsed.as_secs_f64());
}

pub fn queued(function: &FunctionRef) {
    QUEUED.get(function, || metrics::counter!(QUEUED_TOTAL, "function_name" => function.to_string())).increment(1);
}
