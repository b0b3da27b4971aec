//! `GET /openapi.json`: the document generated from the gateway's route table is served to anyone, is the
//! one checked in as `docs/openapi.json`, and every operation in it is a route the gateway serves.

use serde_json::Value;

use crate::support::Platform;

#[tokio::test]
async fn the_served_document_is_the_checked_in_one_and_names_only_served_routes() {
    let platform = Platform::start(1, &[], &[]).await;
    let anonymous = reqwest::Client::new();
    let r = anonymous.get(platform.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the document describes the API to anyone, as /healthz does");
    assert_eq!(r.headers()["content-type"], "application/json");
    let served: Value = r.json().await.unwrap();
    let checked_in: Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))).unwrap();
    assert_eq!(served, checked_in, "docs/openapi.json is what the gateway serves");
    assert_eq!(served["openapi"], "3.1.0");

    // Every documented operation reaches a handler: with admin credentials, nothing documented is a 405 (a
    // path without that method) or a 404 without the API's JSON error body (a path the router lacks).
    let mut operations = 0;
    for (path, item) in served["paths"].as_object().unwrap() {
        let concrete = path.replace("{name}", "nope").replace("{id}", "nope").replace("{path}", "nope");
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = platform.http.request(method.clone(), platform.url(&concrete)).body("{}").send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path}");
            if status == 404 {
                let error: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{method} {path}: {body}"));
                assert!(error["error"].is_string(), "{method} {path}: {body}");
            }
        }
    }
    assert!(operations >= 25, "{operations} operations documented");
    // Guarded operations say so.
    let list = &served["paths"]["/system/functions"]["get"];
    assert!(list["security"].as_array().is_some_and(|s| !s.is_empty()), "{list}");
    assert!(list["responses"]["401"].is_object(), "{list}");
}
