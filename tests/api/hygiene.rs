//! Input hygiene and the defects of issue 8 an outside audit found at the surface: NUL in URLs
//! (a), the provider test endpoint echoing credentials (c), content types on ingest (d),
//! duplicate JSON keys (f), one payload limit for both ingest paths (i), hyper's own 400s (j),
//! and signed sources submitted through `POST /v1/alerts` (k).

use std::time::Duration;

use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error, fixture};

/// (a) `%00` in a query value or a path segment is a 400 envelope on every kind of route (typed
/// query, raw query, path parameter, fallback), never a driver error.
async fn nul_in_urls_is_a_client_error(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    for path in [
        "/v1/alerts?status=Open%00",              // raw query (alerts' own parser)
        "/v1/alerts?source_name=a%00b",
        "/v1/detection-rules?mitre_tactic=x%00", // typed query
        "/v1/context-documents?document_type=%00",
        "/v1/api-keys?page=1&x%00=1",            // NUL in a key
        "/v1/enrichment-providers?provider_name=%00",
    ] {
        let json = expect_error(server.get(path, &admin).await, 400, "INVALID_QUERY").await;
        assert!(json["error"]["message"].as_str().unwrap().contains("NUL"), "{path}: {json}");
    }
    for path in ["/v1/sources/a%00b", "/v1/alerts/%00", "/v1/nothing%00here"] {
        expect_error(server.get(path, &admin).await, 400, "INVALID_PATH").await;
    }
    let response = server
        .request(Method::POST, "/v1/ingest/gen%00eric", Some(&admin))
        .header("content-type", "application/json")
        .body(r#"{"title": "x"}"#)
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "INVALID_PATH").await;
    // `%2500` is the harmless text `%00`.
    assert_eq!(server.get("/v1/alerts?source_name=%2500", &admin).await.status(), 200);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 0);
    assert_eq!(server.client.get(server.url("/health")).send().await.unwrap().status(), 200);
    server.stop().await;
}
dual!(nul_in_urls_is_a_client_error);

/// (f) A key repeated in any object of any body is a 400: the classic "last one wins" admin
/// escalation does not create a key, and ingest refuses it too.
async fn duplicate_json_keys_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let keys_before = server.db_count("SELECT COUNT(*) FROM api_keys").await;
    for text in [
        r#"{"name":"x","scopes":["alerts:read"],"scopes":["admin"]}"#,
        r#"{"name":"x","scopes":["alerts:read"],"allowed_sources":["a"],"name":"y"}"#,
    ] {
        let response = server
            .request(Method::POST, "/v1/api-keys", Some(&admin))
            .header("content-type", "application/json")
            .body(text)
            .send()
            .await
            .unwrap();
        let json = expect_error(response, 400, "INVALID_JSON").await;
        assert!(json["error"]["message"].as_str().unwrap().contains("duplicate key"), "{json}");
    }
    assert_eq!(server.db_count("SELECT COUNT(*) FROM api_keys").await, keys_before, "no key was created");
    let nested = r#"{"source_name":"generic","payload":{"title":"x","severity":"high","severity":"low"}}"#;
    let response = server
        .request(Method::POST, "/v1/alerts", Some(&admin))
        .header("content-type", "application/json")
        .body(nested)
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "INVALID_JSON").await;
    let response = server
        .request(Method::POST, "/v1/ingest/generic", Some(&admin))
        .header("content-type", "application/json")
        .body(r#"{"title":"x","nested":{"a":1,"a":2}}"#)
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "INVALID_JSON").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 0);
    server.stop().await;
}
dual!(duplicate_json_keys_are_refused);

/// (d) Both ingest routes answer 415 for anything but JSON, before reading the body.
async fn ingest_requires_a_json_content_type(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let generic = r#"{"title": "x", "severity": "high"}"#;
    let programmatic = r#"{"source_name": "generic", "payload": {"title": "x"}}"#;
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/xml"), Some("text/json"), None] {
        for (path, text) in [("/v1/ingest/generic", generic), ("/v1/alerts", programmatic)] {
            let mut request = server.request(Method::POST, path, Some(&admin)).body(text);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            expect_error(request.send().await.unwrap(), 415, "UNSUPPORTED_MEDIA_TYPE").await;
        }
    }
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 0);
    for content_type in ["application/json", "application/json; charset=utf-8", "application/vnd.siem+json"] {
        let response = server
            .request(Method::POST, "/v1/ingest/generic", Some(&admin))
            .header("content-type", content_type)
            .body(generic)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{content_type}");
    }
    server.stop().await;
}
dual!(ingest_requires_a_json_content_type);

/// (i) One payload limit (1 MB of compact JSON) on both ingest paths, the body limit above it;
/// context documents hold at most 1 MB of content.
async fn one_payload_limit_for_both_ingest_paths(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let big = json!({"title": "big", "severity": "low", "blob": "x".repeat(1_100_000)});
    let response = server
        .request(Method::POST, "/v1/ingest/generic", Some(&admin))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&big).unwrap())
        .send()
        .await
        .unwrap();
    let webhook = expect_error(response, 422, "VALIDATION_ERROR").await;
    let programmatic =
        expect_error(server.post_json("/v1/alerts", &admin, &json!({"source_name": "generic", "payload": big})).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(webhook["error"]["details"], programmatic["error"]["details"], "the same check on both paths");
    assert!(webhook["error"]["details"]["errors"][0]["msg"].as_str().unwrap().starts_with("payload exceeds maximum size of 1 MB"), "{webhook}");
    // Just under the limit passes on both.
    let fits = json!({"title": "fits", "severity": "low", "blob": "x".repeat(1_000_000)});
    let response = server
        .request(Method::POST, "/v1/ingest/generic", Some(&admin))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&fits).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    // Bodies over MAX_INGEST_PAYLOAD_SIZE_MB (2 MB by default) stop at the body limit, same on both.
    // The declared length alone decides it, so only the head is sent: a client still writing a
    // body the server has already refused would race the server's close (a broken pipe).
    for path in ["/v1/ingest/generic", "/v1/alerts"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            2 * 1024 * 1024 + 1
        );
        let answer = response_to_head(&server, head.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("\"code\":\"PAYLOAD_TOO_LARGE\""), "{answer}");
        assert!(answer.contains("Request body exceeds the 2MB limit for ingest endpoints."), "{answer}");
    }
    // Context documents: at most 1 MB of content.
    let document = |content: String| json!({"title": "Runbook", "document_type": "runbook", "content": content, "is_global": true});
    let json = expect_error(server.post_json("/v1/context-documents", &admin, &document("y".repeat(1_048_577))).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["loc"], json!(["body", "content"]), "{json}");
    let response = server.post_json("/v1/context-documents", &admin, &document("y".repeat(1_048_576))).await;
    assert_eq!(response.status(), 201);
    server.stop().await;
}
dual!(one_payload_limit_for_both_ingest_paths);

/// Sends a request head and reads one whole response (head and `Content-Length` body), without
/// waiting for the connection to close.
async fn response_to_head(server: &TestServer, head: &[u8]) -> String {
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut chunk = [0u8; 8192];
        loop {
            let text = String::from_utf8_lossy(&answer).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                    .unwrap_or(0);
                if answer.len() >= end + 4 + length {
                    return;
                }
            }
            let n = stream.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            answer.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("a whole response");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends raw bytes and reads the whole answer (the server closes after a protocol error).
async fn raw_exchange(server: &TestServer, request: &[u8]) -> String {
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await.expect("server answers and closes").unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// (j) Requests hyper cannot parse get the envelope and the security headers, not a bare 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_get_the_envelope() {
    let server = TestServer::start(Backend::Sqlite).await;
    let cases: [(&[u8], &str, &str); 4] = [
        (b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", "400", "BAD_REQUEST"),
        (b"POST /v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", "400", "BAD_REQUEST"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: \x01\r\n\r\n", "400", "BAD_REQUEST"),
        (b"GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n", "400", "BAD_REQUEST"),
    ];
    for (request, status, code) in cases {
        let answer = raw_exchange(&server, request).await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{answer}");
        let lower = head.to_ascii_lowercase();
        for header in ["x-content-type-options: nosniff", "x-frame-options: deny", "cache-control: no-store", "content-type: application/json"] {
            assert!(lower.contains(header), "{header} missing: {answer}");
        }
        let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert_eq!(json["error"]["code"], code, "{answer}");
    }
    // A well-formed request on a fresh connection is untouched.
    let answer = raw_exchange(&server, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    server.stop().await;
}

const KEYS: [&str; 3] = ["k9", "tenkeyab12", "qzx-echo-secret-zqxw"];

/// A vendor that echoes the key it received everywhere it can: the body (as a value, as an
/// object key, inside text), a redirect-like header, form-encoded in a URL.
async fn echo(headers: HeaderMap, Query(query): Query<std::collections::HashMap<String, String>>) -> Response {
    let key = headers.get("x-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut encoded = String::new();
    form_urlencoded::Serializer::new(&mut encoded).append_pair("key", &key);
    let mut body = json!({
        "received": key, "query": query, "note": format!("invalid key {key}, try again"),
        "next": format!("https://v.example/next?{encoded}"),
    });
    body[key.as_str()] = json!(true);
    (
        [("location", format!("https://v.example/login?{encoded}")), ("x-echo", key)],
        axum::Json(body),
    )
        .into_response()
}

/// (c) Whatever a vendor echoes, no credential value (however short) appears in the provider
/// test endpoint's output; masks show none of it.
async fn provider_test_output_never_shows_credentials(backend: Backend) {
    let vendor = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = vendor.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(vendor, axum::Router::new().route("/echo", axum::routing::get(echo))).await });
    let server = TestServer::builder(backend)
        .env("ENCRYPTION_KEY", crate::enrichment::TEST_KEY)
        .env("SSRF_ALLOWED_HOSTS", "127.0.0.1")
        .env("RATE_LIMIT_ENRICHMENT_PER_MINUTE", "100000")
        .env("ENRICHMENT_REGISTRY_REFRESH_MS", "200")
        .start()
        .await;
    let admin = server.admin_key.clone();
    for (index, key) in KEYS.iter().enumerate() {
        let provider = json!({
            "provider_name": format!("echo{index}"), "display_name": "Echo", "supported_indicator_types": ["ip"],
            "http_config": {"steps": [
                {"name": "lookup", "url": format!("http://127.0.0.1:{port}/echo"), "headers": {"x-key": "{{auth.api_key}}"},
                 "query_params": {"k": "{{auth.api_key}}"}, "expected_status": [200]},
                {"name": "broken", "url": "http://127.0.0.1:1/down", "query_params": {"key": "{{auth.api_key}}"}, "optional": true}
            ]},
            "auth_type": "api_key", "auth_config": {"api_key": key},
        });
        let response = server.post_json("/v1/enrichment-providers", &admin, &provider).await;
        let created = body(response).await;
        let uuid = created["data"]["uuid"].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
        let path = format!("/v1/enrichment-providers/{uuid}/test");
        let response = server.post_json(&path, &admin, &json!({"indicator_type": "ip", "indicator_value": "45.33.32.66"})).await;
        assert_eq!(response.status(), 200);
        let output = body(response).await;
        let text = output.to_string();
        assert_eq!(output["data"]["steps"][0]["response_status_code"], 200, "{text}");
        let mut encoded = String::new();
        form_urlencoded::Serializer::new(&mut encoded).append_pair("k", key);
        for spelling in [key.to_string(), encoded[2..].to_owned()] {
            assert!(!text.contains(&spelling), "{key}: '{spelling}' appears in {text}");
        }
        // No part of a longer key either (no first-4/last-4 hint).
        if key.len() >= 10 {
            assert!(!text.contains(&key[..4]) && !text.contains(&key[key.len() - 4..]), "{key}: {text}");
        }
        assert!(text.contains("****"), "{text}");
    }
    server.stop().await;
}
dual!(provider_test_output_never_shows_credentials);

async fn ingest_event(server: &TestServer, uuid: &str) -> Value {
    let json = body(server.get(&format!("/v1/alerts/{uuid}/activity?page_size=500"), &server.admin_key).await).await;
    json["data"].as_array().unwrap().iter().find(|e| e["event_type"] == "alert_ingested").cloned().unwrap_or_else(|| panic!("{json}"))
}

fn signature(secret: &str, body: &[u8]) -> String {
    hex::encode(calseta::ingest::signature::hmac_sha256(secret.as_bytes(), None, body))
}

/// (k) `POST /v1/alerts` naming a signed source: only keys restricted to that source, recorded
/// as API-submitted, and refused in production unless explicitly waived.
async fn signed_sources_through_the_api(backend: Backend) {
    let server = TestServer::builder(backend).env("SENTINEL_WEBHOOK_SECRET", "s3ntinel").start().await;
    let admin = server.admin_key.clone();
    let payload: Value = serde_json::from_str(&fixture("sentinel_alert.json")).unwrap();
    let submission = json!({"source_name": "sentinel", "payload": payload});
    // An unrestricted key cannot pass an alert off as Sentinel's without the signature.
    let json = expect_error(server.post_json("/v1/alerts", &admin, &submission).await, 403, "SOURCE_NOT_ALLOWED").await;
    assert!(json["error"]["message"].as_str().unwrap().contains("signed"), "{json}");
    let (sentinel_key, _) = server.create_key(&["alerts:write"], json!({"allowed_sources": ["sentinel"]})).await;
    let response = server.post_json("/v1/alerts", &sentinel_key, &submission).await;
    assert_eq!(response.status(), 202);
    let api_uuid = body(response).await["data"]["alert_uuid"].as_str().unwrap().to_owned();
    let event = ingest_event(&server, &api_uuid).await;
    assert_eq!(event["references"]["submitted_via"], "api", "{event}");
    assert_eq!(event["references"]["signature_verified"], false, "{event}");
    assert_eq!(event["actor_key_prefix"], sentinel_key[..8], "{event}");
    // The raw payload is stored as sent.
    let alert = body(server.get(&format!("/v1/alerts/{api_uuid}"), &admin).await).await;
    assert!(alert["data"].to_string().contains(payload["properties"]["title"].as_str().unwrap()), "{alert}");
    // The signed webhook path is recorded as verified. (A different title avoids dedup.)
    let mut signed_payload = payload.clone();
    signed_payload["properties"]["title"] = json!("Signed copy");
    let bytes = serde_json::to_vec(&signed_payload).unwrap();
    let response = server
        .request(Method::POST, "/v1/ingest/sentinel", Some(&admin))
        .header("content-type", "application/json")
        .header("x-webhook-signature", signature("s3ntinel", &bytes))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let uuid = body(response).await["data"]["alert_uuid"].as_str().unwrap().to_owned();
    let event = ingest_event(&server, &uuid).await;
    assert_eq!((event["references"]["submitted_via"].clone(), event["references"]["signature_verified"].clone()), (json!("webhook"), json!(true)));
    server.stop().await;
}
dual!(signed_sources_through_the_api);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_signed_sources_through_the_api_unless_waived() {
    let production = [
        ("ENVIRONMENT", "production"),
        ("ENCRYPTION_KEY", "q6Zt1m3sJ0xq4m2w5c8v0b7n9k1j3h5g7f9d2s4a6p8="),
        ("HTTPS_ENABLED", "true"),
        ("SENTINEL_WEBHOOK_SECRET", "s3ntinel"),
        ("ELASTIC_WEBHOOK_SECRET", "3lastic"),
        ("SPLUNK_WEBHOOK_SECRET", "spl0nk"),
    ];
    let payload: Value = serde_json::from_str(&fixture("sentinel_alert.json")).unwrap();
    let submission = json!({"source_name": "sentinel", "payload": payload});
    for waived in [false, true] {
        let mut builder = TestServer::builder(Backend::Sqlite);
        for (k, v) in production {
            builder = builder.env(k, v);
        }
        if waived {
            builder = builder.env("INGEST_API_SIGNED_SOURCES_ALLOWED", "sentinel");
        }
        let server = builder.start().await;
        let (sentinel_key, _) = server.create_key(&["alerts:write"], json!({"allowed_sources": ["sentinel"]})).await;
        let response = server.post_json("/v1/alerts", &sentinel_key, &submission).await;
        if waived {
            assert_eq!(response.status(), 202);
        } else {
            let json = expect_error(response, 403, "SIGNED_SOURCE_REQUIRES_WEBHOOK").await;
            assert!(json["error"]["message"].as_str().unwrap().contains("/v1/ingest/sentinel"), "{json}");
        }
        // Unsigned sources are unaffected.
        let generic = json!({"source_name": "generic", "payload": {"title": "x", "severity": "low"}});
        assert_eq!(server.post_json("/v1/alerts", &server.admin_key, &generic).await.status(), 202);
        server.stop().await;
    }
}
