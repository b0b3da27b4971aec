//! The video example end to end (`examples/video/`): a grayscale video uploaded to a bucket (moto, notifying
//! over SNS) is split, its segments colourised in parallel on two workers — one failing its first attempt on
//! purpose — and joined into `NAME.colour.mp4` in the output bucket, announced at the join's onSuccess URL. The
//! output has the input's frames and duration and is in colour; the pipeline's tree shows every call.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{events::EventPlatform, s3::Moto, support::CallbackReceiver};

const WIDTH: usize = 160;
/// Longest wait for the whole pipeline: the debug-built colourise runs once per frame.
pub(crate) const SLUICE_VIDEO_WAIT: u64 = 240;
const HEIGHT: usize = 120;

/// Four seconds of grayscale test pattern at 10 frames a second, at `path`; its frames.
pub(crate) fn grayscale_clip(path: &Path) -> Vec<Vec<u8>> {
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", &format!("testsrc=duration=4:size={WIDTH}x{HEIGHT}:rate=10")])
        .args(["-vf", "format=gray", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(path)
        .output()
        .expect("ffmpeg is installed (apt-get install ffmpeg); ./deploy/test.sh installs it");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let gray = yuv_frames(path);
    assert_eq!(gray.len(), 40);
    assert!(gray.iter().all(|f| coloured_share(f) == 0.0), "the input has no colour");
    gray
}

/// Checks the colourised `output` against the `gray` frames it was made from: every frame once, in colour,
/// with its brightness kept.
pub(crate) fn assert_colourised(output: &Path, gray: &[Vec<u8>]) {
    let colour = yuv_frames(output);
    assert_eq!(colour.len(), gray.len(), "every frame, once");
    for (n, frame) in colour.iter().enumerate() {
        assert!(coloured_share(frame) > 0.5, "frame {n} is in colour: {:.2}", coloured_share(frame));
        let diff: u64 =
            frame[..WIDTH * HEIGHT].iter().zip(&gray[n][..WIDTH * HEIGHT]).map(|(a, b)| a.abs_diff(*b) as u64).sum();
        assert!(diff as f64 / ((WIDTH * HEIGHT) as f64) < 6.0, "frame {n} keeps its brightness");
    }
}

/// The video's frames as raw YUV 4:2:0, decoded by ffmpeg.
fn yuv_frames(path: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .expect("ffmpeg is installed (apt-get install ffmpeg); ./deploy/test.sh installs it");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks(WIDTH * HEIGHT * 3 / 2).map(<[u8]>::to_vec).collect()
}

/// Share of chroma samples (U and V) further than 8 from neutral grey.
fn coloured_share(frame: &[u8]) -> f64 {
    let chroma = &frame[WIDTH * HEIGHT..];
    chroma.iter().filter(|&&c| c.abs_diff(128) > 8).count() as f64 / chroma.len() as f64
}

fn duration_of(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test]
async fn a_grayscale_video_uploaded_to_a_bucket_comes_back_colourised() {
    let moto = Moto::start().await;
    let mut events = EventPlatform::start(0).await;
    events.platform.add_worker(&[]);
    let p = &events.platform;
    p.create_secret("connector-s3-token", "videos-token").await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let colourise = Path::new(env!("CARGO_BIN_EXE_sluice")).parent().unwrap().join("examples/colourise");
    assert!(colourise.is_file(), "{} is built by cargo test", colourise.display());
    let python = String::from_utf8(
        Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap().stdout,
    )
    .unwrap();
    let function =
        |name: &str| format!("{} {}", python.trim(), root.join(format!("examples/video/{name}.py")).display());
    let env = json!({"S3_ENDPOINT": moto.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                     "AWS_REGION": "us-east-1", "COLOURISE": colourise, "FAIL_SEGMENT_ONCE": "1",
                     "WORK_BUCKET": "videos-work", "OUTPUT_BUCKET": "videos-out", "SEGMENTS": "4",
                     "content_type": "application/json"});
    let announced = CallbackReceiver::start().await;
    p.deploy(json!({"service": "video-join", "envProcess": function("video-join"), "envVars": env,
                    "async": {"timeout": "120s", "onSuccess": {"url": announced.url}}}))
        .await;
    p.deploy(json!({"service": "video-colourise", "envProcess": function("video-colourise"), "envVars": env,
                    "async": {"timeout": "120s", "retry": {"attempts": 3, "minWait": "200ms", "maxWait": "200ms"}}}))
        .await;
    p.deploy(json!({"service": "video-split", "envProcess": function("video-split"), "envVars": env,
                    "async": {"timeout": "120s"},
                    "triggers": [{"s3": {"bucket": "videos-in", "suffix": ".mp4"}}]}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("clip.mp4");
    let gray = grayscale_clip(&input);

    let script = r#"
s3 = boto3.client('s3', **kw); sns = boto3.client('sns', **kw)
for b in ('videos-in', 'videos-work', 'videos-out'):
    s3.create_bucket(Bucket=b)
topic = sns.create_topic(Name='videos')['TopicArn']
sns.subscribe(TopicArn=topic, Protocol='http', Endpoint=sys.argv[2])
s3.put_bucket_notification_configuration(Bucket='videos-in', NotificationConfiguration={'TopicConfigurations': [
    {'TopicArn': topic, 'Events': ['s3:ObjectCreated:*']}]})
s3.put_object(Bucket='videos-in', Key='reels/clip.mp4', Body=open(sys.argv[3], 'rb').read())
"#;
    let hook = p.url("/connectors/s3/sns?token=videos-token");
    moto.boto3(script, &[&hook, input.to_str().unwrap()]).await;

    // The join announces the video at its onSuccess URL.
    let start = Instant::now();
    while announced.received().is_empty() {
        if start.elapsed() > Duration::from_secs(SLUICE_VIDEO_WAIT) {
            let logs: Vec<String> = p.workers.iter().map(|w| w.log_text()).collect();
            let calls = p.list_calls("").await;
            panic!("no announcement within 240 s; calls {calls:#?}\nworker logs:\n{}", logs.join("\n----\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = announced.received();
    let said = String::from_utf8_lossy(&got[0].body).into_owned();
    assert_eq!(got[0].headers["x-function-status"], "200", "{said}");
    let answer: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(
        (answer["bucket"].as_str(), answer["key"].as_str()),
        (Some("videos-out"), Some("reels/clip.colour.mp4"))
    );
    assert_eq!(answer["frames"], 40);

    let output = dir.path().join("clip.colour.mp4");
    let fetch = "s3 = boto3.client('s3', **kw)\nopen(sys.argv[2], 'wb').write(s3.get_object(Bucket='videos-out', Key='reels/clip.colour.mp4')['Body'].read())\nleft = s3.list_objects_v2(Bucket='videos-work').get('KeyCount', 0)\nassert left == 0, f'{left} work objects left'\n";
    moto.boto3(fetch, &[output.to_str().unwrap()]).await;
    assert_colourised(&output, &gray);
    assert!((duration_of(&output) - duration_of(&input)).abs() < 0.11, "same duration");

    // The pipeline: one split, four segments (one retried), one join; the tree shows them all under the split.
    let splits = p.list_calls("function=video-split").await;
    let [split] = &splits[..] else { panic!("one split: {splits:?}") };
    let split_id = split["callId"].as_str().unwrap();
    let pieces = p.list_calls("function=video-colourise").await;
    assert_eq!(pieces.len(), 4);
    let retried: Vec<&Value> = pieces.iter().filter(|c| c["attempts"] == 2).collect();
    assert_eq!(retried.len(), 1, "one segment failed its first attempt: {pieces:?}");
    assert!(pieces.iter().all(|c| c["status"] == "succeeded" && c["rootCallId"] == split_id));
    let start = Instant::now();
    let tree = loop {
        let tree: Value =
            p.http.get(p.url(&format!("/system/calls/{split_id}/tree"))).send().await.unwrap().json().await.unwrap();
        if tree["next"].as_array().is_some_and(|n| n.len() == 5) {
            break tree;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{tree}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The split reported its own progress, which the tree shows as it is.
    assert_eq!(tree["call"]["progress"]["message"], "segment 4/4 uploaded", "{tree}");
    let functions: Vec<&str> =
        tree["next"].as_array().unwrap().iter().map(|n| n["call"]["function"].as_str().unwrap()).collect();
    assert_eq!(functions, ["video-colourise", "video-colourise", "video-colourise", "video-colourise", "video-join"]);
    for piece in &tree["next"].as_array().unwrap()[..4] {
        assert_eq!(piece["call"]["progress"]["message"], "frame 10/10", "the last per-frame report: {piece}");
    }
    let shown = p.cli().args(["call", "tree", split_id]).output().await.unwrap();
    let printed = String::from_utf8_lossy(&shown.stdout);
    assert_eq!(printed.lines().count(), 6, "{printed}");
    assert!(printed.lines().all(|line| line.contains("succeeded")), "{printed}");
    let lines: Vec<&str> = printed.lines().collect();
    assert!(lines[1].starts_with("├─ video-colourise ") && lines[5].starts_with("└─ video-join "), "{printed}");
}
