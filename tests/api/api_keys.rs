//! `/v1/api-keys` CRUD and its input validation.

use reqwest::Method;
use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error};

async fn create_list_get_patch_delete(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let created = server
        .post_json("/v1/api-keys", &admin, &json!({"name": "ci-ingest", "scopes": ["alerts:write"], "key_type": "agent", "allowed_sources": ["splunk"]}))
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let created = body(created).await;
    let data = &created["data"];
    let key = data["key"].as_str().unwrap().to_owned();
    let uuid = data["uuid"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 47);
    assert_eq!(data["key_prefix"], &key[..8]);
    assert_eq!(data["scopes"], json!(["alerts:write"]));
    assert_eq!(data["key_type"], "agent");
    assert_eq!(data["allowed_sources"], json!(["splunk"]));
    assert_eq!(data["is_active"], true);
    assert_eq!(created["meta"], json!({}));
    let mut shape: Vec<&str> = data.as_object().unwrap().keys().map(String::as_str).collect();
    shape.sort();
    insta::assert_json_snapshot!("api_key_created_fields", shape);

    let listing = body(server.get("/v1/api-keys", &admin).await).await;
    assert_eq!(listing["meta"], json!({"total": 2, "page": 1, "page_size": 50, "total_pages": 1}));
    assert_eq!(listing["data"][0]["uuid"], uuid.as_str(), "newest first");
    assert!(listing["data"][0].get("key").is_none());

    let page = body(server.get("/v1/api-keys?page=2&page_size=1", &admin).await).await;
    assert_eq!(page["meta"], json!({"total": 2, "page": 2, "page_size": 1, "total_pages": 2}));
    assert_eq!(page["data"].as_array().unwrap().len(), 1);

    let fetched = body(server.get(&format!("/v1/api-keys/{uuid}"), &admin).await).await;
    assert_eq!(fetched["data"]["name"], "ci-ingest");
    assert!(fetched["data"].get("key").is_none());

    // PATCH: scopes replace; explicit null clears allowed_sources; omission leaves it.
    let patched = body(server.patch_json(&format!("/v1/api-keys/{uuid}"), &admin, &json!({"scopes": ["alerts:read", "alerts:write"]})).await).await;
    assert_eq!(patched["data"]["scopes"], json!(["alerts:read", "alerts:write"]));
    assert_eq!(patched["data"]["allowed_sources"], json!(["splunk"]));
    let cleared = body(server.patch_json(&format!("/v1/api-keys/{uuid}"), &admin, &json!({"allowed_sources": null})).await).await;
    assert_eq!(cleared["data"]["allowed_sources"], Value::Null);

    // Deactivate through PATCH, reactivate, then DELETE (soft) → gone from the list.
    let off = server.patch_json(&format!("/v1/api-keys/{uuid}"), &admin, &json!({"is_active": false})).await;
    assert_eq!(body(off).await["data"]["is_active"], false);
    expect_error(server.get("/v1/api-keys", &key).await, 401, "UNAUTHORIZED").await;
    let on = server.patch_json(&format!("/v1/api-keys/{uuid}"), &admin, &json!({"is_active": true, "scopes": ["admin"]})).await;
    assert_eq!(on.status(), 200);
    assert_eq!(server.get("/v1/api-keys", &key).await.status(), 200, "reactivated with new scope");

    let deleted = server.request(Method::DELETE, &format!("/v1/api-keys/{uuid}"), Some(&admin)).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    expect_error(server.get("/v1/api-keys", &key).await, 401, "UNAUTHORIZED").await;
    let listing = body(server.get("/v1/api-keys", &admin).await).await;
    assert_eq!(listing["meta"]["total"], 1);
    let still_readable = body(server.get(&format!("/v1/api-keys/{uuid}"), &admin).await).await;
    assert_eq!(still_readable["data"]["is_active"], false);
    server.stop().await;
}
dual!(create_list_get_patch_delete);

async fn bad_input_is_rejected_with_4xx(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"scopes": ["admin"]}), "missing"),
        (json!({"name": "x"}), "missing"),
        (json!({"name": "", "scopes": ["admin"]}), "string_length"),
        (json!({"name": "x".repeat(256), "scopes": ["admin"]}), "string_length"),
        (json!({"name": "x", "scopes": []}), "too_short"),
        (json!({"name": "x", "scopes": ["root"]}), "value_error"),
        (json!({"name": "x", "scopes": "admin"}), "type_error"),
        (json!({"name": 5, "scopes": ["admin"]}), "type_error"),
        (json!({"name": "x", "scopes": ["admin"], "key_type": "robot"}), "enum"),
        (json!({"name": "x", "scopes": ["admin"], "expires_at": "2001-01-01T00:00:00Z"}), "value_error"),
        (json!({"name": "x", "scopes": ["admin"], "expires_at": "yesterday"}), "value_error"),
        // Mass assignment: server-owned fields are refused, not ignored.
        (json!({"name": "x", "scopes": ["admin"], "key_hash": "x"}), "extra_forbidden"),
        (json!({"name": "x", "scopes": ["admin"], "uuid": "00000000-0000-0000-0000-000000000000"}), "extra_forbidden"),
        (json!({"name": "x", "scopes": ["admin"], "is_active": false}), "extra_forbidden"),
    ];
    for (payload, kind) in cases {
        let response = server.post_json("/v1/api-keys", &admin, &payload).await;
        let json = expect_error(response, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "payload {payload}: {json}");
    }
    let listing = body(server.get("/v1/api-keys", &admin).await).await;
    assert_eq!(listing["meta"]["total"], 1, "no rejected request created a key");

    // Path and query validation.
    expect_error(server.get("/v1/api-keys/not-a-uuid", &admin).await, 422, "VALIDATION_ERROR").await;
    expect_error(server.get(&format!("/v1/api-keys/{}", uuid::Uuid::new_v4()), &admin).await, 404, "NOT_FOUND").await;
    let missing = server.patch_json(&format!("/v1/api-keys/{}", uuid::Uuid::new_v4()), &admin, &json!({"is_active": false})).await;
    expect_error(missing, 404, "NOT_FOUND").await;
    let gone = server.request(Method::DELETE, &format!("/v1/api-keys/{}", uuid::Uuid::new_v4()), Some(&admin)).send().await.unwrap();
    expect_error(gone, 404, "NOT_FOUND").await;
    for query in ["page=0", "page_size=0", "page_size=501", "page=abc", "page=-1"] {
        expect_error(server.get(&format!("/v1/api-keys?{query}"), &admin).await, 422, "VALIDATION_ERROR").await;
    }
    let bad_patch = server.patch_json(&format!("/v1/api-keys/{}", uuid::Uuid::new_v4()), &admin, &json!({"key_type": "agent"})).await;
    expect_error(bad_patch, 422, "VALIDATION_ERROR").await;
    server.stop().await;
}
dual!(bad_input_is_rejected_with_4xx);

/// The audit trail of one action: `target_id actor_type details` per row, oldest first.
pub async fn audit_trail(server: &TestServer, action: &str) -> Vec<String> {
    let sql = format!(
        "SELECT COALESCE(target_id, '') || ' ' || actor_type || ' ' || CAST(details AS TEXT) FROM audit_log WHERE action = '{action}' ORDER BY id"
    );
    server.db_texts(&sql).await.into_iter().flatten().collect()
}

/// Every key change writes one audit record (no key material in it); reads and rejected
/// requests write none.
async fn key_changes_are_audited(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let bootstrap = audit_trail(&server, "api_keys.create").await;
    assert_eq!(bootstrap.len(), 1, "the bootstrap key is audited as a system action: {bootstrap:?}");
    assert!(bootstrap[0].contains(" system ") && bootstrap[0].contains("bootstrap-admin"), "{bootstrap:?}");

    let created = body(server.post_json("/v1/api-keys", &admin, &json!({"name": "audited", "scopes": ["alerts:read"]})).await).await;
    let uuid = created["data"]["uuid"].as_str().unwrap().to_owned();
    let plaintext = created["data"]["key"].as_str().unwrap().to_owned();
    let trail = audit_trail(&server, "api_keys.create").await;
    assert_eq!(trail.len(), 2);
    assert!(trail[1].starts_with(&format!("{uuid} api ")), "{trail:?}");
    assert!(trail[1].contains("\"alerts:read\"") && trail[1].contains("\"audited\""), "{trail:?}");

    server.patch_json(&format!("/v1/api-keys/{uuid}"), &admin, &json!({"scopes": ["alerts:write"]})).await;
    let patched = audit_trail(&server, "api_keys.patch").await;
    assert_eq!(patched.len(), 1);
    assert!(patched[0].contains("\"alerts:write\"") && !patched[0].contains("is_active"), "only what was sent: {patched:?}");

    let rejected = server.post_json("/v1/api-keys", &admin, &json!({"name": "x", "scopes": ["root"]})).await;
    assert_eq!(rejected.status(), 422);
    server.get("/v1/api-keys", &admin).await;
    server.request(Method::DELETE, &format!("/v1/api-keys/{uuid}"), Some(&admin)).send().await.unwrap();
    assert_eq!(audit_trail(&server, "api_keys.revoke").await.len(), 1);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'api_keys.%'").await, 4);
    let everything = server.db_texts("SELECT CAST(details AS TEXT) FROM audit_log").await;
    assert!(everything.iter().flatten().all(|d| !d.contains(&plaintext) && !d.contains("argon2")), "no key material");
    server.stop().await;
}
dual!(key_changes_are_audited);

/// `allowed_cidrs`: validated and normalized on create/patch, enforced on the client address
/// resolved through TRUSTED_PROXY_COUNT; a refusal is a 403, an auth-failure log event and a
/// denied audit record.
async fn per_key_address_allow_list(backend: Backend) {
    let server = TestServer::builder(backend).env("TRUSTED_PROXY_COUNT", "1").env("LOG_FORMAT", "json").start().await;
    let admin = server.admin_key.clone();
    let created = server
        .post_json("/v1/api-keys", &admin, &json!({"name": "office", "scopes": ["alerts:read"], "allowed_cidrs": ["10.9.8.7/8", "192.0.2.7"]}))
        .await;
    assert_eq!(created.status(), 201);
    let created = body(created).await;
    assert_eq!(created["data"]["allowed_cidrs"], json!(["10.0.0.0/8", "192.0.2.7/32"]));
    let key = created["data"]["key"].as_str().unwrap().to_owned();
    let uuid = created["data"]["uuid"].as_str().unwrap().to_owned();
    let from = |address: Option<&str>| {
        let request = server.request(Method::GET, "/v1/alerts", Some(&key));
        match address {
            Some(a) => request.header("x-forwarded-for", a),
            None => request,
        }
    };
    assert_eq!(from(Some("10.1.2.3")).send().await.unwrap().status(), 200);
    assert_eq!(from(Some("192.0.2.7")).send().await.unwrap().status(), 200);
    // Only the hop the trusted proxy added counts: a client cannot prepend an allowed address.
    expect_error(from(Some("10.1.2.3, 203.0.113.9")).send().await.unwrap(), 403, "IP_NOT_ALLOWED").await;
    // Without the header the client is the socket peer (loopback), which is not in the list.
    expect_error(from(None).send().await.unwrap(), 403, "IP_NOT_ALLOWED").await;
    // Other keys are unaffected.
    assert_eq!(server.get("/v1/alerts", &admin).await.status(), 200);

    let refused = audit_trail(&server, "api_keys.authenticate").await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].starts_with(&format!("{uuid} api ")) && refused[0].contains("ip_not_allowed") && refused[0].contains("203.0.113.9"), "{refused:?}");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM audit_log WHERE action = 'api_keys.authenticate' AND outcome = 'denied'").await, 2);
    assert!(crate::support::eventually(std::time::Duration::from_secs(5), || async {
        server.stdout.json_lines().iter().any(|l| l["event"] == "auth_failure" && l["reason"] == "ip_not_allowed" && l["client_ip"] == "203.0.113.9")
    })
    .await, "{}", server.stdout.text());

    // PATCH replaces the list (and applies to the very next request), null lifts it.
    let patched = body(server.patch_json(&format!("/v1/api-keys/{uuid}"), &admin, &json!({"allowed_cidrs": ["127.0.0.1"]})).await).await;
    assert_eq!(patched["data"]["allowed_cidrs"], json!(["127.0.0.1/32"]));
    assert_eq!(from(None).send().await.unwrap().status(), 200);
    expect_error(from(Some("10.1.2.3")).send().await.unwrap(), 403, "IP_NOT_ALLOWED").await;
    let patch_audit = audit_trail(&server, "api_keys.patch").await;
    assert!(patch_audit[0].contains("127.0.0.1/32"), "{patch_audit:?}");
    let lifted = body(server.patch_json(&format!("/v1/api-keys/{uuid}"), &admin, &json!({"allowed_cidrs": null})).await).await;
    assert_eq!(lifted["data"]["allowed_cidrs"], Value::Null);
    assert_eq!(from(Some("203.0.113.9")).send().await.unwrap().status(), 200);

    // Bad entries: 422 naming the field, nothing stored.
    for bad in [json!(["10.0.0.0/33"]), json!(["office.example"]), json!("10.0.0.0/8"), json!([7])] {
        let response = server.post_json("/v1/api-keys", &admin, &json!({"name": "bad", "scopes": ["alerts:read"], "allowed_cidrs": bad})).await;
        let error = expect_error(response, 422, "VALIDATION_ERROR").await;
        assert!(error.to_string().contains("allowed_cidrs"), "{error}");
        let response = server.patch_json(&format!("/v1/api-keys/{uuid}"), &admin, &json!({"allowed_cidrs": bad})).await;
        expect_error(response, 422, "VALIDATION_ERROR").await;
    }
    assert_eq!(server.db_count("SELECT COUNT(*) FROM api_keys WHERE name = 'bad'").await, 0);

    // The OpenAPI document describes the field on create, patch and the response.
    let spec = body(server.client.get(server.url("/openapi.json")).send().await.unwrap()).await;
    for schema in ["ApiKeyCreate", "ApiKeyUpdate", "ApiKeyResponse"] {
        assert!(spec["components"]["schemas"][schema]["properties"].get("allowed_cidrs").is_some(), "{schema}");
    }
    server.stop().await;
}
dual!(per_key_address_allow_list);
