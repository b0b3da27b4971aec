//! Bad input gets a clear 4xx with `{"error": ...}`; a call that was not persisted never gets a 202.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Platform, admin_client, error_of};

#[tokio::test]
async fn unknown_function_bad_callback_and_bad_call_id() {
    let platform = Platform::start(0, &[], &[]).await;
    let (status, error) =
        error_of(platform.http.post(platform.url("/async-function/nope")).send().await.unwrap()).await;
    assert_eq!((status, error.as_str()), (404, "function \"nope\" not found"));
    let (status, _) = error_of(platform.http.post(platform.url("/function/nope")).send().await.unwrap()).await;
    assert_eq!(status, 404);

    platform.deploy(json!({"service": "f", "envProcess": "cat"})).await;
    for bad in ["ftp://example/x", "not a url", "http://"] {
        let r =
            platform.http.post(platform.url("/async-function/f")).header("X-Callback-Url", bad).send().await.unwrap();
        let (status, error) = error_of(r).await;
        assert_eq!(status, 400, "{bad}");
        assert!(error.contains("X-Callback-Url"), "{error}");
    }
    let r =
        platform.http.post(platform.url("/async-function/f")).header("X-Call-Id", "has space").send().await.unwrap();
    let (status, error) = error_of(r).await;
    assert_eq!(status, 400);
    assert!(error.contains("X-Call-Id"), "{error}");

    // A line break in the path after the function's name is refused by name (found by schemathesis: the gateway
    // dropped the connection), for queued and synchronous calls alike.
    for path in ["/async-function/f/a%0Ab", "/function/f/%0D"] {
        let (status, error) = error_of(platform.http.post(platform.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 400, "{path}: {error}");
        assert!(error.starts_with("invalid path"), "{path}: {error}");
    }

    // Malformed query strings are JSON errors naming the parameter, like every other bad input.
    for (path, names) in [
        ("/system/calls?limit=many", "limit"),
        ("/system/calls?status=done", "done"),
        ("/system/dead?limit=-1", "limit"),
        // A function filter is a name, never a subject pattern (found by schemathesis: `function=` was a 503).
        ("/system/dead?function=", "function"),
        ("/system/dead?function=a.*", "function"),
        ("/system/calls?function=A", "function"),
        ("/system/logs?name=f&tail=many", "tail"),
        ("/system/logs?name=f&follow=maybe", "follow"),
        ("/system/logs?name=f&name=g", "name"),
    ] {
        let (status, error) = error_of(platform.http.get(platform.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 400, "{path}: {error}");
        assert!(error.contains(names), "{path}: {error}");
    }
    // A replay of many dead calls names either calls or a function, within bounds.
    let many: Vec<String> = (0..1_001).map(|i| format!("c{i}")).collect();
    for (body, names) in [
        (json!({}), "either callIds"),
        (json!({"callIds": []}), "callIds: give 1 to 1000 call ids, not 0"),
        (json!({"callIds": many}), "not 1001"),
        (json!({"callIds": ["has space"]}), "\"has space\" is not a call id"),
        (json!({"callIds": ["a"], "function": "f"}), "either callIds"),
        (json!({"callIds": ["a"], "limit": 5}), "limit goes with function"),
        (json!({"function": "f", "limit": 0}), "limit 0"),
        (json!({"function": "a.*"}), "not a function name"),
        (json!({"callIds": "a"}), "callIds"),
    ] {
        let r = platform.http.post(platform.url("/system/dead/replay")).json(&body).send().await.unwrap();
        let (status, error) = error_of(r).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error.contains(names), "{body}: {error}");
    }

    // A secret name that cannot exist is simply not there (found by schemathesis: an empty name was a 503).
    let r = platform.http.delete(platform.url("/system/secrets")).json(&json!({"name": "", "namespace": ""}));
    let (status, error) = error_of(r.send().await.unwrap()).await;
    assert_eq!(status, 404, "{error}");
}

#[tokio::test]
async fn oversized_bodies_are_413_declared_or_streamed() {
    let platform = Platform::start(0, &["--max-body", "2MiB"], &[]).await;
    platform.deploy(json!({"service": "f", "envProcess": "cat"})).await;
    let big = vec![b'x'; 3 * 1024 * 1024];
    // Oversized requests use clients of their own: the gateway closes their connections, and a pooled client
    // could pick such a connection for the next request.
    // Refused on its declared length before any of it is read. The answer usually reaches the client, but a
    // client still writing may meet the connection's reset first: refused either way, so try a few times to
    // see the answer itself.
    let mut answered = None;
    for _ in 0..5 {
        match reqwest::Client::new().post(platform.url("/async-function/f")).body(big.clone()).send().await {
            Ok(r) => {
                answered = Some(error_of(r).await);
                break;
            }
            Err(err) => assert!(err.is_request(), "{err}"),
        }
    }
    let (status, error) = answered.expect("one of five oversized requests got its answer");
    assert_eq!(status, 413);
    assert!(error.contains("2097152"), "{error}");
    // Without a Content-Length the limit is enforced while streaming into the object store.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big.chunks(256 * 1024).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    // The gateway answers 413 and closes the connection without reading the rest, so the client may see
    // the answer or, still writing, a broken pipe; either way the call is refused.
    match reqwest::Client::new().post(platform.url("/async-function/f")).body(body).send().await {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(err) => assert!(err.is_request(), "{err}"),
    }
    // What the refused body wrote to the object store is gone at once.
    let js = async_nats::jetstream::new(async_nats::connect(&platform.nats_url).await.unwrap());
    let mut objects = js.get_stream(format!("OBJ_{}", sluice_contracts::names::PAYLOADS_BUCKET)).await.unwrap();
    let start = std::time::Instant::now();
    while objects.info().await.unwrap().state.bytes > 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "{:?}", objects.cached_info().state);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Just under the limit is accepted.
    let r = platform
        .http
        .post(platform.url("/async-function/f"))
        .body(vec![b'y'; 2 * 1024 * 1024 - 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn spec_validation_names_the_field() {
    let platform = Platform::start(0, &[], &[]).await;
    let cases = [
        (json!({"service": "Bad_Name", "envProcess": "cat"}), "service"),
        (json!({"service": &"a".repeat(64), "envProcess": "cat"}), "service"),
        (json!({"service": "a"}), "envProcess"),
        (json!({"service": "a", "runtime": "http", "upstream": "gopher://x"}), "upstream"),
        (json!({"service": "a", "envProcess": "cat", "async": {"timeout": "soon"}}), "soon"),
        (json!({"service": "a", "envProcess": "cat", "async": {"maxInflight": 0}}), "async.maxInflight"),
        (json!({"service": "a", "envProcess": "cat", "runtime": "lambda"}), "runtime"),
        (json!({"envProcess": "cat"}), "service"),
        // Values that used to be accepted and then panic or never run.
        (json!({"service": "a", "envProcess": "cat", "async": {"timeout": "300000000000y"}}), "async.timeout"),
        (json!({"service": "a", "envProcess": "cat", "async": {"timeout": "18446744073709551615s"}}), "366 days"),
        (
            json!({"service": "a", "envProcess": "cat", "async": {"retry": {"minWait": "18446744073709551615s"}}}),
            "minWait",
        ),
        (json!({"service": "a", "envProcess": "cat", "async": {"maxAge": "0s"}}), "async.maxAge"),
        (json!({"service": "a", "envProcess": "sh -c 'unbalanced"}), "envProcess"),
        (json!({"service": "a", "envProcess": "cat", "envVars": {"A": "x\u{0}y"}}), "envVars.A"),
        (json!({"service": "a", "envProcess": "cat", "limits": {"cpu": "1e99"}}), "limits.cpu"),
        (json!({"service": "a", "envProcess": "cat", "triggers": [{"cron": "0 0 30 2 *"}]}), "never fires"),
        (
            json!({"service": "a", "envProcess": "cat", "triggers": [{"cron": "@every 300000000000y"}]}),
            "triggers[0].cron",
        ),
    ];
    for (spec, field) in cases {
        let r = platform.http.post(platform.url("/system/functions")).json(&spec).send().await.unwrap();
        let (status, error) = error_of(r).await;
        assert_eq!(status, 400, "{spec}");
        assert!(error.contains(field), "{spec}: {error}");
    }
    // A misspelt field is deployed without it, and the answer says so.
    let typo = json!({"service": "typo", "envProcess": "cat", "asyncc": {"timeout": "1s"}});
    let r = platform.http.post(platform.url("/system/functions")).json(&typo).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["warnings"][0], "unknown field \"asyncc\" ignored", "{answer}");
    let r = platform.http.post(platform.url("/system/functions")).body("{not json").send().await.unwrap();
    let (status, error) = error_of(r).await;
    assert_eq!(status, 400);
    assert!(error.contains("not valid JSON"), "{error}");
    // No JSON Content-Type needed: `curl -d` posts form-encoded.
    let r = platform
        .http
        .post(platform.url("/system/functions"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(r#"{"service": "plain", "envProcess": "cat"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let huge = format!(r#"{{"service": "big", "envProcess": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    // Refused on its declared length; the client may still be writing when the answer comes. Its own client,
    // because the server closes that connection and a pooled client could pick it for the next request.
    match admin_client(&platform.admin_password).post(platform.url("/system/functions")).body(huge).send().await {
        Ok(r) => assert_eq!(error_of(r).await.0, 413),
        Err(err) => assert!(err.is_request(), "{err}"),
    }
    let r = platform.delete_function("ghost").await;
    assert_eq!(error_of(r).await.0, 404);
    let r = platform
        .http
        .put(platform.url("/system/functions"))
        .json(&json!({"service": "ghost", "envProcess": "cat"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.0, 404);
}

#[tokio::test]
async fn function_crud_round_trip() {
    let platform = Platform::start(0, &[], &[]).await;
    let spec = json!({"service": "crud", "envProcess": "cat", "labels": {"team": "a"}, "async": {"timeout": "30s"}});
    platform.deploy(spec.clone()).await;
    let r = platform.http.post(platform.url("/system/functions")).json(&spec).send().await.unwrap();
    assert_eq!(error_of(r).await.0, 409);
    let got: Value =
        platform.http.get(platform.url("/system/function/crud")).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["labels"]["team"], "a");
    assert_eq!(got["async"]["timeout"], "30s");
    assert_eq!(got["availableReplicas"], 1);
    let updated = json!({"service": "crud", "envProcess": "tr a-z A-Z"});
    // 202, as OpenFaaS's providers answer an update and the go-sdk requires.
    let r = platform.http.put(platform.url("/system/functions")).json(&updated).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let list: Value = platform.http.get(platform.url("/system/functions")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list[0]["envProcess"], "tr a-z A-Z");
    let r = platform.delete_function("crud").await;
    assert_eq!(r.status(), 200);
    let r = platform.http.get(platform.url("/system/function/crud")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn no_202_when_nats_is_down() {
    let mut platform = Platform::start(0, &[], &[]).await;
    platform.deploy(json!({"service": "f", "envProcess": "cat"})).await;
    let r = platform.http.post(platform.url("/async-function/f")).body("before").send().await.unwrap();
    assert_eq!(r.status(), 202);
    platform.nats.stop();
    for _ in 0..3 {
        let r = platform
            .http
            .post(platform.url("/async-function/f"))
            .timeout(Duration::from_secs(30))
            .body("during")
            .send()
            .await
            .unwrap();
        let (status, error) = error_of(r).await;
        assert_eq!(status, 503, "{error}");
    }
}
