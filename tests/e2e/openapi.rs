//! `GET /openapi.json`: the document generated from the gateway's route table is served to anyone, is the
//! one checked in as `docs/openapi.json`, and every operation in it is a route the gateway serves.

use serde_json::Value;

use std::time::Duration;

use crate::support::{Platform, Sluice};

#[tokio::test]
async fn the_served_document_is_the_checked_in_one_and_names_only_served_routes() {
    let platform = Platform::start(1, &[], &[]).await;
    let anonymous = reqwest::Client::new();
    let r = anonymous.get(platform.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the document describes the API to anyone, as /healthz does");
    assert_eq!(r.headers()["content-type"], "application/json");
    let served: Value = r.json().await.unwrap();
    let checked_in: Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))).unwrap();
    assert_eq!(served, checked_in, "docs/openapi.json is what the gateway serves");
    assert_eq!(served["openapi"], "3.1.0");

    // Every documented operation reaches a handler: with admin credentials, nothing documented is a 405 (a
    // path without that method) or a 404 without the API's JSON error body (a path the router lacks).
    let mut operations = 0;
    for (path, item) in served["paths"].as_object().unwrap() {
        let concrete = path.replace("{name}", "nope").replace("{id}", "nope").replace("{path}", "nope");
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = platform.http.request(method.clone(), platform.url(&concrete)).body("{}").send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path}");
            if status == 404 {
                let error: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{method} {path}: {body}"));
                assert!(error["error"].is_string(), "{method} {path}: {body}");
            }
        }
    }
    assert!(operations >= 25, "{operations} operations documented");
    // Guarded operations say so.
    let list = &served["paths"]["/system/functions"]["get"];
    assert!(list["security"].as_array().is_some_and(|s| !s.is_empty()), "{list}");
    assert!(list["responses"]["401"].is_object(), "{list}");
}

/// schemathesis, from PyPI: `deploy/test.sh` installs it into `.tools/schemathesis` and names it in
/// `SLUICE_SCHEMATHESIS`.
fn schemathesis() -> std::path::PathBuf {
    let path = std::env::var_os("SLUICE_SCHEMATHESIS").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/schemathesis/bin/schemathesis")
    });
    assert!(
        path.is_file(),
        "schemathesis is not installed at {}: run ./deploy/test.sh, which installs it (PyPI schemathesis)",
        path.display()
    );
    path
}

/// Fuzzes every documented operation (but `POST /system/alert`, a 501 by design) with schemathesis: no answer
/// may be a 5xx, nor have a status, content type, headers or body the document does not give. A first run uses
/// names the fuzzer makes up (the gateway must refuse them cleanly); a second pins every function name to a
/// deployed function, so the generated specs, secrets, queries and bodies reach the handlers' core.
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let schemathesis = schemathesis();
    // No container engine: the fuzzer deploys container specs with made-up images.
    let platform = Platform::start(1, &[], &["--docker", "off"]).await;
    // A router answers event replays, so they reach the router's own checks.
    let router =
        Sluice::spawn(&["connector", "router", "--nats-url", &platform.nats_url], platform.logs.path(), "router");
    router.wait_for_log("connector ready", Duration::from_secs(30)).await;
    platform.deploy(serde_json::json!({"service": "echo", "envProcess": "cat"})).await;
    let document: Value = platform.http.get(platform.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    let operations: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| methods.iter().filter(|m| item.get(**m).is_some()).count())
        .sum();
    let dir = tempfile::tempdir().unwrap();
    // Following logs streams until the client leaves, which a fuzzer's request never does. Values learned from
    // responses stay out: with them the fuzzer redeploys `echo` (a name it read in a listing) as a container
    // function, which this engine-less worker rightly cannot run (a 502), and the made-up run's names are made up.
    let open = "[phases.fuzzing.extra-data-sources]\nresponses = false\n\n[parameters]\n\"query.follow\" = false\n";
    let pinned = format!("{open}\"path.name\" = \"echo\"\n\"query.name\" = \"echo\"\n");
    let seed = std::env::var("SLUICE_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261130".into());
    for (run, config) in [("made-up names", open.to_owned()), ("a deployed function", pinned)] {
        let config_path = dir.path().join("schemathesis.toml");
        std::fs::write(&config_path, config).unwrap();
        let auth = format!("admin:{}", platform.admin_password);
        let mut command = tokio::process::Command::new(&schemathesis);
        command
            .arg("--config-file")
            .arg(&config_path)
            .args(["run", &platform.url("/openapi.json"), "--auth", &auth, "--exclude-path", "/system/alert"])
            .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance"])
            .args(["--checks", "response_schema_conformance,response_headers_conformance"])
            .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "25", "--seed", &seed])
            .args(["--request-timeout", "20", "--no-color"])
            .current_dir(dir.path())
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(600), command.output())
            .await
            .expect("schemathesis finished within 10 minutes")
            .expect("schemathesis runs");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "schemathesis ({run}) found problems:\n{text}");
        let tested = format!("Tested: {}", operations - 1);
        assert!(text.contains(&tested), "every documented operation but one was fuzzed ({run}):\n{text}");
    }
    assert!(!platform.gateway.log_text().contains("panicked"), "{}", platform.gateway.log_text());
}
