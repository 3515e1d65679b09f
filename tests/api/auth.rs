//! Authentication: every failure reason, uniform 401 bodies, scopes, expiry, revocation, audit.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error};

fn audit_reasons(server: &TestServer) -> Vec<String> {
    server
        .stdout
        .json_lines()
        .into_iter()
        .filter(|l| l["event"] == "auth_failure")
        .map(|l| l["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn each_failure_reason_is_a_uniform_401_and_audited(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (reader, reader_uuid) = server.create_key(&["alerts:read"], json!({})).await;
    let unknown = format!("cai_{}", "A".repeat(43));
    let wrong_secret = format!("{}{}", &reader[..8], "B".repeat(39));
    let mut bodies: Vec<Value> = Vec::new();
    for header in [None, Some("Basic abc".to_owned()), Some("Bearer not-a-key".to_owned()), Some(format!("Bearer {unknown}")), Some(format!("Bearer {wrong_secret}"))] {
        let mut request = server.client.get(server.url("/v1/api-keys"));
        if let Some(h) = &header {
            request = request.header("authorization", h);
        }
        let json = expect_error(request.send().await.unwrap(), 401, "UNAUTHORIZED").await;
        bodies.push(json);
    }
    // Revoked keys fail exactly like unknown ones.
    let revoke = server.request(Method::DELETE, &format!("/v1/api-keys/{reader_uuid}"), Some(&server.admin_key)).send().await.unwrap();
    assert_eq!(revoke.status(), 204);
    bodies.push(expect_error(server.get("/v1/api-keys", &reader).await, 401, "UNAUTHORIZED").await);
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "401 bodies differ: {bodies:?}");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let reasons = audit_reasons(&server);
    for expected in ["missing_header", "invalid_format", "invalid_key"] {
        assert!(reasons.iter().any(|r| r == expected), "no {expected} audit event in {reasons:?}");
    }
    // "Basic abc" is a missing Bearer header; "not-a-key" a format failure; unknown, wrong and
    // revoked keys are invalid_key.
    assert_eq!(reasons.iter().filter(|r| *r == "missing_header").count(), 2);
    assert_eq!(reasons.iter().filter(|r| *r == "invalid_key").count(), 3);
    let audit_line = server.stdout.json_lines().into_iter().find(|l| l["event"] == "auth_failure" && l["reason"] == "invalid_key").unwrap();
    assert_eq!(audit_line["path"], "/v1/api-keys");
    assert_eq!(audit_line["method"], "GET");
    assert_eq!(audit_line["client_ip"], "127.0.0.1");
    assert!(audit_line["timestamp"].is_string());
    assert_eq!(audit_line["level"], "WARN");
    server.stop().await;
}
dual!(each_failure_reason_is_a_uniform_401_and_audited);

async fn scopes_are_enforced(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (reader, _) = server.create_key(&["alerts:read"], json!({"key_type": "agent"})).await;
    let json = expect_error(server.get("/v1/api-keys", &reader).await, 403, "FORBIDDEN").await;
    assert_eq!(json["error"]["details"]["required_scopes"], json!(["admin"]));
    assert_eq!(json["error"]["message"], "Insufficient scope. Required: admin");
    // A non-admin key cannot mint keys (privilege escalation).
    let create = server.post_json("/v1/api-keys", &reader, &json!({"name": "x", "scopes": ["admin"]})).await;
    expect_error(create, 403, "FORBIDDEN").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let scope_line = server.stdout.json_lines().into_iter().find(|l| l["reason"] == "insufficient_scope").expect("audited");
    assert_eq!(scope_line["required_scope"], "admin");
    assert_eq!(scope_line["key_prefix"], &reader[..8]);
    server.stop().await;
}
dual!(scopes_are_enforced);

async fn expired_keys_answer_key_expired(backend: Backend) {
    let server = TestServer::start(backend).await;
    let expires = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (key, _) = server.create_key(&["admin"], json!({"expires_at": expires})).await;
    assert_eq!(server.get("/v1/api-keys", &key).await.status(), 200, "valid before expiry");
    tokio::time::sleep(Duration::from_millis(2300)).await;
    expect_error(server.get("/v1/api-keys", &key).await, 401, "KEY_EXPIRED").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(audit_reasons(&server).iter().any(|r| r == "key_expired"));
    server.stop().await;
}
dual!(expired_keys_answer_key_expired);

/// A revoke on one replica is honoured by another replica that had the key cached.
async fn revocation_reaches_other_replicas(backend: Backend) {
    let first = TestServer::builder(backend.clone()).env("AUTH_CACHE_REFRESH_SECONDS", "1").start().await;
    let second = TestServer::builder(backend).env("AUTH_CACHE_REFRESH_SECONDS", "1").env("BOOTSTRAP_ADMIN_KEY", "false").sharing(&first).start().await;
    let (key, uuid) = first.create_key(&["admin"], json!({})).await;
    assert_eq!(second.get("/v1/api-keys", &key).await.status(), 200, "second replica caches the key");
    let revoke = first.request(Method::DELETE, &format!("/v1/api-keys/{uuid}"), Some(&first.admin_key)).send().await.unwrap();
    assert_eq!(revoke.status(), 204);
    // This replica: at once.
    expect_error(first.get("/v1/api-keys", &key).await, 401, "UNAUTHORIZED").await;
    // The other replica: within the refresh interval (1 s here).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    expect_error(second.get("/v1/api-keys", &key).await, 401, "UNAUTHORIZED").await;
    second.stop().await;
    first.stop().await;
}
dual!(revocation_reaches_other_replicas);

/// Neither the full key, its hash, nor the Authorization header ever appear in the output.
async fn secrets_never_reach_logs_or_responses(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, uuid) = server.create_key(&["alerts:read"], json!({})).await;
    let _ = server.get("/v1/api-keys", &key).await;
    let _ = server.get("/v1/api-keys", &format!("{key}x")).await;
    let listing = server.get("/v1/api-keys", &server.admin_key).await.text().await.unwrap();
    let single = server.get(&format!("/v1/api-keys/{uuid}"), &server.admin_key).await.text().await.unwrap();
    for text in [&listing, &single] {
        assert!(!text.contains(&key), "key leaked in a response");
        assert!(!text.contains("argon2"), "hash leaked in a response");
        assert!(!text.contains("key_hash") && !text.contains("lookup_hash"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = server.stdout.text();
    assert!(!logs.contains(&key[8..]), "key material in logs");
    assert!(!logs.contains(&server.admin_key[8..]), "admin key material in logs");
    assert!(!logs.contains("$argon2"), "hash in logs");
    assert!(logs.contains(&key[..8]), "the display prefix is what logs carry");
    server.stop().await;
}
dual!(secrets_never_reach_logs_or_responses);

async fn last_used_is_recorded(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, uuid) = server.create_key(&["admin"], json!({})).await;
    let before = body(server.get(&format!("/v1/api-keys/{uuid}"), &server.admin_key).await).await;
    assert_eq!(before["data"]["last_used_at"], Value::Null);
    assert_eq!(server.get("/v1/api-keys", &key).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = body(server.get(&format!("/v1/api-keys/{uuid}"), &server.admin_key).await).await;
    assert!(after["data"]["last_used_at"].is_string(), "{after}");
    server.stop().await;
}
dual!(last_used_is_recorded);
