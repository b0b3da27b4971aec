//! Events into calls, for real: webhooks (HMAC), the CloudEvents ingress (curl-style requests and the Python
//! CloudEvents SDK), cron with two connector replicas, and the router's once-per-event guarantee and replay.
//! Functions are process functions that append what they receive to a file the test reads.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::support::{Platform, Sluice, binary_event, error_of};

/// A platform plus the router (and `cron` more connector processes running only cron).
pub struct EventPlatform {
    pub platform: Platform,
    pub connectors: Vec<Sluice>,
    dir: tempfile::TempDir,
}

impl EventPlatform {
    pub async fn start(cron_replicas: usize) -> Self {
        Self::start_with(cron_replicas, &[]).await
    }

    /// Like [`EventPlatform::start`], with extra gateway flags.
    pub async fn start_with(cron_replicas: usize, extra_gateway: &[&str]) -> Self {
        let platform = Platform::start(1, extra_gateway, &[]).await;
        let mut connectors = Vec::new();
        let url = platform.nats_url.clone();
        let router = Sluice::spawn(&["connector", "router", "--nats-url", &url], platform.logs.path(), "router");
        connectors.push(router);
        for i in 0..cron_replicas {
            connectors.push(Sluice::spawn(
                &["connector", "cron", "--nats-url", &url],
                platform.logs.path(),
                &format!("cron-{i}"),
            ));
        }
        for connector in &connectors {
            connector.wait_for_log("connector ready", Duration::from_secs(30)).await;
        }
        Self { platform, connectors, dir: tempfile::tempdir().unwrap() }
    }

    /// A function that appends `$Http_Ce_Type|$Http_Ce_Source|$Http_Ce_Id|<body>` as one line to a file.
    pub async fn deploy_recorder(&self, name: &str, extra: serde_json::Value) -> PathBuf {
        let out = self.dir.path().join(format!("{name}.log"));
        let script = format!(
            "printf '%s|%s|%s|%s\\n' \"$Http_Ce_Type\" \"$Http_Ce_Source\" \"$Http_Ce_Id\" \"$(cat)\" >> {}",
            out.display()
        );
        let mut spec = json!({"service": name, "envProcess": format!("sh -c '{}'", script.replace('\'', "'\\''"))});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        self.platform.deploy(spec).await;
        // The router and cron connector learn of the function through their KV watch.
        tokio::time::sleep(Duration::from_millis(500)).await;
        out
    }
}

pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

pub async fn wait_lines(path: &Path, n: usize, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let found = lines(path);
        if found.len() >= n {
            return found;
        }
        assert!(start.elapsed() < limit, "{} of {n} invocations: {found:?}", found.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Hex HMAC-SHA256 of `message` under `secret`, as both webhook signature schemes use it.
fn hmac_hex(secret: &str, message: &str) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap().chain_update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn github_signature(secret: &str, body: &str) -> String {
    format!("sha256={}", hmac_hex(secret, body))
}

#[tokio::test]
async fn webhooks_with_hmac_invoke_matching_functions_once_per_delivery() {
    let events = EventPlatform::start(0).await;
    let p = &events.platform;
    p.create_secret("webhook-github", "hook-key").await;
    let out = events.deploy_recorder("on-push", json!({"triggers": [{"webhook": "github"}]})).await;

    let body = r#"{"ref":"refs/heads/main"}"#;
    let send = |signature: Option<String>, delivery: &str| {
        let mut request = p
            .http
            .post(p.url("/hooks/github"))
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", delivery)
            .header("Content-Type", "application/json")
            .body(body);
        if let Some(s) = signature {
            request = request.header("X-Hub-Signature-256", s);
        }
        request.send()
    };
    let r = send(Some(github_signature("hook-key", body)), "d-1").await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // GitHub redelivers with the same delivery id: the function runs once. The delivery id is not signed, so
    // a replay of the signed body with a new or no delivery id is the same event too.
    assert_eq!(send(Some(github_signature("hook-key", body)), "d-1").await.unwrap().status(), 202);
    assert_eq!(send(Some(github_signature("hook-key", body)), "d-replayed").await.unwrap().status(), 202);
    let bad = send(Some(github_signature("wrong-key", body)), "d-2").await.unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap().contains("does not match"));
    assert_eq!(send(None, "d-3").await.unwrap().status(), 401);

    let got = wait_lines(&out, 1, Duration::from_secs(20)).await;
    let fields: Vec<&str> = got[0].splitn(4, '|').collect();
    assert_eq!((fields[0], fields[1], fields[3]), ("com.github.push", "/hooks/github", body), "{}", got[0]);
    assert!(fields[2].starts_with("sha256-"), "the event id comes from the signed body: {}", got[0]);
    // A hook without a secret needs no signature; one that nobody listens to is kept, not routed.
    let r = p.http.post(p.url("/hooks/nobody")).body("x").send().await.unwrap();
    assert_eq!(r.status(), 202);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lines(&out).len(), 1, "the redelivery and the refused hooks ran nothing");
}

fn sluice_signature(secret: &str, t: i64, body: &str) -> String {
    format!("t={t},v1={}", hmac_hex(secret, &format!("{t}.{body}")))
}

#[tokio::test]
async fn generic_signed_webhooks_refuse_stale_tampered_and_oversized_deliveries() {
    let events = EventPlatform::start(0).await;
    let p = &events.platform;
    p.create_secret("webhook-deploys", "deploy-key").await;
    let out = events.deploy_recorder("on-deploy", json!({"triggers": [{"webhook": "deploys"}]})).await;

    let send = |signature: String, request_id: &str, body: String| {
        p.http
            .post(p.url("/hooks/deploys"))
            .header("X-Request-Id", request_id)
            .header("X-Sluice-Signature", signature)
            .body(body)
            .send()
    };
    let now = chrono::Utc::now().timestamp();
    let body = "release 42".to_owned();
    let r = send(sluice_signature("deploy-key", now, &body), "req-1", body.clone()).await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // Replayed within the signature's tolerance under another request id: the same event.
    let replay = send(sluice_signature("deploy-key", now, &body), "req-1-again", body.clone()).await.unwrap();
    assert_eq!(replay.status(), 202);

    let tampered = send(sluice_signature("deploy-key", now, &body), "req-2", "release 43".into()).await.unwrap();
    let (status, error) = error_of(tampered).await;
    assert_eq!((status, error.contains("does not match")), (401, true), "{error}");
    let stale = send(sluice_signature("deploy-key", now - 3600, &body), "req-3", body.clone()).await.unwrap();
    let (status, error) = error_of(stale).await;
    assert_eq!((status, error.contains("too old")), (401, true), "{error}");
    let malformed = send("v1=abc".into(), "req-4", body.clone()).await.unwrap();
    assert_eq!(error_of(malformed).await.0, 401);

    // Over the limit for an event (three quarters of the NATS max payload): refused whole, signed or not.
    // Its own client: the server closes that connection, and a pooled client could pick it up again.
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = reqwest::Client::new()
        .post(p.url("/hooks/deploys"))
        .header("X-Request-Id", "req-5")
        .header("X-Sluice-Signature", sluice_signature("deploy-key", now, &huge))
        .body(huge)
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(r).await;
    assert_eq!(status, 413, "{error}");
    assert!(error.contains("bytes"), "the error names the limit: {error}");

    // The accepted delivery ran once, untouched by the refusals after it; a fresh one still gets in.
    let got = wait_lines(&out, 1, Duration::from_secs(20)).await;
    let fields: Vec<&str> = got[0].splitn(4, '|').collect();
    assert_eq!((fields[0], fields[1], fields[3]), ("sluice.webhook.received", "/hooks/deploys", body.as_str()));
    assert!(fields[2].starts_with("sig-"), "the event id comes from the signature: {}", got[0]);
    let later = chrono::Utc::now().timestamp();
    let r = send(sluice_signature("deploy-key", later, "release 44"), "req-6", "release 44".into()).await.unwrap();
    assert_eq!(r.status(), 202);
    let got = wait_lines(&out, 2, Duration::from_secs(20)).await;
    assert!(got[1].starts_with("sluice.webhook.received|/hooks/deploys|sig-"), "{}", got[1]);
    assert!(got[1].ends_with("|release 44"), "{}", got[1]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lines(&out).len(), 2, "refused deliveries ran nothing");
}

#[tokio::test]
async fn cloudevents_ingress_binary_structured_and_the_python_sdk() {
    let events = EventPlatform::start(0).await;
    let p = &events.platform;
    let out = events.deploy_recorder("on-order", json!({"triggers": [{"event": {"type": "com.example.order"}}]})).await;

    // Binary mode, as curl would send it.
    let r = binary_event(&p.http, &p.url("/events"), "b-1", "/shop", "com.example.order", "binary order")
        .header("Content-Type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    // Structured mode.
    let structured = json!({"specversion": "1.0", "id": "s-1", "source": "/shop", "type": "com.example.order",
                            "datacontenttype": "text/plain", "data": "structured order"});
    // Sent twice: the same event (same source and id) is one event.
    for _ in 0..2 {
        let r = p
            .http
            .post(p.url("/events"))
            .header("Content-Type", "application/cloudevents+json")
            .body(structured.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    // Not a CloudEvent: a 400 that says so.
    let r = p.http.post(p.url("/events")).header("ce-id", "x").body("?").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap().contains("CloudEvent"));
    // A line break in an attribute (possible in structured mode) is refused by name, never a dropped request.
    let broken = json!({"specversion": "1.0", "id": "a\nb", "source": "/shop", "type": "com.example.order"});
    let r = p.http.post(p.url("/events")).header("Content-Type", "application/cloudevents+json");
    let r = r.body(broken.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<serde_json::Value>().await.unwrap()["error"].as_str().unwrap().contains("ce-id"));

    // The Python CloudEvents SDK, in both modes.
    let script = r#"
import sys, urllib.request
from cloudevents.v1.http import CloudEvent
from cloudevents.v1.conversion import to_binary, to_structured
for i, convert in enumerate((to_binary, to_structured)):
    event = CloudEvent({"type": "com.example.order", "source": "/python", "id": f"py-{i}"}, {"from": "sdk"})
    headers, body = convert(event)
    headers["Authorization"] = "Bearer " + sys.argv[2]
    request = urllib.request.Request(sys.argv[1], data=body, headers=headers, method="POST")
    assert urllib.request.urlopen(request).status == 202
"#;
    let python = tokio::process::Command::new("python3")
        .args(["-c", script, &p.url("/events"), &p.admin_password])
        .output()
        .await
        .unwrap();
    assert!(python.status.success(), "python CloudEvents SDK: {}", String::from_utf8_lossy(&python.stderr));

    let mut got = wait_lines(&out, 4, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    got = if lines(&out).len() > got.len() { lines(&out) } else { got };
    got.sort();
    assert_eq!(
        got,
        [
            "com.example.order|/python|py-0|{\"from\": \"sdk\"}",
            // Structured mode carries JSON data as JSON, which arrives re-encoded.
            "com.example.order|/python|py-1|{\"from\":\"sdk\"}",
            "com.example.order|/shop|b-1|binary order",
            "com.example.order|/shop|s-1|structured order",
        ]
    );
}

#[tokio::test]
async fn one_second_cron_with_two_connector_replicas_fires_once_per_tick() {
    let events = EventPlatform::start(2).await;
    let p = &events.platform;
    let out = events.deploy_recorder("ticker", json!({"triggers": [{"cron": "* * * * * *"}]})).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = p.delete_function("ticker").await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = lines(&out);
    let mut ids: Vec<&str> = got.iter().map(|l| l.split('|').nth(2).unwrap()).collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert!(ids.len() >= 3, "ticks fired: {got:?}");
    assert_eq!(ids.len(), all, "a tick fired twice: {got:?}");
    assert!(got.iter().all(|l| l.starts_with("sluice.cron.tick|/sluice/cron/ticker/0|")), "{got:?}");
    // Consecutive ticks are a second apart.
    let times: Vec<chrono::DateTime<chrono::Utc>> = ids.iter().map(|t| t.parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| (w[1] - w[0]).num_milliseconds() == 1000), "{ids:?}");

    // Invalid expressions are refused at deploy.
    let bad = json!({"service": "bad-cron", "envProcess": "cat", "triggers": [{"cron": "61 * * * *"}]});
    let r = p.http.post(p.url("/system/functions")).json(&bad).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("triggers[0].cron"));
}

#[tokio::test]
async fn unmatched_events_are_listed_kept_and_replayed_once() {
    let events = EventPlatform::start(0).await;
    let p = &events.platform;
    let r = binary_event(&p.http, &p.url("/events"), "early-1", "/legacy", "com.example.late", "waited")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // The events list shows it, and once the router has been through it, that it matched nothing.
    let early = wait_for_event(p, "source=/legacy", |e| e["routing"] == "unmatched").await;
    assert_eq!(early["id"], "early-1");
    assert_eq!(early["type"], "com.example.late");
    assert_eq!(early["preview"], "waited");
    assert_eq!(early["note"], "no function's triggers matched it");
    let sequence = early["sequence"].as_u64().unwrap();

    let out = events.deploy_recorder("late", json!({"triggers": [{"event": {"source": "/legacy"}}]})).await;
    let replay = |body: serde_json::Value| async move {
        let r = p.http.post(p.url("/system/events/replay")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().await.unwrap()
    };
    // Replayed by its sequence, it reaches the function deployed since and is no longer unmatched.
    let first = replay(json!({"sequence": sequence})).await;
    assert_eq!(first, json!({"events": 1, "calls": 1}));
    let got = wait_lines(&out, 1, Duration::from_secs(20)).await;
    assert_eq!(got, ["com.example.late|/legacy|early-1|waited"]);
    let unmatched = list_events(p, "routing=unmatched").await;
    assert!(unmatched.iter().all(|e| e["sequence"] != sequence), "{unmatched:?}");
    // A replay of a window holding it does not run it twice.
    let again = replay(json!({"since": "5m", "function": "late"})).await;
    assert!(again["events"].as_u64().unwrap() >= 1, "{again}");
    // An event arriving now is matched at once.
    binary_event(&p.http, &p.url("/events"), "on-time", "/legacy", "com.example.late", "now").send().await.unwrap();
    let on_time = wait_for_event(p, "source=/legacy&routing=matched", |e| e["id"] == "on-time").await;
    assert!(on_time["sequence"].as_u64().unwrap() > sequence);
    wait_lines(&out, 2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lines(&out).len(), 2, "a replayed event does not run twice");
    let all = list_events(p, "limit=1").await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["id"], "on-time", "newest first");

    for (query, fault) in [("routing=lost", "routing"), ("limit=0", "limit"), ("limit=5000", "limit")] {
        let (status, error) =
            error_of(p.http.get(p.url(&format!("/system/events?{query}"))).send().await.unwrap()).await;
        assert_eq!(status, 400, "{query}");
        assert!(error.contains(fault), "{query}: {error}");
    }
    let (status, error) =
        error_of(p.http.post(p.url("/system/events/replay")).json(&json!({"sequence": 999_999})).send().await.unwrap())
            .await;
    assert_eq!((status, error.contains("999999")), (404, true), "{error}");
    for body in [json!({"since": "5m", "sequence": 1}), json!({}), json!({"sequence": 0})] {
        let (status, error) =
            error_of(p.http.post(p.url("/system/events/replay")).json(&body).send().await.unwrap()).await;
        assert_eq!(status, 400, "{body}");
        assert!(error.contains("since") || error.contains("sequence 0"), "{body}: {error}");
    }
}

async fn list_events(p: &Platform, query: &str) -> Vec<serde_json::Value> {
    let r = p.http.get(p.url(&format!("/system/events?{query}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The first listed event (under `query`) that `found` accepts, within 20 s.
async fn wait_for_event(p: &Platform, query: &str, found: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let listed = list_events(p, query).await;
        if let Some(event) = listed.into_iter().find(&found) {
            return event;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no such event under {query}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn cron_catches_up_the_last_missed_ticks_and_the_cli_shows_the_next() {
    let mut events = EventPlatform::start(1).await;
    let out = events.deploy_recorder("catcher", json!({"triggers": [{"cron": "* * * * * *", "catchUp": 2}]})).await;
    wait_lines(&out, 2, Duration::from_secs(10)).await;
    // The only cron connector goes down for about four seconds.
    events.connectors[1].kill();
    let parse = |lines: &[String]| -> Vec<chrono::DateTime<chrono::Utc>> {
        lines.iter().map(|l| l.split('|').nth(2).unwrap().parse().unwrap()).collect()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last_before = *parse(&lines(&out)).iter().max().unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let restart_at = chrono::Utc::now();
    let url = events.platform.nats_url.clone();
    let restarted =
        Sluice::spawn(&["connector", "cron", "--nats-url", &url], events.platform.logs.path(), "cron-again");
    restarted.wait_for_log("cron caught up", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ticks = parse(&lines(&out));
    // Only catching up can have fired ticks scheduled while no connector ran: at most catchUp of them, the
    // latest ones, so the earlier missed ticks are skipped.
    let during: Vec<_> = ticks.iter().filter(|t| **t > last_before && **t < restart_at).collect();
    assert!((1..=2).contains(&during.len()), "missed ticks fired: {during:?} of {ticks:?}");
    assert!(*during[0] > last_before + chrono::Duration::seconds(1), "the earlier missed ticks are skipped: {ticks:?}");
    events.connectors.push(restarted);

    let next = events.platform.cli().args(["cron", "next", "catcher", "-n", "3"]).output().await.unwrap();
    let text = String::from_utf8_lossy(&next.stdout);
    assert!(next.status.success(), "{}", String::from_utf8_lossy(&next.stderr));
    assert_eq!(text.lines().filter(|l| l.trim_start().starts_with("20")).count(), 3, "{text}");
}
