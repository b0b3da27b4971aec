//! S3 event notifications (the AWS `Records` schema, which MinIO uses too) turned into one CloudEvent per
//! object: `type` `sluice.s3.object.created` / `…removed`, `source` `s3://{bucket}`, `subject` the key, and data
//! `{bucket, key, size, etag, contentType, eventName, eventTime}`.
//!
//! Keys arrive URL-encoded with `+` for spaces (form encoding); they are decoded here, so `my photo+1.png`
//! and non-ASCII names reach the function as they are in the bucket.

use serde::Deserialize;
use serde_json::json;
use sluice_contracts::{EventMessage, event::subject_token, names};

use crate::triggers::S3_TYPE_PREFIX;

#[derive(Deserialize)]
pub struct Notification {
    #[serde(rename = "Records", default)]
    pub records: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub event_name: String,
    #[serde(default)]
    pub event_time: Option<String>,
    pub s3: S3Entity,
}

#[derive(Deserialize)]
pub struct S3Entity {
    pub bucket: Bucket,
    pub object: Object,
}

#[derive(Deserialize)]
pub struct Bucket {
    pub name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    pub key: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default, rename = "eTag")]
    pub etag: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub sequencer: Option<String>,
}

/// An S3 event key as the object's real name.
pub fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// `ObjectCreated:Put` and `s3:ObjectCreated:Put` both become `s3:ObjectCreated:Put`.
fn normalized_event_name(name: &str) -> String {
    if name.starts_with("s3:") { name.to_owned() } else { format!("s3:{name}") }
}

/// The CloudEvent for one record.
pub fn to_event(record: &Record) -> EventMessage {
    let event_name = normalized_event_name(&record.event_name);
    let kind = if event_name.contains("ObjectRemoved") { "removed" } else { "created" };
    let bucket = &record.s3.bucket.name;
    let key = decode_key(&record.s3.object.key);
    let object = &record.s3.object;
    let data = json!({
        "bucket": bucket, "key": key, "size": object.size, "etag": object.etag,
        "contentType": object.content_type, "eventName": event_name, "eventTime": record.event_time,
    });
    let mut event = EventMessage::new(format!("s3://{bucket}"), format!("{S3_TYPE_PREFIX}{kind}"), data.to_string());
    // The same notification delivered twice is one event: its id comes from what it describes.
    let version = object.sequencer.as_deref().or(object.etag.as_deref()).unwrap_or_default();
    event.id = format!("{event_name}:{bucket}/{key}:{version}");
    event.subject = Some(key);
    event.content_type = Some("application/json".into());
    if let Some(time) = record.event_time.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
        event.time = Some(time.with_timezone(&chrono::Utc));
    }
    event
}

/// Subject in `SLUICE_EVENTS` for an S3 event of `bucket`.
pub fn subject(bucket: &str) -> String {
    format!("{}.s3.{}", names::EVENTS_PREFIX, subject_token(bucket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_decoded_like_s3_encodes_them() {
        assert_eq!(decode_key("my+photo%2B1.png"), "my photo+1.png");
        assert_eq!(decode_key("caf%C3%A9/%E6%97%A5%E6%9C%AC.jpg"), "café/日本.jpg");
        assert_eq!(decode_key("plain/key.txt"), "plain/key.txt");
    }

    #[test]
    fn a_minio_record_becomes_one_event() {
        let json = r#"{"EventName":"s3:ObjectCreated:Put","Key":"in/a+b.png","Records":[{"eventVersion":"2.0",
            "eventSource":"minio:s3","eventTime":"2026-11-22T10:00:00.000Z","eventName":"s3:ObjectCreated:Put",
            "s3":{"bucket":{"name":"in"},"object":{"key":"a+b.png","size":42,"eTag":"abc","contentType":"image/png",
            "sequencer":"17A"}}}]}"#;
        let n: Notification = serde_json::from_str(json).unwrap();
        let event = to_event(&n.records[0]);
        assert_eq!(event.event_type, "sluice.s3.object.created");
        assert_eq!(event.source, "s3://in");
        assert_eq!(event.subject.as_deref(), Some("a b.png"));
        let data: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
        assert_eq!(data["key"], "a b.png");
        assert_eq!(data["size"], 42);
        assert_eq!(data["eventName"], "s3:ObjectCreated:Put");
        assert_eq!(to_event(&n.records[0]).id, event.id, "the same record is the same event");
    }

    #[test]
    fn aws_names_are_normalized_and_removals_typed() {
        let json =
            r#"{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}"#;
        let n: Notification = serde_json::from_str(json).unwrap();
        let event = to_event(&n.records[0]);
        assert_eq!(event.event_type, "sluice.s3.object.removed");
        assert!(String::from_utf8_lossy(&event.data).contains("s3:ObjectRemoved:Delete"));
    }
}
