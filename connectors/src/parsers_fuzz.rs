//! Property tests of the connectors' parsers of outside input — webhook signatures, CloudEvents in both HTTP
//! modes, S3/MinIO and SNS notification documents: any input gets an answer, none a panic. Failing inputs found
//! are kept in `proptest-regressions/` and replayed first.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use hmac::{KeyInit, Mac};
use proptest::prelude::*;

use crate::{hooks, ingress, s3::records, triggers};

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(*name), HeaderValue::try_from(value.as_str())) {
            map.insert(name, value);
        }
    }
    map
}

fn github(secret: &[u8], body: &[u8]) -> String {
    let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap().chain_update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

proptest! {
    #[test]
    fn webhook_signatures_never_panic(
        github_header in "\\PC{0,80}",
        generic_header in prop_oneof!["t=-?[0-9]{1,20},v1=[0-9a-f]{0,70}", "\\PC{0,80}"],
        body in proptest::collection::vec(any::<u8>(), 0..200),
        use_github in any::<bool>(),
    ) {
        let name = if use_github { "x-hub-signature-256" } else { "x-sluice-signature" };
        let value = if use_github { github_header } else { generic_header };
        prop_assert!(hooks::verify(b"secret", &headers(&[(name, value)]), &body).is_err() || !use_github);
    }

    #[test]
    fn a_github_signature_holds_for_its_body_only(
        body in proptest::collection::vec(any::<u8>(), 1..200),
        flip in any::<prop::sample::Index>(),
    ) {
        let signed = headers(&[("x-hub-signature-256", github(b"secret", &body))]);
        let id = hooks::verify(b"secret", &signed, &body);
        prop_assert!(id.is_ok());
        let mut tampered = body.clone();
        let i = flip.index(tampered.len());
        tampered[i] ^= 1;
        prop_assert!(hooks::verify(b"secret", &signed, &tampered).is_err());
    }

    #[test]
    fn cloudevents_in_binary_mode(
        id in "\\PC{0,30}", source in "\\PC{0,40}", kind in "\\PC{0,40}", spec in "(1\\.0|0\\.3|\\PC{0,5})",
        content_type in "(application/json|text/plain|\\PC{0,20})",
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let map = headers(&[
            ("ce-specversion", spec), ("ce-id", id), ("ce-source", source), ("ce-type", kind),
            ("content-type", content_type),
        ]);
        if let Ok(event) = cloudevents::binding::http::to_event(&map, body) {
            let event = ingress::from_sdk(event);
            let _ = triggers::impersonation(&event);
        }
    }

    #[test]
    fn cloudevents_in_structured_mode(body in prop_oneof![
        "\\{\"specversion\":\"1\\.0\",\"id\":\"\\PC{0,10}\",\"source\":\"\\PC{0,10}\",\"type\":\"\\PC{0,10}\"(,\"data\":(\\{\\}|\"x\"|[0-9]{1,5}|null))?\\}",
        "\\PC{0,120}",
    ]) {
        let map = headers(&[("content-type", "application/cloudevents+json".to_owned())]);
        if let Ok(event) = cloudevents::binding::http::to_event(&map, body.into_bytes()) {
            let _ = triggers::impersonation(&ingress::from_sdk(event));
        }
    }

    #[test]
    fn s3_and_minio_documents(
        bucket in "\\PC{0,70}", key in "\\PC{0,60}", name in "\\PC{0,30}", size in any::<i64>(),
        noise in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let document = serde_json::json!({"Records": [{"eventName": name, "eventTime": "2026-11-30T00:00:00Z",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": size, "eTag": "e"}}}]});
        for bytes in [serde_json::to_vec(&document).unwrap(), noise] {
            if let Ok(notification) = serde_json::from_slice::<records::Notification>(&bytes) {
                for record in &notification.records {
                    let _ = records::to_event(record);
                    let _ = records::subject(&record.s3.bucket.name);
                }
            }
        }
    }

    #[test]
    fn s3_keys_decode(key in "[%+a-zA-Z0-9]{0,40}") {
        let _ = records::decode_key(&key);
    }

    #[test]
    fn sns_documents(kind in "\\PC{0,30}", message in "\\PC{0,80}", url in "\\PC{0,60}") {
        let document = serde_json::json!({"Type": kind, "Message": message, "SubscribeURL": url, "TopicArn": "t"});
        let _ = serde_json::from_value::<crate::s3::http::SnsMessage>(document);
        if let Ok(inner) = serde_json::from_str::<records::Notification>(&message) {
            for record in &inner.records {
                let _ = records::to_event(record);
            }
        }
    }
}
