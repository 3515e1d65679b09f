//! `/v1/indicator-mappings`: seeded system mappings, custom mapping CRUD, the source-plugin field
//! list, test-extraction over the fixture payloads, and input/scope errors.

use reqwest::Method;
use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error};

const BASE: &str = "/v1/indicator-mappings";

/// data-model.md, start-up seeding step 1, in seed order.
const SYSTEM: [(&str, &str, &str); 14] = [
    ("src_ip", "ip", "Source IP address"),
    ("dst_ip", "ip", "Destination IP address"),
    ("src_hostname", "domain", "Source hostname"),
    ("dst_hostname", "domain", "Destination hostname"),
    ("file_hash_md5", "hash_md5", "File hash, MD5"),
    ("file_hash_sha256", "hash_sha256", "File hash, SHA-256"),
    ("file_hash_sha1", "hash_sha1", "File hash, SHA-1"),
    ("actor_email", "email", "Actor email address"),
    ("actor_username", "account", "Actor username"),
    ("dns_query", "domain", "DNS query target"),
    ("http_url", "url", "Full URL string"),
    ("http_hostname", "domain", "URL hostname"),
    ("email_from", "email", "Email sender address"),
    ("email_reply_to", "email", "Email reply-to address"),
];

const FIELDS: [&str; 10] = [
    "created_at", "description", "extraction_target", "field_path", "indicator_type", "is_active", "is_system", "source_name",
    "updated_at", "uuid",
];

fn keys_of(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

async fn delete(server: &TestServer, path: &str, key: &str) -> reqwest::Response {
    server.request(Method::DELETE, path, Some(key)).send().await.unwrap()
}

async fn list(server: &TestServer, query: &str) -> Value {
    let response = server.get(&format!("{BASE}?{query}"), &server.admin_key).await;
    assert_eq!(response.status(), 200, "GET {BASE}?{query}");
    body(response).await
}

fn field_paths(listing: &Value) -> Vec<String> {
    listing["data"].as_array().unwrap().iter().map(|m| m["field_path"].as_str().unwrap().to_owned()).collect()
}

async fn system_mappings_are_seeded_and_read_only(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let listing = list(&server, "page_size=500").await;
    assert_eq!(listing["meta"], json!({"total": 14, "page": 1, "page_size": 500, "total_pages": 1}));
    let rows = listing["data"].as_array().unwrap();
    for (row, (path, itype, description)) in rows.iter().zip(SYSTEM) {
        assert_eq!(keys_of(row), FIELDS);
        assert_eq!(row["field_path"], path);
        assert_eq!(row["indicator_type"], itype);
        assert_eq!(row["description"], description);
        assert_eq!(row["source_name"], Value::Null);
        assert_eq!(row["extraction_target"], "normalized");
        assert_eq!(row["is_system"], true);
        assert_eq!(row["is_active"], true);
        assert_eq!(row["created_at"], row["updated_at"]);
    }
    assert_eq!(list(&server, "is_system=true").await["meta"]["total"], 14);
    assert_eq!(list(&server, "is_system=false").await["meta"]["total"], 0);
    assert_eq!(list(&server, "extraction_target=normalized&is_active=1").await["meta"]["total"], 14);

    let src_ip = rows[0]["uuid"].as_str().unwrap().to_owned();
    let path = format!("{BASE}/{src_ip}");
    let fetched = body(server.get(&path, &admin).await).await;
    assert_eq!(fetched["data"], rows[0]);
    assert_eq!(fetched["meta"], json!({}));

    // field_path of a system mapping is read-only; deletion is refused.
    let json = expect_error(server.patch_json(&path, &admin, &json!({"field_path": "source_ip"})).await, 422, "SYSTEM_MAPPING_READONLY").await;
    assert_eq!(json["error"]["message"], "System mappings are read-only. Only is_active can be toggled.");
    let json = expect_error(delete(&server, &path, &admin).await, 422, "SYSTEM_MAPPING_READONLY").await;
    assert_eq!(json["error"]["message"], "System mappings cannot be deleted. Set is_active=false to disable.");
    // A null field_path is "not sent" (nulls are ignored).
    let unchanged = body(server.patch_json(&path, &admin, &json!({"field_path": null})).await).await;
    assert_eq!(unchanged["data"]["field_path"], "src_ip");
    // is_active, and (Calseta quirk) indicator_type and description, can change.
    let edited = server
        .patch_json(&path, &admin, &json!({"is_active": false, "indicator_type": "account", "description": "edited by operator"}))
        .await;
    assert_eq!(edited.status(), 200);
    let edited = body(edited).await["data"].clone();
    assert_eq!(edited["is_active"], false);
    assert_eq!(edited["indicator_type"], "account");
    assert_eq!(edited["description"], "edited by operator");
    assert_eq!(edited["field_path"], "src_ip");
    assert_eq!(edited["is_system"], true);
    assert_eq!(edited["created_at"], rows[0]["created_at"]);
    assert_ne!(edited["updated_at"], rows[0]["updated_at"]);
    assert_eq!(list(&server, "is_active=false").await["meta"]["total"], 1);
    assert_eq!(list(&server, "is_active=true").await["meta"]["total"], 13);

    // A restart on the same database neither duplicates the seed nor undoes the operator's edit.
    server.terminate().await;
    let restarted = TestServer::builder(server_backend(&server)).sharing(&server).start().await;
    let again = restarted.get(&format!("{BASE}?page_size=500"), &admin).await;
    let again = body(again).await;
    assert_eq!(again["meta"]["total"], 14);
    assert_eq!(again["data"][0], edited);
    assert_eq!(field_paths(&again), SYSTEM.iter().map(|s| s.0.to_owned()).collect::<Vec<_>>());
    restarted.stop().await;
    server.stop().await;
}
dual!(system_mappings_are_seeded_and_read_only);

/// The backend a running test server uses, read back from its database URL.
fn server_backend(server: &TestServer) -> Backend {
    if server.db.url.starts_with("sqlite:") {
        Backend::Sqlite
    } else {
        Backend::Postgres { admin_url: std::env::var("TEST_DATABASE_URL").unwrap() }
    }
}

async fn custom_mapping_crud(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let created = server
        .post_json(
            BASE,
            &admin,
            &json!({"source_name": "generic", "field_path": "okta.client.ipAddress", "indicator_type": "ip",
                    "extraction_target": "raw_payload", "description": "Okta client IP"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created = body(created).await;
    assert_eq!(created["meta"], json!({}));
    let okta = created["data"].clone();
    assert_eq!(keys_of(&okta), FIELDS);
    assert_eq!(okta["source_name"], "generic");
    assert_eq!(okta["field_path"], "okta.client.ipAddress");
    assert_eq!(okta["indicator_type"], "ip");
    assert_eq!(okta["extraction_target"], "raw_payload");
    assert_eq!(okta["is_system"], false);
    assert_eq!(okta["is_active"], true);
    assert_eq!(okta["description"], "Okta client IP");
    assert_eq!(okta["created_at"], okta["updated_at"]);
    let okta_uuid = okta["uuid"].as_str().unwrap().to_owned();

    // Defaults; indicator_type and extraction_target are stored as given (not validated).
    let minimal = body(server.post_json(BASE, &admin, &json!({"field_path": "title", "indicator_type": "domain"})).await).await["data"].clone();
    assert_eq!(minimal["source_name"], Value::Null);
    assert_eq!(minimal["extraction_target"], "normalized");
    assert_eq!(minimal["is_active"], true);
    assert_eq!(minimal["description"], Value::Null);
    let odd = server
        .post_json(BASE, &admin, &json!({"field_path": "x", "indicator_type": "ipv9", "extraction_target": "elsewhere", "is_active": false}))
        .await;
    assert_eq!(odd.status(), 201);
    let odd = body(odd).await["data"].clone();
    assert_eq!((odd["indicator_type"].as_str(), odd["extraction_target"].as_str(), &odd["is_active"]), (Some("ipv9"), Some("elsewhere"), &json!(false)));

    // Listing: oldest first, so the 14 system rows come before these three.
    let all = list(&server, "page_size=500").await;
    assert_eq!(all["meta"]["total"], 17);
    assert_eq!(&field_paths(&all)[14..], ["okta.client.ipAddress", "title", "x"]);
    assert_eq!(field_paths(&list(&server, "source_name=generic").await), ["okta.client.ipAddress"]);
    assert_eq!(field_paths(&list(&server, "extraction_target=raw_payload").await), ["okta.client.ipAddress"]);
    assert_eq!(field_paths(&list(&server, "is_system=false").await), ["okta.client.ipAddress", "title", "x"]);
    assert_eq!(field_paths(&list(&server, "is_system=false&is_active=false").await), ["x"]);
    assert_eq!(list(&server, "source_name=splunk").await["meta"]["total"], 0);
    let page = list(&server, "page=2&page_size=10").await;
    assert_eq!(page["meta"], json!({"total": 17, "page": 2, "page_size": 10, "total_pages": 2}));
    assert_eq!(page["data"].as_array().unwrap().len(), 7);
    let past = list(&server, "page=9&page_size=10").await;
    assert_eq!(past["meta"], json!({"total": 17, "page": 9, "page_size": 10, "total_pages": 2}));
    assert_eq!(past["data"], json!([]));

    let path = format!("{BASE}/{okta_uuid}");
    assert_eq!(body(server.get(&path, &admin).await).await["data"], okta);
    let patched = server
        .patch_json(&path, &admin, &json!({"field_path": "okta.client.ip", "is_active": false, "indicator_type": "domain"}))
        .await;
    assert_eq!(patched.status(), 200);
    let patched = body(patched).await["data"].clone();
    assert_eq!(patched["field_path"], "okta.client.ip");
    assert_eq!(patched["is_active"], false);
    assert_eq!(patched["indicator_type"], "domain");
    assert_eq!(patched["description"], "Okta client IP");
    assert_eq!(patched["source_name"], "generic");
    assert_eq!(patched["extraction_target"], "raw_payload");
    assert_eq!(patched["created_at"], okta["created_at"]);
    // Nulls are ignored; an empty body changes nothing but is accepted.
    let same = body(server.patch_json(&path, &admin, &json!({"description": null, "is_active": null, "indicator_type": null})).await).await;
    assert_eq!(same["data"]["description"], "Okta client IP");
    assert_eq!(same["data"]["is_active"], false);
    assert_eq!(same["data"]["indicator_type"], "domain");
    assert_eq!(server.patch_json(&path, &admin, &json!({})).await.status(), 200);

    assert_eq!(delete(&server, &path, &admin).await.status(), 204);
    expect_error(server.get(&path, &admin).await, 404, "NOT_FOUND").await;
    let json = expect_error(delete(&server, &path, &admin).await, 404, "NOT_FOUND").await;
    assert_eq!(json["error"]["message"], "Indicator field mapping not found.");
    assert_eq!(list(&server, "").await["meta"]["total"], 16);
    server.stop().await;
}
dual!(custom_mapping_crud);

async fn source_plugin_fields_shape(backend: Backend) {
    let server = TestServer::start(backend).await;
    let response = server.get(&format!("{BASE}/source-plugin-fields"), &server.admin_key).await;
    assert_eq!(response.status(), 200);
    let json = body(response).await;
    assert_eq!(json["meta"], json!({}));
    let fields = json["data"].as_array().unwrap();
    assert_eq!(fields.len(), 51);
    for entry in fields {
        assert_eq!(keys_of(entry), FIELDS);
        assert_eq!(entry["uuid"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(entry["extraction_target"], "source_plugin");
        assert_eq!(entry["is_system"], true);
        assert_eq!(entry["is_active"], true);
        assert_eq!(entry["created_at"], "2000-01-01T00:00:00Z");
        assert_eq!(entry["updated_at"], "2000-01-01T00:00:00Z");
        assert!(entry["field_path"].as_str().is_some_and(|p| !p.is_empty()));
        assert!(entry["description"].as_str().is_some_and(|d| !d.is_empty()));
        let itype = entry["indicator_type"].as_str().unwrap();
        assert!(["ip", "domain", "hash_md5", "hash_sha1", "hash_sha256", "url", "email", "account"].contains(&itype), "{itype}");
    }
    let per_source: Vec<(String, usize)> = ["sentinel", "elastic", "splunk", "generic"]
        .iter()
        .map(|s| (s.to_string(), fields.iter().filter(|f| f["source_name"] == *s).count()))
        .collect();
    assert_eq!(per_source, [("sentinel".into(), 7), ("elastic".into(), 18), ("splunk".into(), 10), ("generic".into(), 16)]);
    let elastic_paths: Vec<&str> =
        fields.iter().filter(|f| f["source_name"] == "elastic").map(|f| f["field_path"].as_str().unwrap()).collect();
    assert!(elastic_paths.contains(&"source.ip") && elastic_paths.contains(&"url.full") && elastic_paths.contains(&"user.name"));
    // Synthetic rows are not stored.
    assert_eq!(list(&server, "").await["meta"]["total"], 14);
    server.stop().await;
}
dual!(source_plugin_fields_shape);

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/payloads/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn triples(list: &Value) -> Vec<(String, String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(keys_of(i), ["source_field", "type", "value"]);
            (i["type"].as_str().unwrap().into(), i["value"].as_str().unwrap().into(), i["source_field"].as_str().unwrap().into())
        })
        .collect()
}

fn t(itype: &str, value: &str, field: &str) -> (String, String, String) {
    (itype.into(), value.into(), field.into())
}

async fn extract(server: &TestServer, source: &str, payload: Value) -> Value {
    let response = server
        .post_json(&format!("{BASE}/test-extraction"), &server.admin_key, &json!({"source_name": source, "raw_payload": payload}))
        .await;
    assert_eq!(response.status(), 200);
    let json = body(response).await;
    assert_eq!(json["meta"], json!({}));
    json["data"].clone()
}

fn pass_shape(report: &Value) {
    let passes = report["passes"].as_array().unwrap();
    let names: Vec<(&str, &str)> =
        passes.iter().map(|p| (p["pass_name"].as_str().unwrap(), p["pass_label"].as_str().unwrap())).collect();
    assert_eq!(
        names,
        [("source_plugin", "Source Plugin"), ("normalized_mappings", "Normalized Mappings"), ("raw_payload_mappings", "Raw Payload Mappings")]
    );
    assert_eq!(report["success"], true);
    assert_eq!(report["error_message"], Value::Null);
    assert!(report["duration_ms"].is_u64());
    assert_eq!(report["deduplicated_count"], report["deduplicated"].as_array().unwrap().len());
}

async fn test_extraction_with_fixture_payloads(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();

    let sentinel = extract(&server, "sentinel", fixture("sentinel_alert.json")).await;
    pass_shape(&sentinel);
    let sha256 = "a1b2c3d4e5f6789012345678901234567890abcdef1234567890abcdef123456";
    let expected = vec![
        t("ip", "10.0.0.55", "Entities.ip"),
        t("ip", "185.220.101.32", "Entities.ip"),
        t("account", "jdoe@corp.com", "Entities.account"),
        t("domain", "WORKSTATION-01.corp.com", "Entities.host"),
        t("hash_sha256", sha256, "Entities.filehash"),
        t("hash_md5", "d41d8cd98f00b204e9800998ecf8427e", "Entities.filehash"),
    ];
    assert_eq!(triples(&sentinel["passes"][0]["indicators"]), expected);
    assert_eq!(sentinel["passes"][1], json!({"pass_name": "normalized_mappings", "pass_label": "Normalized Mappings", "indicators": [], "error": null}));
    assert_eq!(triples(&sentinel["passes"][2]["indicators"]), vec![]);
    assert_eq!(triples(&sentinel["deduplicated"]), expected);
    assert_eq!(sentinel["deduplicated_count"], 6);
    let preview = &sentinel["normalization_preview"];
    assert_eq!(preview["title"], "Suspicious PowerShell Execution on WORKSTATION-01");
    assert_eq!(preview["severity"], "High");
    assert_eq!(preview["occurred_at"], "2024-01-15T10:29:50Z");
    assert_eq!(preview["source_name"], "sentinel");
    assert_eq!(preview["tags"], json!(["powershell", "endpoint"]));

    let elastic = extract(&server, "elastic", fixture("elastic_alert.json")).await;
    pass_shape(&elastic);
    let expected = vec![
        t("ip", "10.0.0.55", "source.ip"),
        t("ip", "185.220.101.32", "destination.ip"),
        t("domain", "evil.example.com", "destination.domain"),
        t("domain", "c2-server.evil.com", "dns.question.name"),
        t("url", "https://evil.example.com/payload/stage2.ps1", "url.full"),
        t("hash_sha256", sha256, "process.hash.sha256"),
        t("hash_md5", "d41d8cd98f00b204e9800998ecf8427e", "process.hash.md5"),
        t("email", "jdoe@corp.com", "user.email"),
        t("account", "jdoe", "user.name"),
    ];
    assert_eq!(triples(&elastic["deduplicated"]), expected);
    assert_eq!(elastic["deduplicated_count"], 9);
    // host.ip repeats source.ip: present in Pass 1, removed by the merge.
    let pass1 = triples(&elastic["passes"][0]["indicators"]);
    assert!(pass1.contains(&t("ip", "10.0.0.55", "host.ip")), "{pass1:?}");
    assert_eq!(pass1.len(), 10);
    assert_eq!(elastic["normalization_preview"]["severity"], "High");

    let splunk = extract(&server, "splunk", fixture("splunk_alert.json")).await;
    pass_shape(&splunk);
    let expected = vec![
        t("ip", "10.0.0.99", "result.src_ip"),
        t("ip", "192.168.1.10", "result.dest_ip"),
        t("account", "admin", "result.user"),
        t("hash_sha256", "b94f6f125c79e3a5ffaa826f584c10d52ada669e6762051b826b55776d05a8a", "result.sha256"),
        t("domain", "corp.example.com", "result.domain"),
    ];
    assert_eq!(triples(&splunk["passes"][0]["indicators"]), expected);
    assert_eq!(triples(&splunk["deduplicated"]), expected);
    assert_eq!(splunk["normalization_preview"]["title"], "Brute Force Login Attempt");
    assert_eq!(splunk["normalization_preview"]["occurred_at"], "2024-01-15T09:50:00Z");

    // The generic example of ingestion.md, then mappings added through the API apply at once.
    let generic_payload = json!({"title": "Suspicious login", "severity": "high", "occurred_at": "2026-03-01T10:00:00Z",
        "tags": ["identity"], "src_ip": "198.51.100.7", "username": "j.doe@example.org",
        "indicators": [{"type": "domain", "value": "bad.example.net"}], "rule_id": "R-42",
        "okta": {"client": {"ipAddress": " 203.0.113.9 "}, "actor": {"alternateId": "198.51.100.7"}}});
    let before = extract(&server, "generic", generic_payload.clone()).await;
    pass_shape(&before);
    let plugin = vec![
        t("domain", "bad.example.net", "indicators[]"),
        t("ip", "198.51.100.7", "src_ip"),
        t("account", "j.doe@example.org", "username"),
    ];
    assert_eq!(triples(&before["deduplicated"]), plugin);
    assert_eq!(before["normalization_preview"]["description"], Value::Null);
    assert_eq!(before["normalization_preview"]["tags"], json!(["identity"]));

    let raw_mapping = body(server.post_json(BASE, &admin, &json!({"source_name": "generic", "field_path": "okta.client.ipAddress",
        "indicator_type": "ip", "extraction_target": "raw_payload"})).await).await["data"].clone();
    server.post_json(BASE, &admin, &json!({"field_path": "okta.actor.alternateId", "indicator_type": "ip", "extraction_target": "raw_payload"})).await;
    server.post_json(BASE, &admin, &json!({"source_name": "splunk", "field_path": "okta.client.ipAddress", "indicator_type": "url",
        "extraction_target": "raw_payload"})).await;
    server.post_json(BASE, &admin, &json!({"field_path": "title", "indicator_type": "account"})).await;
    server.post_json(BASE, &admin, &json!({"field_path": "severity", "indicator_type": "not_a_type"})).await;
    let after = extract(&server, "generic", generic_payload.clone()).await;
    pass_shape(&after);
    assert_eq!(triples(&after["passes"][1]["indicators"]), vec![t("account", "Suspicious login", "normalized.title")]);
    assert_eq!(
        triples(&after["passes"][2]["indicators"]),
        vec![t("ip", "203.0.113.9", "raw_payload.okta.client.ipAddress"), t("ip", "198.51.100.7", "raw_payload.okta.actor.alternateId")]
    );
    let mut full = plugin.clone();
    full.push(t("account", "Suspicious login", "normalized.title"));
    full.push(t("ip", "203.0.113.9", "raw_payload.okta.client.ipAddress"));
    assert_eq!(triples(&after["deduplicated"]), full);
    assert_eq!(after["deduplicated_count"], 5);

    // Deactivating a mapping takes effect on the next call too.
    let path = format!("{BASE}/{}", raw_mapping["uuid"].as_str().unwrap());
    assert_eq!(server.patch_json(&path, &admin, &json!({"is_active": false})).await.status(), 200);
    let deactivated = extract(&server, "generic", generic_payload.clone()).await;
    assert_eq!(triples(&deactivated["passes"][2]["indicators"]), vec![t("ip", "198.51.100.7", "raw_payload.okta.actor.alternateId")]);
    assert_eq!(deactivated["deduplicated_count"], 4);
    assert_eq!(list(&server, "").await["meta"]["total"], 19, "test-extraction persisted nothing");

    // Normalization failure: Pass 2 carries the error, Pass 1 and 3 still run.
    let broken = json!({"properties": {"title": 5, "severity": "High"}, "Entities": [{"Type": "ip", "Address": "1.1.1.1"}]});
    let report = extract(&server, "sentinel", broken).await;
    assert_eq!(report["normalization_preview"], Value::Null);
    assert_eq!(report["passes"][1]["error"], "Normalization failed — cannot run Pass 2");
    assert_eq!(triples(&report["deduplicated"]), vec![t("ip", "1.1.1.1", "Entities.ip")]);
    assert_eq!(report["success"], true);

    // Errors: unknown source, payload failing the plugin's check, body shape.
    let url = format!("{BASE}/test-extraction");
    let json = expect_error(server.post_json(&url, &admin, &json!({"source_name": "okta", "raw_payload": {}})).await, 422, "UNKNOWN_SOURCE").await;
    assert_eq!(json["error"]["message"], "Unknown alert source: okta");
    let json = expect_error(server.post_json(&url, &admin, &json!({"source_name": "generic", "raw_payload": {"severity": "high"}})).await, 422, "INVALID_PAYLOAD").await;
    assert_eq!(json["error"]["message"], "Payload failed source validation. Check the JSON structure matches the selected source format.");
    expect_error(server.post_json(&url, &admin, &json!({"source_name": "splunk", "raw_payload": {"result": "x", "sid": "1"}})).await, 422, "INVALID_PAYLOAD").await;
    for (payload, kind) in [
        (json!({"source_name": "generic", "raw_payload": [1, 2]}), "type_error"),
        (json!({"source_name": "generic", "raw_payload": "text"}), "type_error"),
        (json!({"source_name": "generic"}), "missing"),
        (json!({"raw_payload": {"title": "x"}}), "missing"),
        (json!({"source_name": 5, "raw_payload": {"title": "x"}}), "type_error"),
        (json!({"source_name": "generic", "raw_payload": {"title": "x"}, "mappings": []}), "extra_forbidden"),
    ] {
        let json = expect_error(server.post_json(&url, &admin, &payload).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "{payload}");
    }
    server.stop().await;
}
dual!(test_extraction_with_fixture_payloads);

async fn scopes_and_bad_input(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let system_uuid = list(&server, "").await["data"][0]["uuid"].as_str().unwrap().to_owned();
    let item = format!("{BASE}/{system_uuid}");

    // Every route needs admin: a key with every other scope is refused.
    let (broad, _) = server
        .create_key(&["alerts:read", "alerts:write", "enrichments:read", "workflows:read", "workflows:write", "agents:write"], json!({}))
        .await;
    let valid_create = json!({"field_path": "a", "indicator_type": "ip"});
    let valid_test = json!({"source_name": "generic", "raw_payload": {"title": "x"}});
    let denied = [
        server.get(BASE, &broad).await,
        server.post_json(BASE, &broad, &valid_create).await,
        server.get(&format!("{BASE}/source-plugin-fields"), &broad).await,
        server.post_json(&format!("{BASE}/test-extraction"), &broad, &valid_test).await,
        server.get(&item, &broad).await,
        server.patch_json(&item, &broad, &json!({"is_active": false})).await,
        delete(&server, &item, &broad).await,
    ];
    for response in denied {
        let json = expect_error(response, 403, "FORBIDDEN").await;
        assert_eq!(json["error"]["message"], "Insufficient scope. Required: admin");
        assert_eq!(json["error"]["details"]["required_scopes"], json!(["admin"]));
    }
    expect_error(server.request(Method::GET, BASE, None).send().await.unwrap(), 401, "UNAUTHORIZED").await;
    expect_error(server.request(Method::POST, &format!("{BASE}/test-extraction"), None).json(&valid_test).send().await.unwrap(), 401, "UNAUTHORIZED").await;
    assert_eq!(list(&server, "").await["data"][0]["is_active"], true, "the denied PATCH changed nothing");

    // Create: required fields, types, lengths, unknown and server-owned fields.
    let cases: Vec<(Value, &str)> = vec![
        (json!({"indicator_type": "ip"}), "missing"),
        (json!({"field_path": "a"}), "missing"),
        (json!({"field_path": 5, "indicator_type": "ip"}), "type_error"),
        (json!({"field_path": "a", "indicator_type": ["ip"]}), "type_error"),
        (json!({"field_path": "a", "indicator_type": "ip", "is_active": "yes"}), "type_error"),
        (json!({"field_path": "a", "indicator_type": "ip", "extraction_target": null}), "type_error"),
        (json!({"field_path": "a", "indicator_type": "ip", "source_name": 3}), "type_error"),
        (json!({"field_path": "", "indicator_type": "ip"}), "string_too_short"),
        (json!({"field_path": "   ", "indicator_type": "ip"}), "string_too_short"),
        (json!({"field_path": "a", "indicator_type": ""}), "string_too_short"),
        (json!({"field_path": "a", "indicator_type": "ip", "extraction_target": ""}), "string_too_short"),
        (json!({"field_path": "a", "indicator_type": "ip", "source_name": ""}), "string_too_short"),
        (json!({"field_path": "a".repeat(501), "indicator_type": "ip"}), "string_too_long"),
        (json!({"field_path": "a", "indicator_type": "i".repeat(101)}), "string_too_long"),
        (json!({"field_path": "a", "indicator_type": "ip", "description": "d".repeat(10_001)}), "string_too_long"),
        (json!({"field_path": "a", "indicator_type": "ip", "is_system": true}), "extra_forbidden"),
        (json!({"field_path": "a", "indicator_type": "ip", "uuid": "00000000-0000-0000-0000-000000000000"}), "extra_forbidden"),
        (json!({"field_path": "a", "indicator_type": "ip", "created_at": "2020-01-01T00:00:00Z"}), "extra_forbidden"),
    ];
    for (payload, kind) in cases {
        let json = expect_error(server.post_json(BASE, &admin, &payload).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "{payload}: {json}");
    }
    let json = expect_error(server.post_json(BASE, &admin, &json!({"field_path": "", "indicator_type": ""})).await, 422, "VALIDATION_ERROR").await;
    let locs: Vec<&Value> = json["error"]["details"]["errors"].as_array().unwrap().iter().map(|e| &e["loc"]).collect();
    assert_eq!(locs, [&json!(["body", "field_path"]), &json!(["body", "indicator_type"])]);
    let malformed = server.request(Method::POST, BASE, Some(&admin)).header("content-type", "application/json").body("{\"field_path\": ").send().await.unwrap();
    let json = expect_error(malformed, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["type"], "json_invalid");
    let nul = server.request(Method::POST, BASE, Some(&admin)).header("content-type", "application/json")
        .body(r#"{"field_path": "a\u0000", "indicator_type": "ip"}"#).send().await.unwrap();
    expect_error(nul, 400, "INVALID_JSON").await;
    assert_eq!(list(&server, "").await["meta"]["total"], 14, "no rejected request created a mapping");

    // Patch: immutable and unknown fields, types, lengths.
    for (payload, kind) in [
        (json!({"source_name": "splunk"}), "extra_forbidden"),
        (json!({"extraction_target": "raw_payload"}), "extra_forbidden"),
        (json!({"is_system": false}), "extra_forbidden"),
        (json!({"is_active": "no"}), "type_error"),
        (json!({"field_path": 1}), "type_error"),
        (json!({"indicator_type": ""}), "string_too_short"),
        (json!({"field_path": "p".repeat(501)}), "string_too_long"),
    ] {
        let json = expect_error(server.patch_json(&item, &admin, &payload).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "{payload}");
    }
    let fresh = body(server.get(&item, &admin).await).await;
    assert_eq!(fresh["data"]["is_system"], true);
    assert_eq!(fresh["data"]["extraction_target"], "normalized");
    assert_eq!(fresh["data"]["source_name"], Value::Null);

    // Paths and queries.
    for bad in ["not-a-uuid", "1234", "00000000-0000-0000-0000-00000000000g"] {
        expect_error(server.get(&format!("{BASE}/{bad}"), &admin).await, 422, "VALIDATION_ERROR").await;
        expect_error(server.patch_json(&format!("{BASE}/{bad}"), &admin, &json!({})).await, 422, "VALIDATION_ERROR").await;
        expect_error(delete(&server, &format!("{BASE}/{bad}"), &admin).await, 422, "VALIDATION_ERROR").await;
    }
    let missing = format!("{BASE}/{}", uuid::Uuid::new_v4());
    let json = expect_error(server.get(&missing, &admin).await, 404, "NOT_FOUND").await;
    assert_eq!(json["error"]["message"], "Indicator field mapping not found.");
    expect_error(server.patch_json(&missing, &admin, &json!({"is_active": true})).await, 404, "NOT_FOUND").await;
    expect_error(server.patch_json(&missing, &admin, &json!({"field_path": "x"})).await, 404, "NOT_FOUND").await;
    expect_error(delete(&server, &missing, &admin).await, 404, "NOT_FOUND").await;
    for query in ["page=0", "page_size=0", "page_size=501", "page=abc", "is_system=maybe", "is_active=", "is_active=2"] {
        let json = expect_error(server.get(&format!("{BASE}?{query}"), &admin).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["loc"][0], "query", "{query}");
    }
    let json = expect_error(server.get(&format!("{BASE}?page=0&is_system=x&is_active=y2"), &admin).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"].as_array().unwrap().len(), 3, "{json}");
    // Wrong methods on known paths are never a 5xx.
    let put = server.request(Method::PUT, &item, Some(&admin)).send().await.unwrap();
    assert!(put.status().is_client_error());
    let post_fields = server.post_json(&format!("{BASE}/source-plugin-fields"), &admin, &json!({})).await;
    assert!(post_fields.status().is_client_error());
    server.stop().await;
}
dual!(scopes_and_bad_input);
