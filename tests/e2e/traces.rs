//! OpenTelemetry traces, for real: gateway, router and worker export their spans over OTLP/HTTP (JSON) to a
//! receiver the test runs (a minimal one: an OpenTelemetry Collector cannot be installed here), and a call's
//! spans, the function's `traceparent` and the callback's form one trace with the caller's.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, routing::post};
use serde_json::{Value, json};

use crate::support::{CallbackReceiver, Platform, Sluice, binary_event};

/// One exported span: the service that sent it, its name, and its place in a trace.
#[derive(Clone, Debug)]
struct Span {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
}

/// An OTLP/HTTP receiver: takes `POST /v1/traces` in the JSON encoding and keeps every span.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start() -> (Self, String) {
        let collector = Self::default();
        let app = Router::new()
            .route(
                "/v1/traces",
                post(|State(collector): State<Collector>, Json(export): Json<Value>| async move {
                    collector.take(&export);
                    Json(json!({}))
                }),
            )
            .with_state(collector.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (collector, url)
    }

    fn take(&self, export: &Value) {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        for resource in export["resourceSpans"].as_array().into_iter().flatten() {
            let attributes = resource["resource"]["attributes"].as_array().cloned().unwrap_or_default();
            let service = attributes
                .iter()
                .find(|a| a["key"] == "service.name")
                .map(|a| text(&a["value"]["stringValue"]))
                .unwrap_or_default();
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    self.spans.lock().unwrap().push(Span {
                        service: service.clone(),
                        name: text(&span["name"]),
                        trace: text(&span["traceId"]).to_lowercase(),
                        id: text(&span["spanId"]).to_lowercase(),
                        parent: text(&span["parentSpanId"]).to_lowercase(),
                    });
                }
            }
        }
    }

    /// The span of `trace` named `name` sent by `service`, waiting up to 30 s for it to be exported.
    async fn span(&self, trace: &str, service: &str, name: &str) -> Span {
        let start = Instant::now();
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if let Some(span) = spans.iter().find(|s| s.trace == trace && s.service == service && s.name == name) {
                return span.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no span {name:?} from {service} in trace {trace}; spans of the trace: {:?}; of all {} spans, the first: {:?}",
                spans.iter().filter(|s| s.trace == trace).collect::<Vec<_>>(),
                spans.len(),
                spans.first()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// (trace id, parent span id) of a W3C `traceparent`.
fn parts(traceparent: &str) -> (String, String) {
    let fields: Vec<&str> = traceparent.trim().split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent:?} is not a traceparent");
    assert_eq!(fields[0], "00");
    (fields[1].to_owned(), fields[2].to_owned())
}

#[tokio::test]
async fn a_call_and_an_event_each_form_one_trace_from_the_caller_to_the_callback() {
    let (collector, otlp) = Collector::start().await;
    let traced = ["--otlp-endpoint", otlp.as_str()];
    let platform = Platform::start(1, &traced, &traced).await;
    let router = Sluice::spawn(
        &["connector", "router", "--nats-url", &platform.nats_url, "--otlp-endpoint", &otlp],
        platform.logs.path(),
        "router",
    );
    router.wait_for_log("connector ready", Duration::from_secs(30)).await;
    let receiver = CallbackReceiver::start().await;
    // The function answers with the trace context it was called with.
    let echo = r#"sh -c 'printf "%s" "$Http_Traceparent"'"#;
    platform.deploy(json!({"service": "traced", "envProcess": echo})).await;

    // A call made inside the caller's trace.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let r = platform
        .http
        .post(platform.url("/async-function/traced"))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .header("X-Callback-Url", &receiver.url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    let invoke = collector.span(caller_trace, "sluice-gateway", "invoke").await;
    assert_eq!(invoke.parent, caller_span, "the gateway's span continues the caller's");
    let call = collector.span(caller_trace, "sluice-worker", "call").await;
    assert_eq!(call.parent, invoke.id, "the worker's span continues the gateway's");
    let (function_trace, function_parent) = parts(std::str::from_utf8(&got[0].body).unwrap());
    assert_eq!(
        (function_trace.as_str(), function_parent.as_str()),
        (caller_trace, call.id.as_str()),
        "the function is called inside the worker's span"
    );
    let (callback_trace, callback_parent) = parts(got[0].headers["traceparent"].to_str().unwrap());
    assert_eq!(
        (callback_trace.as_str(), callback_parent.as_str()),
        (caller_trace, call.id.as_str()),
        "the callback belongs to the call's trace"
    );

    // An event posted inside another trace: the ingress, the router and the worker continue it in turn.
    platform
        .deploy(json!({
            "service": "on-order", "envProcess": echo,
            "triggers": [{"event": {"source": "/shop"}, "callbackUrl": receiver.url}]
        }))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let event_trace = "0af7651916cd43dd8448eb211c80319c";
    let event_span = "b7ad6b7169203331";
    let r = binary_event(&platform.http, &platform.url("/events"), "order-1", "/shop", "com.example.order", "{}")
        .header("traceparent", format!("00-{event_trace}-{event_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let got = receiver.wait_for(2, Duration::from_secs(30)).await;
    let received = collector.span(event_trace, "sluice-gateway", "receive_event").await;
    assert_eq!(received.parent, event_span, "the ingress continues the producer's trace");
    let route = collector.span(event_trace, "sluice-connector", "route").await;
    assert_eq!(route.parent, received.id, "the router continues the ingress's span");
    let call = collector.span(event_trace, "sluice-worker", "call").await;
    assert_eq!(call.parent, route.id, "the worker continues the router's span");
    let (function_trace, function_parent) = parts(std::str::from_utf8(&got[1].body).unwrap());
    assert_eq!((function_trace.as_str(), function_parent.as_str()), (event_trace, call.id.as_str()));
    // Only Sluice's own spans are exported, not those of the libraries it builds on.
    let names: std::collections::BTreeSet<String> =
        collector.spans.lock().unwrap().iter().map(|s| s.name.clone()).collect();
    let ours = ["invoke", "call", "receive_event", "route", "callback", "sync_call"];
    assert!(names.iter().all(|n| ours.contains(&n.as_str())), "{names:?}");
}

#[tokio::test]
async fn without_an_exporter_the_callers_traceparent_reaches_the_function_unchanged() {
    let platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    platform.deploy(json!({"service": "traced", "envProcess": r#"sh -c 'printf "%s" "$Http_Traceparent"'"#})).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = platform
        .http
        .post(platform.url("/async-function/traced"))
        .header("traceparent", traceparent)
        .header("X-Callback-Url", &receiver.url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(&got[0].body[..], traceparent.as_bytes());
    assert_eq!(got[0].headers["traceparent"], traceparent);
}
