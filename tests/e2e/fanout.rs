//! Fan-out and fan-in: a running call declares child calls and a join (by POSTing to its fan-out URL with curl,
//! or by answering with a fan-out document); when it succeeds the children run as a group, and the join runs
//! once with every child's outcome — failures and cancellations included. Cancelling the call that fanned out
//! cancels what it started.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::Platform;

/// Reads lines of numbers and fans out one `square` call per line, joined by `collect`; prints the worker's
/// answer (the ids the children and the join will have).
const SPLIT: &str = r#"#!/bin/sh
calls=""
while read -r n || [ -n "$n" ]; do calls="$calls{\"function\":\"square\",\"body\":\"$n\"},"; done
doc="{\"calls\":[${calls%,}],\"join\":{\"function\":\"collect\",\"context\":{\"job\":\"squares\"}}}"
curl -sf --data-binary "$doc" "$Http_X_Sluice_Fanout_Url" || exit 9
"#;

/// Fans out to a function that is not deployed: the worker's refusal is the call's output.
const SPLIT_WRONG: &str = r#"#!/bin/sh
curl -s -w ' %{http_code}' --data-binary '{"calls":[{"function":"nowhere"}]}' "$Http_X_Sluice_Fanout_Url"
"#;

/// Squares a number; 3 always fails.
const SQUARE: &str = r#"#!/bin/sh
read -r n || true
if [ "$n" = 3 ]; then echo "no threes" >&2; exit 1; fi
echo $((n * n))
"#;

fn script(platform: &Platform, name: &str, text: &str) -> String {
    let path = platform.logs.path().join(name);
    std::fs::write(&path, text).unwrap();
    format!("sh {}", path.display())
}

async fn calls_of(platform: &Platform, function: &str) -> Vec<Value> {
    platform.list_calls(&format!("function={function}")).await
}

/// Waits for the one call of `function` to end and returns its record.
async fn the_final_call_of(platform: &Platform, function: &str) -> Value {
    let start = Instant::now();
    loop {
        if let [call] = &calls_of(platform, function).await[..] {
            return platform.wait_final(call["callId"].as_str().unwrap(), Duration::from_secs(60)).await;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{function} was never called");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn result_json(platform: &Platform, call_id: &str) -> Value {
    let url = platform.url(&format!("/system/calls/{call_id}/result"));
    let text = platform.http.get(url).send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

#[tokio::test]
async fn a_fan_out_runs_its_children_and_joins_once_with_every_outcome() {
    let platform = Platform::start(2, &[], &[]).await;
    let square = script(&platform, "square.sh", SQUARE);
    platform
        .deploy(json!({"service": "square", "envProcess": square,
                       "async": {"retry": {"attempts": 2, "minWait": "100ms", "maxWait": "100ms"}}}))
        .await;
    platform
        .deploy(json!({"service": "collect", "envProcess": "cat", "envVars": {"content_type": "application/json"}}))
        .await;
    platform.deploy(json!({"service": "split", "envProcess": script(&platform, "split.sh", SPLIT)})).await;

    let split = platform.call_async("split", "1\n2\n3\n4\n", None).await;
    let record = platform.wait_final(&split, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    let declared = result_json(&platform, &split).await;
    assert_eq!(declared["groupId"], split.as_str());
    let join_id = declared["join"].as_str().unwrap().to_owned();
    let mut listed: Vec<Value> = declared["calls"].as_array().unwrap().clone();
    listed.push(json!(join_id));
    assert_eq!(record["children"], Value::Array(listed), "the record lists the children and the join");

    // The join runs once, after every child ended, with each outcome in the children's order.
    let joined = the_final_call_of(&platform, "collect").await;
    assert_eq!(joined["callId"], join_id.as_str());
    assert_eq!((joined["status"].as_str(), joined["attempts"].as_u64()), (Some("succeeded"), Some(1)), "{joined}");
    assert_eq!(joined["parentCallId"], split.as_str());
    assert_eq!(joined["rootCallId"], split.as_str());
    let group = result_json(&platform, &join_id).await;
    assert_eq!(
        (group["total"].as_u64(), group["succeeded"].as_u64(), group["failed"].as_u64()),
        (Some(4), Some(3), Some(1))
    );
    assert_eq!(group["context"], json!({"job": "squares"}));
    let bodies: Vec<&Value> = group["calls"].as_array().unwrap().iter().map(|c| &c["body"]).collect();
    assert_eq!(bodies, [&json!("1\n"), &json!("4\n"), &json!("exit status: 1: no threes"), &json!("16\n")]);
    let three = &group["calls"][2];
    assert_eq!((three["status"].as_str(), three["functionStatus"].as_u64()), (Some("failed"), Some(500)), "{three}");
    assert!(three["error"].as_str().unwrap().contains("no threes"), "{three}");
    let child = three["callId"].as_str().unwrap();
    assert_eq!(three["result"], format!("/system/calls/{child}/result"));
    let failed = platform.record(child).await;
    assert_eq!(
        (failed["attempts"].as_u64(), failed["parentCallId"].as_str()),
        (Some(2), Some(split.as_str())),
        "retried first"
    );

    // A caller cannot pass a call off as a child of a group: the gateway drops the lineage headers, so the call
    // has no root or parent and settles nothing.
    let forged = platform
        .http
        .post(platform.url("/async-function/square"))
        .header("X-Sluice-Group-Id", &split)
        .header("X-Sluice-Group-Index", "2")
        .header("X-Sluice-Root-Call-Id", &split)
        .body("3")
        .send()
        .await
        .unwrap();
    let forged = forged.headers()["x-call-id"].to_str().unwrap().to_owned();
    let record = platform.wait_final(&forged, Duration::from_secs(30)).await;
    assert!(record.get("rootCallId").is_none() && record.get("parentCallId").is_none(), "{record}");

    // Still one join a moment later: no other child's report (nor the forged call) started another.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls_of(&platform, "collect").await.len(), 1);
    assert_eq!(calls_of(&platform, "square").await.len(), 5);

    // The tree shows the group under the call that fanned out, which counts its ended children.
    let tree = platform.get_json(&format!("/system/calls/{child}/tree")).await;
    assert_eq!(tree["call"]["callId"], split.as_str(), "from any child, the root: {tree}");
    assert_eq!(tree["next"].as_array().unwrap().len(), 5);
    assert_eq!(tree["call"]["progress"]["percent"], 100.0);
    assert_eq!(tree["call"]["progress"]["message"], "5 of 5 calls it started have ended");

    // A function may answer with the document instead.
    let answer = r#"printf '{"calls":[{"function":"square","body":"5"}],"join":{"function":"collect"}}'"#;
    let fan_out_type = "application/vnd.sluice.fanout+json";
    platform
        .deploy(json!({"service": "answer", "envProcess": format!("sh -c {answer:?}"), "envVars": {"content_type": fan_out_type}}))
        .await;
    let answered = platform.call_async("answer", "", None).await;
    assert_eq!(platform.wait_final(&answered, Duration::from_secs(30)).await["status"], "succeeded");
    let join = sluice_join_of(&platform, &answered).await;
    let group = result_json(&platform, &join).await;
    assert_eq!((group["total"].as_u64(), group["calls"][0]["body"].as_str()), (Some(1), Some("25\n")), "{group}");

    // A document that is malformed or names a function that is not deployed fails its call, saying why.
    for (name, document, error) in [
        ("empty", r#"{"calls":[]}"#, "fan-out document names no calls"),
        (
            "unknown",
            r#"{"calls":[{"function":"nowhere"}]}"#,
            "fan-out calls[0]: function nowhere.openfaas-fn is not deployed",
        ),
        ("garbled", r#"{"calls":"#, "fan-out document is not valid"),
    ] {
        let path = platform.logs.path().join(format!("{name}.json"));
        std::fs::write(&path, document).unwrap();
        let print = format!("cat {}", path.display());
        platform.deploy(json!({"service": name, "envProcess": print, "envVars": {"content_type": fan_out_type}})).await;
        let call = platform.call_async(name, "", None).await;
        let record = platform.wait_final(&call, Duration::from_secs(30)).await;
        assert_eq!(
            (record["status"].as_str(), record["functionStatus"].as_u64()),
            (Some("failed"), Some(422)),
            "{record}"
        );
        assert!(record["error"].as_str().unwrap().starts_with(error), "{name}: {record}");
        assert!(record.get("children").is_none(), "nothing started: {record}");
    }
    // At the fan-out URL, the refusal comes back at once.
    platform.deploy(json!({"service": "split-wrong", "envProcess": script(&platform, "wrong.sh", SPLIT_WRONG)})).await;
    let wrong = platform.call_async("split-wrong", "", None).await;
    assert_eq!(platform.wait_final(&wrong, Duration::from_secs(30)).await["status"], "succeeded");
    let url = platform.url(&format!("/system/calls/{wrong}/result"));
    let said = platform.http.get(url).send().await.unwrap().text().await.unwrap();
    assert_eq!(said, r#"{"error":"fan-out names nowhere.openfaas-fn, which is not deployed"} 400"#);
}

/// The join id the call `parent` lists last among its children.
async fn sluice_join_of(platform: &Platform, parent: &str) -> String {
    let record = platform.record(parent).await;
    let join = record["children"].as_array().and_then(|c| c.last()).and_then(Value::as_str);
    let join = join.unwrap_or_else(|| panic!("no children: {record}")).to_owned();
    platform.wait_final(&join, Duration::from_secs(30)).await;
    join
}

#[tokio::test]
async fn cancelled_children_end_their_group_and_cancelling_the_parent_cancels_what_it_started() {
    let platform = Platform::start(1, &[], &[]).await;
    platform
        .deploy(json!({"service": "nap", "envProcess": "sh -c 'read -r s || true; sleep $s; echo slept $s'",
                       "async": {"maxInflight": 1}}))
        .await;
    platform
        .deploy(json!({"service": "collect", "envProcess": "cat", "envVars": {"content_type": "application/json"}}))
        .await;
    let split = SPLIT.replace("square", "nap");
    platform.deploy(json!({"service": "split", "envProcess": script(&platform, "split.sh", &split)})).await;

    // A child cancelled while it runs still ends the group: the join runs and sees it cancelled.
    let first = platform.call_async("split", "30\n0\n0\n", None).await;
    platform.wait_final(&first, Duration::from_secs(30)).await;
    let children = platform.record(&first).await["children"].clone();
    let sleeper = children[0].as_str().unwrap();
    platform.wait_running(sleeper).await;
    let r = platform.http.delete(platform.url(&format!("/system/calls/{sleeper}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let join = sluice_join_of(&platform, &first).await;
    let group = result_json(&platform, &join).await;
    assert_eq!((group["cancelled"].as_u64(), group["succeeded"].as_u64()), (Some(1), Some(2)), "{group}");
    assert_eq!(group["calls"][0]["status"], "cancelled");

    // Cancelling a finished parent cancels its running and queued children and the join that waits for them.
    let second = platform.call_async("split", "30\n30\n", None).await;
    platform.wait_final(&second, Duration::from_secs(30)).await;
    let record = platform.record(&second).await;
    let (running, queued, join) = (
        record["children"][0].as_str().unwrap(),
        record["children"][1].as_str().unwrap(),
        record["children"][2].as_str().unwrap(),
    );
    platform.wait_running(running).await;
    assert_eq!(platform.record(queued).await["status"], "queued", "one nap at a time");
    let r = platform.http.delete(platform.url(&format!("/system/calls/{second}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let parent: Value = r.json().await.unwrap();
    assert_eq!(parent["status"], "succeeded", "the parent itself had ended");
    for id in [running, queued, join] {
        assert_eq!(platform.wait_final(id, Duration::from_secs(30)).await["status"], "cancelled", "{id}");
    }
    // The worker settles both cancelled children; the join was cancelled before it could start, and stays so.
    let start = Instant::now();
    let settled = |platform: &Platform| {
        let log = platform.workers[0].log_text();
        log.lines().filter(|line| line.contains("fan-out child settled") && line.contains(second.as_str())).count()
    };
    while settled(&platform) < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "the cancelled children were never settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = platform.record(join).await;
    assert_eq!((kept["status"].as_str(), kept["attempts"].as_u64()), (Some("cancelled"), Some(0)), "{kept}");
    assert_eq!(calls_of(&platform, "collect").await.len(), 2, "the first join and the cancelled one");
    // Nothing is left to cancel now.
    let r = platform.http.delete(platform.url(&format!("/system/calls/{second}"))).send().await.unwrap();
    assert_eq!(r.status(), 409);
}

#[tokio::test]
async fn fan_outs_of_fan_outs_stop_at_the_pipeline_limit() {
    let platform = Platform::start(1, &[], &["--max-pipeline-calls", "3"]).await;
    let fork = r#"#!/bin/sh
curl -sf --data-binary '{"calls":[{"function":"fork"},{"function":"fork"}]}' "$Http_X_Sluice_Fanout_Url" || exit 9
"#;
    platform.deploy(json!({"service": "fork", "envProcess": script(&platform, "fork.sh", fork)})).await;
    let root = platform.call_async("fork", "", None).await;
    assert_eq!(platform.wait_final(&root, Duration::from_secs(30)).await["status"], "succeeded");
    // The root's two children would fan out two more each: the first pair fits the limit of 3, no more.
    let children = platform.record(&root).await["children"].clone();
    for child in children.as_array().unwrap() {
        let record = platform.wait_final(child.as_str().unwrap(), Duration::from_secs(30)).await;
        assert_eq!(
            (record["status"].as_str(), record["functionStatus"].as_u64()),
            (Some("failed"), Some(422)),
            "{record}"
        );
        let error = record["error"].as_str().unwrap();
        assert!(
            error.contains("has fanned out 2 calls, and 2 more would pass the limit of 3 (--max-pipeline-calls)"),
            "{error}"
        );
        assert_eq!(record["rootCallId"], root.as_str());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls_of(&platform, "fork").await.len(), 3);
}

/// Squares a number; fails while the file `DIR/fail-{n}` exists, and takes a minute while `DIR/slow-{n}` does.
const SQUARE_AS_TOLD: &str = r#"#!/bin/sh
read -r n || true
if [ -e "DIR/fail-$n" ]; then echo "no ${n}s yet" >&2; exit 1; fi
if [ -e "DIR/slow-$n" ]; then sleep 60; fi
echo $((n * n))
"#;

/// Replays the dead call `child`.
async fn replay(platform: &Platform, child: &str) {
    let r = platform.http.post(platform.url(&format!("/system/dead/{child}/replay"))).send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
}

/// Replays the dead child `child`, waits for it to end, and returns the group the join of the round it
/// started got, after checking the call that fanned out lists that join.
async fn replay_child(platform: &Platform, split: &str, child: &str, joins: usize) -> Value {
    replay(platform, child).await;
    platform.wait_final(child, Duration::from_secs(30)).await;
    let children = platform.record(split).await["children"].as_array().unwrap().clone();
    assert_eq!(children.len(), 2 + joins, "two children and a join per round: {children:?}");
    let join = sluice_join_of(platform, split).await;
    result_json(platform, &join).await
}

/// A platform with `split`, `square` (as told, one attempt) and `collect`, and the directory that tells `square`.
async fn squares_as_told() -> (Platform, std::path::PathBuf) {
    let platform = Platform::start(1, &[], &[]).await;
    let dir = platform.logs.path().to_owned();
    let square = SQUARE_AS_TOLD.replace("DIR", &dir.display().to_string());
    platform
        .deploy(json!({"service": "square", "envProcess": script(&platform, "square.sh", &square),
                       "async": {"retry": {"attempts": 1}}}))
        .await;
    platform
        .deploy(json!({"service": "collect", "envProcess": "cat", "envVars": {"content_type": "application/json"}}))
        .await;
    platform.deploy(json!({"service": "split", "envProcess": script(&platform, "split.sh", SPLIT)})).await;
    (platform, dir)
}

#[tokio::test]
async fn a_replayed_child_reopens_its_group_and_each_round_gets_a_join_of_its_own() {
    let (platform, dir) = squares_as_told().await;

    std::fs::write(dir.join("fail-3"), "").unwrap();
    let split = platform.call_async("split", "1\n3\n", None).await;
    platform.wait_final(&split, Duration::from_secs(30)).await;
    let first_join = sluice_join_of(&platform, &split).await;
    let group = result_json(&platform, &first_join).await;
    assert_eq!((group["succeeded"].as_u64(), group["failed"].as_u64()), (Some(1), Some(1)), "{group}");
    assert!(group.get("round").is_none(), "{group}");
    let three = group["calls"][1]["callId"].as_str().unwrap().to_owned();
    assert!(platform.record(&three).await["deadLetter"].is_u64());

    // Replayed and failing again: the group completes once more, and a second join sees the new failure.
    let group = replay_child(&platform, &split, &three, 2).await;
    assert_eq!((group["round"].as_u64(), group["failed"].as_u64()), (Some(1), Some(1)), "{group}");
    assert_eq!(group["calls"][1]["body"], "exit status: 1: no 3s yet");

    // Fixed and replayed: a third join gathers every child succeeded.
    std::fs::remove_file(dir.join("fail-3")).unwrap();
    let group = replay_child(&platform, &split, &three, 3).await;
    assert_eq!(platform.record(&three).await["status"], "succeeded");
    assert_eq!(
        (group["round"].as_u64(), group["succeeded"].as_u64(), group["failed"].as_u64()),
        (Some(2), Some(2), Some(0)),
        "{group}"
    );
    assert_eq!(group["calls"][1]["body"], "9\n");
    let joins = platform.record(&split).await["children"].as_array().unwrap()[2..].to_vec();
    assert_eq!(group["join"]["callId"], joins[2], "the group names the latest round's join");

    // Each join ran once, and the first kept what it saw.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls_of(&platform, "collect").await.len(), 3);
    let first = result_json(&platform, &first_join).await;
    assert_eq!((first["succeeded"].as_u64(), first["failed"].as_u64()), (Some(1), Some(1)), "{first}");
    for join in &joins {
        let record = platform.record(join.as_str().unwrap()).await;
        assert_eq!((record["status"].as_str(), record["attempts"].as_u64()), (Some("succeeded"), Some(1)), "{record}");
        assert_eq!(record["parentCallId"], split.as_str());
    }
    let tree = platform.get_json(&format!("/system/calls/{split}/tree")).await;
    assert_eq!(tree["next"].as_array().unwrap().len(), 5, "two children and three joins: {tree}");

    // A new round's join waits like the first: cancelling the call that fanned out cancels it with the replay.
    std::fs::write(dir.join("fail-5"), "").unwrap();
    let again = platform.call_async("split", "5\n6\n", None).await;
    platform.wait_final(&again, Duration::from_secs(30)).await;
    sluice_join_of(&platform, &again).await;
    let five = platform.record(&again).await["children"][0].as_str().unwrap().to_owned();
    std::fs::remove_file(dir.join("fail-5")).unwrap();
    std::fs::write(dir.join("slow-5"), "").unwrap();
    replay(&platform, &five).await;
    platform.wait_running(&five).await;
    let waiting = platform.record(&again).await["children"][3].as_str().unwrap().to_owned();
    let r = platform.http.delete(platform.url(&format!("/system/calls/{again}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for id in [&five, &waiting] {
        assert_eq!(platform.wait_final(id, Duration::from_secs(30)).await["status"], "cancelled", "{id}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = platform.record(&waiting).await;
    assert_eq!((kept["status"].as_str(), kept["attempts"].as_u64()), (Some("cancelled"), Some(0)), "{kept}");
    let joins = calls_of(&platform, "collect").await.len();
    assert_eq!(joins, 5, "the first group's three; the second's first, and its second, cancelled before it started");
}

#[tokio::test]
async fn children_replayed_together_make_one_round_and_each_call_is_answered_for() {
    let (platform, dir) = squares_as_told().await;
    let replay_many = |body: Value| {
        let request = platform.http.post(platform.url("/system/dead/replay")).json(&body);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };

    // Eight of nine children fail for good; the group's first join sees it. (So many that replaying them one by
    // one, each published before the next is reopened, lets the first end before the last takes its place, and
    // the group would complete twice.)
    let failing = 2..=9;
    for n in failing.clone() {
        std::fs::write(dir.join(format!("fail-{n}")), "").unwrap();
    }
    let split = platform.call_async("split", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", None).await;
    platform.wait_final(&split, Duration::from_secs(30)).await;
    let group = result_json(&platform, &sluice_join_of(&platform, &split).await).await;
    assert_eq!((group["succeeded"].as_u64(), group["failed"].as_u64()), (Some(1), Some(8)), "{group}");
    let children = platform.record(&split).await["children"].as_array().unwrap().clone();
    let failed: Vec<&str> = children[1..9].iter().map(|c| c.as_str().unwrap()).collect();

    // Fixed and replayed in one request, with a call named twice, one unknown and one that did not fail: the
    // children take their places again before any runs, so one round follows and its join sees them all.
    for n in failing {
        std::fs::remove_file(dir.join(format!("fail-{n}"))).unwrap();
    }
    let mut named = vec![json!(failed[1]), json!(failed[0]), json!(failed[1]), json!("no-such-call")];
    named.extend(failed[2..].iter().map(|id| json!(id)));
    named.push(json!(split));
    let report = replay_many(json!({ "callIds": named })).await;
    let mut replayed = vec![failed[1], failed[0]];
    replayed.extend(&failed[2..]);
    assert_eq!(report["replayed"], json!(replayed), "{report}");
    let refused = report["notReplayed"].as_array().unwrap();
    assert_eq!(refused.len(), 2, "{report}");
    assert_eq!(refused[0], json!({"callId": "no-such-call", "error": "no call no-such-call"}));
    assert_eq!(refused[1]["callId"], split.as_str());
    assert!(refused[1]["error"].as_str().unwrap().contains("has no dead letter"), "{report}");
    for id in &failed {
        assert_eq!(platform.wait_final(id, Duration::from_secs(30)).await["status"], "succeeded", "{id}");
    }
    let join = sluice_join_of(&platform, &split).await;
    let group = result_json(&platform, &join).await;
    assert_eq!(
        (group["round"].as_u64(), group["succeeded"].as_u64(), group["failed"].as_u64()),
        (Some(1), Some(9), Some(0)),
        "{group}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let children = platform.record(&split).await["children"].as_array().unwrap().len();
    assert_eq!(children, 11, "nine children and a join for each of two rounds");
    assert_eq!(calls_of(&platform, "collect").await.len(), 2, "one join per round");

    // A function's dead letters, replayed by naming the function: all of them, as one round.
    for n in [10, 11] {
        std::fs::write(dir.join(format!("fail-{n}")), "").unwrap();
    }
    let again = platform.call_async("split", "10\n11\n", None).await;
    platform.wait_final(&again, Duration::from_secs(30)).await;
    sluice_join_of(&platform, &again).await;
    let dead = platform.get_json("/system/dead?function=square").await;
    assert_eq!(dead.as_array().unwrap().len(), 2, "{dead}");
    for n in [10, 11] {
        std::fs::remove_file(dir.join(format!("fail-{n}"))).unwrap();
    }
    let report = replay_many(json!({"function": "square"})).await;
    assert_eq!(
        (report["replayed"].as_array().unwrap().len(), report["notReplayed"].as_array().unwrap().len()),
        (2, 0),
        "{report}"
    );
    let children = platform.record(&again).await["children"].as_array().unwrap().clone();
    for id in &children[..2] {
        assert_eq!(platform.wait_final(id.as_str().unwrap(), Duration::from_secs(30)).await["status"], "succeeded");
    }
    let group = result_json(&platform, &sluice_join_of(&platform, &again).await).await;
    assert_eq!((group["round"].as_u64(), group["succeeded"].as_u64()), (Some(1), Some(2)), "{group}");
    assert_eq!(platform.get_json("/system/dead?function=square").await, json!([]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(calls_of(&platform, "collect").await.len(), 4, "two joins for each group");
}
