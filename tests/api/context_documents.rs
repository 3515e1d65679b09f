//! `/v1/context-documents` CRUD, list filters/sorting/pagination, versioning, scopes, input and
//! targeting-rule validation; and `calseta::context::applicable_documents` (no HTTP route uses it
//! yet) against the same database.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error};

const ROUTE: &str = "/v1/context-documents";

async fn create_doc(server: &TestServer, payload: Value) -> Value {
    let response = server.post_json(ROUTE, &server.admin_key, &payload).await;
    assert_eq!(response.status(), 201, "create {payload}");
    body(response).await["data"].clone()
}

fn doc(title: &str, document_type: &str) -> Value {
    json!({"title": title, "document_type": document_type, "content": format!("# {title}")})
}

async fn list(server: &TestServer, query: &str) -> Value {
    let response = server.get(&format!("{ROUTE}{query}"), &server.admin_key).await;
    assert_eq!(response.status(), 200, "list {query}");
    body(response).await
}

fn titles(listing: &Value) -> Vec<String> {
    listing["data"].as_array().unwrap().iter().map(|d| d["title"].as_str().unwrap().to_owned()).collect()
}

fn sorted_keys(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn splunk_high() -> Value {
    json!({"match_any": [{"field": "source_name", "op": "eq", "value": "splunk"},
                         {"field": "tags", "op": "contains", "value": "Exfiltration"}],
           "match_all": [{"field": "severity", "op": "gte", "value": "High"}]})
}

async fn create_get_patch_delete(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let created = create_doc(
        &server,
        json!({"title": "Phishing runbook", "document_type": "runbook", "is_global": false, "description": "Steps",
               "content": "# Phishing\n1. Pull headers", "tags": ["phishing", "email"], "targeting_rules": splunk_high()}),
    )
    .await;
    assert_eq!(
        sorted_keys(&created),
        vec!["content", "created_at", "description", "document_type", "is_global", "tags", "targeting_rules", "title", "updated_at", "uuid", "version"]
    );
    assert_eq!(created["title"], "Phishing runbook");
    assert_eq!(created["document_type"], "runbook");
    assert_eq!(created["is_global"], false);
    assert_eq!(created["description"], "Steps");
    assert_eq!(created["content"], "# Phishing\n1. Pull headers");
    assert_eq!(created["tags"], json!(["phishing", "email"]));
    assert_eq!(created["targeting_rules"], splunk_high());
    assert_eq!(created["version"], 1);
    assert_eq!(created["created_at"], created["updated_at"]);

    let minimal = create_doc(&server, doc("Minimal", "other")).await;
    assert_eq!(minimal["is_global"], false);
    assert_eq!(minimal["tags"], json!([]));
    assert_eq!(minimal["description"], Value::Null);
    assert_eq!(minimal["targeting_rules"], Value::Null);
    assert_eq!(minimal["version"], 1);
    let explicit_null = create_doc(&server, json!({"title": "N", "document_type": "sop", "content": "c", "targeting_rules": null, "description": null})).await;
    assert_eq!(explicit_null["targeting_rules"], Value::Null);

    let path = format!("{ROUTE}/{}", created["uuid"].as_str().unwrap());
    let fetched = body(server.get(&path, &admin).await).await;
    assert_eq!(fetched["data"], created);
    assert_eq!(fetched["meta"], json!({}));

    // Metadata changes keep the version; supplying content bumps it (even unchanged content).
    let renamed = body(server.patch_json(&path, &admin, &json!({"title": "Phishing v2", "document_type": "playbook", "is_global": true, "tags": ["x"]})).await).await["data"].clone();
    assert_eq!(renamed["title"], "Phishing v2");
    assert_eq!(renamed["document_type"], "playbook");
    assert_eq!(renamed["is_global"], true);
    assert_eq!(renamed["tags"], json!(["x"]));
    assert_eq!(renamed["version"], 1);
    assert_eq!(renamed["content"], created["content"]);
    assert_eq!(renamed["created_at"], created["created_at"]);
    assert_ne!(renamed["updated_at"], created["updated_at"]);
    let v2 = body(server.patch_json(&path, &admin, &json!({"content": "new"})).await).await["data"].clone();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["content"], "new");
    let v3 = body(server.patch_json(&path, &admin, &json!({"content": "new"})).await).await["data"].clone();
    assert_eq!(v3["version"], 3);

    // Rules are replaced when sent (validated), kept when omitted.
    let rules = json!({"match_all": [{"field": "severity", "op": "in", "value": ["Critical"]}]});
    let retargeted = body(server.patch_json(&path, &admin, &json!({"targeting_rules": rules})).await).await["data"].clone();
    assert_eq!(retargeted["targeting_rules"], rules);
    let kept = body(server.patch_json(&path, &admin, &json!({"description": "still"})).await).await["data"].clone();
    assert_eq!(kept["targeting_rules"], rules);

    // Null: ignored on NOT NULL fields, clears description and targeting_rules.
    let nulls = body(
        server
            .patch_json(&path, &admin, &json!({"title": null, "document_type": null, "is_global": null, "content": null, "tags": null, "description": null, "targeting_rules": null}))
            .await,
    )
    .await["data"]
        .clone();
    assert_eq!(nulls["title"], "Phishing v2");
    assert_eq!(nulls["document_type"], "playbook");
    assert_eq!(nulls["is_global"], true);
    assert_eq!(nulls["content"], "new");
    assert_eq!(nulls["tags"], json!(["x"]));
    assert_eq!(nulls["version"], 3, "null content is not a new version");
    assert_eq!(nulls["description"], Value::Null);
    assert_eq!(nulls["targeting_rules"], Value::Null);

    let deleted = server.request(Method::DELETE, &path, Some(&admin)).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(deleted.text().await.unwrap(), "");
    let json = expect_error(server.get(&path, &admin).await, 404, "NOT_FOUND").await;
    assert_eq!(json["error"]["message"], "Context document not found.");
    let again = server.request(Method::DELETE, &path, Some(&admin)).send().await.unwrap();
    expect_error(again, 404, "NOT_FOUND").await;
    assert_eq!(list(&server, "").await["meta"]["total"], 2);
    server.stop().await;
}
dual!(create_get_patch_delete);

async fn list_filters_sorting_and_pagination(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (title, document_type, global) in [
        ("delta", "sop", false),
        ("Alpha", "runbook", true),
        ("charlie", "ir_plan", false),
        ("bravo", "runbook", false),
        ("echo", "playbook", true),
    ] {
        let mut payload = doc(title, document_type);
        payload["is_global"] = json!(global);
        payload["targeting_rules"] = splunk_high();
        create_doc(&server, payload).await;
    }

    let all = list(&server, "").await;
    assert_eq!(all["meta"], json!({"total": 5, "page": 1, "page_size": 50, "total_pages": 1}));
    assert_eq!(titles(&all), vec!["echo", "bravo", "charlie", "Alpha", "delta"], "default: newest first");
    assert_eq!(
        sorted_keys(&all["data"][0]),
        vec!["created_at", "description", "document_type", "is_global", "tags", "title", "updated_at", "uuid", "version"],
        "summaries carry no content or rules"
    );
    assert_eq!(titles(&list(&server, "?sort_by=title&sort_order=asc").await), vec!["Alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(titles(&list(&server, "?sort_by=title").await), vec!["echo", "delta", "charlie", "bravo", "Alpha"]);
    assert_eq!(
        titles(&list(&server, "?sort_by=document_type&sort_order=asc").await),
        vec!["charlie", "echo", "Alpha", "bravo", "delta"],
        "ties by id"
    );
    assert_eq!(titles(&list(&server, "?sort_by=created_at&sort_order=asc").await), vec!["delta", "Alpha", "charlie", "bravo", "echo"]);

    // Touch "charlie": it becomes the most recently updated.
    let charlie = list(&server, "?document_type=ir_plan").await["data"][0]["uuid"].as_str().unwrap().to_owned();
    let touched = server.patch_json(&format!("{ROUTE}/{charlie}"), &server.admin_key, &json!({"description": "touched"})).await;
    assert_eq!(touched.status(), 200);
    assert_eq!(titles(&list(&server, "?sort_by=updated_at").await)[0], "charlie");
    assert_eq!(titles(&list(&server, "?sort_by=updated_at&sort_order=asc").await)[4], "charlie");

    assert_eq!(titles(&list(&server, "?document_type=runbook&sort_by=title&sort_order=asc").await), vec!["Alpha", "bravo"]);
    assert_eq!(titles(&list(&server, "?document_type=sop,%20playbook&sort_by=title&sort_order=asc").await), vec!["delta", "echo"]);
    assert_eq!(titles(&list(&server, "?is_global=true&sort_by=title&sort_order=asc").await), vec!["Alpha", "echo"]);
    assert_eq!(list(&server, "?is_global=no").await["meta"]["total"], 3);
    assert_eq!(titles(&list(&server, "?is_global=false&document_type=runbook").await), vec!["bravo"]);
    assert_eq!(list(&server, "?document_type=detection_guide").await["meta"], json!({"total": 0, "page": 1, "page_size": 50, "total_pages": 0}));

    let page2 = list(&server, "?sort_by=title&sort_order=asc&page=2&page_size=2").await;
    assert_eq!(page2["meta"], json!({"total": 5, "page": 2, "page_size": 2, "total_pages": 3}));
    assert_eq!(titles(&page2), vec!["charlie", "delta"]);
    assert_eq!(list(&server, "?page=4&page_size=2").await["data"], json!([]));

    let json = expect_error(server.get(&format!("{ROUTE}?sort_by=content"), &server.admin_key).await, 400, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["message"], "sort_by must be one of: ['created_at', 'document_type', 'title', 'updated_at']");
    let json = expect_error(server.get(&format!("{ROUTE}?sort_order=DESC"), &server.admin_key).await, 400, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["message"], "sort_order must be 'asc' or 'desc'");
    for query in ["document_type=manual", "document_type=runbook,Runbook", "is_global=perhaps", "page=0", "page_size=1000"] {
        let json = expect_error(server.get(&format!("{ROUTE}?{query}"), &server.admin_key).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["loc"][0], "query", "{query}");
    }
    server.stop().await;
}
dual!(list_filters_sorting_and_pagination);

async fn scopes_and_bad_input(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let existing = create_doc(&server, doc("Existing", "sop")).await;
    let path = format!("{ROUTE}/{}", existing["uuid"].as_str().unwrap());

    let (reader, _) = server.create_key(&["alerts:read"], json!({})).await;
    let (writer, _) = server.create_key(&["alerts:write"], json!({})).await;
    let (other, _) = server.create_key(&["workflows:read"], json!({})).await;
    assert_eq!(server.get(ROUTE, &reader).await.status(), 200);
    assert_eq!(server.get(&path, &reader).await.status(), 200);
    let json = expect_error(server.post_json(ROUTE, &reader, &doc("x", "sop")).await, 403, "FORBIDDEN").await;
    assert_eq!(json["error"]["details"]["required_scopes"], json!(["alerts:write"]));
    expect_error(server.patch_json(&path, &reader, &json!({"title": "x"})).await, 403, "FORBIDDEN").await;
    expect_error(server.request(Method::DELETE, &path, Some(&reader)).send().await.unwrap(), 403, "FORBIDDEN").await;
    for route in [ROUTE, path.as_str()] {
        let json = expect_error(server.get(route, &other).await, 403, "FORBIDDEN").await;
        assert_eq!(json["error"]["details"]["required_scopes"], json!(["alerts:read"]));
    }
    expect_error(server.request(Method::GET, ROUTE, None).send().await.unwrap(), 401, "UNAUTHORIZED").await;
    // alerts:write is the write scope (not admin).
    let written = server.post_json(ROUTE, &writer, &doc("By writer", "runbook")).await;
    assert_eq!(written.status(), 201);
    let written = body(written).await["data"]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(server.patch_json(&format!("{ROUTE}/{written}"), &writer, &json!({"title": "t"})).await.status(), 200);
    let removed = server.request(Method::DELETE, &format!("{ROUTE}/{written}"), Some(&writer)).send().await.unwrap();
    assert_eq!(removed.status(), 204);

    let with = |extra: Value| {
        let mut payload = doc("T", "runbook");
        payload.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        payload
    };
    let rule = |field: &str, op: &str, value: Value| json!({"match_all": [{"field": field, "op": op, "value": value}]});
    let oversized = json!({"match_any": [{"field": "source_name", "op": "in", "value": vec!["s".repeat(400); 170]}]});
    let oversized_bytes = serde_json::to_vec(&oversized).unwrap().len();
    assert!(oversized_bytes > 65_536);
    let cases: Vec<(Value, &str, Value)> = vec![
        (json!({"document_type": "sop", "content": "c"}), "missing", json!(["body", "title"])),
        (json!(["T", "runbook", false, null, "content"]), "model_attributes_type", json!(["body"])),
        (json!({"title": "t", "content": "c"}), "missing", json!(["body", "document_type"])),
        (json!({"title": "t", "document_type": "sop"}), "missing", json!(["body", "content"])),
        (with(json!({"title": ""})), "string_length", json!(["body", "title"])),
        (with(json!({"title": " "})), "string_length", json!(["body", "title"])),
        (with(json!({"title": "t".repeat(501)})), "string_length", json!(["body", "title"])),
        (with(json!({"content": "  "})), "string_too_short", json!(["body", "content"])),
        (with(json!({"document_type": "manual"})), "enum", json!(["body", "document_type"])),
        (with(json!({"document_type": "Runbook"})), "enum", json!(["body", "document_type"])),
        (with(json!({"title": 5})), "type_error", json!(["body", "title"])),
        (with(json!({"is_global": "yes"})), "type_error", json!(["body", "is_global"])),
        (with(json!({"tags": "a,b"})), "type_error", json!(["body", "tags"])),
        (with(json!({"tags": ["ok", ""]})), "string_length", json!(["body", "tags", 1])),
        (with(json!({"tags": vec!["t"; 101]})), "too_long", json!(["body", "tags"])),
        (with(json!({"description": "d".repeat(10_001)})), "string_too_long", json!(["body", "description"])),
        (with(json!({"version": 7})), "extra_forbidden", json!(["body", "version"])),
        (with(json!({"uuid": Uuid::new_v4()})), "extra_forbidden", json!(["body", "uuid"])),
        (with(json!({"is_system": true})), "extra_forbidden", json!(["body", "is_system"])),
        (with(json!({"targeting_rules": oversized})), "value_error", json!(["body", "targeting_rules"])),
        (with(json!({"targeting_rules": [1]})), "value_error", json!(["body", "targeting_rules"])),
        (with(json!({"targeting_rules": "splunk"})), "value_error", json!(["body", "targeting_rules"])),
        (with(json!({"targeting_rules": {}})), "value_error", json!(["body", "targeting_rules"])),
        (with(json!({"targeting_rules": {"match_any": []}})), "value_error", json!(["body", "targeting_rules"])),
        (with(json!({"targeting_rules": {"match_none": []}})), "value_error", json!(["body", "targeting_rules"])),
        (with(json!({"targeting_rules": {"match_any": {}}})), "value_error", json!(["body", "targeting_rules", "match_any"])),
        (with(json!({"targeting_rules": {"match_all": ["x"]}})), "value_error", json!(["body", "targeting_rules", "match_all", 0])),
        (with(json!({"targeting_rules": rule("hostname", "eq", json!("x"))})), "value_error", json!(["body", "targeting_rules", "match_all", 0, "field"])),
        (with(json!({"targeting_rules": rule("tags", "regex", json!("x"))})), "value_error", json!(["body", "targeting_rules", "match_all", 0, "op"])),
        (with(json!({"targeting_rules": rule("tags", "eq", json!("x"))})), "value_error", json!(["body", "targeting_rules", "match_all", 0, "op"])),
        (with(json!({"targeting_rules": rule("severity", "gte", json!("Severe"))})), "value_error", json!(["body", "targeting_rules", "match_all", 0, "value"])),
        (with(json!({"targeting_rules": rule("source_name", "in", json!("splunk"))})), "value_error", json!(["body", "targeting_rules", "match_all", 0, "value"])),
        (with(json!({"targeting_rules": {"match_all": [{"field": "tags", "op": "contains"}]}})), "value_error", json!(["body", "targeting_rules", "match_all", 0, "value"])),
    ];
    for (payload, kind, loc) in cases {
        let json = expect_error(server.post_json(ROUTE, &admin, &payload).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "{payload}: {json}");
        assert_eq!(json["error"]["details"]["errors"][0]["loc"], loc, "{payload}: {json}");
    }
    // Messages name the problem.
    let json = expect_error(server.post_json(ROUTE, &admin, &with(json!({"targeting_rules": oversized}))).await, 422, "VALIDATION_ERROR").await;
    let size = oversized_bytes.to_string();
    let grouped = format!("{},{}", &size[..size.len() - 3], &size[size.len() - 3..]);
    assert_eq!(
        json["error"]["details"]["errors"][0]["msg"],
        format!("targeting_rules exceeds maximum size of 64 KB ({grouped} bytes serialized)")
    );
    let json = expect_error(server.post_json(ROUTE, &admin, &with(json!({"targeting_rules": rule("tags", "eq", json!("x"))}))).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["msg"], "match_all[0]: op 'eq' cannot be used with field 'tags'; use one of [\"contains\"]");
    let json = expect_error(server.post_json(ROUTE, &admin, &with(json!({"document_type": "manual"}))).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(
        json["error"]["details"]["errors"][0]["msg"],
        "document_type must be one of: [\"detection_guide\", \"ir_plan\", \"other\", \"playbook\", \"runbook\", \"sop\"]"
    );
    // Several problems are all reported.
    let json = expect_error(
        server.post_json(ROUTE, &admin, &json!({"title": "", "document_type": "x", "content": "c", "targeting_rules": {"match_any": [{"field": "x", "op": "y", "value": 1}]}})).await,
        422,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(json["error"]["details"]["errors"].as_array().unwrap().len(), 4);

    // Body-level failures: malformed JSON is a 422 (Calseta answered 500); a multipart form
    // without its required parts is a 422 naming them (uploads: context_uploads.rs); any other
    // type is a 415.
    let malformed = server.request(Method::POST, ROUTE, Some(&admin)).header("content-type", "application/json").body("{\"title\"").send().await.unwrap();
    let json = expect_error(malformed, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["type"], "json_invalid");
    let multipart = server
        .request(Method::POST, ROUTE, Some(&admin))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nT\r\n--x--\r\n")
        .send()
        .await
        .unwrap();
    let json = expect_error(multipart, 422, "VALIDATION_ERROR").await;
    let missing: Vec<&Value> = json["error"]["details"]["errors"].as_array().unwrap().iter().map(|e| &e["loc"][1]).collect();
    assert_eq!(missing, [&json!("document_type"), &json!("file")], "{json}");
    let text = server.request(Method::POST, ROUTE, Some(&admin)).header("content-type", "text/plain").body("title").send().await.unwrap();
    expect_error(text, 415, "UNSUPPORTED_MEDIA_TYPE").await;

    for (payload, kind) in [
        (json!({"title": ""}), "string_length"),
        (json!({"document_type": "manual"}), "enum"),
        (json!({"content": ""}), "string_too_short"),
        (json!({"content": 1}), "type_error"),
        (json!({"tags": [1]}), "type_error"),
        (json!({"targeting_rules": {"match_any": "x"}}), "value_error"),
        (json!({"targeting_rules": rule("severity", "lte", json!("low"))}), "value_error"),
        (json!({"version": 2}), "extra_forbidden"),
        (json!({"created_at": "2026-01-01T00:00:00Z"}), "extra_forbidden"),
    ] {
        let json = expect_error(server.patch_json(&path, &admin, &payload).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "{payload}: {json}");
    }
    let unchanged = body(server.get(&path, &admin).await).await["data"].clone();
    assert_eq!(unchanged, existing, "rejected and denied requests changed nothing");
    assert_eq!(list(&server, "").await["meta"]["total"], 1, "no rejected request created a document");

    let random = format!("{ROUTE}/{}", Uuid::new_v4());
    expect_error(server.get(&random, &admin).await, 404, "NOT_FOUND").await;
    expect_error(server.patch_json(&random, &admin, &json!({"title": "x"})).await, 404, "NOT_FOUND").await;
    expect_error(server.request(Method::DELETE, &random, Some(&admin)).send().await.unwrap(), 404, "NOT_FOUND").await;
    let bad = format!("{ROUTE}/not-a-uuid");
    expect_error(server.get(&bad, &admin).await, 422, "VALIDATION_ERROR").await;
    expect_error(server.patch_json(&bad, &admin, &json!({"title": "x"})).await, 422, "VALIDATION_ERROR").await;
    expect_error(server.request(Method::DELETE, &bad, Some(&admin)).send().await.unwrap(), 422, "VALIDATION_ERROR").await;
    server.stop().await;
}
dual!(scopes_and_bad_input);

/// `applicable_documents` against the documents the API wrote: globals first, then matching
/// targeted ones, each by document_type; a non-global document without rules attaches nowhere.
async fn applicable_documents_order(backend: Backend) {
    use calseta::context::{AlertFacts, applicable_documents};

    let server = TestServer::start(backend).await;
    let targeted = |title: &str, document_type: &str, rules: Value| {
        let mut payload = doc(title, document_type);
        payload["targeting_rules"] = rules;
        payload
    };
    let global = |title: &str, document_type: &str| {
        let mut payload = doc(title, document_type);
        payload["is_global"] = json!(true);
        payload
    };
    create_doc(&server, targeted("splunk sop", "sop", json!({"match_all": [{"field": "source_name", "op": "eq", "value": "splunk"}]}))).await;
    create_doc(&server, global("global sop", "sop")).await;
    create_doc(&server, targeted("high playbook", "playbook", json!({"match_any": [{"field": "severity", "op": "gte", "value": "High"}]}))).await;
    create_doc(&server, doc("untargeted runbook", "runbook")).await;
    create_doc(&server, global("global ir plan", "ir_plan")).await;
    create_doc(&server, targeted("elastic detection guide", "detection_guide", json!({"match_all": [{"field": "source_name", "op": "in", "value": ["elastic"]}]}))).await;
    let mut ignored_rules = global("global with rules", "runbook");
    ignored_rules["targeting_rules"] = json!({"match_all": [{"field": "source_name", "op": "eq", "value": "never"}]});
    create_doc(&server, ignored_rules).await;
    create_doc(&server, targeted("phishing tag", "other", json!({"match_all": [{"field": "tags", "op": "contains", "value": "phishing"}]}))).await;

    let db = calseta::db::Db::connect(&server.db.url, 2).await.unwrap();
    let titles_for = |source: &'static str, severity: &'static str, tags: Vec<String>| {
        let db = db.clone();
        async move {
            let facts = AlertFacts { source_name: source, severity, tags: &tags };
            applicable_documents(&db, &facts).await.unwrap().into_iter().map(|d| d.title).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        titles_for("splunk", "Critical", vec!["phishing".into()]).await,
        vec!["global ir plan", "global with rules", "global sop", "phishing tag", "high playbook", "splunk sop"]
    );
    assert_eq!(titles_for("elastic", "Low", vec![]).await, vec!["global ir plan", "global with rules", "global sop", "elastic detection guide"]);
    assert_eq!(titles_for("sentinel", "Medium", vec![]).await, vec!["global ir plan", "global with rules", "global sop"]);
    db.close().await;
    server.stop().await;
}
dual!(applicable_documents_order);
