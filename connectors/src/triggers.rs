//! Which functions an event invokes: each function's `triggers`, plus the OpenFaaS annotations `topic` and
//! `schedule`, matched against the event's CloudEvent attributes (and, for S3 events, its data).

use sluice_contracts::{EventMessage, FunctionSpec, function::S3Trigger};

/// CloudEvent `type` of S3/MinIO object events: `…created` / `…removed`.
pub const S3_TYPE_PREFIX: &str = "sluice.s3.object.";
/// CloudEvent `type` of cron ticks.
pub const CRON_TYPE: &str = "sluice.cron.tick";

/// `source` of a webhook's events.
pub fn webhook_source(name: &str) -> String {
    format!("/hooks/{name}")
}

/// `source` of one cron trigger's ticks; `trigger` is the index in `triggers`, or `schedule` for the annotation.
/// The source of a cron trigger's events; `function` is the function's
/// [`stable_name`](sluice_contracts::FunctionRef::stable_name).
pub fn cron_source(function: &str, trigger: &str) -> String {
    format!("/sluice/cron/{function}/{trigger}")
}

/// Source prefixes that only Sluice's own connectors publish: webhooks, cron and S3 notifications.
pub const RESERVED_SOURCES: &[&str] = &["/hooks/", "/sluice/", "s3://"];
/// Event types that only Sluice's own connectors publish.
pub const RESERVED_TYPE_PREFIX: &str = "sluice.";

/// Why an event posted to the CloudEvents ingress may not be taken: it would pass for a webhook delivery, a
/// cron tick or an S3 notification, run their functions with a forged body and, sharing their ids, pre-empt
/// the real event in JetStream's duplicate window.
pub fn impersonation(event: &EventMessage) -> Option<String> {
    if let Some(prefix) = RESERVED_SOURCES.iter().find(|p| event.source.starts_with(**p)) {
        return Some(format!(
            "source {:?} is reserved: sources starting with {prefix:?} belong to Sluice's connectors",
            event.source
        ));
    }
    event.event_type.starts_with(RESERVED_TYPE_PREFIX).then(|| {
        format!(
            "type {:?} is reserved: types starting with {RESERVED_TYPE_PREFIX:?} belong to Sluice",
            event.event_type
        )
    })
}

/// Whether an event stored on `subject` came through the CloudEvents ingress while impersonating a connector
/// (stored before the ingress refused such events); the router never runs those.
pub fn forged(subject: &str, event: &EventMessage) -> bool {
    subject.starts_with(&format!("{}.ingress.", sluice_contracts::names::EVENTS_PREFIX))
        && impersonation(event).is_some()
}

/// `s3:ObjectCreated:*` matches `s3:ObjectCreated:Put`; without `*` the names must be equal.
fn event_name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn s3_matches(trigger: &S3Trigger, event: &EventMessage) -> bool {
    if !event.event_type.starts_with(S3_TYPE_PREFIX) {
        return false;
    }
    let Ok(data) = serde_json::from_slice::<serde_json::Value>(&event.data) else { return false };
    let field = |name: &str| data.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let (bucket, key, name) = (field("bucket"), field("key"), field("eventName"));
    bucket == trigger.bucket
        && trigger.prefix.as_deref().is_none_or(|p| key.starts_with(p))
        && trigger.suffix.as_deref().is_none_or(|s| key.ends_with(s))
        && (trigger.events.is_empty() || trigger.events.iter().any(|p| event_name_matches(p, &name)))
}

/// How an event reaches a function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Match {
    /// The matching trigger's `callbackUrl`.
    pub callback_url: Option<String>,
}

/// The first trigger of `spec` that `event` matches, if any.
pub fn matching(spec: &FunctionSpec, event: &EventMessage) -> Option<Match> {
    let by_trigger = spec.triggers.iter().enumerate().find(|(i, trigger)| {
        if trigger.cron.is_some() {
            return event.source == cron_source(&spec.function_ref().stable_name(), &i.to_string());
        }
        if let Some(hook) = &trigger.webhook {
            return event.source == webhook_source(hook);
        }
        if let Some(s3) = &trigger.s3 {
            return s3_matches(s3, event);
        }
        if let Some(attrs) = &trigger.event {
            return attrs.event_type.as_deref().is_none_or(|t| t == event.event_type)
                && attrs.source.as_deref().is_none_or(|s| s == event.source);
        }
        false
    });
    if let Some((_, trigger)) = by_trigger {
        return Some(Match { callback_url: trigger.callback_url.clone() });
    }
    let by_schedule = spec.annotations.contains_key("schedule")
        && event.source == cron_source(&spec.function_ref().stable_name(), "schedule");
    // OpenFaaS connectors deliver a topic to every function listing it; here a topic is an event type or a
    // webhook name.
    let by_topic = spec.annotations.get("topic").is_some_and(|topics| {
        topics
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .any(|topic| topic == event.event_type || event.source == webhook_source(topic))
    });
    (by_schedule || by_topic).then(Match::default)
}

/// Whether `event` invokes `spec`.
pub fn matches(spec: &FunctionSpec, event: &EventMessage) -> bool {
    matching(spec, event).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FunctionSpec {
        serde_json::from_str(json).unwrap()
    }

    fn s3_event(bucket: &str, key: &str, name: &str) -> EventMessage {
        let data = serde_json::json!({"bucket": bucket, "key": key, "eventName": name});
        EventMessage::new(format!("/s3/{bucket}"), "sluice.s3.object.created", data.to_string())
    }

    #[test]
    fn s3_filters() {
        let f = spec(
            r#"{"service":"f","envProcess":"cat","triggers":[{"s3":{"bucket":"in","prefix":"videos/",
                "suffix":".mp4","events":["s3:ObjectCreated:*"]}}]}"#,
        );
        assert!(matches(&f, &s3_event("in", "videos/a b+c.mp4", "s3:ObjectCreated:Put")));
        assert!(!matches(&f, &s3_event("in", "videos/a.mov", "s3:ObjectCreated:Put")));
        assert!(!matches(&f, &s3_event("in", "photos/a.mp4", "s3:ObjectCreated:Put")));
        assert!(!matches(&f, &s3_event("out", "videos/a.mp4", "s3:ObjectCreated:Put")));
        assert!(!matches(&f, &s3_event("in", "videos/a.mp4", "s3:ObjectRemoved:Delete")));
    }

    #[test]
    fn connector_namespaces_are_reserved() {
        for (source, kind) in
            [("/hooks/gh", "x"), ("/sluice/cron/f/0", "x"), ("s3://in", "x"), ("/mine", "sluice.s3.object.created")]
        {
            let event = EventMessage::new(source, kind, "");
            assert!(impersonation(&event).is_some(), "{source} {kind}");
            assert!(forged("sluice.events.ingress.x", &event));
            assert!(!forged("sluice.events.hooks.gh", &event), "the connectors' own subjects are theirs");
        }
        assert!(impersonation(&EventMessage::new("/python", "com.example.order", "")).is_none());
    }

    #[test]
    fn webhooks_events_cron_and_annotations() {
        let f = spec(
            r#"{"service":"f","envProcess":"cat","annotations":{"topic":"orders, com.example.paid","schedule":"@hourly"},
                "triggers":[{"webhook":"github"},{"event":{"type":"com.example.shipped"}},{"cron":"@daily"}]}"#,
        );
        assert!(matches(&f, &EventMessage::new("/hooks/github", "com.github.push", "")));
        assert!(!matches(&f, &EventMessage::new("/hooks/gitlab", "x", "")));
        assert!(matches(&f, &EventMessage::new("/anything", "com.example.shipped", "")));
        assert!(matches(&f, &EventMessage::new("/sluice/cron/f/2", CRON_TYPE, "")));
        assert!(!matches(&f, &EventMessage::new("/sluice/cron/g/2", CRON_TYPE, "")));
        assert!(matches(&f, &EventMessage::new("/sluice/cron/f/schedule", CRON_TYPE, "")));
        assert!(matches(&f, &EventMessage::new("/hooks/orders", "x", "")));
        assert!(matches(&f, &EventMessage::new("/elsewhere", "com.example.paid", "")));
        assert!(!matches(&f, &EventMessage::new("/elsewhere", "com.example.unpaid", "")));
    }
}
