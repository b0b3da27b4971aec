//! The `sluice` client commands against a running platform.

use std::time::Duration;

use serde_json::Value;

use crate::support::Platform;

/// Runs `sluice ARGS` against the platform; returns (success, stdout, stderr).
async fn sluice(platform: &Platform, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = platform
        .cli()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

#[tokio::test]
async fn deploy_invoke_inspect_cancel_and_remove_from_the_cli() {
    let platform = Platform::start(1, &[], &[]).await;
    let (ok, out, err) = sluice(&platform, &["fn", "deploy", "--name", "upper", "--process", "tr a-z A-Z"], None).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "deployed upper");
    let (ok, out, _) = sluice(&platform, &["fn", "deploy", "--name", "upper", "--process", "tr a-z A-Z"], None).await;
    assert!(ok && out.trim() == "updated upper", "{out}");
    let (ok, out, _) = sluice(&platform, &["fn", "list"], None).await;
    assert!(ok && out.lines().any(|l| l.starts_with("upper ") && l.contains("tr a-z A-Z")), "{out}");

    let (ok, out, _) = sluice(&platform, &["invoke", "upper"], Some("from stdin")).await;
    assert!(ok);
    assert_eq!(out, "FROM STDIN");
    let (ok, out, err) = sluice(&platform, &["invoke", "upper", "--async", "--wait", "-d", "waited"], None).await;
    assert!(ok, "{err}");
    let record: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(record["status"], "succeeded");
    let call_id = record["callId"].as_str().unwrap();
    let (ok, out, _) = sluice(&platform, &["call", "get", call_id], None).await;
    assert!(ok && out.contains("\"succeeded\""), "{out}");

    // A long call, cancelled from the CLI.
    sluice(&platform, &["fn", "deploy", "--name", "slow", "--process", "sleep 30"], None).await;
    let (ok, out, _) = sluice(&platform, &["invoke", "slow", "--async", "--call-id", "cli-cancel"], None).await;
    assert!(ok && out.trim() == "cli-cancel", "{out}");
    platform.wait_running("cli-cancel").await;
    let (ok, out, err) = sluice(&platform, &["call", "cancel", "cli-cancel"], None).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("cancelled cli-cancel"), "{out}");

    // Errors are one readable line.
    let (ok, _, err) = sluice(&platform, &["invoke", "nope", "--async"], None).await;
    assert!(!ok);
    assert_eq!(err.trim(), "error: gateway answered 404 Not Found: function \"nope\" not found");
    let (ok, out, _) = sluice(&platform, &["fn", "rm", "upper"], None).await;
    assert!(ok && out.trim() == "removed upper");
}

#[tokio::test]
async fn dead_letters_from_the_cli() {
    let platform = Platform::start(1, &[], &[]).await;
    let spec = r#"{"service": "fails", "envProcess": "false", "async": {"retry": {"attempts": 1}}}"#;
    let file = platform.logs.path().join("fails.json");
    std::fs::write(&file, spec).unwrap();
    let (ok, _, err) = sluice(&platform, &["fn", "deploy", "-f", file.to_str().unwrap()], None).await;
    assert!(ok, "{err}");
    let call_id = platform.call_async("fails", "", None).await;
    platform.wait_final(&call_id, Duration::from_secs(30)).await;
    let (ok, out, _) = sluice(&platform, &["dead", "list", "--function", "fails"], None).await;
    assert!(ok && out.lines().any(|l| l.starts_with(&call_id) && l.contains(" 500 ")), "{out}");
    let (ok, out, err) = sluice(&platform, &["dead", "replay", &call_id], None).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("replayed {call_id}"));
    let record = platform.wait_final(&call_id, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "failed", "`false` fails again");

    // A function's dead letters at once; a call that cannot be replayed says why and fails the command.
    let other = platform.call_async("fails", "", None).await;
    platform.wait_final(&other, Duration::from_secs(30)).await;
    let (ok, out, err) = sluice(&platform, &["dead", "replay", "--function", "fails"], None).await;
    assert!(ok, "{err}");
    let mut replayed: Vec<&str> = out.lines().collect();
    replayed.sort();
    let mut expected = [format!("replayed {call_id}"), format!("replayed {other}")];
    expected.sort();
    assert_eq!(replayed, expected);
    let (ok, out, err) = sluice(&platform, &["dead", "replay", "no-such-call"], None).await;
    assert!(!ok && out.is_empty(), "{out}");
    assert!(err.contains("not replayed no-such-call: no call no-such-call"), "{err}");

    // Both failed again; discarded, they leave the list for good.
    for id in [&call_id, &other] {
        assert!(platform.wait_final(id, Duration::from_secs(30)).await["deadLetter"].is_u64(), "{id}");
    }
    let (ok, out, err) = sluice(&platform, &["dead", "discard", &call_id, &other, "no-such-call"], None).await;
    assert!(!ok, "{out}");
    assert_eq!(out.lines().collect::<Vec<_>>(), [format!("discarded {call_id}"), format!("discarded {other}")]);
    assert!(err.contains("not discarded no-such-call") && err.contains("1 of 3 not discarded"), "{err}");
    let (ok, out, _) = sluice(&platform, &["dead", "list", "--function", "fails"], None).await;
    assert!(ok && out.lines().count() == 1, "only the heading: {out}");

    // Health: the worker that is up, and each stream against its limits.
    let (ok, out, err) = sluice(&platform, &["health"], None).await;
    assert!(ok, "{err}");
    let worker = platform.get_json("/system/health").await["workers"][0]["workerId"].as_str().unwrap().to_owned();
    assert!(out.lines().any(|l| l.starts_with(&worker) && l.contains(" 0/64 ")), "{out}");
    let line = |name: &str| out.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_default().to_owned();
    assert!(line("SLUICE_RESULTS").ends_with("1024.0 MiB, kept 1d; when full: discard oldest"), "{out}");
    assert!(line("SLUICE_DEAD").ends_with(" kept 7d"), "{out}");
    assert!(line("KV_sluice_calls").ends_with(" kept 7d"), "{out}");
}
