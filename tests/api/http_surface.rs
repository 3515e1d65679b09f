//! The middleware stack seen from outside: envelopes for unknown routes and methods, body and
//! JSON limits, security headers, request ids, CORS and the docs switch.

use std::time::Duration;

use futures::stream;
use reqwest::Method;
use serde_json::json;

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error};

async fn unknown_routes_and_methods(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let json = expect_error(server.get("/v1/nothing-here", &admin).await, 404, "NOT_FOUND").await;
    insta::assert_json_snapshot!("not_found_envelope", json);
    let put = server.request(Method::PUT, "/v1/api-keys", Some(&admin)).send().await.unwrap();
    assert_eq!(put.status(), 405);
    let allow = put.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    expect_error(put, 405, "METHOD_NOT_ALLOWED").await;
    let trace = server.request(Method::TRACE, "/v1/api-keys", Some(&admin)).send().await.unwrap();
    assert_eq!(trace.status(), 405);
    server.stop().await;
}
dual!(unknown_routes_and_methods);

async fn security_headers_and_request_ids(backend: Backend) {
    let server = TestServer::start(backend).await;
    for path in ["/health", "/v1/api-keys", "/v1/missing"] {
        let response = server.client.get(server.url(path)).header("x-request-id", "trace-abc-123").send().await.unwrap();
        let h = response.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["x-request-id"], "trace-abc-123", "propagated");
        assert!(h.get("strict-transport-security").is_none(), "no HSTS without HTTPS_ENABLED");
        assert!(h.get("access-control-allow-origin").is_none(), "CORS is off by default");
    }
    // A hostile request id (too long / odd characters) is replaced, not echoed.
    let response = server.client.get(server.url("/health")).header("x-request-id", "x".repeat(300)).send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let request_line = server
        .stdout
        .json_lines()
        .into_iter()
        .find(|l| l["event"] == "request" && l["span"]["request_id"] == "trace-abc-123")
        .expect("request log line carries the request id");
    assert!(request_line["duration_ms"].is_number());
    server.stop().await;
}
dual!(security_headers_and_request_ids);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_when_https_enabled() {
    let server = TestServer::builder(Backend::Sqlite).env("HTTPS_ENABLED", "true").start().await;
    let response = server.client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(response.headers()["strict-transport-security"], "max-age=63072000; includeSubDomains");
    server.stop().await;
}

async fn body_limits(backend: Backend) {
    let server = TestServer::builder(backend)
        .env("MAX_REQUEST_BODY_SIZE_MB", "1")
        .env("MAX_INGEST_PAYLOAD_SIZE_MB", "1")
        .start()
        .await;
    let admin = server.admin_key.clone();
    let big = vec![b' '; 1024 * 1024 + 10];

    // Declared Content-Length over the limit: 413 before the body is read.
    let response = server.request(Method::POST, "/v1/api-keys", Some(&admin))
        .header("content-type", "application/json").body(big.clone()).send().await.unwrap();
    let json = expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(json["error"]["message"], "Request body exceeds the 1MB limit for this endpoint.");

    // Chunked (no Content-Length) over the limit: also 413, never 500.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..20).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
    let response = server.request(Method::POST, "/v1/api-keys", Some(&admin))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send().await.unwrap();
    expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;

    // Ingest routes name their own limit.
    let response = server.request(Method::POST, "/v1/ingest/generic", Some(&admin))
        .header("content-type", "application/json").body(big).send().await.unwrap();
    let json = expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(json["error"]["message"], "Request body exceeds the 1MB limit for ingest endpoints.");

    // A body just under the limit is read (and then judged on its content).
    let mut padded = br#"{"name": "padded", "scopes": ["admin"]}"#.to_vec();
    padded.extend(vec![b' '; 1024 * 1024 - padded.len() - 10]);
    let response = server.request(Method::POST, "/v1/api-keys", Some(&admin))
        .header("content-type", "application/json").body(padded).send().await.unwrap();
    assert_eq!(response.status(), 201);
    server.stop().await;
}
dual!(body_limits);

async fn malformed_json_never_500(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let send = |body: Vec<u8>, content_type: &'static str| {
        server.request(Method::POST, "/v1/api-keys", Some(&admin)).header("content-type", content_type).body(body).send()
    };
    let json = expect_error(send(b"{\"name\": ".to_vec(), "application/json").await.unwrap(), 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["type"], "json_invalid");
    expect_error(send(Vec::new(), "application/json").await.unwrap(), 422, "VALIDATION_ERROR").await;
    expect_error(send(b"[1,2]".to_vec(), "application/json").await.unwrap(), 422, "VALIDATION_ERROR").await;
    expect_error(send(b"name=x".to_vec(), "application/x-www-form-urlencoded").await.unwrap(), 415, "UNSUPPORTED_MEDIA_TYPE").await;
    // NUL characters, invalid UTF-8, lone surrogates and extreme nesting: 400.
    expect_error(send(br#"{"name": "a\u0000b", "scopes": ["admin"]}"#.to_vec(), "application/json").await.unwrap(), 400, "INVALID_JSON").await;
    expect_error(send(b"{\"name\": \"\xff\xfe\", \"scopes\": [\"admin\"]}".to_vec(), "application/json").await.unwrap(), 400, "INVALID_JSON").await;
    expect_error(send(br#"{"name": "\ud800", "scopes": ["admin"]}"#.to_vec(), "application/json").await.unwrap(), 400, "INVALID_JSON").await;
    let deep = format!("{{\"name\": {}1{}, \"scopes\": []}}", "[".repeat(10_000), "]".repeat(10_000));
    expect_error(send(deep.into_bytes(), "application/json").await.unwrap(), 400, "INVALID_JSON").await;
    // Huge arrays and key counts within the size limit are parsed, then refused by the schema.
    let wide = format!("{{\"name\": \"x\", \"scopes\": [{}\"admin\"]}}", "\"alerts:read\",".repeat(100_000));
    let json = expect_error(send(wide.into_bytes(), "application/json").await.unwrap(), 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["type"], "too_long");
    let many_keys: String = (0..100_000).map(|i| format!("\"k{i}\": 1,")).collect();
    let many = format!("{{{many_keys} \"name\": \"x\", \"scopes\": [\"admin\"]}}");
    let json = expect_error(send(many.into_bytes(), "application/json").await.unwrap(), 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["type"], "extra_forbidden");
    let health = server.client.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the server survived");
    server.stop().await;
}
dual!(malformed_json_never_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_allowed_and_denied() {
    let server = TestServer::builder(Backend::Sqlite).env("CORS_ALLOWED_ORIGINS", "https://soc.example.com").start().await;
    let preflight = |origin: &'static str| {
        server.client.request(Method::OPTIONS, server.url("/v1/api-keys"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://soc.example.com").await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://soc.example.com");
    assert_eq!(allowed.headers()["access-control-allow-credentials"], "true");
    let denied = preflight("https://evil.example.net").await.unwrap();
    assert!(denied.headers().get("access-control-allow-origin").is_none());
    let actual = server.client.get(server.url("/health")).header("origin", "https://evil.example.net").send().await.unwrap();
    assert!(actual.headers().get("access-control-allow-origin").is_none());
    server.stop().await;

    // Off by default: even a preflight gets no CORS grant.
    let server = TestServer::start(Backend::Sqlite).await;
    let response = server.client.request(Method::OPTIONS, server.url("/v1/api-keys"))
        .header("origin", "https://soc.example.com").header("access-control-request-method", "GET").send().await.unwrap();
    assert!(response.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_and_docs_follow_the_switch() {
    let server = TestServer::start(Backend::Sqlite).await;
    let spec = body(server.client.get(server.url("/openapi.json")).send().await.unwrap()).await;
    assert!(spec["paths"]["/v1/api-keys"]["post"].is_object(), "{spec}");
    assert!(spec["paths"]["/v1/api-keys/{key_uuid}"]["patch"].is_object());
    let docs = server.client.get(server.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    // Self-contained (air-gapped SOCs): the UI's script comes from this server, nothing else.
    let csp = docs.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(!csp.contains("http"), "{csp}");
    let html = docs.text().await.unwrap();
    assert!(html.contains("/docs/scalar.js") && !html.contains("https://"), "{html}");
    let script = server.client.get(server.url("/docs/scalar.js")).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(script.bytes().await.unwrap().len() > 100_000);
    server.stop().await;

    let server = TestServer::builder(Backend::Sqlite).env("DOCS_ENABLED", "false").start().await;
    expect_error(server.client.get(server.url("/openapi.json")).send().await.unwrap(), 404, "NOT_FOUND").await;
    server.stop().await;
    let _ = json!({});
}
