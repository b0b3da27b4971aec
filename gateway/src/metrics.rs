//! Metric names the gateway records (OpenFaaS names where OpenFaaS has the metric).
//!
//! Each call's series are handles registered on first use: looking a series up by name and labels formats the
//! function's name and hashes the whole key, on every call. Only deployed functions and HTTP status codes become
//! labels, so the handles are as many as the series the recorder keeps anyway.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{LazyLock, RwLock},
    time::Duration,
};

use metrics::{Counter, Histogram};
use sluice_contracts::FunctionRef;

/// Counter of invocations by function and answer code.
pub const INVOCATION_TOTAL: &str = "gateway_function_invocation_total";
/// Histogram of synchronous call durations, seconds.
pub const FUNCTION_SECONDS: &str = "gateway_functions_seconds";
/// Counter of calls accepted onto the queue, by function.
pub const QUEUED_TOTAL: &str = "sluice_gateway_calls_queued_total";

type Handles<K, H> = LazyLock<RwLock<HashMap<K, H>>>;

static INVOCATIONS: Handles<(FunctionRef, u16), Counter> = LazyLock::new(Default::default);
static DURATIONS: Handles<(FunctionRef, u16), Histogram> = LazyLock::new(Default::default);
static QUEUED: Handles<FunctionRef, Counter> = LazyLock::new(Default::default);

/// The handle of `key`'s series, registered by `register` the first time.
fn handle<K: Hash + Eq + Clone, H: Clone>(handles: &Handles<K, H>, key: &K, register: impl FnOnce() -> H) -> H {
    if let Some(handle) = handles.read().expect("metric handles lock").get(key) {
        return handle.clone();
    }
    handles.write().expect("metric handles lock").entry(key.clone()).or_insert_with(register).clone()
}

pub fn invocation(function: &FunctionRef, code: u16) {
    let key = (function.clone(), code);
    handle(
        &INVOCATIONS,
        &key,
        || metrics::counter!(INVOCATION_TOTAL, "function_name" => function.to_string(), "code" => code.to_string()),
    )
    .increment(1);
}

pub fn sync_duration(function: &FunctionRef, code: u16, elapsed: Duration) {
    let key = (function.clone(), code);
    handle(
        &DURATIONS,
        &key,
        || metrics::histogram!(FUNCTION_SECONDS, "function_name" => function.to_string(), "code" => code.to_string()),
    )
    .record(elapsed.as_secs_f64());
}

pub fn queued(function: &FunctionRef) {
    handle(&QUEUED, function, || metrics::counter!(QUEUED_TOTAL, "function_name" => function.to_string())).increment(1);
}
