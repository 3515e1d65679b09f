//! `/v1/detection-rules` CRUD, list filters/sorting/pagination, scopes, input validation, delete
//! semantics and per-rule metrics. Alerts for the metrics and delete tests are written straight
//! into the server's database (ingest is a separate module); every assertion goes through HTTP.

use chrono::{DateTime, Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error};

async fn create_rule(server: &TestServer, payload: Value) -> Value {
    let response = server.post_json("/v1/detection-rules", &server.admin_key, &payload).await;
    assert_eq!(response.status(), 201, "create rule {payload}");
    body(response).await["data"].clone()
}

async fn list(server: &TestServer, query: &str) -> Value {
    let response = server.get(&format!("/v1/detection-rules{query}"), &server.admin_key).await;
    assert_eq!(response.status(), 200, "list {query}");
    body(response).await
}

fn names(listing: &Value) -> Vec<String> {
    listing["data"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect()
}

async fn create_get_patch_delete(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let admin_prefix = &admin[..8];

    let full = create_rule(
        &server,
        json!({
            "name": "Brute force", "source_rule_id": "R-1", "source_name": "splunk", "severity": "High",
            "is_active": false, "mitre_tactics": ["TA0006"], "mitre_techniques": ["T1110"],
            "mitre_subtechniques": ["T1110.001"], "data_sources": ["auth logs"], "run_frequency": "5m",
            "created_by": "alice", "documentation": "# Brute force\nCheck the source.",
        }),
    )
    .await;
    let mut keys: Vec<&str> = full.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "created_at", "created_by", "data_sources", "documentation", "is_active", "mitre_subtechniques",
            "mitre_tactics", "mitre_techniques", "name", "run_frequency", "severity", "source_name",
            "source_rule_id", "updated_at", "uuid",
        ]
    );
    assert_eq!(full["name"], "Brute force");
    assert_eq!(full["source_rule_id"], "R-1");
    assert_eq!(full["source_name"], "splunk");
    assert_eq!(full["severity"], "High");
    assert_eq!(full["is_active"], false);
    assert_eq!(full["mitre_tactics"], json!(["TA0006"]));
    assert_eq!(full["mitre_techniques"], json!(["T1110"]));
    assert_eq!(full["mitre_subtechniques"], json!(["T1110.001"]));
    assert_eq!(full["data_sources"], json!(["auth logs"]));
    assert_eq!(full["run_frequency"], "5m");
    assert_eq!(full["created_by"], "alice");
    assert_eq!(full["documentation"], "# Brute force\nCheck the source.");
    assert_eq!(full["created_at"], full["updated_at"]);

    // Defaults: active, empty lists, nulls, created_by = the caller's key prefix.
    let minimal = create_rule(&server, json!({"name": "Minimal"})).await;
    assert_eq!(minimal["is_active"], true);
    assert_eq!(minimal["mitre_tactics"], json!([]));
    assert_eq!(minimal["data_sources"], json!([]));
    assert_eq!(minimal["severity"], Value::Null);
    assert_eq!(minimal["source_name"], Value::Null);
    assert_eq!(minimal["documentation"], Value::Null);
    assert_eq!(minimal["created_by"], admin_prefix);
    let blank_author = create_rule(&server, json!({"name": "Blank author", "created_by": " "})).await;
    assert_eq!(blank_author["created_by"], admin_prefix);
    let null_author = create_rule(&server, json!({"name": "Null author", "created_by": null})).await;
    assert_eq!(null_author["created_by"], admin_prefix);

    let uuid = full["uuid"].as_str().unwrap();
    let path = format!("/v1/detection-rules/{uuid}");
    let fetched = body(server.get(&path, &admin).await).await;
    assert_eq!(fetched["data"], full);
    assert_eq!(fetched["meta"], json!({}));

    // PATCH: values replace; null clears the nullable severity/documentation and is ignored
    // for the NOT NULL fields; omitted fields stay.
    let patched = body(
        server
            .patch_json(&path, &admin, &json!({"name": "Brute force v2", "is_active": true, "mitre_tactics": ["TA0001", "TA0006"], "data_sources": []}))
            .await,
    )
    .await["data"]
        .clone();
    assert_eq!(patched["name"], "Brute force v2");
    assert_eq!(patched["is_active"], true);
    assert_eq!(patched["mitre_tactics"], json!(["TA0001", "TA0006"]));
    assert_eq!(patched["data_sources"], json!([]));
    assert_eq!(patched["severity"], "High");
    assert_eq!(patched["mitre_techniques"], json!(["T1110"]));
    assert_eq!(patched["source_rule_id"], "R-1", "immutable fields untouched");
    assert_eq!(patched["created_at"], full["created_at"]);
    assert_ne!(patched["updated_at"], full["updated_at"]);
    let nulls = body(
        server
            .patch_json(&path, &admin, &json!({"name": null, "is_active": null, "mitre_techniques": null, "severity": null, "documentation": null}))
            .await,
    )
    .await["data"]
        .clone();
    assert_eq!(nulls["name"], "Brute force v2", "null ignored on a NOT NULL field");
    assert_eq!(nulls["is_active"], true);
    assert_eq!(nulls["mitre_techniques"], json!(["T1110"]));
    assert_eq!(nulls["severity"], Value::Null, "null clears a nullable field");
    assert_eq!(nulls["documentation"], Value::Null);
    let empty = server.patch_json(&path, &admin, &json!({})).await;
    assert_eq!(body(empty).await["data"]["name"], "Brute force v2");

    // Immutable fields are unknown to PATCH: 422, nothing changed.
    for field in ["source_rule_id", "source_name", "run_frequency", "created_by", "uuid", "created_at"] {
        let response = server.patch_json(&path, &admin, &json!({field: "x", "name": "changed"})).await;
        let json = expect_error(response, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], "extra_forbidden", "{field}");
        assert_eq!(json["error"]["details"]["errors"][0]["loc"], json!(["body", field]));
    }
    assert_eq!(body(server.get(&path, &admin).await).await["data"]["name"], "Brute force v2");

    let deleted = server.request(Method::DELETE, &path, Some(&admin)).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(deleted.text().await.unwrap(), "");
    expect_error(server.get(&path, &admin).await, 404, "NOT_FOUND").await;
    let again = server.request(Method::DELETE, &path, Some(&admin)).send().await.unwrap();
    let json = expect_error(again, 404, "NOT_FOUND").await;
    assert_eq!(json["error"]["message"], "Detection rule not found.");
    assert_eq!(list(&server, "").await["meta"]["total"], 3);
    server.stop().await;
}
dual!(create_get_patch_delete);

async fn list_filters_sorting_and_pagination(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (name, source, severity, active) in [
        ("delta", Some("splunk"), Some("Low"), true),
        ("Alpha", Some("elastic"), Some("Critical"), true),
        ("charlie", Some("sentinel"), Some("High"), false),
        ("bravo", Some("splunk"), None, true),
        ("echo", None, Some("Medium"), true),
    ] {
        create_rule(&server, json!({"name": name, "source_name": source, "severity": severity, "is_active": active})).await;
    }

    let all = list(&server, "").await;
    assert_eq!(all["meta"], json!({"total": 5, "page": 1, "page_size": 50, "total_pages": 1}));
    assert_eq!(names(&all), vec!["echo", "bravo", "charlie", "Alpha", "delta"], "default: newest first");
    assert_eq!(names(&list(&server, "?sort_by=created_at&sort_order=asc").await), vec!["delta", "Alpha", "charlie", "bravo", "echo"]);
    assert_eq!(names(&list(&server, "?sort_by=name").await), vec!["echo", "delta", "charlie", "bravo", "Alpha"], "default order desc, case-insensitive");
    assert_eq!(names(&list(&server, "?sort_by=name&sort_order=asc").await), vec!["Alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(
        names(&list(&server, "?sort_by=severity&sort_order=desc").await),
        vec!["Alpha", "charlie", "echo", "delta", "bravo"],
        "severity by rank, not alphabet"
    );
    assert_eq!(names(&list(&server, "?sort_by=severity&sort_order=asc").await), vec!["bravo", "delta", "echo", "charlie", "Alpha"]);
    assert_eq!(
        names(&list(&server, "?sort_by=source_name&sort_order=asc").await),
        vec!["Alpha", "charlie", "delta", "bravo", "echo"],
        "ties by id in the same direction; missing source last"
    );
    assert_eq!(names(&list(&server, "?sort_by=source_name&sort_order=desc").await), vec!["bravo", "delta", "charlie", "Alpha", "echo"]);

    // Filters: comma lists (exact), booleans, combinations.
    assert_eq!(names(&list(&server, "?source_name=splunk&sort_by=name&sort_order=asc").await), vec!["bravo", "delta"]);
    assert_eq!(names(&list(&server, "?source_name=splunk,%20elastic&sort_by=name&sort_order=asc").await), vec!["Alpha", "bravo", "delta"]);
    assert_eq!(names(&list(&server, "?source_name=Splunk").await), Vec::<String>::new(), "exact, case-sensitive");
    assert_eq!(names(&list(&server, "?severity=High,Low&sort_by=name&sort_order=asc").await), vec!["charlie", "delta"]);
    assert_eq!(names(&list(&server, "?is_active=false").await), vec!["charlie"]);
    assert_eq!(list(&server, "?is_active=true").await["meta"]["total"], 4);
    assert_eq!(list(&server, "?is_active=0").await["meta"]["total"], 1, "pydantic-style booleans");
    assert_eq!(list(&server, "?is_active=").await["meta"]["total"], 5, "empty = no filter");
    assert_eq!(list(&server, "?source_name=,").await["meta"]["total"], 5, "empty list = no filter");
    let combined = list(&server, "?source_name=splunk&is_active=true&severity=Low").await;
    assert_eq!(names(&combined), vec!["delta"]);
    assert_eq!(combined["meta"]["total"], 1);

    // Pagination meta and disjoint pages.
    let page1 = list(&server, "?sort_by=name&sort_order=asc&page=1&page_size=2").await;
    let page3 = list(&server, "?sort_by=name&sort_order=asc&page=3&page_size=2").await;
    assert_eq!(page1["meta"], json!({"total": 5, "page": 1, "page_size": 2, "total_pages": 3}));
    assert_eq!(names(&page1), vec!["Alpha", "bravo"]);
    assert_eq!(names(&page3), vec!["echo"]);
    let past = list(&server, "?page=9&page_size=2&is_active=true").await;
    assert_eq!(past["meta"], json!({"total": 4, "page": 9, "page_size": 2, "total_pages": 2}));
    assert_eq!(past["data"], json!([]));
    let none = list(&server, "?source_name=nope").await;
    assert_eq!(none["meta"], json!({"total": 0, "page": 1, "page_size": 50, "total_pages": 0}));

    // Invalid sort values: 400 VALIDATION_ERROR with Calseta's messages; bad paging/booleans: 422.
    let json = expect_error(server.get("/v1/detection-rules?sort_by=id", &server.admin_key).await, 400, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["message"], "sort_by must be one of: ['created_at', 'name', 'severity', 'source_name']");
    let json = expect_error(server.get("/v1/detection-rules?sort_order=up", &server.admin_key).await, 400, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["message"], "sort_order must be 'asc' or 'desc'");
    for query in ["page=0", "page_size=501", "page=x", "is_active=maybe"] {
        let json = expect_error(server.get(&format!("/v1/detection-rules?{query}"), &server.admin_key).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["loc"][0], "query", "{query}");
    }
    server.stop().await;
}
dual!(list_filters_sorting_and_pagination);

async fn scopes_and_bad_input(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let rule = create_rule(&server, json!({"name": "Existing"})).await;
    let path = format!("/v1/detection-rules/{}", rule["uuid"].as_str().unwrap());

    // alerts:read reads; writes need admin (alerts:write is not enough).
    let (reader, _) = server.create_key(&["alerts:read"], json!({})).await;
    let (writer, _) = server.create_key(&["alerts:write"], json!({})).await;
    let (other, _) = server.create_key(&["enrichments:read"], json!({})).await;
    assert_eq!(server.get("/v1/detection-rules", &reader).await.status(), 200);
    assert_eq!(server.get(&path, &reader).await.status(), 200);
    assert_eq!(server.get(&format!("{path}/metrics"), &reader).await.status(), 200);
    for key in [&reader, &writer] {
        let json = expect_error(server.post_json("/v1/detection-rules", key, &json!({"name": "x"})).await, 403, "FORBIDDEN").await;
        assert_eq!(json["error"]["details"]["required_scopes"], json!(["admin"]));
        expect_error(server.patch_json(&path, key, &json!({"name": "x"})).await, 403, "FORBIDDEN").await;
        let delete = server.request(Method::DELETE, &path, Some(key)).send().await.unwrap();
        expect_error(delete, 403, "FORBIDDEN").await;
    }
    for route in ["/v1/detection-rules".to_owned(), path.clone(), format!("{path}/metrics")] {
        let json = expect_error(server.get(&route, &other).await, 403, "FORBIDDEN").await;
        assert_eq!(json["error"]["details"]["required_scopes"], json!(["alerts:read"]));
    }
    expect_error(server.request(Method::GET, "/v1/detection-rules", None).send().await.unwrap(), 401, "UNAUTHORIZED").await;
    assert_eq!(body(server.get(&path, &admin).await).await["data"]["name"], "Existing", "denied writes changed nothing");

    let long = "x".repeat(501);
    let cases: Vec<(Value, &str, Value)> = vec![
        (json!({}), "missing", json!(["body", "name"])),
        (json!({"name": ""}), "string_length", json!(["body", "name"])),
        (json!({"name": "   "}), "string_length", json!(["body", "name"])),
        (json!({"name": long}), "string_length", json!(["body", "name"])),
        (json!({"name": 7}), "type_error", json!(["body", "name"])),
        (json!({"name": "x", "is_active": "yes"}), "type_error", json!(["body", "is_active"])),
        (json!({"name": "x", "is_active": null}), "type_error", json!(["body", "is_active"])),
        (json!({"name": "x", "mitre_tactics": "TA0001"}), "type_error", json!(["body", "mitre_tactics"])),
        // The shared decoder reports an item path as one segment ("mitre_tactics[0]"); only the
        // kind is asserted here.
        (json!({"name": "x", "mitre_tactics": [1]}), "type_error", Value::Null),
        (json!({"name": "x", "data_sources": ["ok", ""]}), "string_length", json!(["body", "data_sources", 1])),
        (json!({"name": "x", "severity": "s".repeat(501)}), "string_too_long", json!(["body", "severity"])),
        (json!({"name": "x", "source_rule_id": "s".repeat(501)}), "string_too_long", json!(["body", "source_rule_id"])),
        (json!({"name": "x", "documentation": ["a"]}), "type_error", json!(["body", "documentation"])),
        (json!({"name": "x", "uuid": Uuid::new_v4()}), "extra_forbidden", json!(["body", "uuid"])),
        (json!({"name": "x", "is_system": true}), "extra_forbidden", json!(["body", "is_system"])),
        (json!(["name"]), "model_attributes_type", json!(["body"])),
        (json!("name"), "model_attributes_type", json!(["body"])),
    ];
    for (payload, kind, loc) in cases {
        let json = expect_error(server.post_json("/v1/detection-rules", &admin, &payload).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "{payload}: {json}");
        if !loc.is_null() {
            assert_eq!(json["error"]["details"]["errors"][0]["loc"], loc, "{payload}: {json}");
        }
    }
    let malformed = server
        .request(Method::POST, "/v1/detection-rules", Some(&admin))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let json = expect_error(malformed, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["type"], "json_invalid");
    let not_json = server.request(Method::POST, "/v1/detection-rules", Some(&admin)).body("name=x").send().await.unwrap();
    expect_error(not_json, 415, "UNSUPPORTED_MEDIA_TYPE").await;

    for (payload, kind) in [
        (json!({"name": ""}), "string_length"),
        (json!({"name": 1}), "type_error"),
        (json!({"is_active": "no"}), "type_error"),
        (json!({"mitre_techniques": "T1"}), "type_error"),
        (json!({"severity": 3}), "type_error"),
        (json!({"unknown": 1}), "extra_forbidden"),
    ] {
        let json = expect_error(server.patch_json(&path, &admin, &payload).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "{payload}: {json}");
    }
    assert_eq!(list(&server, "").await["meta"]["total"], 1, "no rejected request created a rule");

    // Path validation and unknown rules, on every route.
    let random = format!("/v1/detection-rules/{}", Uuid::new_v4());
    for route in ["/v1/detection-rules/not-a-uuid", "/v1/detection-rules/not-a-uuid/metrics", "/v1/detection-rules/1234"] {
        expect_error(server.get(route, &admin).await, 422, "VALIDATION_ERROR").await;
    }
    expect_error(server.patch_json("/v1/detection-rules/zzz", &admin, &json!({"name": "x"})).await, 422, "VALIDATION_ERROR").await;
    let bad_delete = server.request(Method::DELETE, "/v1/detection-rules/zzz", Some(&admin)).send().await.unwrap();
    expect_error(bad_delete, 422, "VALIDATION_ERROR").await;
    let json = expect_error(server.get(&random, &admin).await, 404, "NOT_FOUND").await;
    assert_eq!(json["error"]["message"], "Detection rule not found.");
    expect_error(server.get(&format!("{random}/metrics"), &admin).await, 404, "NOT_FOUND").await;
    expect_error(server.patch_json(&random, &admin, &json!({"name": "x"})).await, 404, "NOT_FOUND").await;
    let missing_delete = server.request(Method::DELETE, &random, Some(&admin)).send().await.unwrap();
    expect_error(missing_delete, 404, "NOT_FOUND").await;
    server.stop().await;
}
dual!(scopes_and_bad_input);

/// Direct database access for seeding what no API writes yet (alerts, indicators, events).
enum Pool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Postgres($p) => $body,
            Pool::Sqlite($p) => $body,
        }
    };
}

impl Pool {
    async fn connect(server: &TestServer) -> Pool {
        let url = &server.db.url;
        if url.starts_with("sqlite:") {
            Pool::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        } else {
            Pool::Postgres(sqlx::PgPool::connect(url).await.unwrap())
        }
    }

    async fn close(self) {
        on_pool!(self, p => p.close().await)
    }
}

struct SeedAlert<'a> {
    rule: Option<&'a str>,
    status: &'a str,
    severity: &'a str,
    source: &'a str,
    classification: Option<&'a str>,
    created_at: DateTime<Utc>,
    acknowledged_after: Option<i64>,
    closed_after: Option<i64>,
}

async fn seed_alert(pool: &Pool, alert: SeedAlert<'_>) -> i64 {
    let rule = alert.rule.map(|r| Uuid::parse_str(r).unwrap());
    let after = |secs: Option<i64>| secs.map(|s| alert.created_at + Duration::seconds(s));
    const SQL: &str = "INSERT INTO alerts (uuid, title, severity, source_name, occurred_at, ingested_at, status, \
                       close_classification, acknowledged_at, closed_at, detection_rule_id, created_at, updated_at) \
                       VALUES ($1, 'seeded', $2, $3, $4, $4, $5, $6, $7, $8, \
                       (SELECT id FROM detection_rules WHERE uuid = $9), $4, $4) RETURNING id";
    on_pool!(pool, p => sqlx::query_scalar(SQL)
        .bind(Uuid::new_v4()).bind(alert.severity).bind(alert.source).bind(alert.created_at).bind(alert.status)
        .bind(alert.classification).bind(after(alert.acknowledged_after)).bind(after(alert.closed_after)).bind(rule)
        .fetch_one(p).await.unwrap())
}

async fn seed_indicator(pool: &Pool, kind: &str, value: &str, malice: &str, alerts: &[i64]) {
    let at = Utc::now();
    let id: i64 = on_pool!(pool, p => sqlx::query_scalar(
        "INSERT INTO indicators (uuid, type, value, first_seen, last_seen, malice, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4, $5, $4, $4) RETURNING id")
        .bind(Uuid::new_v4()).bind(kind).bind(value).bind(at).bind(malice).fetch_one(p).await.unwrap());
    for alert in alerts {
        on_pool!(pool, p => sqlx::query("INSERT INTO alert_indicators (alert_id, indicator_id, created_at, updated_at) VALUES ($1, $2, $3, $3)")
            .bind(alert).bind(id).bind(at).execute(p).await.map(|_| ()).unwrap());
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

async fn metrics_over_a_window(backend: Backend) {
    let server = TestServer::start(backend).await;
    let rule = create_rule(&server, json!({"name": "Measured"})).await;
    let other = create_rule(&server, json!({"name": "Other"})).await;
    let uuid = rule["uuid"].as_str().unwrap();
    let pool = Pool::connect(&server).await;
    let alert = |created: &'static str, status: &'static str, severity: &'static str, source: &'static str| SeedAlert {
        rule: Some(uuid),
        status,
        severity,
        source,
        classification: None,
        created_at: at(created),
        acknowledged_after: None,
        closed_after: None,
    };
    let a1 = seed_alert(&pool, alert("2026-01-01T00:00:00Z", "Open", "High", "splunk")).await;
    let a2 = seed_alert(&pool, SeedAlert { acknowledged_after: Some(90), ..alert("2026-01-01T10:00:00Z", "Triaging", "High", "elastic") }).await;
    let a3 = seed_alert(
        &pool,
        SeedAlert {
            classification: Some("False Positive - Inaccurate Data"),
            acknowledged_after: Some(30),
            closed_after: Some(600),
            ..alert("2026-01-01T23:59:59.500Z", "Closed", "Low", "splunk")
        },
    )
    .await;
    let a4 = seed_alert(
        &pool,
        SeedAlert {
            classification: Some("True Positive - Suspicious Activity"),
            acknowledged_after: Some(60),
            closed_after: Some(1200),
            ..alert("2026-01-02T05:00:00Z", "Closed", "Critical", "splunk")
        },
    )
    .await;
    seed_alert(&pool, SeedAlert { closed_after: Some(300), ..alert("2026-01-02T06:00:00Z", "Closed", "Medium", "splunk") }).await;
    // Outside the window (the end is exclusive), and another rule's alert inside it.
    let outside = seed_alert(&pool, alert("2026-01-03T00:00:00Z", "Open", "Critical", "splunk")).await;
    seed_alert(&pool, SeedAlert { rule: other["uuid"].as_str(), ..alert("2026-01-01T12:00:00Z", "Open", "Low", "splunk") }).await;
    seed_indicator(&pool, "ip", "203.0.113.9", "Malicious", &[a1, a2, a3]).await;
    seed_indicator(&pool, "domain", "evil.test", "Pending", &[a4]).await;
    seed_indicator(&pool, "domain", "late.test", "Benign", &[outside]).await;

    let query = "from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z";
    let response = server.get(&format!("/v1/detection-rules/{uuid}/metrics?{query}"), &server.admin_key).await;
    assert_eq!(response.status(), 200);
    let json = body(response).await;
    let m = &json["data"];
    assert_eq!(json["meta"], json!({}));
    assert_eq!(m["detection_rule_uuid"], uuid);
    assert_eq!(m["detection_rule_name"], "Measured");
    assert_eq!(at(m["period_from"].as_str().unwrap()), at("2026-01-01T00:00:00Z"));
    assert_eq!(at(m["period_to"].as_str().unwrap()), at("2026-01-03T00:00:00Z"));
    assert_eq!(m["total_alerts"], 5);
    assert_eq!(m["active_alerts"], 2);
    assert_eq!(m["alerts_by_status"], json!({"Open": 1, "Triaging": 1, "Closed": 3}));
    assert_eq!(m["alerts_by_severity"], json!({"High": 2, "Low": 1, "Critical": 1, "Medium": 1}));
    assert_eq!(m["severity_distribution"], json!({"High": 2}));
    assert_eq!(m["alert_sources"], json!({"splunk": 4, "elastic": 1}));
    assert_eq!(m["false_positive_rate"].as_f64().unwrap(), 1.0 / 3.0);
    assert_eq!(m["true_positive_rate"].as_f64().unwrap(), 1.0 / 3.0);
    assert_eq!(
        m["close_classifications"],
        json!({"False Positive - Inaccurate Data": 1, "True Positive - Suspicious Activity": 1})
    );
    assert_eq!(m["alerts_over_time"], json!([{"date": "2026-01-01", "count": 3}, {"date": "2026-01-02", "count": 2}]));
    assert_eq!(m["fp_over_time"], json!([{"date": "2026-01-01", "count": 1}]));
    assert!((m["mtta_seconds"].as_f64().unwrap() - 60.0).abs() < 0.01, "{}", m["mtta_seconds"]);
    assert!((m["mttc_seconds"].as_f64().unwrap() - 700.0).abs() < 0.01, "{}", m["mttc_seconds"]);
    assert_eq!(
        m["top_indicators"],
        json!([{"type": "ip", "value": "203.0.113.9", "count": 3, "malice": "Malicious"},
               {"type": "domain", "value": "evil.test", "count": 1, "malice": "Pending"}])
    );

    // A window with an offset ('+' sent encoded) selects the same instants.
    let shifted = "from=2026-01-01T02:00:00%2B02:00&to=2026-01-02T00:00:00Z";
    let day_one = body(server.get(&format!("/v1/detection-rules/{uuid}/metrics?{shifted}"), &server.admin_key).await).await;
    assert_eq!(day_one["data"]["total_alerts"], 3);
    assert_eq!(day_one["data"]["mttc_seconds"].as_f64().map(f64::round), Some(600.0));
    pool.close().await;
    server.stop().await;
}
dual!(metrics_over_a_window);

async fn metrics_defaults_and_validation(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let rule = create_rule(&server, json!({"name": "Quiet"})).await;
    let path = format!("/v1/detection-rules/{}/metrics", rule["uuid"].as_str().unwrap());

    let before = Utc::now() - Duration::seconds(1);
    let json = body(server.get(&path, &admin).await).await;
    let m = &json["data"];
    let to = at(m["period_to"].as_str().unwrap());
    let from = at(m["period_from"].as_str().unwrap());
    assert!(to >= before && to <= Utc::now(), "default end is now");
    assert_eq!(to - from, Duration::days(30), "default window is 30 days");
    assert_eq!(
        m,
        &json!({
            "detection_rule_uuid": rule["uuid"], "detection_rule_name": "Quiet",
            "period_from": m["period_from"], "period_to": m["period_to"],
            "total_alerts": 0, "active_alerts": 0, "alerts_by_status": {}, "alerts_by_severity": {},
            "false_positive_rate": 0.0, "true_positive_rate": 0.0, "close_classifications": {},
            "alerts_over_time": [], "fp_over_time": [], "mtta_seconds": null, "mttc_seconds": null,
            "severity_distribution": {}, "top_indicators": [], "alert_sources": {},
        })
    );

    // Only `to` given: the window is the 30 days before it. Naive datetimes are UTC.
    let json = body(server.get(&format!("{path}?to=2026-02-01T00:00:00"), &admin).await).await;
    assert_eq!(at(json["data"]["period_to"].as_str().unwrap()), at("2026-02-01T00:00:00Z"));
    assert_eq!(at(json["data"]["period_from"].as_str().unwrap()), at("2026-01-02T00:00:00Z"));
    // An unencoded '+' arrives as a space and is still understood.
    let json = body(server.get(&format!("{path}?from=2026-01-01T00:00:00+00:00&to=2026-01-02T00:00:00Z"), &admin).await).await;
    assert_eq!(at(json["data"]["period_from"].as_str().unwrap()), at("2026-01-01T00:00:00Z"));

    for query in ["from=yesterday", "to=2026-13-01T00:00:00Z", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"] {
        let json = expect_error(server.get(&format!("{path}?{query}"), &admin).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["loc"][0], "query", "{query}");
    }
    server.stop().await;
}
dual!(metrics_defaults_and_validation);

async fn delete_detaches_alerts_and_events(backend: Backend) {
    let server = TestServer::start(backend).await;
    let rule = create_rule(&server, json!({"name": "Doomed"})).await;
    let keep = create_rule(&server, json!({"name": "Kept"})).await;
    let uuid = rule["uuid"].as_str().unwrap();
    let pool = Pool::connect(&server).await;
    let seed = |rule: &'static str| SeedAlert {
        rule: None,
        status: "Open",
        severity: "High",
        source: rule,
        classification: None,
        created_at: Utc::now(),
        acknowledged_after: None,
        closed_after: None,
    };
    let doomed_alert = seed_alert(&pool, SeedAlert { rule: Some(uuid), ..seed("splunk") }).await;
    let kept_alert = seed_alert(&pool, SeedAlert { rule: keep["uuid"].as_str(), ..seed("splunk") }).await;
    const EVENT: &str = "INSERT INTO activity_events (uuid, event_type, actor_type, alert_id, detection_rule_id, created_at) \
                         VALUES ($1, 'alert_ingested', 'system', $2, (SELECT id FROM detection_rules WHERE uuid = $3), $4) RETURNING id";
    let event: i64 = on_pool!(&pool, p => sqlx::query_scalar(EVENT)
        .bind(Uuid::new_v4()).bind(doomed_alert).bind(Uuid::parse_str(uuid).unwrap()).bind(Utc::now()).fetch_one(p).await.unwrap());

    let deleted = server.request(Method::DELETE, &format!("/v1/detection-rules/{uuid}"), Some(&server.admin_key)).send().await.unwrap();
    assert_eq!(deleted.status(), 204);

    let pool_ref = &pool;
    let rule_of = |id: i64| async move {
        on_pool!(pool_ref, p => sqlx::query_scalar::<_, Option<i64>>("SELECT detection_rule_id FROM alerts WHERE id = $1")
            .bind(id).fetch_one(p).await.unwrap())
    };
    assert_eq!(rule_of(doomed_alert).await, None, "the alert survives, detached");
    assert!(rule_of(kept_alert).await.is_some(), "other rules' alerts untouched");
    let event_rule: Option<i64> = on_pool!(&pool, p => sqlx::query_scalar("SELECT detection_rule_id FROM activity_events WHERE id = $1")
        .bind(event).fetch_one(p).await.unwrap());
    assert_eq!(event_rule, None, "the event survives, detached");
    let alerts: i64 = on_pool!(&pool, p => sqlx::query_scalar("SELECT COUNT(*) FROM alerts").fetch_one(p).await.unwrap());
    assert_eq!(alerts, 2);
    pool.close().await;
    server.stop().await;
}
dual!(delete_detaches_alerts_and_events);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_the_catalog_routes() {
    let server = TestServer::start(Backend::Sqlite).await;
    let spec = body(server.client.get(server.url("/openapi.json")).send().await.unwrap()).await;
    for (path, methods) in [
        ("/v1/detection-rules", &["get", "post"][..]),
        ("/v1/detection-rules/{rule_uuid}", &["get", "patch", "delete"][..]),
        ("/v1/detection-rules/{rule_uuid}/metrics", &["get"][..]),
        ("/v1/context-documents", &["get", "post"][..]),
        ("/v1/context-documents/{doc_uuid}", &["get", "patch", "delete"][..]),
    ] {
        for method in methods {
            assert!(spec["paths"][path][method].is_object(), "{method} {path}");
        }
    }
    for schema in ["DetectionRuleResponse", "DetectionRuleCreate", "DetectionRuleUpdate", "DetectionRuleMetrics", "ContextDocumentResponse", "ContextDocumentCreate", "ContextDocumentUpdate"] {
        assert!(spec["components"]["schemas"][schema].is_object(), "{schema}: {}", spec["components"]["schemas"]);
    }
    server.stop().await;
}
