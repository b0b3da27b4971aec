//! Authentication of `/system/*` (and optionally of invocations), and the Prometheus endpoint.

use serde_json::json;

use crate::support::{Platform, binary_event, error_of};

#[tokio::test]
async fn system_routes_require_credentials_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "correct horse battery\n").unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "token-one-0123456789\n").unwrap();
    let (p, t) = (password.to_str().unwrap(), tokens.to_str().unwrap());
    let platform =
        Platform::start(1, &["--basic-auth-user", "admin", "--basic-auth-password-file", p, "--token-file", t], &[])
            .await;
    let spec = json!({"service": "f", "envProcess": "cat"});
    let r = platform.http.post(platform.url("/system/functions")).json(&spec).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "authentication required");
    let r =
        platform.http.get(platform.url("/system/functions")).basic_auth("admin", Some("wrong")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = platform
        .http
        .post(platform.url("/system/functions"))
        .basic_auth("admin", Some("correct horse battery"))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r =
        platform.http.get(platform.url("/system/functions")).bearer_auth("token-one-0123456789").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Invocations stay open unless --protect-invocations is given.
    let r = platform.http.post(platform.url("/function/f")).body("open").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(platform.http.get(platform.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn protected_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "token-two-0123456789\n").unwrap();
    let platform = Platform::start(1, &["--token-file", tokens.to_str().unwrap(), "--protect-invocations"], &[]).await;
    let r = platform
        .http
        .post(platform.url("/system/functions"))
        .bearer_auth("token-two-0123456789")
        .json(&json!({"service": "f", "envProcess": "cat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(platform.http.post(platform.url("/async-function/f")).send().await.unwrap().status(), 401);
    assert_eq!(platform.http.post(platform.url("/function/f")).send().await.unwrap().status(), 401);
    let r = platform
        .http
        .post(platform.url("/function/f"))
        .bearer_auth("token-two-0123456789")
        .body("ok")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn metrics_use_openfaas_names() {
    let platform = Platform::start(1, &[], &[]).await;
    platform.deploy(json!({"service": "m", "envProcess": "cat"})).await;
    platform.http.post(platform.url("/function/m")).body("x").send().await.unwrap();
    platform.http.post(platform.url("/async-function/m")).body("x").send().await.unwrap();
    platform.http.post(platform.url("/async-function/missing")).send().await.unwrap();
    let text = platform.http.get(platform.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let has = |needle: &str| text.lines().any(|l| l.starts_with(needle));
    // `NAME.NAMESPACE`, as OpenFaaS's gateway labels them, so its dashboards' queries find them.
    assert!(has(r#"gateway_function_invocation_total{function_name="m.openfaas-fn",code="200"} 1"#), "{text}");
    assert!(has(r#"gateway_function_invocation_total{function_name="m.openfaas-fn",code="202"} 1"#), "{text}");
    // A name nobody deployed is not a label: anonymous callers could otherwise grow the series without bound.
    assert!(!text.contains(r#"function_name="missing"#), "{text}");
    assert!(has("gateway_functions_seconds_bucket{"), "{text}");
}

/// Runs `sluice ARGS` to its end; returns (success, stderr).
fn sluice_exit(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn the_admin_api_is_never_anonymous() {
    let platform = Platform::start(1, &[], &[]).await;
    let anonymous = reqwest::Client::new();
    // What an anonymous caller sent in the adversarial run: a command as a function.
    let pwn = json!({"service": "pwn", "envProcess": "sh -c 'id > /tmp/pwned'"});
    let r = anonymous.post(platform.url("/system/functions")).json(&pwn).send().await.unwrap();
    assert_eq!(error_of(r).await, (401, "authentication required".to_owned()));
    for path in ["/system/functions", "/system/calls", "/metrics"] {
        assert_eq!(anonymous.get(platform.url(path)).send().await.unwrap().status(), 401, "{path}");
    }
    let event = binary_event(&anonymous, &platform.url("/events"), "1", "/x", "t", "{}").send().await.unwrap();
    assert_eq!(event.status(), 401, "the CloudEvents ingress needs credentials too");

    // The generated password: owner-only, announced in the log, accepted as basic auth for admin and as a token.
    let file = platform.logs.path().join("admin-password");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(platform.gateway.log_text().contains(&file.display().to_string()), "{}", platform.gateway.log_text());
    let r = anonymous
        .get(platform.url("/system/functions"))
        .basic_auth("admin", Some(&platform.admin_password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(platform.http.get(platform.url("/metrics")).send().await.unwrap().status(), 200);
    // A request marked as made by Sluice on a caller's behalf never passes, credentials or not.
    let r = platform.http.get(platform.url("/system/functions")).header("X-Sluice-Outbound", "1").send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Restarted, the gateway keeps the same password.
    let mut platform = platform;
    platform.restart_gateway().await;
    assert_eq!(platform.http.get(platform.url("/system/functions")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn anonymous_admin_only_when_asked_for_and_loudly() {
    let platform = Platform::start(1, &["--insecure-no-auth"], &[]).await;
    assert!(platform.admin_password.is_empty(), "nothing generated");
    let r = reqwest::Client::new()
        .post(platform.url("/system/functions"))
        .json(&json!({"service": "open", "envProcess": "cat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(platform.gateway.log_text().contains("--insecure-no-auth: the admin API takes requests from anyone"));
}

#[test]
fn weak_or_contradictory_credentials_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    let data = dir.path().to_str().unwrap();
    let gateway = |extra: &[&str]| {
        let mut args = vec!["gateway", "--nats-url", "nats://127.0.0.1:1", "--data-dir", data];
        args.extend_from_slice(extra);
        sluice_exit(&args)
    };
    let pw = password.to_str().unwrap();
    std::fs::write(&password, "").unwrap();
    let (ok, err) = gateway(&["--basic-auth-user", "admin", "--basic-auth-password-file", pw]);
    assert!(!ok && err.contains("is empty"), "{err}");
    std::fs::write(&password, "short\n").unwrap();
    let (ok, err) = gateway(&["--basic-auth-user", "admin", "--basic-auth-password-file", pw]);
    assert!(!ok && err.contains("use at least 12"), "{err}");
    let (ok, err) = gateway(&["--insecure-no-auth", "--protect-invocations"]);
    assert!(!ok && err.contains("contradicts"), "{err}");
}

#[tokio::test]
async fn the_ingress_cannot_impersonate_webhooks_cron_or_s3() {
    let platform = Platform::start(1, &[], &[]).await;
    let events = platform.url("/events");
    let post = |source: &'static str, kind: &'static str| {
        binary_event(&platform.http, &events, "2026-11-30T12:00:00Z", source, kind, "forged").send()
    };
    for (source, kind) in [
        ("/hooks/gh", "com.github.push"),
        ("/sluice/cron/ticker/0", "sluice.cron.tick"),
        ("s3://uploads", "x"),
        ("/anything", "sluice.s3.object.created"),
    ] {
        let (status, error) = error_of(post(source, kind).await.unwrap()).await;
        assert_eq!(status, 403, "{source} {kind}: {error}");
        assert!(error.contains("reserved"), "{error}");
    }
    assert_eq!(post("/mine", "com.example.ok").await.unwrap().status(), 202);
}

#[tokio::test]
async fn callbacks_never_reach_this_host_or_the_admin_api() {
    // The default policy, without the loopback allowance the other tests have.
    let nats = crate::support::Nats::start();
    let logs = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = nats.url();
    let _gateway = crate::support::Sluice::spawn_env(
        &["gateway", "--nats-url", &url, "--listen", &listen],
        &[("SLUICE_CALLBACK_ALLOW", "")],
        logs.path(),
        "gateway",
    );
    let base = format!("http://{listen}");
    let start = std::time::Instant::now();
    while reqwest::get(format!("{base}/healthz")).await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "gateway not healthy");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let password = std::fs::read_to_string(logs.path().join("admin-password")).unwrap();
    let http = crate::support::admin_client(password.trim());
    let r = http.post(format!("{base}/system/functions")).json(&json!({"service": "f", "envProcess": "cat"})).send();
    assert_eq!(r.await.unwrap().status(), 202);
    for target in [
        format!("http://127.0.0.1:{port}/system/functions"),
        format!("http://[::ffff:127.0.0.1]:{port}/system/functions"),
        format!("http://[::ffff:7f00:1]:{port}/"),
        format!("http://0:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://localhost:{port}/"),
        "http://[::ffff:169.254.169.254]/latest/meta-data/".to_owned(),
        "http://[64:ff9b::a9fe:a9fe]/".to_owned(),
    ] {
        let r = http.post(format!("{base}/async-function/f")).header("X-Callback-Url", &target).send().await.unwrap();
        let (status, error) = error_of(r).await;
        assert_eq!(status, 400, "{target}: {error}");
        assert!(error.contains("denied"), "{target}: {error}");
    }
    let r = http.post(format!("{base}/async-function/f")).header("X-Callback-Url", "http://10.0.0.1:99999/").send();
    let (status, error) = error_of(r.await.unwrap()).await;
    assert_eq!(status, 400, "{error}");
}

#[tokio::test]
async fn a_callback_aimed_at_the_admin_api_deploys_nothing() {
    // Loopback allowed (as these tests run), so the callback is made, carrying a spec as its body; and the
    // admin API open, so only the outbound marker stands between the callback and a deployment.
    let platform = Platform::start(1, &["--insecure-no-auth"], &[]).await;
    let spec = r#"{"service": "planted", "envProcess": "sh -c 'id'"}"#;
    platform.deploy(json!({"service": "echo", "envProcess": "cat"})).await;
    let target = platform.url("/system/functions");
    let r = platform
        .http
        .post(platform.url("/async-function/echo"))
        .header("X-Callback-Url", &target)
        .body(spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.headers()["x-call-id"].to_str().unwrap().to_owned();
    let start = std::time::Instant::now();
    loop {
        let record = platform.record(&id).await;
        if record["callback"]["state"] == "failed" {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "callback not refused: {record}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = platform.http.get(platform.url("/system/function/planted")).send().await.unwrap();
    assert_eq!(r.status(), 404, "the callback deployed a function");
}

#[tokio::test]
async fn sns_confirmations_are_not_an_open_proxy() {
    let platform = Platform::start(1, &["--sns-subscribe-host", "127.0.0.1"], &[]).await;
    let anonymous = reqwest::Client::new();
    let confirmation = |url: &str| {
        json!({"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:us-east-1:1:t", "SubscribeURL": url})
            .to_string()
    };
    // No token configured: S3 endpoints are closed.
    let r = anonymous.post(platform.url("/connectors/s3/sns")).body(confirmation("http://169.254.169.254/")).send();
    let (status, error) = error_of(r.await.unwrap()).await;
    assert_eq!(status, 403, "{error}");
    assert!(error.contains("connector-s3-token"), "{error}");
    let r = anonymous.post(platform.url("/connectors/s3/minio")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 403);

    platform.create_secret("connector-s3-token", "sns-token-0123").await;
    let hook = platform.url("/connectors/s3/sns?token=sns-token-0123");
    for refused in
        ["http://169.254.169.254/latest/meta-data/", "https://evil.example.com/confirm", "http://[::ffff:a9fe:a9fe]/"]
    {
        let r = anonymous.post(&hook).body(confirmation(refused)).send().await.unwrap();
        let (status, error) = error_of(r).await;
        assert_eq!(status, 403, "{refused}: {error}");
    }
    // An allowed host that answers 403 or redirects: the sender learns nothing of the answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/forbidden", axum::routing::get(|| async { (axum::http::StatusCode::FORBIDDEN, "secret detail") }))
        .route(
            "/redirect",
            axum::routing::get(|| async {
                (axum::http::StatusCode::FOUND, [("location", "http://169.254.169.254/")], "")
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    for path in ["forbidden", "redirect"] {
        let r = anonymous.post(&hook).body(confirmation(&format!("http://{addr}/{path}"))).send().await.unwrap();
        let (status, error) = error_of(r).await;
        assert_eq!(status, 502, "{path}: {error}");
        assert_eq!(error, "the subscription could not be confirmed");
    }
}

#[tokio::test]
async fn functions_get_neither_credentials_nor_forged_request_facts() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "invoke-token-0123456789\n").unwrap();
    let platform = Platform::start(1, &["--token-file", tokens.to_str().unwrap(), "--protect-invocations"], &[]).await;
    let admin = crate::support::admin_client("invoke-token-0123456789");
    let spec = json!({"service": "env", "envProcess": "env"});
    assert_eq!(admin.post(platform.url("/system/functions")).json(&spec).send().await.unwrap().status(), 202);
    let r = admin
        .post(platform.url("/function/env/real/path?q=1"))
        .header("Method", "DELETE")
        .header("Path", "/admin")
        .header("Query", "forged=1")
        .header("X-Custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let env = r.text().await.unwrap();
    assert!(!env.contains("invoke-token"), "the gateway's credential reached the function:\n{env}");
    assert!(!env.contains("Http_Authorization"), "{env}");
    for line in ["Http_Method=POST", "Http_Path=/real/path", "Http_Query=q=1", "Http_X_Custom=kept"] {
        assert!(env.lines().any(|l| l == line), "{line} missing:\n{env}");
    }
}

#[tokio::test]
async fn client_errors_are_4xx_naming_the_problem() {
    let platform = Platform::start(0, &[], &[]).await;
    platform.deploy(json!({"service": "f", "envProcess": "cat"})).await;
    let post = |id: &str| platform.http.post(platform.url("/async-function/f")).header("X-Call-Id", id).send();
    for bad in ["a..b", ".a", "a."] {
        let (status, error) = error_of(post(bad).await.unwrap()).await;
        assert_eq!(status, 400, "{bad}: {error}");
        assert!(error.contains("X-Call-Id"), "{error}");
    }
    let r = platform.http.post(platform.url("/async-function/f")).header("X-Big", "x".repeat(100 * 1024)).send();
    let (status, error) = error_of(r.await.unwrap()).await;
    assert_eq!(status, 431, "{error}");
    let r = platform.http.post(platform.url("/system/secrets")).json(&json!({"name": "a..", "value": "v"})).send();
    assert_eq!(error_of(r.await.unwrap()).await.0, 400);
    // Names that would become NATS subjects are bounded at the edge.
    let long = "h".repeat(5000);
    let r = platform.http.post(platform.url(&format!("/hooks/{long}"))).body("x").send().await.unwrap();
    let (status, error) = error_of(r).await;
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("webhook name"), "{error}");
    let long_type = "t".repeat(5000);
    let r = binary_event(&platform.http, &platform.url("/events"), "1", "/mine", &long_type, "x").send().await.unwrap();
    let (status, error) = error_of(r).await;
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("event type"), "{error}");
    // The platform still takes work afterwards.
    assert_eq!(post("fine-1").await.unwrap().status(), 202);
}
