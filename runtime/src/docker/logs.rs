//! Function logs: the output of a function's containers, line by line, in the OpenFaaS log message shape.

use std::pin::Pin;

use futures::{Stream, StreamExt};
pub use sluice_contracts::logs::{LogLine, LogQuery};

use super::engine::{Engine, Found};

pub type LogStream = Pin<Box<dyn Stream<Item = LogLine> + Send>>;

/// Splits `"<rfc3339> <text>"` as the engine writes lines with timestamps on.
fn split_timestamp(line: &str) -> (&str, &str) {
    match line.split_once(' ') {
        Some((ts, text)) if ts.ends_with('Z') || ts.contains('+') => (ts, text),
        _ => ("", line),
    }
}

/// Every container's lines, interleaved as they arrive; `function` is the function's key, each line names it by
/// its name alone (OpenFaaS `logs.Message`).
pub(super) fn merge(engine: &Engine, function: &str, containers: Vec<Found>, query: LogQuery) -> LogStream {
    let function = sluice_contracts::FunctionRef::from_key(function).map_or_else(|| function.to_owned(), |f| f.name);
    let since = query.since.unwrap_or(0).clamp(0, i32::MAX as i64) as i32;
    let streams = containers.into_iter().map(|c| {
        let instance = c.id[..c.id.len().min(12)].to_owned();
        let name = function.clone();
        engine.logs(&c.id, query.follow, since, query.tail).filter_map(move |output| {
            let (name, instance) = (name.clone(), instance.clone());
            async move {
                let output = output.ok()?;
                let raw = output.to_string();
                let (timestamp, text) = split_timestamp(raw.trim_end_matches('\n'));
                Some(LogLine { name, instance, timestamp: timestamp.to_owned(), text: text.to_owned() })
            }
        })
    });
    Box::pin(futures::stream::select_all(streams.map(Box::pin)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_split_from_text() {
        assert_eq!(split_timestamp("2026-01-01T00:00:00.1Z hello world"), ("2026-01-01T00:00:00.1Z", "hello world"));
        assert_eq!(split_timestamp("no stamp here"), ("", "no stamp here"));
    }
}
