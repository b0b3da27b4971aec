//! The web console in a real headless chromium: log in, deploy a function (and see a refused spec's error at
//! the field), watch a call's progress move without reloading, cancel a call, replay three dead letters at once,
//! find an event that matched nothing and replay it to a function deployed since.
//! Screenshots of each page are kept in `target/console-screenshots/`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    browser::Browser,
    support::{Platform, Sluice, binary_event},
};

const STAGES: &str = r#"sh -c 'sleep 1; for p in 0 25 50 75 100; do curl -sf -d "$p stage $p" "$Http_X_Sluice_Progress_Url" || exit 9; sleep 1.2; done; echo done'"#;

/// A JavaScript string literal of `text`.
fn js(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[tokio::test]
async fn an_operator_deploys_watches_cancels_and_replays_from_the_console() {
    let platform = Platform::start(1, &[], &[]).await;
    let mut browser = Browser::start().await;

    // The page itself carries no data; without credentials it asks for them, and refuses wrong ones.
    let headers = reqwest::get(platform.url("/ui/")).await.unwrap();
    assert_eq!(headers.status(), 200);
    let policy = headers.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"), "{policy}");
    browser.navigate(&platform.url("/ui/")).await;
    browser
        .wait_for(
            "document.querySelector('#login') && !document.querySelector('#login').hidden",
            Duration::from_secs(10),
        )
        .await;
    browser.eval("document.querySelector('#login-password').value = 'wrong'; document.querySelector('#login-form').requestSubmit()").await;
    browser
        .wait_for("document.querySelector('#login-error').textContent.includes('Wrong')", Duration::from_secs(10))
        .await;
    let log_in = format!(
        "document.querySelector('#login-password').value = {}; document.querySelector('#login-form').requestSubmit()",
        js(&platform.admin_password)
    );
    browser.eval(&log_in).await;
    browser.wait_for("document.querySelector('#functions-table')", Duration::from_secs(10)).await;
    browser.screenshot("login-then-functions.png").await;

    // Deploy from a pasted spec; a refused one shows the API's reason beside the field.
    let deploy = |spec: &Value| {
        format!(
            "document.querySelector('#deploy-spec').value = {}; document.querySelector('#deploy-form').requestSubmit()",
            js(&spec.to_string())
        )
    };
    browser.eval(&deploy(&json!({"service": "Not A Name", "envProcess": "cat"}))).await;
    browser
        .wait_for("document.querySelector('#deploy-error').textContent.includes('service')", Duration::from_secs(10))
        .await;
    assert_eq!(browser.eval("document.querySelector('#deploy-spec').getAttribute('aria-invalid')").await, "true");
    browser.screenshot("deploy-refused.png").await;
    browser.eval(&deploy(&json!({"service": "stages", "envProcess": STAGES}))).await;
    browser.wait_for("document.querySelector('tr[data-function=\"stages\"]')", Duration::from_secs(10)).await;
    assert_eq!(platform.list_calls("function=stages").await.len(), 0);
    // YAML too, as `sluice fn deploy -f` files are.
    let yaml = "service: shout\nenvProcess: tr a-z A-Z\nlabels:\n  team: ops\n";
    browser
        .eval(&format!(
            "document.querySelector('#deploy-spec').value = {}; document.querySelector('#deploy-form').requestSubmit()",
            js(yaml)
        ))
        .await;
    browser.wait_for("document.querySelector('tr[data-function=\"shout\"]')", Duration::from_secs(10)).await;
    let shout: Value =
        platform.http.get(platform.url("/system/function/shout")).send().await.unwrap().json().await.unwrap();
    assert_eq!(shout["labels"]["team"], "ops", "{shout}");
    let r = platform
        .http
        .post(platform.url("/system/functions"))
        .header("content-type", "application/yaml")
        .body("service: [unclosed")
        .send()
        .await
        .unwrap();
    let (status, error) = crate::support::error_of(r).await;
    assert_eq!(status, 400);
    assert!(error.contains("not valid YAML"), "{error}");

    // A call's page follows it live: the progress bar moves and the status turns, with no reload.
    let call = platform.call_async("stages", "", None).await;
    browser.navigate(&platform.url(&format!("/ui/#/calls/{call}"))).await;
    browser.wait_for("document.querySelector('#call-status')", Duration::from_secs(10)).await;
    browser.eval("window.notReloaded = true").await;
    browser.wait_for("document.querySelector('#call-progress').value >= 25", Duration::from_secs(20)).await;
    assert!(
        browser
            .eval("document.querySelector('#call-message').textContent")
            .await
            .as_str()
            .unwrap()
            .starts_with("stage")
    );
    browser.screenshot("call-in-progress.png").await;
    browser
        .wait_for("document.querySelector('#call-status').textContent === 'succeeded'", Duration::from_secs(30))
        .await;
    assert_eq!(browser.eval("window.notReloaded === true").await, true, "the page updated in place");
    assert_eq!(browser.eval("document.querySelector('#call-progress').value").await, 100.0);
    let changes =
        browser.eval("[...document.querySelectorAll('#call-events li')].map(li => li.textContent).join('\\n')").await;
    assert!(changes.as_str().unwrap().contains("progress") && changes.as_str().unwrap().contains("end"), "{changes}");
    browser.screenshot("call-succeeded.png").await;

    // The calls page filters by function, status and time.
    let url = platform.url("/ui/#/calls?function=stages&status=succeeded&since=2000-01-01T00:00:00Z");
    browser.navigate(&url).await;
    browser.wait_for(&format!("document.querySelector('tr[data-call=\"{call}\"]')"), Duration::from_secs(10)).await;
    browser.navigate(&platform.url("/ui/#/calls?function=stages&since=2999-01-01T00:00:00Z")).await;
    browser
        .wait_for("document.querySelector('#filter-since')?.value.startsWith('2999')", Duration::from_secs(10))
        .await;
    assert_eq!(browser.eval("document.querySelectorAll('#calls-table tbody tr').length").await, 0);
    let r = platform.http.get(platform.url("/system/calls?since=yesterday")).send().await.unwrap();
    assert_eq!(crate::support::error_of(r).await.0, 400);
    // A duration back from now is a time too.
    let recent = platform.list_calls("function=stages&since=1h").await;
    assert!(recent.iter().any(|r| r["callId"] == call.as_str()), "{recent:?}");

    // Cancel a running call from its page.
    platform.deploy(json!({"service": "nap", "envProcess": "sleep 60"})).await;
    let napping = platform.call_async("nap", "", None).await;
    platform.wait_running(&napping).await;
    browser.navigate(&platform.url(&format!("/ui/#/calls/{napping}"))).await;
    browser
        .wait_for("document.querySelector('#call-status')?.textContent === 'running'", Duration::from_secs(10))
        .await;
    browser.eval("document.querySelector('#cancel-button').click()").await;
    browser
        .wait_for("document.querySelector('#call-status').textContent === 'cancelled'", Duration::from_secs(10))
        .await;
    assert_eq!(platform.record(&napping).await["status"], "cancelled");
    browser.screenshot("call-cancelled.png").await;

    // Three dead letters, replayed at once.
    platform
        .deploy(json!({"service": "doomed", "envProcess": "sh -c 'exit 1'", "async": {"retry": {"attempts": 1}}}))
        .await;
    let mut dead = Vec::new();
    for _ in 0..3 {
        let id = platform.call_async("doomed", "", None).await;
        platform.wait_final(&id, Duration::from_secs(30)).await;
        dead.push((id.clone(), platform.record(&id).await["deadLetter"].as_u64().unwrap()));
    }
    browser.navigate(&platform.url("/ui/#/dead")).await;
    browser.wait_for("document.querySelectorAll('#dead-table tbody tr').length === 3", Duration::from_secs(10)).await;
    browser.eval("document.querySelector('#dead-all').click()").await;
    browser.screenshot("dead-letters-selected.png").await;
    browser.eval("document.querySelector('#replay-selected').click()").await;
    browser
        .wait_for(
            "document.querySelector('#replay-result').textContent === 'Replayed 3 of 3.'",
            Duration::from_secs(10),
        )
        .await;
    // Each ran again (and failed again, as it must): a new dead letter for each.
    for (id, before) in dead {
        let start = Instant::now();
        loop {
            let record = platform.record(&id).await;
            if record["status"] == "failed" && record["deadLetter"].as_u64().is_some_and(|after| after > before) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "{id} was not run again: {record}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    browser.screenshot("dead-letters-replayed.png").await;
    // The functions page counts them: every recent call of `doomed` failed.
    browser.navigate(&platform.url("/ui/#/functions")).await;
    let rate = "document.querySelector('tr[data-function=\"doomed\"] .error-rate')?.textContent === '100% of 3'";
    browser.wait_for(rate, Duration::from_secs(10)).await;

    // Replayed letters are gone from the list; the three new ones are discarded for good.
    // From the functions page, so no dead-letter table of before is still on screen.
    browser.navigate(&platform.url("/ui/#/dead")).await;
    let redrawn = "document.querySelectorAll('#dead-table tbody tr').length === 3";
    browser.wait_for(redrawn, Duration::from_secs(10)).await;
    browser.eval("window.confirm = () => true; document.querySelector('#dead-all').click()").await;
    browser.eval("document.querySelector('#discard-selected').click()").await;
    browser
        .wait_for(
            "document.querySelector('#replay-result').textContent === 'Discarded 3 of 3.'",
            Duration::from_secs(10),
        )
        .await;
    let left: Vec<Value> = platform.http.get(platform.url("/system/dead")).send().await.unwrap().json().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    let record = platform.record(&napping_free_dead_id(&platform).await).await;
    assert!(record.get("deadLetter").is_none(), "{record}");
    let r = platform
        .http
        .post(platform.url(&format!("/system/dead/{}/replay", record["callId"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "a discarded letter cannot be replayed");

    // Events: one that matched nothing is shown as such, and replayed from its row once a function wants it.
    let router =
        Sluice::spawn(&["connector", "router", "--nats-url", &platform.nats_url], platform.logs.path(), "router");
    router.wait_for_log("connector ready", Duration::from_secs(30)).await;
    let sent = binary_event(&platform.http, &platform.url("/events"), "ev-1", "/orders", "com.example.order", "{}");
    assert_eq!(sent.send().await.unwrap().status(), 202);
    browser.navigate(&platform.url("/ui/#/events?routing=unmatched")).await;
    let unmatched =
        "[...document.querySelectorAll('#events-table tbody tr')].some(r => r.textContent.includes('/orders'))";
    let start = Instant::now();
    while browser.eval(unmatched).await != true {
        assert!(start.elapsed() < Duration::from_secs(20), "the unmatched event is not listed");
        tokio::time::sleep(Duration::from_millis(300)).await;
        browser.eval("route()").await;
    }
    browser.screenshot("events-unmatched.png").await;
    platform
        .deploy(json!({"service": "orders", "envProcess": "cat", "triggers": [{"event": {"source": "/orders"}}]}))
        .await;
    browser.eval("document.querySelector('#events-table .event-replay').click()").await;
    let replayed = "document.querySelector('#events-result')?.textContent === 'Replayed: 1 events read, 1 calls made or already made.'";
    browser.wait_for(replayed, Duration::from_secs(20)).await;
    assert_eq!(
        browser.eval("document.querySelectorAll('#events-table tbody tr').length").await,
        0,
        "no longer unmatched"
    );
    let start = Instant::now();
    while platform.list_calls("function=orders&status=succeeded").await.len() != 1 {
        assert!(start.elapsed() < Duration::from_secs(20), "the replayed event made no call");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    browser.screenshot("events-replayed.png").await;

    // Health: the worker that is up, and the streams with their sizes.
    browser.navigate(&platform.url("/ui/#/health")).await;
    browser
        .wait_for("document.querySelectorAll('#workers-table tbody tr').length === 1", Duration::from_secs(20))
        .await;
    let invocations = "document.querySelector('tr[data-stream=\"SLUICE_QUEUE_00\"]') !== null";
    assert_eq!(browser.eval(invocations).await, true);
    let health: Value = platform.http.get(platform.url("/system/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["workers"].as_array().unwrap().len(), 1, "{health}");
    assert_eq!(health["workers"][0]["maxInflight"], 64, "{health}");
    let dead = health["streams"].as_array().unwrap().iter().find(|s| s["name"] == "SLUICE_DEAD").unwrap();
    assert_eq!(dead["messages"], 0, "replayed and discarded letters are gone: {health}");
    assert_eq!((&dead["maxAgeSeconds"], dead.get("maxBytes")), (&json!(7 * 86400), None), "{health}");
    let results = health["streams"].as_array().unwrap().iter().find(|s| s["name"] == "SLUICE_RESULTS").unwrap();
    assert_eq!((&results["maxBytes"], &results["whenFull"]), (&json!(1u64 << 30), &json!("discard oldest")));
    let limits = |name: &str| format!("document.querySelector('tr[data-stream=\"{name}\"] .limits').textContent");
    assert_eq!(browser.eval(&limits("SLUICE_DEAD")).await, "kept 7d");
    assert_eq!(browser.eval(&limits("SLUICE_RESULTS")).await, "1024.0 MiB, kept 1d; when full: discard oldest");
    assert_eq!(browser.eval(&limits("SLUICE_QUEUE_00")).await, "none");
    let shot = browser.screenshot("health.png").await;
    assert!(std::fs::metadata(shot).unwrap().len() > 1000);
}

/// One of the `doomed` calls.
async fn napping_free_dead_id(platform: &Platform) -> String {
    platform.list_calls("function=doomed").await[0]["callId"].as_str().unwrap().to_owned()
}
