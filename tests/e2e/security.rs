//! Authentication of `/system/*` (and optionally of invocations), and the Prometheus endpoint.

use serde_json::json;

use crate::support::Platform;

#[tokio::test]
async fn system_routes_require_credentials_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "tok-1\n").unwrap();
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
        .basic_auth("admin", Some("s3cret"))
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = platform.http.get(platform.url("/system/functions")).bearer_auth("tok-1").send().await.unwrap();
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
    std::fs::write(&tokens, "tok-2\n").unwrap();
    let platform = Platform::start(1, &["--token-file", tokens.to_str().unwrap(), "--protect-invocations"], &[]).await;
    let r = platform
        .http
        .post(platform.url("/system/functions"))
        .bearer_auth("tok-2")
        .json(&json!({"service": "f", "envProcess": "cat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(platform.http.post(platform.url("/async-function/f")).send().await.unwrap().status(), 401);
    assert_eq!(platform.http.post(platform.url("/function/f")).send().await.unwrap().status(), 401);
    let r = platform.http.post(platform.url("/function/f")).bearer_auth("tok-2").body("ok").send().await.unwrap();
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
    assert!(has(r#"gateway_function_invocation_total{function_name="m",code="200"} 1"#), "{text}");
    assert!(has(r#"gateway_function_invocation_total{function_name="m",code="202"} 1"#), "{text}");
    assert!(has(r#"gateway_function_invocation_total{function_name="missing",code="404"} 1"#), "{text}");
    assert!(has("gateway_functions_seconds_bucket{"), "{text}");
}
