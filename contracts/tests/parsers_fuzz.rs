//! Property tests of the parsers that take outside input: whatever arrives, they answer Ok or Err and never
//! panic, and what they accept keeps its documented bounds. Failing inputs proptest finds are kept in
//! `proptest-regressions/` and replayed first on every run.

use std::time::Duration;

use proptest::prelude::*;
use sluice_contracts::{
    FunctionSpec, HumanDuration, duration, names,
    outbound::{OutboundPolicy, canonical},
    schedule::Schedule,
};

/// Text that looks like what people write in these fields, plus any text at all.
fn durationish() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9]{1,25}(ns|us|ms|s|m|h|d|w|M|y)( [0-9]{1,20}(s|m|h))?", "\\PC{0,40}",]
}

proptest! {
    #[test]
    fn durations_are_bounded_or_refused(text in durationish()) {
        if let Ok(d) = text.parse::<HumanDuration>() {
            prop_assert!(d.get() <= duration::MAX);
            // What is accepted can be added to a deadline.
            prop_assert!(tokio::time::Instant::now().checked_add(d.get()).is_some());
        }
    }

    #[test]
    fn cron_expressions_parse_or_refuse(
        expression in prop_oneof![
            "(@every )?[0-9]{1,22}(ms|s|m|h|d|y)",
            "([0-9*/,-]{1,6} ){4,5}[0-9*/,-]{1,6}",
            "@(hourly|daily|weekly|monthly|yearly|reboot|[a-z]{1,8})",
            "\\PC{0,40}",
        ],
        zone in prop_oneof![Just(None), Just(Some("Europe/Amsterdam".to_owned())), "\\PC{0,12}".prop_map(Some)],
    ) {
        if let Ok(schedule) = Schedule::parse(&expression, zone.as_deref()) {
            let now = chrono::Utc::now();
            prop_assert!(schedule.next_after(now).is_some(), "an accepted schedule fires");
            let _ = schedule.upcoming(now, 3);
        }
    }

    #[test]
    fn function_specs_validate_or_refuse(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(spec) = serde_json::from_slice::<FunctionSpec>(&bytes) {
            let _ = spec.validate();
        }
    }

    #[test]
    fn function_specs_with_hostile_fields(
        service in "[a-z0-9-]{1,70}",
        process in "\\PC{0,60}",
        timeout in durationish(),
        cpu in "[0-9e.+-]{1,12}m?",
        memory in "[0-9]{1,25}(Ki|Mi|Gi|Ti|K|M|G|[a-z]{1,2})?",
        cron in "\\PC{0,30}",
    ) {
        let spec = serde_json::json!({
            "service": service, "envProcess": process, "limits": {"cpu": cpu, "memory": memory},
            "triggers": [{"cron": cron}],
        });
        let with_timeout = serde_json::json!({"service": "f", "envProcess": "cat", "async": {"timeout": timeout,
            "maxAge": timeout, "retry": {"minWait": timeout, "maxWait": timeout}}, "scale": {"idle": timeout}});
        for json in [spec, with_timeout] {
            if let Ok(spec) = serde_json::from_value::<FunctionSpec>(json) {
                let _ = spec.validate();
            }
        }
    }

    #[test]
    fn outbound_urls_parse_or_refuse(
        url in prop_oneof![
            "(http|https|ftp|HTTP)://[a-zA-Z0-9.:\\[\\]@%-]{0,40}(/\\PC{0,20})?",
            "\\PC{0,60}",
        ],
    ) {
        let _ = OutboundPolicy::default().check_syntax(&url);
    }

    #[test]
    fn every_loopback_and_metadata_spelling_is_denied(v4 in any::<u32>(), v6 in any::<u128>()) {
        let policy = OutboundPolicy::default();
        let v4 = std::net::Ipv4Addr::from(v4);
        let mapped = v4.to_ipv6_mapped();
        let (a, b) = (policy.check_syntax(&format!("http://{v4}/")), policy.check_syntax(&format!("http://[{mapped}]/")));
        // An address and its IPv4-mapped spelling get the same answer.
        prop_assert_eq!(a.is_ok(), b.is_ok());
        if v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() {
            prop_assert!(a.is_err());
        }
        let v6 = std::net::Ipv6Addr::from(v6);
        let _ = policy.check_syntax(&format!("http://[{v6}]:8080/"));
        let _ = canonical(v6.into());
    }

    #[test]
    fn key_safe_names_are_valid_subject_tokens(name in "\\PC{0,200}") {
        if names::is_key_safe(&name, 128) {
            prop_assert!(name.len() <= 128);
            prop_assert!(!name.contains(['*', '>', ' ', '\0']) && !name.contains(".."));
        }
    }
}

#[test]
fn the_bound_is_a_year_and_a_day() {
    assert_eq!(duration::MAX, Duration::from_secs(366 * 24 * 3600));
}
