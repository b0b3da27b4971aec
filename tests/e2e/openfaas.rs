//! The requests OpenFaaS's own clients send, replayed as they send them: faas-cli ≥ 0.16.30 and the go-sdk
//! invoke `/function/NAME.NAMESPACE`, pass `?namespace=` on the system routes, ask `/system/logs` with
//! `tail=-1`, post secrets with both `value` and `rawValue`, and read `/system/info` and `/system/namespaces`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{CallbackReceiver, Platform, error_of};

/// A synchronous call, tried until a worker serves the freshly deployed function.
async fn call_until_served(platform: &Platform, path: &str, body: &'static str) -> reqwest::Response {
    let start = Instant::now();
    loop {
        let r = platform.http.post(platform.url(path)).header("Content-Type", "text/plain").body(body).send().await;
        let r = r.unwrap();
        if r.status() != 503 || start.elapsed() > Duration::from_secs(20) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn invocations_by_qualified_name_and_trailing_slash() {
    let platform = Platform::start(1, &[], &[]).await;
    platform.deploy(json!({"service": "upper", "envProcess": "tr a-z A-Z"})).await;

    // faas-cli invoke upper (sync), as the go-sdk builds the path.
    let r = call_until_served(&platform, "/function/upper.openfaas-fn", "hello").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "HELLO");
    // A trailing slash routes, as on OpenFaaS.
    let r = call_until_served(&platform, "/function/upper/", "slash").await;
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (200, "SLASH".to_owned()));

    // faas-cli invoke upper --async -H X-Callback-Url=…
    let receiver = CallbackReceiver::start().await;
    for path in ["/async-function/upper.openfaas-fn", "/async-function/upper/"] {
        let r = platform
            .http
            .post(platform.url(path))
            .header("Content-Type", "text/plain")
            .header("X-Callback-Url", &receiver.url)
            .body("queued")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{path}: {}", r.text().await.unwrap());
    }
    let got = receiver.wait_for(2, Duration::from_secs(30)).await;
    assert!(got.iter().all(|cb| cb.body.as_ref() == b"QUEUED"), "both calls ran");

    // faas-cli describe: invocationCount counts the synchronous and the queued calls (the workers add their
    // counts up every few seconds), and createdAt is when the function was deployed.
    let start = Instant::now();
    let described = loop {
        let described: Value =
            platform.http.get(platform.url("/system/function/upper")).send().await.unwrap().json().await.unwrap();
        if described["invocationCount"] == 4 || start.elapsed() > Duration::from_secs(15) {
            break described;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(described["invocationCount"], 4, "two sync and two async calls: {described}");
    let created = chrono::DateTime::parse_from_rfc3339(described["createdAt"].as_str().unwrap()).unwrap();
    let age = chrono::Utc::now().signed_duration_since(created);
    assert!(age > chrono::TimeDelta::zero() && age < chrono::TimeDelta::minutes(2), "{described}");
    let list: Value = platform.http.get(platform.url("/system/functions")).send().await.unwrap().json().await.unwrap();
    assert_eq!((&list[0]["invocationCount"], &list[0]["createdAt"]), (&json!(4), &described["createdAt"]), "{list}");

    // Another namespace is named, never silently taken for the default one.
    for path in ["/function/upper.dev", "/async-function/upper.dev"] {
        let (status, error) = error_of(platform.http.post(platform.url(path)).body("x").send().await.unwrap()).await;
        assert_eq!(status, 404, "{path}");
        assert!(error.contains("namespace \"dev\""), "{path}: {error}");
    }

    // Names a caller makes up do not become metric labels.
    let r = platform.http.post(platform.url("/function/made-up-name-xyz")).body("x").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let metrics = platform.http.get(platform.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("function_name=\"upper.openfaas-fn\""),
        "deployed functions are counted, as OpenFaaS labels them"
    );
    assert!(!metrics.contains("made-up-name-xyz"), "{metrics}");
}

#[tokio::test]
async fn system_routes_answer_in_openfaas_shapes() {
    let platform = Platform::start(1, &[], &[]).await;
    platform.deploy(json!({"service": "echo", "envProcess": "cat", "namespace": "openfaas-fn"})).await;

    // faas-cli namespace list
    let namespaces: Value =
        platform.http.get(platform.url("/system/namespaces")).send().await.unwrap().json().await.unwrap();
    assert_eq!(namespaces, json!(["openfaas-fn"]));

    // faas-cli list / list -q / list --json, and describe: `name` and `namespace` as FunctionStatus has them.
    let list: Value = platform
        .http
        .get(platform.url("/system/functions?namespace=openfaas-fn"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["name"], "echo", "{list}");
    assert_eq!(list[0]["namespace"], "openfaas-fn", "{list}");
    let described: Value = platform
        .http
        .get(platform.url("/system/function/echo?namespace=openfaas-fn"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((described["name"].as_str(), described["envProcess"].as_str()), (Some("echo"), Some("cat")));
    for path in
        ["/system/functions?namespace=dev", "/system/function/echo?namespace=dev", "/system/secrets?namespace=dev"]
    {
        let (status, error) = error_of(platform.http.get(platform.url(path)).send().await.unwrap()).await;
        assert_eq!(status, 404, "{path}");
        assert!(error.contains("\"dev\""), "{path}: {error}");
    }
    let r = platform
        .http
        .post(platform.url("/system/functions"))
        .json(&json!({"service": "x", "envProcess": "cat", "namespace": "dev"}));
    let (status, error) = error_of(r.send().await.unwrap()).await;
    assert_eq!(status, 404, "deploying into a namespace nobody created");
    assert!(error.contains("namespace \"dev\" not found"), "{error}");

    // The go-sdk's DeleteFunction names the namespace: another one is refused, never ignored.
    let r = platform.http.delete(platform.url("/system/functions"));
    let (status, error) =
        error_of(r.json(&json!({"functionName": "echo", "namespace": "dev"})).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(error.contains("\"dev\""), "{error}");
    // The go-sdk's Update, which took only a 202 in its earlier releases.
    let spec = json!({"service": "echo", "envProcess": "cat", "namespace": "openfaas-fn"});
    let r = platform.http.put(platform.url("/system/functions")).json(&spec).send().await.unwrap();
    assert_eq!(r.status(), 202);

    // AlertManager's scaling sink is refused by name: Sluice scales from queue depth.
    let (status, error) =
        error_of(platform.http.post(platform.url("/system/alert")).json(&json!({})).send().await.unwrap()).await;
    assert_eq!(status, 501);
    assert!(error.contains("/system/alert") && error.contains("scale-function"), "{error}");

    // faas-cli version
    let info: Value = platform.http.get(platform.url("/system/info")).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["provider"]["provider"], "sluice", "{info}");
    assert!(info["version"]["release"].as_str().is_some_and(|r| !r.is_empty()), "{info}");
    assert!(info["version"]["sha"].as_str().is_some_and(|s| !s.is_empty()), "{info}");
    assert!(info["arch"].is_string(), "{info}");

    // faas-cli logs echo: tail=-1 means every line, namespace as the go-sdk sends it.
    let r = platform
        .http
        .get(platform.url("/system/logs?name=echo&namespace=openfaas-fn&follow=false&tail=-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // faas-cli secret create token --from-file: both value and rawValue, rawValue wins.
    let secret = json!({"name": "token", "namespace": "openfaas-fn", "value": "text", "rawValue": "Ynl0ZXM="});
    let r = platform.http.post(platform.url("/system/secrets")).json(&secret).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let secrets: Value = platform
        .http
        .get(platform.url("/system/secrets?namespace=openfaas-fn"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(secrets, json!([{"name": "token", "namespace": "openfaas-fn"}]));
    let elsewhere = json!({"name": "token2", "namespace": "dev", "value": "v"});
    let (status, _) =
        error_of(platform.http.post(platform.url("/system/secrets")).json(&elsewhere).send().await.unwrap()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn delete_on_the_async_path_cancels_that_functions_call() {
    let platform = Platform::start(1, &[], &[]).await;
    platform.deploy(json!({"service": "slow", "envProcess": "sleep 30"})).await;
    platform.deploy(json!({"service": "other", "envProcess": "cat"})).await;
    let id = platform.call_async("slow", "", None).await;
    platform.wait_running(&id).await;

    let anonymous = reqwest::Client::new().delete(platform.url(&format!("/async-function/slow/{id}")));
    assert_eq!(anonymous.send().await.unwrap().status(), 401, "cancelling is an admin action, as on /system/calls");
    let (status, _) =
        error_of(platform.http.delete(platform.url(&format!("/async-function/other/{id}"))).send().await.unwrap())
            .await;
    assert_eq!(status, 404, "a call of another function is not found under this one");
    let r = platform.http.delete(platform.url(&format!("/async-function/slow.openfaas-fn/{id}"))).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let record = platform.wait_final(&id, Duration::from_secs(10)).await;
    assert_eq!(record["status"], "cancelled");
}

#[tokio::test]
async fn invocation_counts_of_several_workers_add_up() {
    let platform = Platform::start(2, &[], &[]).await;
    platform.deploy(json!({"service": "count", "envProcess": "cat"})).await;
    let receiver = CallbackReceiver::start().await;
    for _ in 0..30 {
        platform.call_async("count", "x", Some(&receiver.url)).await;
    }
    receiver.wait_for(30, Duration::from_secs(60)).await;
    // Two workers share the calls and add their counts to one total, each with compare-and-set: none is lost.
    let start = Instant::now();
    loop {
        let described: Value =
            platform.http.get(platform.url("/system/function/count")).send().await.unwrap().json().await.unwrap();
        if described["invocationCount"] == 30 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{described}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Removing the function forgets its count: a redeployed one starts from zero.
    let r = platform.http.delete(platform.url("/system/functions")).json(&json!({"functionName": "count"}));
    assert_eq!(r.send().await.unwrap().status(), 200);
    platform.deploy(json!({"service": "count", "envProcess": "cat"})).await;
    let described: Value =
        platform.http.get(platform.url("/system/function/count")).send().await.unwrap().json().await.unwrap();
    assert_eq!(described["invocationCount"], 0, "{described}");
}

/// Function names in a listing.
async fn listed_names(http: &reqwest::Client, base: &str) -> Vec<String> {
    let listed: Value = http.get(format!("{base}/system/functions")).send().await.unwrap().json().await.unwrap();
    listed.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_listing_through_another_gateway_shows_every_change_at_once() {
    // Listings come from each gateway's copies of the specs and totals: a copy answers only once it has every
    // change its bucket has, so a deploy, a removal or a count seen through one gateway is listed by the next.
    let platform = Platform::start(1, &[], &[]).await;
    let listen = format!("127.0.0.1:{}", crate::support::free_port());
    let args = ["gateway", "--nats-url", &platform.nats_url, "--listen", &listen];
    let _other = crate::support::Sluice::spawn(&args, platform.logs.path(), "gateway-b");
    let other = format!("http://{listen}");
    let start = Instant::now();
    while !platform.http.get(format!("{other}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(start.elapsed() < Duration::from_secs(30), "the second gateway did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(listed_names(&platform.http, &other).await.is_empty());
    let mut expected = Vec::new();
    for i in 0..12 {
        let name = format!("listed-{i:02}");
        platform.deploy(json!({"service": name, "envProcess": "cat"})).await;
        expected.push(name);
        if i % 3 == 2 {
            let gone = expected.remove(0);
            assert_eq!(platform.delete_function(&gone).await.status(), 200);
        }
        assert_eq!(listed_names(&platform.http, &other).await, expected, "after change {i}");
    }

    let first = expected[0].clone();
    for _ in 0..3 {
        let r = call_until_served(&platform, &format!("/function/{first}"), "x").await;
        assert_eq!(r.status(), 200);
    }
    let start = Instant::now();
    while platform
        .http
        .get(platform.url(&format!("/system/function/{first}")))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["invocationCount"]
        != 3
    {
        assert!(start.elapsed() < Duration::from_secs(15), "the count did not reach 3");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed: Value =
        platform.http.get(format!("{other}/system/functions")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed[0]["name"], first.as_str());
    assert_eq!(listed[0]["invocationCount"], 3, "the count the first gateway read: {listed}");
}
