//! Never losing a call: retries, dead letters and replay, cancellation, durable signed callbacks, and the
//! fault tests (a worker killed mid-flood, nats-server restarted, a callback receiver down, a cluster node
//! lost). Each asserts that nothing accepted is lost and counts duplicates.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, http::HeaderMap, response::IntoResponse, routing::any};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};

use crate::support::{CallbackReceiver, Nats, Platform, free_port};

/// An HTTP function whose answers the test scripts: `respond(hit number, failing?)`.
struct Upstream {
    url: String,
    hits: Arc<Mutex<Vec<HeaderMap>>>,
    failing: Arc<AtomicBool>,
}

type Respond = fn(usize, bool) -> (u16, Option<&'static str>, &'static str);

impl Upstream {
    async fn start(respond: Respond) -> Self {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(AtomicBool::new(true));
        let (h, f) = (hits.clone(), failing.clone());
        let app = Router::new().fallback(any(move |headers: HeaderMap| {
            let (hits, failing) = (h.clone(), f.clone());
            async move {
                let n = {
                    let mut hits = hits.lock().unwrap();
                    hits.push(headers);
                    hits.len()
                };
                let (status, retry_after, body) = respond(n, failing.load(Ordering::SeqCst));
                let mut response = (axum::http::StatusCode::from_u16(status).unwrap(), body).into_response();
                if let Some(seconds) = retry_after {
                    response.headers_mut().insert("retry-after", seconds.parse().unwrap());
                }
                response
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, hits, failing }
    }

    fn attempts_seen(&self) -> Vec<String> {
        self.hits.lock().unwrap().iter().map(|h| h["x-sluice-attempt"].to_str().unwrap().to_owned()).collect()
    }
}

#[tokio::test]
async fn retry_after_is_honoured_until_success_on_attempt_three() {
    let platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    let upstream =
        Upstream::start(|n, _| if n <= 2 { (503, Some("1"), "busy") } else { (200, None, "third time lucky") }).await;
    let spec = json!({"service": "flaky", "runtime": "http", "upstream": upstream.url,
        "async": {"retry": {"attempts": 5, "minWait": "100ms", "maxWait": "10s"}}});
    platform.deploy(spec).await;
    let call_id = platform.call_async("flaky", "", Some(&receiver.url)).await;
    let got = receiver.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(&got[0].body[..], b"third time lucky");
    assert_eq!(got[0].headers["x-sluice-attempt"], "3");
    assert_eq!(got[0].headers["x-sluice-max-attempts"], "5");
    assert_eq!(upstream.attempts_seen(), ["1", "2", "3"], "the function sees its attempt number");
    let record = platform.wait_final(&call_id, Duration::from_secs(10)).await;
    assert_eq!((record["status"].as_str(), record["attempts"].as_u64()), (Some("succeeded"), Some(3)));
    assert_eq!(record["callback"]["state"], "delivered");
}

#[tokio::test]
async fn failing_forever_goes_to_dead_letters_and_replays() {
    let platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    let upstream =
        Upstream::start(|_, failing| if failing { (500, None, "broken") } else { (200, None, "fixed") }).await;
    let spec = json!({"service": "doomed", "runtime": "http", "upstream": upstream.url,
        "async": {"retry": {"attempts": 3, "minWait": "50ms", "maxWait": "200ms"}}});
    platform.deploy(spec).await;
    let call_id = platform.call_async("doomed", "the payload", Some(&receiver.url)).await;
    let got = receiver.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(got[0].headers["ce-type"], "sluice.invocation.failed");
    assert_eq!(got[0].headers["x-function-status"], "500");
    assert_eq!(got[0].headers["x-sluice-attempt"], "3");
    let record = platform.wait_final(&call_id, Duration::from_secs(10)).await;
    assert_eq!(record["status"], "failed");
    assert_eq!(record["attempts"], 3);
    assert!(record["deadLetter"].is_u64(), "{record}");
    assert!(record.get("callbackUrl").is_none(), "the API never shows callback URLs");

    let dead: Vec<Value> =
        platform.http.get(platform.url("/system/dead?function=doomed")).send().await.unwrap().json().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["callId"], call_id.as_str());
    assert_eq!(dead[0]["status"], 500);
    assert_eq!(dead[0]["attempts"], 3);
    assert!(dead[0]["error"].as_str().unwrap().contains("broken"));

    upstream.failing.store(false, Ordering::SeqCst);
    let r = platform.http.post(platform.url(&format!("/system/dead/{call_id}/replay"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let got = receiver.wait_for(2, Duration::from_secs(60)).await;
    assert_eq!(&got[1].body[..], b"fixed");
    assert_eq!(got[1].headers["x-sluice-attempt"], "1", "a replay is a new series of attempts");
    let record = platform.wait_final(&call_id, Duration::from_secs(10)).await;
    assert_eq!(record["status"], "succeeded");
    assert!(record.get("deadLetter").is_none());
    // The replay's outcome is a result and a completion event of its own, not taken for the first series'.
    let result = platform.http.get(platform.url(&format!("/system/calls/{call_id}/result"))).send().await.unwrap();
    assert_eq!(result.status(), 200, "the replay's result, not the failure before it");
    assert_eq!(result.text().await.unwrap(), "fixed");
    let client = async_nats::connect(&platform.nats_url).await.unwrap();
    let stream = async_nats::jetstream::new(client).get_stream("SLUICE_RESULTS").await.unwrap();
    let last = stream.get_last_raw_message_by_subject("sluice.results.openfaas-fn.doomed").await.unwrap();
    assert_eq!(&last.payload[..], b"fixed", "the replay's completion event is published");
    let headers = last.headers;
    assert_eq!(headers.get("ce-type").map(|v| v.as_str()), Some("sluice.invocation.completed"));
    let r = platform.http.post(platform.url(&format!("/system/dead/{call_id}/replay"))).send().await.unwrap();
    assert_eq!(r.status(), 409, "nothing left to replay");
    let last_body = upstream.hits.lock().unwrap().len();
    assert_eq!(last_body, 4, "three failed attempts and one replay");

    // A call may be named `replay`, the name of the route that replays many: its dead letter is still its own.
    upstream.failing.store(true, Ordering::SeqCst);
    let r = platform.http.post(platform.url("/async-function/doomed")).header("X-Call-Id", "replay").send().await;
    assert_eq!(r.unwrap().status(), 202);
    assert!(platform.wait_final("replay", Duration::from_secs(30)).await["deadLetter"].is_u64());
    let r = platform.http.delete(platform.url("/system/dead/replay")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(platform.record("replay").await.get("deadLetter").is_none());
}

/// A gateway killed in the middle of a replay, after the record says `queued` again and before the call is
/// published, leaves a call that nothing would run; replaying it again finishes the replay. The publish is held
/// for real: the queue's stream stops taking the function's subject and a subscriber that never answers takes
/// it instead, so the gateway waits for a stored-ack that cannot come, and is killed then.
#[tokio::test]
async fn a_replay_cut_short_by_a_killed_gateway_can_be_replayed_again() {
    let mut platform = Platform::start(1, &[], &[]).await;
    let upstream =
        Upstream::start(|_, failing| if failing { (500, None, "broken") } else { (200, None, "fixed") }).await;
    let spec = json!({"service": "cut", "runtime": "http", "upstream": upstream.url,
        "async": {"retry": {"attempts": 1}}});
    platform.deploy(spec).await;
    let call_id = platform.call_async("cut", "", None).await;
    let record = platform.wait_final(&call_id, Duration::from_secs(30)).await;
    let letter = record["deadLetter"].as_u64().expect("a dead letter");
    upstream.failing.store(false, Ordering::SeqCst);

    let client = async_nats::connect(&platform.nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let subject = sluice_contracts::names::invoke_subject(&sluice_contracts::FunctionRef::new("openfaas-fn", "cut"));
    let mut queue = js.get_stream(js.stream_by_subject(subject.clone()).await.unwrap()).await.unwrap();
    let config = queue.info().await.unwrap().config.clone();
    let mut held = config.clone();
    held.subjects = vec!["sluice.held.>".into()];
    js.update_stream(&held).await.unwrap();
    let mut taken = client.subscribe(subject).await.unwrap();
    client.flush().await.unwrap();
    let url = platform.url(&format!("/system/dead/{call_id}/replay"));
    let replay = tokio::spawn(platform.http.post(url).send());
    tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut taken))
        .await
        .expect("the replay's publish")
        .unwrap();
    // The record was reset before the publish we saw.
    let reset_at = Instant::now();
    platform.restart_gateway().await;
    assert!(replay.await.unwrap().is_err(), "the gateway died before answering");
    drop(taken);
    js.update_stream(&config).await.unwrap();

    let record = platform.record(&call_id).await;
    assert_eq!(record["status"], "queued", "{record}");
    assert!(record.get("deadLetter").is_none(), "{record}");
    let listed = platform.get_json("/system/dead?function=cut").await;
    assert_eq!(listed[0]["sequence"], letter, "the letter is kept: {listed}");
    let r = platform.http.delete(platform.url(&format!("/system/dead/{call_id}"))).send().await.unwrap();
    assert_eq!(r.status(), 409, "its letter is what the replay is finished from");
    assert!(r.text().await.unwrap().contains("replay it again"));
    let replay_url = platform.url(&format!("/system/dead/{call_id}/replay"));
    let r = platform.http.post(&replay_url).send().await.unwrap();
    assert_eq!(r.status(), 409, "moments after its record was reset, a replay may still be under way");
    assert!(r.text().await.unwrap().contains("is being replayed"));
    tokio::time::sleep(reset_at + Duration::from_secs(10) - Instant::now()).await;
    let r = platform.http.post(&replay_url).send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let record = platform.wait_final(&call_id, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(record["replayOf"], letter, "{record}");
    assert_eq!(platform.get_json("/system/dead?function=cut").await, json!([]));
    let r = platform.http.post(platform.url(&format!("/system/dead/{call_id}/replay"))).send().await.unwrap();
    assert_eq!(r.status(), 409, "replayed, nothing is left to replay");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(upstream.hits.lock().unwrap().len(), 2, "the failure and the replay, once");
}

/// A discard cut short between its two writes (the record no longer names the letter; the letter not yet removed)
/// leaves a letter listed that nothing names: discarding it again removes it. The state is written as the killed
/// gateway would leave it (the instant between the two writes cannot be caught from outside).
#[tokio::test]
async fn a_letter_its_record_no_longer_names_can_still_be_discarded() {
    let platform = Platform::start(1, &[], &[]).await;
    platform.deploy(json!({"service": "left", "envProcess": "false", "async": {"retry": {"attempts": 1}}})).await;
    let call_id = platform.call_async("left", "", None).await;
    assert!(platform.wait_final(&call_id, Duration::from_secs(30)).await["deadLetter"].is_u64());
    let js = async_nats::jetstream::new(async_nats::connect(&platform.nats_url).await.unwrap());
    let calls = js.get_key_value("sluice_calls").await.unwrap();
    let mut record: Value = serde_json::from_slice(&calls.get(&call_id).await.unwrap().unwrap()).unwrap();
    record.as_object_mut().unwrap().remove("deadLetter");
    calls.put(&call_id, serde_json::to_vec(&record).unwrap().into()).await.unwrap();
    assert_eq!(platform.get_json("/system/dead?function=left").await.as_array().unwrap().len(), 1);

    let r = platform.http.post(platform.url(&format!("/system/dead/{call_id}/replay"))).send().await.unwrap();
    assert_eq!(r.status(), 409, "the record says it was discarded");
    let r = platform.http.delete(platform.url(&format!("/system/dead/{call_id}"))).send().await.unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    assert_eq!(platform.get_json("/system/dead?function=left").await, json!([]));
    let r = platform.http.delete(platform.url(&format!("/system/dead/{call_id}"))).send().await.unwrap();
    assert_eq!(r.status(), 409, "nothing left to discard");
}

/// A dead letter discarded by `SLUICE_DEAD`'s limits leaves a record that still names it: replaying that call is
/// refused as a conflict that says why (not as a store that may come back), and discarding it clears the record.
#[tokio::test]
async fn a_call_whose_dead_letter_the_limits_discarded_says_it_cannot_be_replayed() {
    let platform = Platform::start(1, &[], &[]).await;
    platform.deploy(json!({"service": "gone", "envProcess": "false", "async": {"retry": {"attempts": 1}}})).await;
    let js = async_nats::jetstream::new(async_nats::connect(&platform.nats_url).await.unwrap());
    let mut dead = js.get_stream("SLUICE_DEAD").await.unwrap();
    let mut config = dead.info().await.unwrap().config.clone();
    config.max_messages = 1;
    js.update_stream(&config).await.unwrap();
    let first = platform.call_async("gone", "", None).await;
    let letter = platform.wait_final(&first, Duration::from_secs(30)).await["deadLetter"].as_u64().unwrap();
    let second = platform.call_async("gone", "", None).await;
    platform.wait_final(&second, Duration::from_secs(30)).await;
    assert_eq!(platform.get_json("/system/dead?function=gone").await.as_array().unwrap().len(), 1);
    assert_eq!(platform.record(&first).await["deadLetter"], letter);

    let r = platform.http.post(platform.url(&format!("/system/dead/{first}/replay"))).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let error = r.json::<Value>().await.unwrap()["error"].as_str().unwrap().to_owned();
    assert!(error.contains(&format!("dead letter {letter} is no longer kept")), "{error}");
    let batch = json!({"callIds": [first, second]});
    let r = platform.http.post(platform.url("/system/dead/replay")).json(&batch).send().await.unwrap();
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["replayed"], json!([second]), "{report}");
    assert_eq!(report["notReplayed"][0]["callId"], first.as_str(), "{report}");
    assert!(report["notReplayed"][0]["error"].as_str().unwrap().contains("no longer kept"), "{report}");
    assert_eq!(platform.record(&first).await["status"], "failed", "left as it was");
    let r = platform.http.delete(platform.url(&format!("/system/dead/{first}"))).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(platform.record(&first).await.get("deadLetter").is_none());
}

/// Records kept shorter than dead letters (`--calls-ttl` below the letters' 7 days): a dead call whose record
/// expired is still replayed from its letter, one by id (the letter found by searching) or a function's newest
/// (the letters listed), its record written anew; and one can be discarded.
#[tokio::test]
async fn dead_letters_outlive_their_records_and_still_replay() {
    let ttl = ["--calls-ttl", "3s"];
    let platform = Platform::start(1, &ttl, &ttl).await;
    let upstream =
        Upstream::start(|_, failing| if failing { (500, None, "broken") } else { (200, None, "fixed") }).await;
    let spec = json!({"service": "brief", "runtime": "http", "upstream": upstream.url,
        "async": {"retry": {"attempts": 1}}});
    platform.deploy(spec).await;
    let mut calls = Vec::new();
    for _ in 0..4 {
        calls.push(platform.call_async("brief", "", None).await);
    }
    let mut letters = HashMap::new();
    for id in &calls {
        letters.insert(id.clone(), platform.wait_final(id, Duration::from_secs(30)).await["deadLetter"].clone());
    }
    let start = Instant::now();
    for id in &calls {
        let url = platform.url(&format!("/system/calls/{id}"));
        while platform.http.get(&url).send().await.unwrap().status() != 404 {
            assert!(start.elapsed() < Duration::from_secs(30), "record of {id} never expired");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(platform.get_json("/system/dead?function=brief").await.as_array().unwrap().len(), 4);
    upstream.failing.store(false, Ordering::SeqCst);

    let r = platform.http.post(platform.url(&format!("/system/dead/{}/replay", calls[0]))).send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let record = platform.wait_final(&calls[0], Duration::from_secs(30)).await;
    assert_eq!((record["status"].as_str(), &record["replayOf"]), (Some("succeeded"), &letters[&calls[0]]));
    let r = platform.http.delete(platform.url(&format!("/system/dead/{}", calls[1]))).send().await.unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let r = platform.http.post(platform.url("/system/dead/replay")).json(&json!({"function": "brief"})).send();
    let report: Value = r.await.unwrap().json().await.unwrap();
    let mut replayed: Vec<&str> = report["replayed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    replayed.sort_unstable();
    let mut expected = vec![calls[2].as_str(), calls[3].as_str()];
    expected.sort_unstable();
    assert_eq!(replayed, expected, "{report}");
    for id in &calls[2..] {
        let record = platform.wait_final(id, Duration::from_secs(30)).await;
        assert_eq!((record["status"].as_str(), &record["replayOf"]), (Some("succeeded"), &letters[id]));
    }
    assert_eq!(platform.get_json("/system/dead?function=brief").await, json!([]));
    let r = platform.http.post(platform.url(&format!("/system/dead/{}/replay", calls[1]))).send().await.unwrap();
    assert_eq!(r.status(), 404, "discarded, and its record long gone");
    assert_eq!(upstream.hits.lock().unwrap().len(), 7, "four failures and three replays");
}

/// Waits until the call's caller callback is `state`.
async fn wait_callback(platform: &Platform, call_id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let record = platform.record(call_id).await;
        if record["callback"]["state"] == state {
            return record;
        }
        assert!(Instant::now() < deadline, "callback never {state}: {record}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_replays_callback_waiting_in_the_outbox_is_not_taken_for_the_failures() {
    let platform = Platform::start(1, &[], &["--callback-max-wait", "1s", "--callback-timeout", "2s"]).await;
    let function =
        Upstream::start(|_, failing| if failing { (500, None, "broken") } else { (200, None, "fixed") }).await;
    let receiver = Upstream::start(|_, down| if down { (503, None, "down") } else { (200, None, "ok") }).await;
    let spec = json!({"service": "doomed", "runtime": "http", "upstream": function.url,
        "async": {"retry": {"attempts": 1}}});
    platform.deploy(spec).await;
    let callback = format!("{}/cb", receiver.url);
    let call_id = platform.call_async("doomed", "", Some(&callback)).await;
    let record = platform.wait_final(&call_id, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "failed");
    assert_eq!(record["callback"]["state"], "pending", "the failure's callback waits in the outbox");
    receiver.failing.store(false, Ordering::SeqCst);
    wait_callback(&platform, &call_id, "delivered").await;

    // The replay's first try fails too, within the duplicate window of the failure's outbox message.
    receiver.failing.store(true, Ordering::SeqCst);
    function.failing.store(false, Ordering::SeqCst);
    let r = platform.http.post(platform.url(&format!("/system/dead/{call_id}/replay"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let record = platform.wait_final(&call_id, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["callback"]["state"], "pending", "{record}");
    let tried = receiver.hits.lock().unwrap().len();
    receiver.failing.store(false, Ordering::SeqCst);
    wait_callback(&platform, &call_id, "delivered").await;
    let hits = receiver.hits.lock().unwrap();
    assert!(hits[tried..].iter().any(|h| h["x-function-status"] == "200"), "the replay's outcome is called back");
}

#[tokio::test]
async fn a_failures_callback_delivered_after_its_replay_does_not_speak_for_the_replay() {
    let platform = Platform::start(1, &[], &["--callback-max-wait", "1s", "--callback-timeout", "2s"]).await;
    let function =
        Upstream::start(|_, failing| if failing { (500, None, "broken") } else { (200, None, "fixed") }).await;
    // A receiver that refuses a success's callback for good (400), and takes a failure's once `open`.
    let open = Arc::new(AtomicBool::new(false));
    let taken = Arc::new(Mutex::new(Vec::<String>::new()));
    let (o, t) = (open.clone(), taken.clone());
    let app = Router::new().fallback(any(move |headers: HeaderMap| {
        let (open, taken) = (o.clone(), t.clone());
        async move {
            let status = headers["x-function-status"].to_str().unwrap().to_owned();
            if status == "200" {
                return axum::http::StatusCode::BAD_REQUEST;
            }
            if !open.load(Ordering::SeqCst) {
                return axum::http::StatusCode::SERVICE_UNAVAILABLE;
            }
            taken.lock().unwrap().push(status);
            axum::http::StatusCode::OK
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!("http://{}/cb", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let spec = json!({"service": "doomed", "runtime": "http", "upstream": function.url,
        "async": {"retry": {"attempts": 1}}});
    platform.deploy(spec).await;
    let call_id = platform.call_async("doomed", "", Some(&callback)).await;
    let record = platform.wait_final(&call_id, Duration::from_secs(30)).await;
    assert_eq!((record["status"].as_str(), record["callback"]["state"].as_str()), (Some("failed"), Some("pending")));
    let dead_letter = record["deadLetter"].as_u64().unwrap();

    // Replayed while the failure's callback still waits in the outbox; the receiver refuses the replay's.
    function.failing.store(false, Ordering::SeqCst);
    let r = platform.http.post(platform.url(&format!("/system/dead/{call_id}/replay"))).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let record = platform.wait_final(&call_id, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["replayOf"], dead_letter, "the record names what its attempts replay");
    assert_eq!(record["callback"]["state"], "failed", "{record}");

    // The failure's callback arrives at last; the record goes on showing the replay's.
    open.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    while taken.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the failure's callback never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // room for the outbox to write what it did
    let record = platform.record(&call_id).await;
    assert_eq!(record["callback"]["state"], "failed", "the failure's delivery is not the replay's: {record}");
    assert_eq!(*taken.lock().unwrap(), ["500"]);
}

#[tokio::test]
async fn other_4xx_fail_at_once() {
    let platform = Platform::start(1, &[], &[]).await;
    let upstream = Upstream::start(|_, _| (422, None, "bad input")).await;
    platform.deploy(json!({"service": "picky", "runtime": "http", "upstream": upstream.url})).await;
    let call_id = platform.call_async("picky", "", None).await;
    let record = platform.wait_final(&call_id, Duration::from_secs(30)).await;
    assert_eq!((record["status"].as_str(), record["attempts"].as_u64()), (Some("failed"), Some(1)));
    assert_eq!(upstream.hits.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn cancelling_queued_and_running_calls() {
    let mut platform = Platform::start(0, &[], &[]).await;
    let metrics = crate::support::free_port();
    platform.add_worker(&["--metrics-listen", &format!("127.0.0.1:{metrics}")]);
    // Calls queued from now on are ones the worker can vouch for (`cancel::Cancels`): their first deliveries
    // start without reading their records, so only the cancellation notice it heard keeps the queued call
    // from running.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let receiver = CallbackReceiver::start().await;
    let dir = platform.logs.path();
    let script = format!(
        "sh -c 'echo $Http_X_Call_Id >> {runs}; sleep 30; echo $Http_X_Call_Id >> {done}'",
        runs = dir.join("runs").display(),
        done = dir.join("done").display()
    );
    platform.deploy(json!({"service": "long", "envProcess": script, "async": {"maxInflight": 1}})).await;
    let running = platform.call_async("long", "", Some(&receiver.url)).await;
    platform.wait_running(&running).await;
    let queued = platform.call_async("long", "", Some(&receiver.url)).await;
    assert_eq!(platform.record(&queued).await["status"], "queued");

    for id in [&queued, &running] {
        let r = platform.http.delete(platform.url(&format!("/system/calls/{id}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let record: Value = r.json().await.unwrap();
        assert_eq!(record["status"], "cancelled");
    }
    let got = receiver.wait_for(2, Duration::from_secs(30)).await;
    let by_id: HashMap<String, &crate::support::Received> =
        got.iter().map(|r| (r.headers["x-call-id"].to_str().unwrap().to_owned(), r)).collect();
    for id in [&queued, &running] {
        assert_eq!(by_id[id.as_str()].headers["ce-type"], "sluice.invocation.cancelled");
        assert_eq!(by_id[id.as_str()].headers["x-function-status"], "499");
    }
    // The queued call never runs, the running one was stopped: nothing reaches "done", even once the
    // worker is free to take the queued call.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs = std::fs::read_to_string(dir.join("runs")).unwrap();
    assert_eq!(runs.lines().collect::<Vec<_>>(), [running.as_str()]);
    assert!(!dir.join("done").exists(), "the cancelled running call was killed");
    assert_eq!(platform.record(&queued).await["status"], "cancelled");
    assert_eq!(platform.record(&running).await["status"], "cancelled");
    assert_eq!(receiver.received().len(), 2, "one callback per call");
    let r = platform.http.delete(platform.url(&format!("/system/calls/{running}"))).send().await.unwrap();
    assert_eq!(r.status(), 409, "a finished call cannot be cancelled");
    // The running call started from the record it was queued with; the queued one, heard cancelled, had its
    // record read, which said so.
    let text =
        platform.http.get(format!("http://127.0.0.1:{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(Platform::metric_sum(&text, "sluice_queue_record_reads_total{"), 1.0, "{text}");
}

#[tokio::test]
async fn call_running_far_longer_than_the_ack_wait_runs_once() {
    let platform = Platform::start(1, &[], &["--ack-wait", "2s"]).await;
    let receiver = CallbackReceiver::start().await;
    let runs = platform.logs.path().join("runs.txt");
    let script = format!("sh -c 'echo run >> {}; sleep 20; echo done'", runs.display());
    platform.deploy(json!({"service": "hour-long", "envProcess": script, "async": {"timeout": "1m"}})).await;
    let call_id = platform.call_async("hour-long", "", Some(&receiver.url)).await;
    receiver.wait_for(1, Duration::from_secs(90)).await;
    let record = platform.wait_final(&call_id, Duration::from_secs(10)).await;
    assert_eq!((record["status"].as_str(), record["attempts"].as_u64()), (Some("succeeded"), Some(1)));
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 1, "ran exactly once");
}

#[tokio::test]
async fn callbacks_survive_a_receiver_outage_and_arrive_once_signed() {
    let secret = "callback-secret";
    let platform = Platform::start(
        1,
        &[],
        &["--callback-secret", secret, "--callback-max-wait", "2s", "--callback-timeout", "2s"],
    )
    .await;
    platform.deploy(json!({"service": "upper", "envProcess": "tr a-z A-Z"})).await;
    // Reserve a port, then close it: callbacks to it are refused until the receiver starts there.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/cb");
    let mut ids = HashSet::new();
    for i in 0..20 {
        let mut request = platform.http.post(platform.url("/async-function/upper")).header("X-Callback-Url", &url);
        request = request.body(format!("call {i}"));
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 202);
        ids.insert(r.headers()["x-call-id"].to_str().unwrap().to_owned());
    }
    let down_since = Instant::now();
    for id in &ids {
        let record = platform.wait_final(id, Duration::from_secs(60)).await;
        assert_eq!(record["callback"]["state"], "pending", "{record}");
    }
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_since.elapsed())).await;
    let receiver = CallbackReceiver::start_at(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap()).await;
    receiver.wait_for(20, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // room for duplicates to show, were there any
    let got = receiver.received();
    let unique: HashSet<String> = got.iter().map(|r| r.headers["x-call-id"].to_str().unwrap().to_owned()).collect();
    assert_eq!(got.len(), 20, "each callback arrives once");
    assert_eq!(unique, ids);
    for callback in &got {
        // Verify as a receiver would: HMAC-SHA256(secret, "<t>.<body>") in v1.
        let header = callback.headers["x-sluice-signature"].to_str().unwrap();
        let (t, v1) = header.split_once(',').unwrap();
        let (t, v1) = (t.strip_prefix("t=").unwrap(), v1.strip_prefix("v1=").unwrap());
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&callback.body);
        assert_eq!(hex::encode(mac.finalize().into_bytes()), v1, "signature of {:?}", callback.body);
        assert!(callback.body.starts_with(b"CALL "));
    }
    let id = ids.iter().next().unwrap();
    let record = platform.record(id).await;
    assert_eq!(record["callback"]["state"], "delivered");
    assert!(record["callback"]["attempts"].as_u64().unwrap() > 1, "{record}");
}

#[tokio::test]
async fn denied_callback_urls_are_refused_at_enqueue() {
    let platform = Platform::start(0, &["--callback-deny", "10.0.0.0/8,*.internal.example"], &[]).await;
    platform.deploy(json!({"service": "f", "envProcess": "cat"})).await;
    for url in ["http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/cb", "http://api.internal.example/cb"] {
        let r =
            platform.http.post(platform.url("/async-function/f")).header("X-Callback-Url", url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{url}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("denied"), "{body}");
    }
}

async fn all_succeed(platform: &Platform, ids: &[String], limit: Duration) {
    for id in ids {
        let record = platform.wait_final(id, limit).await;
        assert_eq!(record["status"], "succeeded", "{record}");
    }
}

#[tokio::test]
async fn fault_a_worker_killed_mid_flood_loses_nothing() {
    let mut platform = Platform::start(1, &[], &["--max-inflight", "32", "--ack-wait", "2s"]).await;
    let runs = platform.logs.path().join("runs.txt");
    let script = format!("sh -c 'echo $Http_X_Call_Id >> {}; sleep 1'", runs.display());
    platform.deploy(json!({"service": "second", "envProcess": script})).await;
    let mut ids = Vec::new();
    for _ in 0..1000 {
        ids.push(platform.call_async("second", "", None).await);
    }
    while std::fs::read_to_string(&runs).map(|r| r.lines().count()).unwrap_or(0) < 300 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    platform.workers[0].kill();
    platform.add_worker(&["--max-inflight", "32", "--ack-wait", "2s"]);
    all_succeed(&platform, &ids, Duration::from_secs(180)).await;
    let lines: Vec<String> = std::fs::read_to_string(&runs).unwrap().lines().map(str::to_owned).collect();
    let unique: HashSet<&String> = lines.iter().collect();
    let duplicates = lines.len() - unique.len();
    eprintln!("fault a: 1000 calls, {duplicates} duplicate executions after kill -9 with 32 in flight");
    assert_eq!(unique.len(), 1000);
    assert!(duplicates <= 32, "{duplicates} duplicates, more than were in flight");
}

#[tokio::test]
async fn fault_b_nats_restart_while_posting_loses_no_accepted_call() {
    let mut platform = Platform::start(1, &[], &["--ack-wait", "2s"]).await;
    platform.deploy(json!({"service": "upper", "envProcess": "tr a-z A-Z"})).await;
    let poster = Poster::start(&platform, "upper");
    tokio::time::sleep(Duration::from_secs(2)).await;
    platform.nats.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    platform.nats.restart();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let accepted = poster.stop().await;
    eprintln!("fault b: {} calls accepted across a nats-server restart", accepted.len());
    assert!(accepted.len() > 20, "calls were accepted before and after the restart");
    all_succeed(&platform, &accepted, Duration::from_secs(120)).await;
}

/// Posts calls to a function from another task, one after another, until stopped; collects the ids that
/// got a 202 (others were refused, so never promised).
struct Poster {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Poster {
    fn start(platform: &Platform, function: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, url) = (stop.clone(), platform.url(&format!("/async-function/{function}")));
        let task = tokio::spawn(async move {
            let mut accepted = Vec::new();
            let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
            while !flag.load(Ordering::SeqCst) {
                if let Ok(r) = http.post(&url).body("x").send().await
                    && r.status() == 202
                {
                    accepted.push(r.headers()["x-call-id"].to_str().unwrap().to_owned());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            accepted
        });
        Self { stop, task }
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

#[tokio::test]
async fn gateway_and_worker_killed_and_restarted_while_posting_lose_nothing() {
    let mut platform = Platform::start(1, &[], &["--ack-wait", "2s"]).await;
    platform.deploy(json!({"service": "upper", "envProcess": "tr a-z A-Z"})).await;
    let poster = Poster::start(&platform, "upper");
    tokio::time::sleep(Duration::from_secs(1)).await;
    platform.restart_gateway().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    platform.workers[0].kill();
    platform.add_worker(&["--ack-wait", "2s"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let accepted = poster.stop().await;
    eprintln!("restarts: {} calls accepted across a gateway and a worker restart", accepted.len());
    assert!(accepted.len() > 20);
    all_succeed(&platform, &accepted, Duration::from_secs(120)).await;
    let stuck = platform.list_calls("status=running").await;
    assert!(stuck.is_empty(), "no call stays running: {stuck:?}");
}

#[tokio::test]
async fn fault_d_cluster_node_lost_while_calls_flow() {
    let nodes = Nats::cluster();
    let mut platform =
        Platform::start_on(nodes, 1, &["--replicas", "3"], &["--replicas", "3", "--ack-wait", "2s"]).await;
    platform.deploy(json!({"service": "upper", "envProcess": "tr a-z A-Z"})).await;
    let poster = Poster::start(&platform, "upper");
    tokio::time::sleep(Duration::from_secs(2)).await;
    platform.more_nats[0].stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let accepted = poster.stop().await;
    eprintln!("fault d: {} calls accepted while a cluster node was lost", accepted.len());
    assert!(accepted.len() > 20);
    all_succeed(&platform, &accepted, Duration::from_secs(120)).await;
    // Still serving after the loss.
    let r = platform.http.post(platform.url("/function/upper")).body("still here").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "STILL HERE");
}

/// The cluster node (0, 1 or 2) leading the function's consumer.
async fn consumer_leader(js: &async_nats::jetstream::Context, stream: &str, consumer: &str) -> Option<usize> {
    let stream = js.get_stream(stream).await.ok()?;
    let info = stream.consumer_info(consumer).await.ok()?;
    let leader = info.cluster.as_ref()?.leader.clone()?;
    leader.strip_prefix("node-")?.parse().ok()
}

#[tokio::test]
async fn a_call_still_runs_after_the_node_holding_its_idle_poll_dies() {
    // A worker's poll of an idle function lasts minutes and is held by the node leading the function's consumer.
    // When that node dies while the worker stays connected to another, the poll must survive (nats-server 2.15
    // carries it to the new leader: this passes even without the worker's own renewals) or be asked again (the
    // new leader's advisory, or calls waiting on an old poll), or the next call would wait out the poll.
    let nodes = Nats::cluster();
    let mut platform = Platform::start_on(nodes, 0, &["--replicas", "3"], &["--replicas", "3"]).await;
    // The worker knows node 0 only, so its connection survives the loss of another node.
    let all_nodes = std::mem::replace(&mut platform.nats_url, platform.nats.url());
    platform.add_worker(&["--replicas", "3"]);
    platform.nats_url = all_nodes;
    platform.deploy(json!({"service": "upper", "envProcess": "tr a-z A-Z"})).await;
    let first = platform.call_async("upper", "first", None).await;
    assert_eq!(platform.wait_final(&first, Duration::from_secs(60)).await["status"], "succeeded");

    let client = async_nats::connect(platform.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let upper = sluice_contracts::FunctionRef::new("openfaas-fn", "upper");
    let (stream, consumer) = (sluice_contracts::names::invocations_stream(&upper), "invoke-openfaas-fn_upper");
    let start = Instant::now();
    let leader = loop {
        match consumer_leader(&js, &stream, consumer).await {
            Some(node) if node != 0 => break node,
            _ => {
                let subject = format!("$JS.API.CONSUMER.LEADER.STEPDOWN.{stream}.{consumer}");
                let _ = client.request(subject, "".into()).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the consumer's leader never left node 0");
    };
    // Let the poll settle on this leader before it is killed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    platform.more_nats[leader - 1].stop();
    // Until the cluster has elected new leaders, the gateway may refuse the call (503); it is sent again.
    let start = Instant::now();
    let second = loop {
        let r = platform.http.post(platform.url("/async-function/upper")).body("second").send().await.unwrap();
        if r.status() == 202 {
            break r.headers()["x-call-id"].to_str().unwrap().to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "call refused: {}", r.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let record = platform.wait_final(&second, Duration::from_secs(90)).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    // One attempt: the poll the server carried to the new leader took the call, and no renewal of the worker's
    // own dropped a call on its way (which would come back only after the ack wait, as a second attempt).
    assert_eq!(record["attempts"].as_u64(), Some(1), "{record}");
}

#[tokio::test]
async fn deleting_a_function_ends_its_queued_calls_as_failed() {
    let platform = Platform::start(1, &[], &[]).await;
    let receiver = CallbackReceiver::start().await;
    platform.deploy(json!({"service": "doomed-queue", "envProcess": "sleep 2", "async": {"maxInflight": 1}})).await;
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(platform.call_async("doomed-queue", "", Some(&receiver.url)).await);
    }
    platform.wait_running(&ids[0]).await;
    let r = platform.delete_function("doomed-queue").await;
    assert!(r.status().is_success(), "{}", r.status());
    let mut failed = 0;
    for id in &ids {
        let record = platform.wait_final(id, Duration::from_secs(60)).await;
        if record["status"] == "failed" {
            failed += 1;
            assert_eq!(record["functionStatus"], 410, "{record}");
            assert!(record["error"].as_str().unwrap().contains("deleted"), "{record}");
            assert!(record["deadLetter"].is_u64(), "{record}");
        }
    }
    assert!(failed >= 10, "only {failed} of the 11 calls still queued ended as failed");
    let callbacks = receiver.wait_for(12, Duration::from_secs(30)).await;
    let gone = callbacks.iter().filter(|c| c.headers["x-function-status"] == "410").count();
    assert_eq!(gone, failed);
}

#[tokio::test]
async fn a_call_whose_worker_dies_on_it_every_time_ends_failed_not_looping() {
    // The worker is killed every time it runs the call, as if the call crashed it: after its retry attempts
    // and a margin of redeliveries, the call fails with a dead letter instead of coming back for ever.
    let mut platform = Platform::start(1, &[], &["--ack-wait", "1s"]).await;
    let runs = platform.logs.path().join("runs.txt");
    let script = format!("sh -c 'echo run >> {}; sleep 60'", runs.display());
    platform.deploy(json!({"service": "crasher", "envProcess": script, "async": {"retry": {"attempts": 1}}})).await;
    let id = platform.call_async("crasher", "", None).await;
    let ran = || std::fs::read_to_string(&runs).map(|r| r.lines().count()).unwrap_or(0);
    let start = std::time::Instant::now();
    let mut killed = 0;
    loop {
        let record = platform.record(&id).await;
        if record["status"] == "failed" {
            assert!(record["error"].as_str().unwrap().contains("without reaching an outcome"), "{record}");
            assert!(record["deadLetter"].is_u64(), "{record}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(240), "still {record} after {killed} kills");
        if ran() > killed {
            let last = platform.workers.len() - 1;
            platform.workers[last].kill();
            killed += 1;
            platform.add_worker(&["--ack-wait", "1s"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One attempt plus ten redeliveries at most (a delivery lost before the function started counts too).
    assert!((2..=11).contains(&ran()), "{} runs", ran());
}

/// A call stored while its record could not be written (its bucket full, as it can also be unreachable during a
/// leader election) gets its record once the bucket takes writes again, without waiting for a worker to take the
/// call (none runs here) — even from a gateway told to stop meanwhile, which waits a while for such records.
#[tokio::test]
async fn a_call_stored_without_its_record_gets_it_once_the_bucket_takes_writes() {
    let mut platform = Platform::start(0, &[], &[]).await;
    platform.deploy(json!({"service": "later", "envProcess": "cat"})).await;
    let js = async_nats::jetstream::new(async_nats::connect(&platform.nats_url).await.unwrap());
    let mut bucket = js.get_stream("KV_sluice_calls").await.unwrap();
    let full = bucket.info().await.unwrap().clone();
    let mut config = full.config.clone();
    config.max_messages = full.state.messages.max(1) as i64;
    js.update_stream(&config).await.unwrap();
    if full.state.messages == 0 {
        // The limit needs a message to bite on: a first call's record.
        let filler = platform.call_async("later", "filler", None).await;
        assert_eq!(platform.record(&filler).await["status"], "queued");
    }

    let call_id = platform.call_async("later", "kept", None).await;
    let r = platform.http.get(platform.url(&format!("/system/calls/{call_id}"))).send().await.unwrap();
    assert_eq!(r.status(), 404, "the bucket refused the record");

    let stopped = platform.gateway.terminate(Duration::from_secs(20));
    let freed = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        config.max_messages = -1;
        js.update_stream(&config).await.unwrap();
    };
    let (stopped, ()) = tokio::join!(stopped, freed);
    assert!(stopped, "the gateway stops cleanly");
    let calls = js.get_key_value("sluice_calls").await.unwrap();
    let written = calls.get(&call_id).await.unwrap().expect("the record, written before the gateway stopped");
    let record: Value = serde_json::from_slice(&written).unwrap();
    assert_eq!((record["status"].as_str(), record["attempts"].as_u64()), (Some("queued"), Some(0)), "{record}");
}

/// Dead letters are listed newest first, the newest `limit` of a function however many of others came after
/// them (the listing reads back from the newest, a window at a time).
#[tokio::test]
async fn dead_letters_list_newest_first_past_many_of_another_function() {
    let platform = Platform::start(1, &[], &[]).await;
    for name in ["rare", "often"] {
        platform.deploy(json!({"service": name, "envProcess": "false", "async": {"retry": {"attempts": 1}}})).await;
    }
    let mut rare = Vec::new();
    for _ in 0..30 {
        rare.push(platform.call_async("rare", "", None).await);
    }
    for id in &rare {
        platform.wait_final(id, Duration::from_secs(60)).await;
    }
    let mut often = Vec::new();
    for _ in 0..600 {
        often.push(platform.call_async("often", "", None).await);
    }
    for id in &often {
        platform.wait_final(id, Duration::from_secs(120)).await;
    }
    let newest = listed(&platform, "function=rare&limit=10").await;
    assert!(newest.iter().all(|(function, _)| function == "rare"), "{newest:?}");
    let ids: HashSet<&str> = newest.iter().map(|(_, id)| id.as_str()).collect();
    let all_rare: HashSet<&str> = rare.iter().map(String::as_str).collect();
    assert_eq!(ids.len(), 10);
    assert!(ids.is_subset(&all_rare));
    let every_rare = listed(&platform, "function=rare&limit=100").await;
    assert_eq!(every_rare.len(), 30);
    assert_eq!(every_rare[..10], newest[..], "the newest ten are the first ten of all");
    assert_eq!(every_rare.iter().map(|(_, id)| id.as_str()).collect::<HashSet<_>>(), all_rare);
    assert_eq!(listed(&platform, "function=often&limit=5").await.len(), 5);
    let everything = listed(&platform, "limit=1000").await;
    assert_eq!(everything.len(), 630);
    assert!(everything[..600].iter().all(|(function, _)| function == "often"), "the newest are often's");
}

/// `GET /system/dead?{query}`: each letter's function and call id, after checking they come newest first.
async fn listed(platform: &Platform, query: &str) -> Vec<(String, String)> {
    let letters = platform.get_json(&format!("/system/dead?{query}")).await;
    let letters = letters.as_array().unwrap().clone();
    let sequences: Vec<u64> = letters.iter().map(|l| l["sequence"].as_u64().unwrap()).collect();
    assert!(sequences.windows(2).all(|w| w[0] > w[1]), "newest first: {sequences:?}");
    let named = |l: &Value| (l["function"].as_str().unwrap().to_owned(), l["callId"].as_str().unwrap().to_owned());
    letters.iter().map(named).collect()
}
