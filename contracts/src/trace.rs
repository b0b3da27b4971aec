//! W3C trace context across Sluice's processes: a `traceparent` that arrives with a call or an event is
//! continued by the span that handles it, and that span's own context travels on (in the call's headers, to
//! the function, on the callback).
//!
//! When no OTLP exporter is installed the spans have no context of their own, and the `traceparent` that came
//! in passes through unchanged, so a caller's trace still reaches its function.

use std::collections::BTreeMap;

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header (and CloudEvents distributed-tracing attribute) naming the trace and the parent span.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header carrying vendor trace state beside [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// Makes `span` a child of the trace `headers` name, when they name a valid one.
pub fn continue_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    adopt(span, &HeaderCarrier(headers));
}

/// Makes `span` a child of the trace a CloudEvent's `traceparent` attribute names, when valid.
pub fn continue_from_attributes(span: &tracing::Span, attributes: &BTreeMap<String, String>) {
    adopt(span, &AttributeCarrier(attributes));
}

/// Names `span` as the parent in `headers`, replacing the `traceparent` that came in; leaves them as they are
/// when `span` is not exported (no OTLP endpoint).
pub fn pass_on_in_headers(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = span.context();
    if context.span().span_context().is_valid() {
        headers.remove(TRACESTATE);
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }
}

/// Names `span` as the parent in a CloudEvent's attributes (`traceparent`, `tracestate`).
pub fn pass_on_in_attributes(span: &tracing::Span, attributes: &mut BTreeMap<String, String>) {
    let context = span.context();
    if context.span().span_context().is_valid() {
        attributes.remove(TRACESTATE);
        TraceContextPropagator::new().inject_context(&context, &mut AttributeInjector(attributes));
    }
}

/// Only the trace context of `headers` (cheaper to keep than all of them).
pub fn carried(headers: &http::HeaderMap) -> http::HeaderMap {
    let mut only = http::HeaderMap::new();
    copy(headers, &mut only);
    only
}

/// Copies the trace context `from` holds (as `pass_on_in_headers` left it) into `to`: a call's callback
/// belongs to the call's trace.
pub fn copy(from: &http::HeaderMap, to: &mut http::HeaderMap) {
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(value) = from.get(name) {
            to.insert(name, value.clone());
        }
    }
}

/// The trace context of an event (its `traceparent` attribute) as the W3C header of the call it makes, so a
/// function sees it even when nothing is exported.
pub fn event_headers(attributes: &BTreeMap<String, String>, headers: &mut http::HeaderMap) {
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(value) = attributes.get(name).and_then(|v| http::HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
}

/// An event that arrives over HTTP without a `traceparent` attribute takes the request's W3C headers as its
/// trace context (the CloudEvents distributed-tracing extension).
pub fn event_attributes(headers: &http::HeaderMap, attributes: &mut BTreeMap<String, String>) {
    if attributes.contains_key(TRACEPARENT) {
        return;
    }
    for name in [TRACEPARENT, TRACESTATE] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            attributes.insert(name.to_owned(), value.to_owned());
        }
    }
}

fn adopt(span: &tracing::Span, carrier: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(carrier);
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed: nothing is exported then, and nothing to join.
        let _ = span.set_parent(parent);
    }
}

struct HeaderCarrier<'a>(&'a http::HeaderMap);

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct AttributeCarrier<'a>(&'a BTreeMap<String, String>);

impl Extractor for AttributeCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::try_from(key), http::HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

struct AttributeInjector<'a>(&'a mut BTreeMap<String, String>);

impl Injector for AttributeInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_exporter_the_incoming_traceparent_passes_through() {
        let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut headers = http::HeaderMap::new();
        headers.insert(TRACEPARENT, incoming.parse().unwrap());
        let span = tracing::info_span!("call");
        continue_from_headers(&span, &headers);
        pass_on_in_headers(&span, &mut headers);
        assert_eq!(headers[TRACEPARENT], incoming);
        let mut attributes = BTreeMap::from([(TRACEPARENT.to_owned(), incoming.to_owned())]);
        continue_from_attributes(&span, &attributes);
        pass_on_in_attributes(&span, &mut attributes);
        assert_eq!(attributes[TRACEPARENT], incoming);
    }
}
