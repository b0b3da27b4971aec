//! Namespaces end to end: two teams deploy a function of the same name and never see each other's calls,
//! secrets or listings; namespaces are managed with the routes and bodies the go-sdk (`faas-cli namespace`)
//! sends; data stored before namespaces existed moves into the default one.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{CallbackReceiver, Nats, Platform, error_of};

async fn get_json(platform: &Platform, path: &str) -> Value {
    let r = platform.http.get(platform.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

async fn call_sync(platform: &Platform, path: &str) -> (u16, String) {
    let r = platform.http.post(platform.url(path)).body("x").send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn two_teams_each_have_their_own_function_of_one_name() {
    let platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;

    // faas-cli namespace create team-a: the go-sdk adds the label and annotation `openfaas: "1"`.
    let body = json!({"name": "team-a", "labels": {"openfaas": "1"}, "annotations": {"openfaas": "1"}});
    let create = || platform.http.post(platform.url("/system/namespace/")).json(&body);
    assert_eq!(create().send().await.unwrap().status(), 201);
    let (status, error) = error_of(create().send().await.unwrap()).await;
    assert_eq!((status, error.contains("\"team-a\" already exists")), (409, true), "{error}");
    assert_eq!(get_json(&platform, "/system/namespaces").await, json!(["openfaas-fn", "team-a"]));
    let described = get_json(&platform, "/system/namespace/team-a").await;
    assert_eq!(described, body, "the namespace as created");
    let labels = json!({"name": "team-a", "labels": {"openfaas": "1", "team": "a"}, "annotations": {}});
    let r = platform.http.put(platform.url("/system/namespace/team-a")).json(&labels).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(get_json(&platform, "/system/namespace/team-a").await["labels"]["team"], "a");
    let (status, _) = error_of(
        platform.http.post(platform.url("/system/namespace/")).json(&json!({"name": "Team.A"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 400, "a namespace name is a DNS label");

    // The same function name in both namespaces: two functions.
    platform.deploy(json!({"service": "resize", "envProcess": "echo default"})).await;
    platform.deploy(json!({"service": "resize", "namespace": "team-a", "envProcess": "echo team-a"})).await;
    assert_eq!(call_sync(&platform, "/function/resize").await, (200, "default\n".into()));
    assert_eq!(call_sync(&platform, "/function/resize.openfaas-fn").await, (200, "default\n".into()));
    assert_eq!(call_sync(&platform, "/function/resize.team-a").await, (200, "team-a\n".into()));

    // Queued calls reach their own namespace's function, and callbacks say which one ran.
    let mut ids = Vec::new();
    for path in ["/async-function/resize.team-a", "/async-function/resize"] {
        let r = platform.http.post(platform.url(path)).header("X-Callback-Url", &receiver.url).send().await.unwrap();
        assert_eq!(r.status(), 202, "{path}");
        ids.push(r.headers()["x-call-id"].to_str().unwrap().to_owned());
    }
    let got = receiver.wait_for(2, Duration::from_secs(30)).await;
    for (id, (namespace, output)) in ids.iter().zip([("team-a", "team-a\n"), ("openfaas-fn", "default\n")]) {
        let cb = got.iter().find(|cb| cb.headers["x-call-id"] == id.as_str()).expect("a callback per call");
        assert_eq!(&cb.body[..], output.as_bytes());
        assert_eq!(cb.headers["x-function-name"], "resize");
        assert_eq!(cb.headers["x-function-namespace"], namespace);
        let record = platform.wait_final(id, Duration::from_secs(30)).await;
        assert_eq!((&record["function"], &record["namespace"]), (&json!("resize"), &json!(namespace)), "{record}");
    }
    // A caller's own call id names its namespace's function: the other team's call of that id is another call.
    let r = platform.http.post(platform.url("/async-function/resize")).header("X-Call-Id", ids[0].as_str());
    let (status, error) = error_of(r.send().await.unwrap()).await;
    assert_eq!(status, 409, "{error}");
    assert!(error.contains("resize.team-a"), "{error}");

    // Listings read one namespace only.
    let team = get_json(&platform, "/system/functions?namespace=team-a").await;
    let default = get_json(&platform, "/system/functions").await;
    assert_eq!((team.as_array().unwrap().len(), default.as_array().unwrap().len()), (1, 1));
    assert_eq!((&team[0]["namespace"], &team[0]["envProcess"]), (&json!("team-a"), &json!("echo team-a")));
    assert_eq!(default[0]["namespace"], "openfaas-fn");
    let team_calls = platform.list_calls("namespace=team-a").await;
    let listed: Vec<&str> = team_calls.iter().filter_map(|c| c["callId"].as_str()).collect();
    assert!(listed.contains(&ids[0].as_str()) && !listed.contains(&ids[1].as_str()), "{team_calls:?}");
    assert!(team_calls.iter().all(|c| c["namespace"] == "team-a"), "{team_calls:?}");
    let default_calls = platform.list_calls("").await;
    assert!(default_calls.iter().all(|c| c["namespace"] == "openfaas-fn"), "{default_calls:?}");

    // The CLI names a namespace with --namespace (or SLUICE_NAMESPACE).
    let cli = |args: &[&str]| {
        let mut command = platform.cli();
        command.args(args).stdin(std::process::Stdio::null());
        command
    };
    let out = cli(&["invoke", "resize", "--namespace", "team-a", "-d", "x"]).output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "team-a\n", "{}", String::from_utf8_lossy(&out.stderr));
    let out =
        cli(&["fn", "deploy", "--name", "thumb", "--process", "cat", "--namespace", "team-a"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["fn", "list", "--json", "--namespace", "team-a"]).output().await.unwrap();
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(names, ["resize", "thumb"], "{listed}");
    let out = cli(&["fn", "rm", "thumb", "--namespace", "team-a"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Invocation counts are per namespace: team-a's two sync calls and one queued call, not the default's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let count = get_json(&platform, "/system/function/resize?namespace=team-a").await["invocationCount"].clone();
        if count == json!(3) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "team-a's count stays {count}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Secrets are per namespace too.
    let secret = json!({"name": "token", "namespace": "team-a", "value": "a"});
    assert_eq!(platform.http.post(platform.url("/system/secrets")).json(&secret).send().await.unwrap().status(), 201);
    platform.create_secret("token", "default").await;
    assert_eq!(
        get_json(&platform, "/system/secrets?namespace=team-a").await,
        json!([{"name": "token", "namespace": "team-a"}])
    );
    assert_eq!(get_json(&platform, "/system/secrets").await, json!([{"name": "token", "namespace": "openfaas-fn"}]));

    // Metrics label a function `NAME.NAMESPACE`, as OpenFaaS does.
    let metrics = platform.http.get(platform.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"function_name="resize.team-a""#), "{metrics}");

    // A namespace that still holds functions or secrets is not removed; nor is the default one.
    let (status, error) =
        error_of(platform.http.delete(platform.url("/system/namespace/team-a")).send().await.unwrap()).await;
    assert_eq!(status, 409);
    assert!(error.contains("functions resize") && error.contains("secrets token"), "{error}");
    let (status, _) =
        error_of(platform.http.delete(platform.url("/system/namespace/openfaas-fn")).send().await.unwrap()).await;
    assert_eq!(status, 409);

    // Removing team-a's function leaves the default one serving.
    let r = platform.http.delete(platform.url("/system/functions"));
    let r = r.json(&json!({"functionName": "resize", "namespace": "team-a"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(call_sync(&platform, "/function/resize.team-a").await.0, 404);
    assert_eq!(call_sync(&platform, "/function/resize").await, (200, "default\n".into()));
    let r = platform.http.delete(platform.url("/system/secrets"));
    assert_eq!(r.json(&json!({"name": "token", "namespace": "team-a"})).send().await.unwrap().status(), 200);
    assert_eq!(get_json(&platform, "/system/secrets").await, json!([{"name": "token", "namespace": "openfaas-fn"}]));

    // Empty now: it goes, and naming it afterwards is a 404 that says so.
    assert_eq!(platform.http.delete(platform.url("/system/namespace/team-a")).send().await.unwrap().status(), 200);
    assert_eq!(get_json(&platform, "/system/namespaces").await, json!(["openfaas-fn"]));
    let (status, error) =
        error_of(platform.http.post(platform.url("/function/resize.team-a")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(error.contains("namespace \"team-a\" not found"), "{error}");
}

#[tokio::test]
async fn the_default_namespace_is_configurable() {
    let platform = Platform::start(1, &["--default-namespace", "prod"], &[]).await;
    assert_eq!(get_json(&platform, "/system/namespaces").await, json!(["prod"]));
    platform.deploy(json!({"service": "hello", "envProcess": "echo hi"})).await;
    assert_eq!(call_sync(&platform, "/function/hello").await, (200, "hi\n".into()));
    assert_eq!(call_sync(&platform, "/function/hello.prod").await, (200, "hi\n".into()));
    let listed = get_json(&platform, "/system/functions?namespace=prod").await;
    assert_eq!(listed[0]["namespace"], "prod", "{listed}");
    let (status, error) =
        error_of(platform.http.post(platform.url("/function/hello.openfaas-fn")).send().await.unwrap()).await;
    assert_eq!((status, error.contains("\"openfaas-fn\"")), (404, true), "{error}");
}

/// A function, a secret, an invocation count and a queued call as a release without namespaces stored them.
async fn store_the_layout_without_namespaces(nats: &Nats, callback: &str) {
    use async_nats::jetstream::{self, kv};
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let bucket = |name: &str| kv::Config { bucket: name.to_owned(), history: 1, ..Default::default() };
    let functions = js.create_key_value(bucket("sluice_functions")).await.unwrap();
    let spec = json!({"service": "legacy", "envProcess": "tr a-z A-Z"});
    functions.put("legacy", serde_json::to_vec(&spec).unwrap().into()).await.unwrap();
    let secrets = js.create_key_value(bucket("sluice_secrets")).await.unwrap();
    secrets.put("old.secret", "v".into()).await.unwrap();
    let counts = js.create_key_value(bucket("sluice_invocations")).await.unwrap();
    counts.put("legacy", "7".into()).await.unwrap();
    queue_on_the_single_stream(&js, "legacy", "sluice.invoke.legacy", "legacy-call", callback).await;
}

/// A call queued as releases before sharding did: on the one stream `SLUICE_INVOCATIONS` under `subject`, with
/// the function's consumer `consumer` on it.
async fn queue_on_the_single_stream(
    js: &async_nats::jetstream::Context,
    consumer: &str,
    subject: &str,
    call_id: &str,
    callback: &str,
) {
    use async_nats::jetstream::{self, stream};
    let invocations = js
        .create_stream(stream::Config {
            name: "SLUICE_INVOCATIONS".into(),
            subjects: vec!["sluice.invoke.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await
        .unwrap();
    invocations
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(format!("invoke-{consumer}")),
            filter_subject: subject.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let key = subject.strip_prefix("sluice.invoke.").unwrap();
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in [
        ("Nats-Msg-Id", call_id),
        ("ce-specversion", "1.0"),
        ("ce-id", call_id),
        ("ce-type", "sluice.invocation.requested"),
        ("ce-source", "/sluice/gateway"),
        ("ce-subject", key),
        ("Sluice-Method", "POST"),
        ("Sluice-Callback-Url", callback),
    ] {
        headers.insert(name, value);
    }
    js.publish_with_headers(subject.to_owned(), headers, "queued before the upgrade".into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// Whether the stream of before sharding is still there.
async fn single_stream_left(platform: &Platform) -> bool {
    let js = async_nats::jetstream::new(async_nats::connect(platform.nats.url()).await.unwrap());
    js.get_stream("SLUICE_INVOCATIONS").await.is_ok()
}

#[tokio::test]
async fn calls_queued_on_the_single_stream_of_before_move_to_their_shards() {
    let nats = Nats::start();
    let receiver = CallbackReceiver::start().await;
    {
        let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        queue_on_the_single_stream(&js, "openfaas-fn_upper", "sluice.invoke.openfaas-fn.upper", "old", &receiver.url)
            .await;
    }
    let platform = Platform::start_on(vec![nats], 1, &[], &[]).await;
    assert!(!single_stream_left(&platform).await, "the emptied stream is removed");
    // Deployed after the move: the call waits on its shard until its function is served.
    platform.deploy(json!({"service": "upper", "envProcess": "tr a-z A-Z"})).await;
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(&got[0].body[..], b"QUEUED BEFORE THE UPGRADE");
    let record = platform.wait_final("old", Duration::from_secs(10)).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    let new = platform.call_async("upper", "new", Some(&receiver.url)).await;
    assert_eq!(platform.wait_final(&new, Duration::from_secs(30)).await["status"], "succeeded");
    assert_eq!(receiver.wait_for(2, Duration::from_secs(30)).await.len(), 2, "each call ran once");
}

#[tokio::test]
async fn data_stored_before_namespaces_moves_into_the_default_one() {
    let nats = Nats::start();
    let receiver = CallbackReceiver::start().await;
    store_the_layout_without_namespaces(&nats, &receiver.url).await;
    let platform = Platform::start_on(vec![nats], 1, &[], &[]).await;

    // The call queued before the upgrade runs once, under the default namespace.
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(&got[0].body[..], b"QUEUED BEFORE THE UPGRADE");
    assert_eq!(got[0].headers["x-function-namespace"], "openfaas-fn");
    let record = platform.wait_final("legacy-call", Duration::from_secs(10)).await;
    assert_eq!((&record["status"], &record["namespace"]), (&json!("succeeded"), &json!("openfaas-fn")));

    // The function, its count and the secret are where the default namespace reads them.
    let listed = get_json(&platform, "/system/functions").await;
    assert_eq!((listed[0]["name"].as_str(), listed[0]["namespace"].as_str()), (Some("legacy"), Some("openfaas-fn")));
    assert!(listed[0]["invocationCount"].as_u64().unwrap() >= 7, "{listed}");
    assert_eq!(
        get_json(&platform, "/system/secrets").await,
        json!([{"name": "old.secret", "namespace": "openfaas-fn"}])
    );
    assert_eq!(call_sync(&platform, "/function/legacy").await, (200, "X".into()));

    // Nothing is left under the old keys, and a second start moves nothing twice.
    let client = async_nats::connect(&platform.nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let functions = js.get_key_value("sluice_functions").await.unwrap();
    assert!(functions.get("legacy").await.unwrap().is_none());
    let mut platform = platform;
    platform.restart_gateway().await;
    assert_eq!(get_json(&platform, "/system/functions").await.as_array().unwrap().len(), 1);
    assert_eq!(call_sync(&platform, "/function/legacy").await, (200, "X".into()));
    assert_eq!(receiver.received().len(), 1, "the moved call ran once");
    assert!(!single_stream_left(&platform).await, "the emptied stream is removed");
}
