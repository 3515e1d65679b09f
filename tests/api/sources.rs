//! `/v1/sources`: CRUD, `auth_config` sealed at rest and never returned, the missing-key refusal,
//! plugin-name validation, size limits and scopes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error};

const BASE: &str = "/v1/sources";
/// 32 distinct bytes (0..=31), base64: a valid, non-weak ENCRYPTION_KEY for tests.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const FIELDS: [&str; 8] = ["created_at", "display_name", "documentation", "is_active", "source_name", "updated_at", "uuid", "auth_type"];

fn sorted_fields() -> Vec<String> {
    let mut fields: Vec<String> = FIELDS.iter().map(|f| f.to_string()).collect();
    fields.sort();
    fields
}

fn keys_of(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

async fn delete(server: &TestServer, path: &str, key: &str) -> reqwest::Response {
    server.request(Method::DELETE, path, Some(key)).send().await.unwrap()
}

/// Response text, asserted free of every secret.
async fn text_without(response: reqwest::Response, secrets: &[&str]) -> Value {
    let text = response.text().await.unwrap();
    for secret in secrets {
        assert!(!text.contains(secret), "a response carried the secret: {text}");
    }
    assert!(!text.contains("auth_config"), "auth_config is never returned: {text}");
    assert!(!text.contains("_encrypted"), "{text}");
    serde_json::from_str(&text).unwrap()
}

/// `(display_name, auth_config as stored text)` of every row, read straight from the database.
async fn stored_rows(server: &TestServer) -> Vec<(String, Option<String>)> {
    let url = &server.db.url;
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_as::<_, (String, Option<String>)>("SELECT display_name, auth_config FROM source_integrations ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT display_name, auth_config::text FROM source_integrations ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    }
}

/// The envelope of a stored `{"_encrypted": "v1:…"}` value; panics on anything else.
fn envelope(stored: &str) -> String {
    let value: Value = serde_json::from_str(stored).unwrap();
    let object = value.as_object().unwrap();
    assert_eq!(object.len(), 1, "only the sealed value is stored: {stored}");
    let sealed = object["_encrypted"].as_str().unwrap().to_owned();
    assert!(sealed.starts_with("v1:"), "{sealed}");
    sealed
}

/// For SQLite, the raw database and WAL files must not contain `secret` either.
fn assert_not_in_files(server: &TestServer, secret: &str) {
    if !server.db.url.starts_with("sqlite:") {
        return;
    }
    for name in ["calseta.db", "calseta.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.dir().join(name)) {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{name} holds the plaintext secret");
        }
    }
}

async fn crud_with_sealed_auth_config(backend: Backend) {
    let server = TestServer::builder(backend).env("ENCRYPTION_KEY", KEY).start().await;
    let admin = server.admin_key.clone();
    let first_secret = "canary-FIRST-7f3a9c1e";
    let second_secret = "canary-SECOND-b82d44aa";
    let secrets = [first_secret, second_secret];

    let created = server
        .post_json(
            BASE,
            &admin,
            &json!({"source_name": "splunk", "display_name": "Splunk prod", "auth_type": "hec_token",
                    "auth_config": {"token": first_secret, "nested": {"x": [1, 2]}}, "documentation": "# Splunk\nHEC input."}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created = text_without(created, &secrets).await;
    assert_eq!(created["meta"], json!({}));
    let splunk = created["data"].clone();
    assert_eq!(keys_of(&splunk), sorted_fields());
    assert_eq!(splunk["source_name"], "splunk");
    assert_eq!(splunk["display_name"], "Splunk prod");
    assert_eq!(splunk["auth_type"], "hec_token");
    assert_eq!(splunk["documentation"], "# Splunk\nHEC input.");
    assert_eq!(splunk["is_active"], true);
    assert_eq!(splunk["created_at"], splunk["updated_at"]);
    let splunk_uuid = splunk["uuid"].as_str().unwrap().to_owned();

    // Without auth_config: optional fields are null.
    let generic = server.post_json(BASE, &admin, &json!({"source_name": "generic", "display_name": "Webhook", "is_active": false})).await;
    assert_eq!(generic.status(), 201);
    let generic = text_without(generic, &secrets).await["data"].clone();
    assert_eq!((&generic["auth_type"], &generic["documentation"], &generic["is_active"]), (&Value::Null, &Value::Null, &json!(false)));

    // At rest: sealed, not plaintext; the second row has none.
    let rows = stored_rows(&server).await;
    assert_eq!(rows.len(), 2);
    let first_envelope = envelope(rows[0].1.as_deref().unwrap());
    assert!(!rows[0].1.as_deref().unwrap().contains(first_secret));
    assert!(!rows[0].1.as_deref().unwrap().contains("token"), "key names are sealed too");
    assert_eq!(rows[1], ("Webhook".to_owned(), None));

    // Reads: newest first; never the secret.
    let listing = text_without(server.get(BASE, &admin).await, &secrets).await;
    assert_eq!(listing["meta"], json!({"total": 2, "page": 1, "page_size": 50, "total_pages": 1}));
    assert_eq!(listing["data"][0]["uuid"], generic["uuid"]);
    assert_eq!(listing["data"][1], splunk);
    let page = text_without(server.get(&format!("{BASE}?page=2&page_size=1"), &admin).await, &secrets).await;
    assert_eq!(page["meta"], json!({"total": 2, "page": 2, "page_size": 1, "total_pages": 2}));
    assert_eq!(page["data"][0]["uuid"], splunk_uuid.as_str());
    let path = format!("{BASE}/{splunk_uuid}");
    assert_eq!(text_without(server.get(&path, &admin).await, &secrets).await["data"], splunk);
    // An alerts:read key may read.
    let (reader, _) = server.create_key(&["alerts:read"], json!({})).await;
    assert_eq!(text_without(server.get(&path, &reader).await, &secrets).await["data"], splunk);
    assert_eq!(text_without(server.get(BASE, &reader).await, &secrets).await["meta"]["total"], 2);

    // PATCH without auth_config keeps the stored envelope; nulls are ignored.
    let renamed = server.patch_json(&path, &admin, &json!({"display_name": "Splunk (prod)", "auth_type": null, "documentation": null, "auth_config": null})).await;
    assert_eq!(renamed.status(), 200);
    let renamed = text_without(renamed, &secrets).await["data"].clone();
    assert_eq!(renamed["display_name"], "Splunk (prod)");
    assert_eq!(renamed["auth_type"], "hec_token");
    assert_eq!(renamed["documentation"], "# Splunk\nHEC input.");
    assert_eq!(renamed["source_name"], "splunk");
    assert_eq!(renamed["created_at"], splunk["created_at"]);
    assert_ne!(renamed["updated_at"], splunk["updated_at"]);
    assert_eq!(envelope(stored_rows(&server).await[0].1.as_deref().unwrap()), first_envelope);

    // PATCH with a new auth_config re-seals it.
    let rotated = server.patch_json(&path, &admin, &json!({"auth_config": {"token": second_secret}, "is_active": false, "auth_type": "basic"})).await;
    assert_eq!(rotated.status(), 200);
    let rotated = text_without(rotated, &secrets).await["data"].clone();
    assert_eq!((&rotated["is_active"], &rotated["auth_type"]), (&json!(false), &json!("basic")));
    let stored = stored_rows(&server).await[0].1.clone().unwrap();
    assert_ne!(envelope(&stored), first_envelope);
    assert!(!stored.contains(second_secret) && !stored.contains(first_secret));
    // An empty object is a value too: sealed, not skipped.
    assert_eq!(server.patch_json(&path, &admin, &json!({"auth_config": {}})).await.status(), 200);
    let stored_empty = stored_rows(&server).await[0].1.clone().unwrap();
    envelope(&stored_empty);
    assert_ne!(stored_empty, stored);

    assert_not_in_files(&server, first_secret);
    assert_not_in_files(&server, second_secret);
    for secret in secrets {
        assert!(!server.stdout.text().contains(secret) && !server.stderr.text().contains(secret), "a log line carried the secret");
    }

    // DELETE is a hard delete.
    assert_eq!(delete(&server, &path, &admin).await.status(), 204);
    let json = expect_error(server.get(&path, &admin).await, 404, "NOT_FOUND").await;
    assert_eq!(json["error"]["message"], "Source integration not found.");
    expect_error(delete(&server, &path, &admin).await, 404, "NOT_FOUND").await;
    expect_error(server.patch_json(&path, &admin, &json!({"is_active": true})).await, 404, "NOT_FOUND").await;
    assert_eq!(stored_rows(&server).await.len(), 1);
    server.stop().await;
}
dual!(crud_with_sealed_auth_config);

async fn auth_config_needs_an_encryption_key(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let message = "ENCRYPTION_KEY must be set to store auth_config securely. \
                   Set ENCRYPTION_KEY in your environment and restart the service.";
    let refused = server
        .post_json(BASE, &admin, &json!({"source_name": "elastic", "display_name": "Elastic", "auth_config": {"api_key": "canary-NOKEY"}}))
        .await;
    let json = expect_error(refused, 400, "ENCRYPTION_NOT_CONFIGURED").await;
    assert_eq!(json["error"]["message"], message);
    let json = expect_error(server.post_json(BASE, &admin, &json!({"source_name": "elastic", "display_name": "Elastic", "auth_config": {}})).await, 400, "ENCRYPTION_NOT_CONFIGURED").await;
    assert_eq!(json["error"]["message"], message);
    assert_eq!(body(server.get(BASE, &admin).await).await["meta"]["total"], 0, "nothing was stored");

    // Without a secret the source is stored; a PATCH that adds one is refused, one that sends null is not.
    let created = server.post_json(BASE, &admin, &json!({"source_name": "elastic", "display_name": "Elastic", "auth_config": null})).await;
    assert_eq!(created.status(), 201);
    let uuid = body(created).await["data"]["uuid"].as_str().unwrap().to_owned();
    let path = format!("{BASE}/{uuid}");
    let json = expect_error(server.patch_json(&path, &admin, &json!({"auth_config": {"api_key": "canary-NOKEY"}, "display_name": "Changed"})).await, 400, "ENCRYPTION_NOT_CONFIGURED").await;
    assert_eq!(json["error"]["message"], message);
    assert_eq!(body(server.get(&path, &admin).await).await["data"]["display_name"], "Elastic", "the refused PATCH changed nothing");
    assert_eq!(server.patch_json(&path, &admin, &json!({"auth_config": null, "display_name": "Changed"})).await.status(), 200);
    // An unknown source is a 404 before the missing key is a 400.
    let missing = format!("{BASE}/{}", uuid::Uuid::new_v4());
    expect_error(server.patch_json(&missing, &admin, &json!({"auth_config": {"k": "v"}})).await, 404, "NOT_FOUND").await;
    assert_eq!(stored_rows(&server).await, vec![("Changed".to_owned(), None)]);
    assert!(!server.stdout.text().contains("canary-NOKEY") && !server.stderr.text().contains("canary-NOKEY"));
    server.stop().await;
}
dual!(auth_config_needs_an_encryption_key);

async fn validation_scopes_and_errors(backend: Backend) {
    let server = TestServer::builder(backend).env("ENCRYPTION_KEY", KEY).start().await;
    let admin = server.admin_key.clone();

    // source_name must be a registered plugin (exact, case-sensitive).
    for name in ["okta", "Splunk", "", "splunk "] {
        let json = expect_error(server.post_json(BASE, &admin, &json!({"source_name": name, "display_name": "X"})).await, 400, "INVALID_SOURCE").await;
        assert_eq!(
            json["error"]["message"],
            format!("Unknown source plugin: '{name}'. Registered sources: ['sentinel', 'elastic', 'splunk', 'generic']")
        );
    }

    // Body validation.
    let big = "x".repeat(262_144 - 8);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"display_name": "X"}), "missing"),
        (json!({"source_name": "splunk"}), "missing"),
        (json!({"source_name": "splunk", "display_name": ""}), "string_too_short"),
        (json!({"source_name": "splunk", "display_name": "  "}), "string_too_short"),
        (json!({"source_name": "splunk", "display_name": "d".repeat(256)}), "string_too_long"),
        (json!({"source_name": "splunk", "display_name": 7}), "type_error"),
        (json!({"source_name": ["splunk"], "display_name": "X"}), "type_error"),
        (json!({"source_name": "splunk", "display_name": "X", "is_active": "true"}), "type_error"),
        (json!({"source_name": "splunk", "display_name": "X", "is_active": null}), "type_error"),
        (json!({"source_name": "splunk", "display_name": "X", "auth_config": "token"}), "type_error"),
        (json!({"source_name": "splunk", "display_name": "X", "auth_config": ["token"]}), "type_error"),
        (json!({"source_name": "splunk", "display_name": "X", "auth_type": 1}), "type_error"),
        (json!({"source_name": "splunk", "display_name": "X", "auth_type": "a".repeat(101)}), "string_too_long"),
        (json!({"source_name": "splunk", "display_name": "X", "documentation": "d".repeat(100_001)}), "string_too_long"),
        (json!({"source_name": "splunk", "display_name": "X", "auth_config": {"k": format!("{big}y")}}), "value_error"),
        (json!({"source_name": "splunk", "display_name": "X", "uuid": "00000000-0000-0000-0000-000000000000"}), "extra_forbidden"),
        (json!({"source_name": "splunk", "display_name": "X", "auth_config_encrypted": "x"}), "extra_forbidden"),
        (json!({"source_name": "splunk", "display_name": "X", "created_at": "2020-01-01T00:00:00Z"}), "extra_forbidden"),
    ];
    for (payload, kind) in cases {
        let response = server.post_json(BASE, &admin, &payload).await;
        let json = expect_error(response, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "{}", &json);
    }
    let oversized = server.post_json(BASE, &admin, &json!({"source_name": "splunk", "display_name": "X", "auth_config": {"k": format!("{big}y")}})).await;
    let json = expect_error(oversized, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["msg"], "auth_config exceeds maximum size of 256 KB (262,145 bytes serialized)");
    assert_eq!(json["error"]["details"]["errors"][0]["loc"], json!(["body", "auth_config"]));
    assert_eq!(body(server.get(BASE, &admin).await).await["meta"]["total"], 0, "no rejected request created a source");
    // Exactly at the limit is accepted.
    let at_limit = server.post_json(BASE, &admin, &json!({"source_name": "splunk", "display_name": "X", "auth_config": {"k": big}})).await;
    assert_eq!(at_limit.status(), 201);
    let uuid = body(at_limit).await["data"]["uuid"].as_str().unwrap().to_owned();
    let path = format!("{BASE}/{uuid}");

    // PATCH: source_name is immutable; unknown fields, types and sizes are refused.
    for (payload, kind) in [
        (json!({"source_name": "generic"}), "extra_forbidden"),
        (json!({"uuid": uuid}), "extra_forbidden"),
        (json!({"display_name": ""}), "string_too_short"),
        (json!({"display_name": "d".repeat(256)}), "string_too_long"),
        (json!({"is_active": 1}), "type_error"),
        (json!({"auth_config": "plain"}), "type_error"),
        (json!({"auth_config": {"k": format!("{}yy", "x".repeat(262_144 - 8))}}), "value_error"),
    ] {
        let json = expect_error(server.patch_json(&path, &admin, &payload).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "{payload}");
    }
    assert_eq!(body(server.get(&path, &admin).await).await["data"]["source_name"], "splunk");
    let malformed = server.request(Method::POST, BASE, Some(&admin)).header("content-type", "application/json").body("{\"source_name\"").send().await.unwrap();
    assert_eq!(expect_error(malformed, 422, "VALIDATION_ERROR").await["error"]["details"]["errors"][0]["type"], "json_invalid");

    // Paths and queries.
    for bad in ["nope", "123", "zzzzzzzz-0000-0000-0000-000000000000"] {
        expect_error(server.get(&format!("{BASE}/{bad}"), &admin).await, 422, "VALIDATION_ERROR").await;
        expect_error(server.patch_json(&format!("{BASE}/{bad}"), &admin, &json!({})).await, 422, "VALIDATION_ERROR").await;
        expect_error(delete(&server, &format!("{BASE}/{bad}"), &admin).await, 422, "VALIDATION_ERROR").await;
    }
    let missing = format!("{BASE}/{}", uuid::Uuid::new_v4());
    expect_error(server.get(&missing, &admin).await, 404, "NOT_FOUND").await;
    expect_error(server.patch_json(&missing, &admin, &json!({"display_name": "Y"})).await, 404, "NOT_FOUND").await;
    expect_error(delete(&server, &missing, &admin).await, 404, "NOT_FOUND").await;
    for query in ["page=0", "page_size=501", "page=x"] {
        expect_error(server.get(&format!("{BASE}?{query}"), &admin).await, 422, "VALIDATION_ERROR").await;
    }

    // Scopes: reads need alerts:read, writes admin.
    let (reader, _) = server.create_key(&["alerts:read", "alerts:write", "agents:write"], json!({})).await;
    let (outsider, _) = server.create_key(&["agents:read", "enrichments:read"], json!({})).await;
    let valid = json!({"source_name": "generic", "display_name": "Y"});
    for response in [
        server.post_json(BASE, &reader, &valid).await,
        server.patch_json(&path, &reader, &json!({"display_name": "Y"})).await,
        delete(&server, &path, &reader).await,
    ] {
        let json = expect_error(response, 403, "FORBIDDEN").await;
        assert_eq!(json["error"]["details"]["required_scopes"], json!(["admin"]));
    }
    for response in [server.get(BASE, &outsider).await, server.get(&path, &outsider).await] {
        let json = expect_error(response, 403, "FORBIDDEN").await;
        assert_eq!(json["error"]["message"], "Insufficient scope. Required: alerts:read");
    }
    assert_eq!(server.get(&path, &reader).await.status(), 200);
    expect_error(server.request(Method::GET, BASE, None).send().await.unwrap(), 401, "UNAUTHORIZED").await;
    expect_error(server.request(Method::POST, BASE, Some("cai_not-a-real-key")).json(&valid).send().await.unwrap(), 401, "UNAUTHORIZED").await;
    let after = body(server.get(&path, &admin).await).await["data"].clone();
    assert_eq!(after["display_name"], "X", "denied writes changed nothing");
    assert_eq!(body(server.get(BASE, &admin).await).await["meta"]["total"], 1);
    server.stop().await;
}
dual!(validation_scopes_and_errors);

/// Every admin-catalog write (sources, detection rules, indicator mappings, context documents)
/// leaves one audit record naming its target by UUID, with the caller as actor; the sealed
/// secret never reaches the trail, and a refused write leaves none.
async fn catalog_writes_are_audited(backend: Backend) {
    let server = TestServer::builder(backend).env("ENCRYPTION_KEY", KEY).start().await;
    let admin = server.admin_key.clone();
    let secret = "s3cr3t-token-value";
    let mut targets = Vec::new();
    for (route, create, patch) in [
        (BASE, json!({"source_name": "splunk", "display_name": "Splunk", "auth_config": {"token": secret}}), json!({"auth_config": {"token": secret}})),
        ("/v1/detection-rules", json!({"name": "Rule"}), json!({"severity": "High"})),
        ("/v1/indicator-mappings", json!({"field_path": "a.b", "indicator_type": "ip", "extraction_target": "raw_payload"}), json!({"is_active": false})),
        ("/v1/context-documents", json!({"title": "Doc", "document_type": "sop", "content": "x"}), json!({"content": "y"})),
    ] {
        let created = body(server.post_json(route, &admin, &create).await).await;
        let uuid = created["data"]["uuid"].as_str().unwrap_or_else(|| panic!("{route}: {created}")).to_owned();
        assert_eq!(server.patch_json(&format!("{route}/{uuid}"), &admin, &patch).await.status(), 200, "{route}");
        let deleted = server.request(Method::DELETE, &format!("{route}/{uuid}"), Some(&admin)).send().await.unwrap();
        assert_eq!(deleted.status(), 204, "{route}");
        targets.push(uuid);
    }
    for (prefix, uuid) in ["sources", "detection_rules", "indicator_mappings", "context_documents"].iter().zip(&targets) {
        let sql = format!("SELECT action FROM audit_log WHERE target_id = '{uuid}' AND actor_type = 'api' AND outcome = 'success' ORDER BY id");
        let actions: Vec<String> = server.db_texts(&sql).await.into_iter().flatten().collect();
        assert_eq!(actions, [format!("{prefix}.create"), format!("{prefix}.patch"), format!("{prefix}.delete")]);
    }
    // (PostgreSQL's jsonb text has spaces after colons; SQLite's has none.)
    let details: Vec<String> =
        server.db_texts("SELECT CAST(details AS TEXT) FROM audit_log").await.into_iter().flatten().map(|d| d.replace(' ', "")).collect();
    assert!(details.iter().all(|d| !d.contains(secret) && !d.contains("_encrypted")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("\"auth_config_changed\":true")));

    // Refused writes (validation, not found, system rows) leave no record.
    let before = server.db_count("SELECT COUNT(*) FROM audit_log").await;
    expect_error(server.post_json(BASE, &admin, &json!({"source_name": "okta", "display_name": "x"})).await, 400, "INVALID_SOURCE").await;
    expect_error(server.patch_json(&format!("/v1/detection-rules/{}", uuid::Uuid::new_v4()), &admin, &json!({})).await, 404, "NOT_FOUND").await;
    let listing = body(server.get("/v1/indicator-mappings?is_system=true&page_size=1", &admin).await).await;
    let system_uuid = listing["data"][0]["uuid"].as_str().expect("the seeded system mappings");
    let refused = server.request(Method::DELETE, &format!("/v1/indicator-mappings/{system_uuid}"), Some(&admin)).send().await.unwrap();
    expect_error(refused, 422, "SYSTEM_MAPPING_READONLY").await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM audit_log").await, before);
    server.stop().await;
}
dual!(catalog_writes_are_audited);
