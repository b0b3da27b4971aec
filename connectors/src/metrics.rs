//! Metric names the connectors record.

/// Events taken in by a connector, by connector (`webhook`, `ingress`, `cron`, `s3`).
pub const EVENTS_RECEIVED: &str = "sluice_events_received_total";
/// Requests a connector refused (bad signature, bad body …), by connector and reason.
pub const EVENTS_REJECTED: &str = "sluice_events_rejected_total";
/// Events the router read, by source.
pub const EVENTS_ROUTED_IN: &str = "sluice_router_events_total";
/// Calls the router queued, by function.
pub const CALLS_ROUTED: &str = "sluice_router_calls_total";
/// Events that matched no function, by source.
pub const EVENTS_UNMATCHED: &str = "sluice_router_unmatched_total";

pub fn accepted(connector: &'static str) {
    metrics::counter!(EVENTS_RECEIVED, "connector" => connector).increment(1);
}

pub fn rejected(connector: &'static str, reason: &'static str) {
    metrics::counter!(EVENTS_REJECTED, "connector" => connector, "reason" => reason).increment(1);
}

pub fn received(source: &str) {
    metrics::counter!(EVENTS_ROUTED_IN, "source" => source.to_owned()).increment(1);
}

pub fn routed(function: &sluice_contracts::FunctionRef) {
    metrics::counter!(CALLS_ROUTED, "function_name" => function.to_string()).increment(1);
}

pub fn unmatched(source: &str) {
    metrics::counter!(EVENTS_UNMATCHED, "source" => source.to_owned()).increment(1);
}
