//! Object-store events for real: a `moto` S3 server (with SNS) sends bucket notifications over HTTP to the
//! connector, MinIO-format notifications (written from MinIO's documented event format) arrive by webhook and
//! over NATS, and each invokes the function whose S3 trigger matches, with the object key decoded.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use serde_json::{Value, json};

use crate::{
    events::{EventPlatform, lines, wait_lines},
    support::{Sluice, free_port},
};

/// A `moto_server` on a free port, killed by PID when dropped.
pub(crate) struct Moto {
    child: Child,
    pub(crate) url: String,
}

impl Moto {
    pub(crate) async fn start() -> Self {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server is installed (pip install 'moto[server]'); ./deploy/test.sh installs it");
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while reqwest::get(&url).await.is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, url }
    }

    /// Runs a boto3 script against this server; `sys.argv[1]` is its URL.
    pub(crate) async fn boto3(&self, script: &str, args: &[&str]) {
        let prelude = "import sys, boto3\nkw = dict(endpoint_url=sys.argv[1], region_name='us-east-1', \
                       aws_access_key_id='test', aws_secret_access_key='test')\n";
        let out = tokio::process::Command::new("python3")
            .arg("-c")
            .arg(format!("{prelude}{script}"))
            .arg(&self.url)
            .args(args)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn data_of(line: &str) -> Value {
    serde_json::from_str(line.splitn(4, '|').nth(3).unwrap()).unwrap()
}

#[tokio::test]
async fn s3_uploads_reach_functions_through_sns_with_decoded_keys() {
    let moto = Moto::start().await;
    // The test's stand-in for AWS's SNS endpoint is on loopback, so it must be allowed by name.
    let events = EventPlatform::start_with(0, &["--sns-subscribe-host", "127.0.0.1"]).await;
    let p = &events.platform;
    p.create_secret("connector-s3-token", "tok").await;
    let out = events
        .deploy_recorder(
            "transcode",
            json!({"triggers": [{"s3": {"bucket": "uploads-in", "prefix": "videos/", "suffix": ".mp4"}}]}),
        )
        .await;
    let hook = p.url("/connectors/s3/sns?token=tok");
    let script = r#"
s3 = boto3.client('s3', **kw); sns = boto3.client('sns', **kw)
s3.create_bucket(Bucket='uploads-in')
topic = sns.create_topic(Name='uploads')['TopicArn']
sns.subscribe(TopicArn=topic, Protocol='http', Endpoint=sys.argv[2])
s3.put_bucket_notification_configuration(Bucket='uploads-in', NotificationConfiguration={'TopicConfigurations': [
    {'TopicArn': topic, 'Events': ['s3:ObjectCreated:*']}]})
s3.put_object(Bucket='uploads-in', Key='videos/my clip+1 é.mp4', Body=b'frames')
s3.put_object(Bucket='uploads-in', Key='videos/notes.txt', Body=b'not a video')
"#;
    moto.boto3(script, &[&hook]).await;
    let got = wait_lines(&out, 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lines(&out).len(), 1, "only the .mp4 matches: {:?}", lines(&out));
    assert!(got[0].starts_with("sluice.s3.object.created|s3://uploads-in|"), "{}", got[0]);
    let data = data_of(&got[0]);
    assert_eq!(data["bucket"], "uploads-in");
    assert_eq!(data["key"], "videos/my clip+1 é.mp4");
    assert_eq!(data["size"], 6);
    assert_eq!(data["eventName"], "s3:ObjectCreated:Put");

    // Without the token: refused, nothing stored.
    let r = p.http.post(p.url("/connectors/s3/sns")).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);

    // moto confirms HTTP subscriptions by itself, so the SubscriptionConfirmation AWS sends first is posted
    // here by the test, with a SubscribeURL on a local server that records the confirmation.
    let (confirmed_tx, mut confirmed_rx) = tokio::sync::mpsc::channel::<()>(1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let confirm_url = format!("http://{}/confirm?Token=abc", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/confirm",
        get(move || {
            let tx = confirmed_tx.clone();
            async move {
                let _ = tx.send(()).await;
                "<ConfirmSubscriptionResponse/>"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let confirmation = json!({"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:us-east-1:1:uploads",
                              "Message": "confirm", "SubscribeURL": confirm_url});
    let r = p.http.post(&hook).body(confirmation.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    tokio::time::timeout(Duration::from_secs(5), confirmed_rx.recv()).await.expect("SubscribeURL visited");
}

/// A notification as MinIO sends it (its documented event format), for `key` as MinIO encodes keys.
fn minio_event(bucket: &str, encoded_key: &str, name: &str, sequencer: &str) -> Value {
    json!({
        "EventName": name,
        "Key": format!("{bucket}/{encoded_key}"),
        "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventTime": "2026-11-22T10:00:00.000Z",
            "eventName": name, "userIdentity": {"principalId": "minioadmin"},
            "requestParameters": {"principalId": "minioadmin", "region": "", "sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "17A", "x-minio-origin-endpoint": "http://127.0.0.1:9000"},
            "s3": {
                "s3SchemaVersion": "1.0", "configurationId": "Config",
                "bucket": {"name": bucket, "ownerIdentity": {"principalId": "minioadmin"}, "arn": format!("arn:aws:s3:::{bucket}")},
                "object": {"key": encoded_key, "size": 3, "eTag": "d41d8cd9", "contentType": "image/png",
                           "userMetadata": {"content-type": "image/png"}, "sequencer": sequencer}
            },
            "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64) minio-go/v7"}
        }]
    })
}

#[tokio::test]
async fn minio_webhook_and_nats_notifications_with_tricky_keys() {
    let mut events = EventPlatform::start(0).await;
    let subject = format!("minio.events.{}", free_port());
    let url = events.platform.nats_url.clone();
    let s3 = Sluice::spawn(
        &[
            "connector",
            "s3",
            "--nats-url",
            &url,
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--s3-nats-subject",
            &subject,
        ],
        events.platform.logs.path(),
        "s3-connector",
    );
    s3.wait_for_log("connector ready", Duration::from_secs(30)).await;
    events.connectors.push(s3);
    let p = &events.platform;
    let out = events
        .deploy_recorder(
            "thumbs",
            json!({"triggers": [{"s3": {"bucket": "photos", "suffix": ".png",
                                                      "events": ["s3:ObjectCreated:*"]}}]}),
        )
        .await;
    p.create_secret("connector-s3-token", "minio-tok").await;
    let minio = p.url("/connectors/s3/minio");
    assert_eq!(p.http.head(&minio).send().await.unwrap().status(), 200, "MinIO's probe");

    // MinIO escapes keys like a query string: space → '+', '+' → %2B, non-ASCII as UTF-8 bytes.
    let event = minio_event("photos", "2026/caf%C3%A9+au+lait%2B1.png", "s3:ObjectCreated:Put", "A1");
    let post = |token: &'static str, body: Value| p.http.post(&minio).bearer_auth(token).json(&body).send();
    assert_eq!(post("wrong", event.clone()).await.unwrap().status(), 401);
    assert_eq!(post("minio-tok", event.clone()).await.unwrap().status(), 202);
    assert_eq!(post("minio-tok", event.clone()).await.unwrap().status(), 202, "a retried notification");
    let r = p.http.post(&minio).bearer_auth("minio-tok").body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("S3 event"));
    // Removals do not match a trigger for created objects.
    assert_eq!(
        post("minio-tok", minio_event("photos", "x.png", "s3:ObjectRemoved:Delete", "A2")).await.unwrap().status(),
        202
    );

    // The same format over MinIO's NATS target.
    let nats = async_nats::connect(&url).await.unwrap();
    let over_nats = minio_event("photos", "from+nats/%E6%97%A5%E6%9C%AC.png", "s3:ObjectCreated:Put", "A3");
    nats.publish(subject, over_nats.to_string().into()).await.unwrap();
    nats.flush().await.unwrap();

    let mut got = wait_lines(&out, 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lines(&out).len(), 2, "one call per object: {:?}", lines(&out));
    got.sort();
    let keys: Vec<String> = got.iter().map(|l| data_of(l)["key"].as_str().unwrap().to_owned()).collect();
    assert_eq!(keys, ["2026/café au lait+1.png", "from nats/日本.png"]);
    assert_eq!(data_of(&got[0])["contentType"], "image/png");
}

#[tokio::test]
async fn the_poller_finds_each_new_object_once_across_a_restart() {
    let moto = Moto::start().await;
    moto.boto3("s3 = boto3.client('s3', **kw)\ns3.create_bucket(Bucket='polled')\n", &[]).await;
    let events = EventPlatform::start(0).await;
    let out =
        events.deploy_recorder("ingest", json!({"triggers": [{"s3": {"bucket": "polled", "prefix": "in/"}}]})).await;
    let url = events.platform.nats_url.clone();
    let poller = |name: &str| {
        let listen = format!("127.0.0.1:{}", free_port());
        Sluice::spawn_env(
            &[
                "connector",
                "s3",
                "--nats-url",
                &url,
                "--listen",
                &listen,
                "--s3-poll-interval",
                "300ms",
                "--s3-endpoint",
                &moto.url,
                "--s3-path-style",
            ],
            &[("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")],
            events.platform.logs.path(),
            name,
        )
    };
    let moto = &moto;
    let put = async |key: &str| {
        let script =
            format!("s3 = boto3.client('s3', **kw)\ns3.put_object(Bucket='polled', Key={key:?}, Body=b'data')\n");
        moto.boto3(&script, &[]).await
    };
    let mut first = poller("poller-1");
    put("in/a b+c.bin").await;
    put("elsewhere/ignored.bin").await;
    let got = wait_lines(&out, 1, Duration::from_secs(30)).await;
    assert_eq!(data_of(&got[0])["key"], "in/a b+c.bin");

    // A restarted poller remembers what it announced and finds only what is new.
    first.kill();
    let second = poller("poller-2");
    put("in/second.bin").await;
    wait_lines(&out, 2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let keys: Vec<String> = lines(&out).iter().map(|l| data_of(l)["key"].as_str().unwrap().to_owned()).collect();
    assert_eq!(keys, ["in/a b+c.bin", "in/second.bin"], "{}", second.log_text());
}

#[tokio::test]
async fn an_image_uploaded_to_a_bucket_is_colourised_into_another_and_called_back() {
    let moto = Moto::start().await;
    let events = EventPlatform::start(0).await;
    let p = &events.platform;
    p.create_secret("connector-s3-token", "photos-token").await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let colourise = std::path::Path::new(env!("CARGO_BIN_EXE_sluice")).parent().unwrap().join("examples/colourise");
    assert!(colourise.is_file(), "{} is built by cargo test", colourise.display());
    let python = String::from_utf8(
        Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap().stdout,
    )
    .unwrap();
    let receiver = crate::support::CallbackReceiver::start().await;
    let spec = json!({
        "service": "s3-colourise",
        "envProcess": format!("{} {}", python.trim(), root.join("examples/s3-colourise.py").display()),
        "envVars": {"OUTPUT_BUCKET": "photos-out", "S3_ENDPOINT": moto.url, "COLOURISE": colourise,
                    "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"},
        "async": {"timeout": "60s"},
        "triggers": [{"s3": {"bucket": "photos-in", "suffix": ".png"}, "callbackUrl": receiver.url}]
    });
    p.deploy(spec).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let dir = tempfile::tempdir().unwrap();
    let gray = image::GrayImage::from_fn(64, 8, |x, _| image::Luma([(x * 4) as u8]));
    let input = dir.path().join("gray.png");
    gray.save(&input).unwrap();
    let script = r#"
s3 = boto3.client('s3', **kw); sns = boto3.client('sns', **kw)
for b in ('photos-in', 'photos-out'):
    s3.create_bucket(Bucket=b)
topic = sns.create_topic(Name='photos')['TopicArn']
sns.subscribe(TopicArn=topic, Protocol='http', Endpoint=sys.argv[2])
s3.put_bucket_notification_configuration(Bucket='photos-in', NotificationConfiguration={'TopicConfigurations': [
    {'TopicArn': topic, 'Events': ['s3:ObjectCreated:*']}]})
s3.put_object(Bucket='photos-in', Key='family/grandma 1952.png', Body=open(sys.argv[3], 'rb').read())
"#;
    moto.boto3(script, &[&p.url("/connectors/s3/sns?token=photos-token"), input.to_str().unwrap()]).await;

    let got = receiver.wait_for(1, Duration::from_secs(60)).await;
    assert_eq!(got[0].headers["x-function-status"], "200", "{}", String::from_utf8_lossy(&got[0].body));
    let answer: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(answer["bucket"], "photos-out");
    assert_eq!(answer["key"], "family/grandma 1952.colour.png");

    let output = dir.path().join("colour.png");
    let fetch = "s3 = boto3.client('s3', **kw)\nopen(sys.argv[2], 'wb').write(s3.get_object(Bucket='photos-out', Key='family/grandma 1952.colour.png')['Body'].read())\n";
    moto.boto3(fetch, &[output.to_str().unwrap()]).await;
    let colour = image::open(&output).unwrap().to_rgb8();
    assert_eq!(colour.dimensions(), (64, 8));
    let coloured = colour.pixels().filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 12).count();
    assert!(coloured > 64 * 8 / 2, "the result is in colour: {coloured} coloured pixels");
}
