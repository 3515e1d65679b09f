//! `/v1/alerts` and its sub-resources, over alerts created through the real ingest routes and
//! enriched by the real worker.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error};

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/payloads/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Ingests a source payload through the webhook route; returns the alert uuid.
pub async fn ingest(server: &TestServer, source: &str, payload: &Value) -> String {
    let response = server.post_json(&format!("/v1/ingest/{source}"), &server.admin_key, payload).await;
    assert_eq!(response.status(), 202);
    let json = body(response).await;
    assert_eq!(json["data"]["status"], "queued", "{json}");
    json["data"]["alert_uuid"].as_str().unwrap().to_owned()
}

/// Creates an alert through `POST /v1/alerts` with the generic source; returns its uuid.
pub async fn create_generic(server: &TestServer, payload: Value) -> String {
    let response = server.post_json("/v1/alerts", &server.admin_key, &json!({"source_name": "generic", "payload": payload})).await;
    assert_eq!(response.status(), 202, "server log:\n{}", server.stdout.text());
    let json = body(response).await;
    assert_eq!(json["data"]["status"], "queued", "{json}");
    json["data"]["alert_uuid"].as_str().unwrap().to_owned()
}

/// Polls the alert until the worker has marked it Enriched and recorded its completion event
/// (written just after the status commits), bounded; returns the detail body.
pub async fn wait_enriched(server: &TestServer, uuid: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let json = body(server.get(&format!("/v1/alerts/{uuid}"), &server.admin_key).await).await;
        if json["data"]["enrichment_status"] == "Enriched"
            && event_types(server, uuid).await.iter().any(|t| t == "alert_enrichment_completed")
        {
            return json;
        }
        assert!(tokio::time::Instant::now() < deadline, "alert {uuid} never enriched: {json}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Activity event types of an alert, newest first.
pub async fn event_types(server: &TestServer, uuid: &str) -> Vec<String> {
    let json = body(server.get(&format!("/v1/alerts/{uuid}/activity?page_size=500"), &server.admin_key).await).await;
    json["data"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap().to_owned()).collect()
}

/// Polls until the alert has `count` `alert_enrichment_completed` events (the job ran again).
pub async fn wait_enrichment_runs(server: &TestServer, uuid: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let runs = event_types(server, uuid).await.iter().filter(|t| *t == "alert_enrichment_completed").count();
        if runs >= count {
            assert_eq!(runs, count);
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "enrichment ran {runs} times, expected {count}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs one statement directly against the server's database (to set up states the API cannot
/// create, such as stored provider results).
pub async fn execute_sql(server: &TestServer, statement: &str) {
    let statement = sqlx::AssertSqlSafe(statement.to_owned());
    if server.db.url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(&server.db.url).await.unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&server.db.url).await.unwrap();
        sqlx::query(statement).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

pub async fn delete(server: &TestServer, path: &str, key: &str) -> reqwest::Response {
    server.request(Method::DELETE, path, Some(key)).send().await.unwrap()
}

fn sorted_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn pairs(indicators: &Value) -> Vec<(String, String)> {
    indicators
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["type"].as_str().unwrap().to_owned(), i["value"].as_str().unwrap().to_owned()))
        .collect()
}

fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

const ALERT_FIELDS: &[&str] = &[
    "acknowledged_at", "agent_findings", "close_classification", "closed_at", "context_documents", "created_at", "description",
    "detection_rule", "detection_rule_uuid", "duplicate_count", "enriched_at", "enrichment_status", "fingerprint", "indicators",
    "ingested_at", "is_enriched", "last_seen_at", "malice", "malice_override", "malice_override_at", "malice_override_source",
    "occurred_at", "raw_payload", "severity", "source_name", "status", "tags", "title", "triaged_at", "updated_at", "uuid",
];

const INDICATOR_FIELDS: &[&str] = &[
    "created_at", "enrichment_results", "first_seen", "is_enriched", "last_seen", "malice", "malice_overridden_at",
    "malice_source", "type", "updated_at", "uuid", "value",
];

async fn detail_of_ingested_alert(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let payload = fixture("splunk_alert");
    let uuid = ingest(&server, "splunk", &payload).await;
    let detail = wait_enriched(&server, &uuid).await;
    let alert = &detail["data"];
    assert_eq!(sorted_keys(alert), ALERT_FIELDS);
    assert_eq!(alert["uuid"], uuid.as_str());
    assert_eq!(alert["title"], "Brute Force Login Attempt");
    assert_eq!(alert["description"], "Brute Force Attack Detected");
    assert_eq!(alert["severity"], "High");
    assert_eq!(alert["status"], "Open");
    assert_eq!(alert["enrichment_status"], "Enriched");
    assert_eq!(alert["source_name"], "splunk");
    assert_eq!(alert["occurred_at"], "2024-01-15T09:50:00Z");
    assert_eq!(alert["is_enriched"], true);
    assert!(alert["enriched_at"].is_string());
    let fingerprint = alert["fingerprint"].as_str().unwrap();
    assert!(fingerprint.len() == 32 && fingerprint.chars().all(|c| c.is_ascii_hexdigit()), "{fingerprint}");
    assert_eq!(alert["duplicate_count"], 0);
    for null_field in [
        "last_seen_at", "close_classification", "acknowledged_at", "triaged_at", "closed_at", "malice_override",
        "malice_override_source", "malice_override_at", "agent_findings",
    ] {
        assert_eq!(alert[null_field], Value::Null, "{null_field}");
    }
    assert_eq!(alert["tags"], json!([]));
    assert_eq!(alert["raw_payload"], payload);
    assert_eq!(alert["malice"], "Pending");
    assert_eq!(alert["context_documents"], json!([]));
    let rule = &alert["detection_rule"];
    assert_eq!(alert["detection_rule_uuid"], rule["uuid"]);
    assert!(rule["uuid"].is_string());
    assert_eq!(rule["name"], "Brute Force Login Attempt");
    assert_eq!(rule["source_rule_id"], "Brute Force Login Attempt");
    assert_eq!(rule["source_name"], "splunk");
    assert_eq!(rule["is_active"], true);
    assert_eq!(rule["mitre_tactics"], json!([]));
    assert_eq!(rule["data_sources"], json!([]));
    assert_eq!(rule["severity"], Value::Null);
    assert_eq!(rule["documentation"], Value::Null);
    assert_eq!(
        pairs(&alert["indicators"]),
        owned(&[
            ("ip", "10.0.0.99"),
            ("ip", "192.168.1.10"),
            ("account", "admin"),
            ("hash_sha256", "b94f6f125c79e3a5ffaa826f584c10d52ada669e6762051b826b55776d05a8a"),
            ("domain", "corp.example.com"),
        ])
    );
    for indicator in alert["indicators"].as_array().unwrap() {
        assert_eq!(sorted_keys(indicator), INDICATOR_FIELDS);
        assert_eq!(indicator["malice"], "Pending");
        assert_eq!(indicator["malice_source"], "enrichment");
        assert_eq!(indicator["malice_overridden_at"], Value::Null);
        assert_eq!(indicator["is_enriched"], false);
        assert_eq!(indicator["enrichment_results"], Value::Null);
        assert_eq!(indicator["first_seen"], indicator["last_seen"]);
    }
    let meta = &detail["meta"];
    assert_eq!(sorted_keys(meta), ["alert_source", "context_documents_applied", "detection_rule_matched", "enrichment", "generated_at", "indicator_count"]);
    assert_eq!(meta["alert_source"], "splunk");
    assert_eq!(meta["indicator_count"], 5);
    assert_eq!(meta["enrichment"], json!({"succeeded": [], "failed": [], "enriched_at": alert["enriched_at"]}));
    assert_eq!(meta["detection_rule_matched"], true);
    assert_eq!(meta["context_documents_applied"], 0);
    assert!(meta["generated_at"].is_string());

    // The sub-resources agree with the detail view.
    let listed = body(server.get(&format!("/v1/alerts/{uuid}/indicators"), &admin).await).await;
    assert_eq!(listed, json!({"data": alert["indicators"], "meta": {}}));
    let context = body(server.get(&format!("/v1/alerts/{uuid}/context"), &admin).await).await;
    assert_eq!(context, json!({"data": [], "meta": {}}));
    let findings = body(server.get(&format!("/v1/alerts/{uuid}/findings"), &admin).await).await;
    assert_eq!(findings, json!({"data": [], "meta": {}}));

    // The list view carries the summary fields only.
    let list = body(server.get("/v1/alerts", &admin).await).await;
    assert_eq!(list["meta"], json!({"total": 1, "page": 1, "page_size": 50, "total_pages": 1}));
    let summary = &list["data"][0];
    assert_eq!(
        sorted_keys(summary),
        [
            "close_classification", "closed_at", "created_at", "description", "duplicate_count", "enrichment_status",
            "ingested_at", "is_enriched", "occurred_at", "severity", "source_name", "status", "tags", "title", "updated_at", "uuid",
        ]
    );
    for field in sorted_keys(summary) {
        assert_eq!(summary[&field], alert[&field], "{field}");
    }

    // Alerts without a detection rule report none.
    let plain = create_generic(&server, json!({"title": "No rule here", "severity": "low"})).await;
    let plain = wait_enriched(&server, &plain).await;
    assert_eq!(plain["data"]["detection_rule"], Value::Null);
    assert_eq!(plain["data"]["detection_rule_uuid"], Value::Null);
    assert_eq!(plain["data"]["indicators"], json!([]));
    assert_eq!(plain["meta"]["detection_rule_matched"], false);
    assert_eq!(plain["meta"]["indicator_count"], 0);
    assert_eq!(plain["data"]["severity"], "Low");
    assert_eq!(plain["data"]["description"], Value::Null);

    let missing = uuid::Uuid::new_v4();
    for path in ["", "/findings", "/indicators", "/activity", "/relationship-graph", "/context"] {
        let json = expect_error(server.get(&format!("/v1/alerts/{missing}{path}"), &admin).await, 404, "NOT_FOUND").await;
        assert_eq!(json["error"]["message"], "Alert not found.", "{path}");
    }
    for path in ["/v1/alerts/not-a-uuid", "/v1/alerts/123/findings", "/v1/alerts/x/indicators", "/v1/alerts/x/activity", "/v1/alerts/x/relationship-graph", "/v1/alerts/x/context"] {
        expect_error(server.get(path, &admin).await, 422, "VALIDATION_ERROR").await;
    }
    server.stop().await;
}
dual!(detail_of_ingested_alert);

/// Four generic alerts with known fields, plus the splunk fixture; all enriched.
async fn seed_list(server: &TestServer) -> Vec<String> {
    let specs = [
        json!({"title": "Alpha", "severity": "critical", "occurred_at": "2025-01-01T00:00:00Z", "tags": ["a", "b"], "src_ip": "198.51.100.1"}),
        json!({"title": "Bravo", "severity": "low", "occurred_at": "2025-01-02T00:00:00Z", "tags": ["a"], "src_ip": "198.51.100.2"}),
        json!({"title": "Charlie", "severity": "informational", "occurred_at": "2025-01-03T00:00:00Z", "tags": ["b", "c"]}),
        json!({"title": "Delta", "severity": "medium", "occurred_at": "2025-01-04T00:00:00Z", "tags": ["a", "b", "c"]}),
    ];
    let mut uuids = Vec::new();
    for spec in specs {
        uuids.push(create_generic(server, spec).await);
    }
    uuids.push(ingest(server, "splunk", &fixture("splunk_alert")).await);
    for uuid in &uuids {
        wait_enriched(server, uuid).await;
    }
    uuids
}

async fn titles(server: &TestServer, query: &str) -> Vec<String> {
    let response = server.get(&format!("/v1/alerts{query}"), &server.admin_key).await;
    assert_eq!(response.status(), 200, "{query}");
    let json = body(response).await;
    json["data"].as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap().to_owned()).collect()
}

const SPLUNK: &str = "Brute Force Login Attempt";

async fn list_filters(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let uuids = seed_list(&server).await;
    // Default order: occurred_at desc (the splunk fixture is from 2024).
    assert_eq!(titles(&server, "").await, ["Delta", "Charlie", "Bravo", "Alpha", SPLUNK]);

    // status (comma list)
    let patched = server.patch_json(&format!("/v1/alerts/{}", uuids[1]), &admin, &json!({"status": "Triaging"})).await;
    assert_eq!(patched.status(), 200);
    assert_eq!(titles(&server, "?status=Triaging").await, ["Bravo"]);
    assert_eq!(titles(&server, "?status=Open").await, ["Delta", "Charlie", "Alpha", SPLUNK]);
    assert_eq!(titles(&server, "?status=Open,%20Triaging").await.len(), 5);
    assert_eq!(titles(&server, "?status=Nope").await, Vec::<String>::new());
    // severity
    assert_eq!(titles(&server, "?severity=Critical,Low").await, ["Bravo", "Alpha"]);
    assert_eq!(titles(&server, "?severity=High").await, [SPLUNK]);
    // source_name
    assert_eq!(titles(&server, "?source_name=splunk").await, [SPLUNK]);
    assert_eq!(titles(&server, "?source_name=generic,elastic").await, ["Delta", "Charlie", "Bravo", "Alpha"]);
    // enrichment_status / is_enriched
    assert_eq!(titles(&server, "?enrichment_status=Enriched").await.len(), 5);
    assert_eq!(titles(&server, "?enrichment_status=Pending,Failed").await, Vec::<String>::new());
    assert_eq!(titles(&server, "?is_enriched=true").await.len(), 5);
    assert_eq!(titles(&server, "?is_enriched=false").await, Vec::<String>::new());
    // An alert whose enrichment failed, found by either filter (both read the status index).
    execute_sql(&server, "UPDATE alerts SET enrichment_status = 'Failed', is_enriched = FALSE WHERE title = 'Charlie'").await;
    assert_eq!(titles(&server, "?enrichment_status=Failed").await, ["Charlie"]);
    assert_eq!(titles(&server, "?is_enriched=false").await, ["Charlie"]);
    assert_eq!(titles(&server, "?is_enriched=true").await, ["Delta", "Bravo", "Alpha", SPLUNK]);
    execute_sql(&server, "UPDATE alerts SET enrichment_status = 'Enriched', is_enriched = TRUE WHERE title = 'Charlie'").await;
    // detection_rule_uuid: the splunk rule; an unknown uuid matches nothing (no 404).
    let splunk = body(server.get(&format!("/v1/alerts/{}", uuids[4]), &admin).await).await;
    let rule_uuid = splunk["data"]["detection_rule"]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(titles(&server, &format!("?detection_rule_uuid={rule_uuid}")).await, [SPLUNK]);
    assert_eq!(titles(&server, &format!("?detection_rule_uuid={}", uuid::Uuid::new_v4())).await, Vec::<String>::new());
    // from_time / to_time: inclusive bounds on occurred_at.
    assert_eq!(titles(&server, "?from_time=2025-01-02T00:00:00Z").await, ["Delta", "Charlie", "Bravo"]);
    assert_eq!(titles(&server, "?to_time=2025-01-02T00:00:00Z").await, ["Bravo", "Alpha", SPLUNK]);
    assert_eq!(titles(&server, "?from_time=2025-01-02T00:00:00Z&to_time=2025-01-03T00:00:00Z").await, ["Charlie", "Bravo"]);
    assert_eq!(titles(&server, "?from_time=2025-01-02T01:00:00%2B01:00&to_time=2025-01-02").await, ["Bravo"]);
    // tags: every given tag must be present.
    assert_eq!(titles(&server, "?tags=a").await, ["Delta", "Bravo", "Alpha"]);
    assert_eq!(titles(&server, "?tags=a&tags=b").await, ["Delta", "Alpha"]);
    assert_eq!(titles(&server, "?tags=a&tags=b&tags=c").await, ["Delta"]);
    assert_eq!(titles(&server, "?tags=zzz").await, Vec::<String>::new());
    // Combined filters and the count under them.
    let combined = body(server.get("/v1/alerts?tags=b&severity=Critical,Medium,Informational&from_time=2025-01-02T00:00:00Z&page_size=1", &admin).await).await;
    assert_eq!(combined["meta"], json!({"total": 2, "page": 1, "page_size": 1, "total_pages": 2}));
    assert_eq!(combined["data"][0]["title"], "Delta");

    // Type errors are 422s, each naming its parameter.
    for (query, param) in [
        ("is_enriched=maybe", "is_enriched"),
        ("detection_rule_uuid=nope", "detection_rule_uuid"),
        ("from_time=yesterday", "from_time"),
        ("to_time=2025-13-01", "to_time"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("page_size=501", "page_size"),
        ("page_size=0", "page_size"),
    ] {
        let json = expect_error(server.get(&format!("/v1/alerts?{query}"), &admin).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["loc"], json!(["query", param]), "{query}");
    }
    server.stop().await;
}
dual!(list_filters);

async fn list_sorting_and_pagination(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let uuids = seed_list(&server).await;
    let close = json!({"status": "Closed", "close_classification": "Duplicate"});
    assert_eq!(server.patch_json(&format!("/v1/alerts/{}", uuids[0]), &admin, &close).await.status(), 200);
    assert_eq!(server.patch_json(&format!("/v1/alerts/{}", uuids[2]), &admin, &json!({"status": "Escalated"})).await.status(), 200);
    assert_eq!(server.patch_json(&format!("/v1/alerts/{}", uuids[3]), &admin, &json!({"status": "Triaging"})).await.status(), 200);
    // Statuses now: alpha Closed, bravo Open, charlie Escalated, delta Triaging, splunk Open.

    let cases: &[(&str, &[&str])] = &[
        ("?sort_by=title&sort_order=asc", &["Alpha", "Bravo", SPLUNK, "Charlie", "Delta"]),
        ("?sort_by=title&sort_order=desc", &["Delta", "Charlie", SPLUNK, "Bravo", "Alpha"]),
        ("?sort_by=title", &["Delta", "Charlie", SPLUNK, "Bravo", "Alpha"]),
        // Severity by rank (Critical 5 … Informational 1), not alphabetically.
        ("?sort_by=severity&sort_order=desc", &["Alpha", SPLUNK, "Delta", "Bravo", "Charlie"]),
        ("?sort_by=severity&sort_order=asc", &["Charlie", "Bravo", "Delta", SPLUNK, "Alpha"]),
        // Ties (both Open) fall back to insertion order in the same direction.
        ("?sort_by=status&sort_order=asc", &["Alpha", "Charlie", "Bravo", SPLUNK, "Delta"]),
        ("?sort_by=status&sort_order=desc", &["Delta", SPLUNK, "Bravo", "Charlie", "Alpha"]),
        ("?sort_by=source_name&sort_order=asc", &["Alpha", "Bravo", "Charlie", "Delta", SPLUNK]),
        ("?sort_by=source_name&sort_order=desc", &[SPLUNK, "Delta", "Charlie", "Bravo", "Alpha"]),
        ("?sort_by=occurred_at&sort_order=asc", &[SPLUNK, "Alpha", "Bravo", "Charlie", "Delta"]),
        ("?sort_by=occurred_at&sort_order=desc", &["Delta", "Charlie", "Bravo", "Alpha", SPLUNK]),
        ("?sort_by=created_at&sort_order=asc", &["Alpha", "Bravo", "Charlie", "Delta", SPLUNK]),
        ("?sort_by=created_at&sort_order=desc", &[SPLUNK, "Delta", "Charlie", "Bravo", "Alpha"]),
        ("?sort_order=asc", &[SPLUNK, "Alpha", "Bravo", "Charlie", "Delta"]),
    ];
    for (query, expected) in cases {
        assert_eq!(titles(&server, query).await, *expected, "{query}");
    }

    // Pagination over the default order.
    let page = body(server.get("/v1/alerts?page=2&page_size=2", &admin).await).await;
    assert_eq!(page["meta"], json!({"total": 5, "page": 2, "page_size": 2, "total_pages": 3}));
    assert_eq!(page["data"].as_array().unwrap().iter().map(|a| a["title"].clone()).collect::<Vec<_>>(), [json!("Bravo"), json!("Alpha")]);
    let last = body(server.get("/v1/alerts?page=3&page_size=2", &admin).await).await;
    assert_eq!(last["data"].as_array().unwrap().len(), 1);
    let beyond = body(server.get("/v1/alerts?page=9&page_size=2", &admin).await).await;
    assert_eq!(beyond["data"], json!([]));
    assert_eq!(beyond["meta"]["total"], 5);

    // Bad sort values are 400s with the reference's message.
    let json = expect_error(server.get("/v1/alerts?sort_by=fingerprint", &admin).await, 400, "VALIDATION_ERROR").await;
    assert_eq!(
        json["error"]["message"],
        "Invalid sort_by 'fingerprint'. Must be one of: ['title', 'status', 'severity', 'source_name', 'occurred_at', 'created_at']"
    );
    let json = expect_error(server.get("/v1/alerts?sort_by=title&sort_order=sideways", &admin).await, 400, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["message"], "Invalid sort_order 'sideways'. Must be one of: ['asc', 'desc']");
    server.stop().await;
}
dual!(list_sorting_and_pagination);

async fn patch_lifecycle_and_activity(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, _) = server.create_key(&["alerts:read", "alerts:write"], json!({})).await;
    let prefix = &key[..8];
    let uuid = create_generic(&server, json!({"title": "lifecycle", "severity": "low", "tags": ["x"], "src_ip": "198.51.100.20"})).await;
    wait_enriched(&server, &uuid).await;
    let path = format!("/v1/alerts/{uuid}");
    let patch = |body: Value| {
        let (server, key, path) = (&server, key.clone(), path.clone());
        async move {
            let response = server.patch_json(&path, &key, &body).await;
            assert_eq!(response.status(), 200, "{body}");
            crate::support::body(response).await["data"].clone()
        }
    };

    let triaging = patch(json!({"status": "Triaging"})).await;
    assert_eq!(triaging["status"], "Triaging");
    let acknowledged_at = triaging["acknowledged_at"].clone();
    assert!(acknowledged_at.is_string());
    assert_eq!(triaging["triaged_at"], acknowledged_at);
    assert_eq!(triaging["closed_at"], Value::Null);
    assert_eq!(triaging["indicators"].as_array().unwrap().len(), 1, "the patch response carries the indicators");

    let escalated = patch(json!({"status": "Escalated"})).await;
    assert_eq!(escalated["acknowledged_at"], acknowledged_at);
    assert_eq!(escalated["triaged_at"], acknowledged_at);

    // Closed needs a classification in the same body; the alert is untouched.
    let json = expect_error(server.patch_json(&path, &key, &json!({"status": "Closed"})).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["message"], "close_classification is required when setting status to Closed.");
    assert_eq!(json["error"]["details"]["errors"][0]["loc"], json!(["body", "close_classification"]));
    let unchanged = body(server.get(&path, &key).await).await;
    assert_eq!(unchanged["data"]["status"], "Escalated");

    let closed = patch(json!({"status": "Closed", "close_classification": "True Positive - Suspicious Activity"})).await;
    assert_eq!(closed["status"], "Closed");
    assert_eq!(closed["close_classification"], "True Positive - Suspicious Activity");
    let closed_at = closed["closed_at"].clone();
    assert!(closed_at.is_string());
    assert_eq!(closed["acknowledged_at"], acknowledged_at, "write-once");

    // Re-opening clears nothing; a second pass through the states moves no timestamp.
    let reopened = patch(json!({"status": "Open"})).await;
    assert_eq!(reopened["closed_at"], closed_at);
    assert_eq!(reopened["close_classification"], "True Positive - Suspicious Activity");
    let again = patch(json!({"status": "Triaging"})).await;
    assert_eq!(again["triaged_at"], acknowledged_at);
    assert_eq!(again["acknowledged_at"], acknowledged_at);
    let reclosed = patch(json!({"status": "Closed", "close_classification": "Duplicate"})).await;
    assert_eq!(reclosed["closed_at"], closed_at);
    assert_eq!(reclosed["close_classification"], "Duplicate");
    // The classification can change without a status change (and without an event).
    let reclassified = patch(json!({"close_classification": "Undetermined"})).await;
    assert_eq!(reclassified["close_classification"], "Undetermined");
    assert_eq!(reclassified["status"], "Closed");

    // Severity: an event only when it changes.
    let severe = patch(json!({"severity": "Critical"})).await;
    assert_eq!(severe["severity"], "Critical");
    patch(json!({"severity": "Critical"})).await;
    // Tags replace.
    let tagged = patch(json!({"tags": ["phishing", "vip"]})).await;
    assert_eq!(tagged["tags"], json!(["phishing", "vip"]));

    // Malice override: set (event), same again (no event), reset (event), reset again (none).
    let overridden = patch(json!({"malice_override": "Malicious"})).await;
    assert_eq!(overridden["malice"], "Malicious");
    assert_eq!(overridden["malice_override"], "Malicious");
    assert_eq!(overridden["malice_override_source"], "analyst");
    assert!(overridden["malice_override_at"].is_string());
    patch(json!({"malice_override": "Malicious"})).await;
    let reset = patch(json!({"reset_malice_override": true, "malice_override": "Benign"})).await;
    assert_eq!(reset["malice_override"], Value::Null, "reset wins over a new override");
    assert_eq!(reset["malice_override_source"], Value::Null);
    assert_eq!(reset["malice_override_at"], Value::Null);
    assert_eq!(reset["malice"], "Pending", "back to the indicators' verdict");
    let reset_again = patch(json!({"reset_malice_override": true})).await;
    // An empty body changes nothing and records nothing.
    let same = patch(json!({})).await;
    assert_eq!(same["tags"], json!(["phishing", "vip"]));
    assert_eq!(same["updated_at"], reset_again["updated_at"]);

    let activity = body(server.get(&format!("{path}/activity"), &key).await).await;
    let events = activity["data"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "alert_malice_updated",
            "alert_malice_updated",
            "alert_severity_updated",
            "alert_closed",
            "alert_status_updated",
            "alert_status_updated",
            "alert_closed",
            "alert_status_updated",
            "alert_status_updated",
            "alert_enrichment_completed",
            "alert_ingested",
        ]
    );
    assert_eq!(activity["meta"], json!({"total": 11, "page": 1, "page_size": 50, "total_pages": 1}));
    let references: Vec<&Value> = events.iter().map(|e| &e["references"]).collect();
    assert_eq!(*references[0], json!({"from_malice": "Malicious", "to_malice": null, "malice_source": "reset"}));
    assert_eq!(*references[1], json!({"from_malice": null, "to_malice": "Malicious", "malice_source": "analyst"}));
    assert_eq!(*references[2], json!({"from_severity": "Low", "to_severity": "Critical"}));
    assert_eq!(*references[3], json!({"from_status": "Triaging", "close_classification": "Duplicate"}));
    assert_eq!(*references[4], json!({"from_status": "Open", "to_status": "Triaging"}));
    assert_eq!(*references[5], json!({"from_status": "Closed", "to_status": "Open"}));
    assert_eq!(*references[6], json!({"from_status": "Escalated", "close_classification": "True Positive - Suspicious Activity"}));
    assert_eq!(*references[7], json!({"from_status": "Triaging", "to_status": "Escalated"}));
    assert_eq!(*references[8], json!({"from_status": "Open", "to_status": "Triaging"}));
    for event in &events[..9] {
        assert_eq!(event["actor_type"], "api");
        assert_eq!(event["actor_key_prefix"], prefix);
        assert_eq!(event["alert_uuid"], uuid.as_str());
        assert_eq!(event["workflow_uuid"], Value::Null);
        assert_eq!(event["detection_rule_uuid"], Value::Null);
        assert_eq!(
            sorted_keys(event),
            ["actor_key_prefix", "actor_type", "alert_uuid", "created_at", "detection_rule_uuid", "event_type", "references", "uuid", "workflow_uuid"]
        );
    }
    assert_eq!(events[9]["actor_type"], "system");
    // Pagination of the timeline.
    let second = body(server.get(&format!("{path}/activity?page=2&page_size=4"), &key).await).await;
    assert_eq!(second["meta"], json!({"total": 11, "page": 2, "page_size": 4, "total_pages": 3}));
    assert_eq!(second["data"][0]["uuid"], events[4]["uuid"]);
    expect_error(server.get(&format!("{path}/activity?page=0"), &key).await, 422, "VALIDATION_ERROR").await;
    expect_error(server.get(&format!("{path}/activity?page_size=x"), &key).await, 422, "VALIDATION_ERROR").await;
    server.stop().await;
}
dual!(patch_lifecycle_and_activity);

async fn patch_rejects_bad_input(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let uuid = create_generic(&server, json!({"title": "validation target", "severity": "high"})).await;
    wait_enriched(&server, &uuid).await;
    let path = format!("/v1/alerts/{uuid}");
    let before = body(server.get(&path, &admin).await).await;
    let cases: Vec<(Value, &str, Value)> = vec![
        (json!({"status": "Done"}), "enum", json!(["body", "status"])),
        (json!({"status": "open"}), "enum", json!(["body", "status"])),
        (json!({"severity": "high"}), "enum", json!(["body", "severity"])),
        (json!({"close_classification": "Nope"}), "enum", json!(["body", "close_classification"])),
        (json!({"malice_override": "Evil"}), "enum", json!(["body", "malice_override"])),
        (json!({"status": 5}), "type_error", json!(["body", "status"])),
        (json!({"tags": "x"}), "type_error", json!(["body", "tags"])),
        (json!({"tags": [1]}), "type_error", json!(["body", "tags", 0])),
        (json!({"tags": ["ok", " "]}), "string_length", json!(["body", "tags", 1])),
        (json!({"tags": ["x".repeat(256)]}), "string_length", json!(["body", "tags", 0])),
        (json!({"reset_malice_override": "yes"}), "type_error", json!(["body", "reset_malice_override"])),
        (json!({"status": "Open", "uuid": "x"}), "extra_forbidden", json!(["body", "uuid"])),
        (json!({"closed_at": "2025-01-01T00:00:00Z"}), "extra_forbidden", json!(["body", "closed_at"])),
        (json!([]), "model_attributes_type", json!(["body"])),
        (json!(["Closed", "Low"]), "model_attributes_type", json!(["body"])),
        (json!("Closed"), "model_attributes_type", json!(["body"])),
    ];
    for (case, kind, loc) in cases {
        let response = server.patch_json(&path, &admin, &case).await;
        assert_eq!(response.status(), 422, "{case}");
        let json = expect_error(response, 422, "VALIDATION_ERROR").await;
        let error = &json["error"]["details"]["errors"][0];
        assert_eq!(error["type"], kind, "{case}: {json}");
        assert_eq!(error["loc"], loc, "{case}: {json}");
    }
    let tags: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    expect_error(server.patch_json(&path, &admin, &json!({"tags": tags})).await, 422, "VALIDATION_ERROR").await;
    let malformed = server.request(Method::PATCH, &path, Some(&admin)).header("content-type", "application/json").body("{\"status\":").send().await.unwrap();
    let json = expect_error(malformed, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["type"], "json_invalid");
    let empty = server.request(Method::PATCH, &path, Some(&admin)).header("content-type", "application/json").send().await.unwrap();
    expect_error(empty, 422, "VALIDATION_ERROR").await;
    expect_error(server.patch_json("/v1/alerts/not-a-uuid", &admin, &json!({})).await, 422, "VALIDATION_ERROR").await;
    let missing = format!("/v1/alerts/{}", uuid::Uuid::new_v4());
    let json = expect_error(server.patch_json(&missing, &admin, &json!({"severity": "Low"})).await, 404, "NOT_FOUND").await;
    assert_eq!(json["error"]["message"], "Alert not found.");
    // Nothing above changed the alert or recorded an event.
    let after = body(server.get(&path, &admin).await).await;
    assert_eq!(after["data"]["updated_at"], before["data"]["updated_at"]);
    assert_eq!(event_types(&server, &uuid).await, ["alert_enrichment_completed", "alert_ingested"]);
    server.stop().await;
}
dual!(patch_rejects_bad_input);

async fn findings(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, _) = server.create_key(&["alerts:read", "alerts:write"], json!({})).await;
    let uuid = create_generic(&server, json!({"title": "findings target"})).await;
    wait_enriched(&server, &uuid).await;
    let path = format!("/v1/alerts/{uuid}/findings");

    let long_summary = "s".repeat(130);
    let full = json!({"agent_name": "triage-bot", "summary": long_summary, "confidence": "high",
        "recommended_action": "Block IP", "evidence": {"ip": "198.51.100.7", "hits": [1, 2]}});
    let created = server.post_json(&path, &key, &full).await;
    assert_eq!(created.status(), 201);
    let first = body(created).await;
    assert_eq!(first["meta"], json!({}));
    let finding = &first["data"];
    assert_eq!(sorted_keys(finding), ["agent_name", "confidence", "evidence", "id", "posted_at", "recommended_action", "summary"]);
    assert!(uuid::Uuid::parse_str(finding["id"].as_str().unwrap()).is_ok());
    assert_eq!(finding["agent_name"], "triage-bot");
    assert_eq!(finding["summary"], long_summary);
    assert_eq!(finding["confidence"], "high");
    assert_eq!(finding["recommended_action"], "Block IP");
    assert_eq!(finding["evidence"], json!({"ip": "198.51.100.7", "hits": [1, 2]}));
    let posted_at = finding["posted_at"].as_str().unwrap();
    assert!(posted_at.ends_with("+00:00") && posted_at.len() == 32, "{posted_at}");

    let minimal = server.post_json(&path, &key, &json!({"agent_name": "second", "summary": "short"})).await;
    assert_eq!(minimal.status(), 201);
    let second = body(minimal).await["data"].clone();
    assert_eq!(second["confidence"], Value::Null);
    assert_eq!(second["recommended_action"], Value::Null);
    assert_eq!(second["evidence"], Value::Null);

    let listed = body(server.get(&path, &key).await).await;
    assert_eq!(listed, json!({"data": [finding, second], "meta": {}}));
    let detail = body(server.get(&format!("/v1/alerts/{uuid}"), &key).await).await;
    assert_eq!(detail["data"]["agent_findings"], json!([finding, second]));

    let activity = body(server.get(&format!("/v1/alerts/{uuid}/activity"), &key).await).await;
    assert_eq!(activity["data"][0]["event_type"], "alert_finding_added");
    assert_eq!(activity["data"][0]["references"], json!({"finding_id": second["id"], "agent_name": "second", "summary": "short", "confidence": null}));
    assert_eq!(
        activity["data"][1]["references"],
        json!({"finding_id": finding["id"], "agent_name": "triage-bot", "summary": format!("{}...", "s".repeat(120)), "confidence": "high"})
    );

    let big_evidence = json!({"blob": "x".repeat(65_536)});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"summary": "x"}), "missing"),
        (json!({"agent_name": "x"}), "missing"),
        (json!({"agent_name": "", "summary": "x"}), "string_length"),
        (json!({"agent_name": "   ", "summary": "x"}), "string_length"),
        (json!({"agent_name": "x".repeat(256), "summary": "x"}), "string_length"),
        (json!({"agent_name": "x", "summary": "y".repeat(50_001)}), "string_length"),
        (json!({"agent_name": "x", "summary": "y", "confidence": "very"}), "enum"),
        (json!({"agent_name": "x", "summary": "y", "confidence": "High"}), "enum"),
        (json!({"agent_name": "x", "summary": "y", "evidence": [1]}), "dict_type"),
        (json!({"agent_name": "x", "summary": "y", "evidence": "text"}), "dict_type"),
        (json!({"agent_name": "x", "summary": "y", "evidence": big_evidence}), "value_error"),
        (json!({"agent_name": "x", "summary": "y", "posted_at": "now"}), "extra_forbidden"),
        (json!({"agent_name": 1, "summary": "y"}), "type_error"),
    ];
    for (case, kind) in cases {
        let json = expect_error(server.post_json(&path, &key, &case).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "{json}");
    }
    let json = expect_error(server.post_json(&path, &key, &json!({"agent_name": "x", "summary": "y", "evidence": big_evidence})).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["msg"], "evidence exceeds maximum size of 64 KB (65,547 bytes serialized)");
    // Evidence of exactly 64 KB serialized is accepted.
    let at_limit = json!({"agent_name": "x", "summary": "y", "evidence": {"blob": "x".repeat(65_536 - 11)}});
    assert_eq!(server.post_json(&path, &key, &at_limit).await.status(), 201);

    let missing = format!("/v1/alerts/{}/findings", uuid::Uuid::new_v4());
    expect_error(server.post_json(&missing, &key, &json!({"agent_name": "x", "summary": "y"})).await, 404, "NOT_FOUND").await;
    expect_error(server.post_json("/v1/alerts/nope/findings", &key, &json!({"agent_name": "x", "summary": "y"})).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body(server.get(&path, &key).await).await["data"].as_array().unwrap().len(), 3);
    server.stop().await;
}
dual!(findings);

async fn add_indicators_and_reenrich(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, _) = server.create_key(&["alerts:read", "alerts:write"], json!({})).await;
    let uuid = ingest(&server, "splunk", &fixture("splunk_alert")).await;
    let before = wait_enriched(&server, &uuid).await;
    let path = format!("/v1/alerts/{uuid}/indicators");

    // enrich defaults to true; values are trimmed; an already linked indicator is just linked again.
    let added = server
        .post_json(&path, &key, &json!({"indicators": [{"type": "ip", "value": "  203.0.113.9 "}, {"type": "domain", "value": "corp.example.com"}]}))
        .await;
    assert_eq!(added.status(), 201);
    let added = body(added).await;
    assert_eq!(added["meta"], json!({}));
    assert_eq!(added["data"]["added_count"], 2);
    assert_eq!(added["data"]["enrich_requested"], true);
    assert_eq!(pairs(&added["data"]["indicators"]), owned(&[("ip", "203.0.113.9"), ("domain", "corp.example.com")]));
    for indicator in added["data"]["indicators"].as_array().unwrap() {
        assert_eq!(sorted_keys(indicator), INDICATOR_FIELDS);
    }

    // The job runs again: the alert stays Enriched and keeps the new link.
    wait_enrichment_runs(&server, &uuid, 2).await;
    let after = wait_enriched(&server, &uuid).await;
    assert_eq!(after["data"]["enrichment_status"], "Enriched");
    assert!(after["data"]["enriched_at"].as_str().unwrap() > before["data"]["enriched_at"].as_str().unwrap());
    assert_eq!(after["meta"]["indicator_count"], 6);
    let listed = body(server.get(&path, &key).await).await;
    assert_eq!(pairs(&listed["data"]).last().unwrap(), &("ip".to_owned(), "203.0.113.9".to_owned()));
    let events = body(server.get(&format!("/v1/alerts/{uuid}/activity"), &key).await).await;
    let added_event = events["data"].as_array().unwrap().iter().find(|e| e["event_type"] == "alert_indicators_added").unwrap().clone();
    assert_eq!(
        added_event["references"],
        json!({"indicator_count": 2, "indicators": [{"type": "ip", "value": "203.0.113.9"}, {"type": "domain", "value": "corp.example.com"}], "enrich_requested": true})
    );

    // enrich=false links without queueing a job.
    let quiet = server.post_json(&format!("{path}?enrich=false"), &key, &json!({"indicators": [{"type": "email", "value": "x@example.org"}]})).await;
    assert_eq!(quiet.status(), 201);
    assert_eq!(body(quiet).await["data"]["enrich_requested"], false);
    tokio::time::sleep(Duration::from_millis(600)).await;
    wait_enrichment_runs(&server, &uuid, 2).await;
    assert_eq!(body(server.get(&path, &key).await).await["data"].as_array().unwrap().len(), 7);
    // A value at the length limit is accepted.
    let long_value = "a".repeat(2048);
    let ok = server.post_json(&format!("{path}?enrich=0"), &key, &json!({"indicators": [{"type": "url", "value": long_value}]})).await;
    assert_eq!(ok.status(), 201);

    let too_many: Vec<Value> = (0..101).map(|i| json!({"type": "ip", "value": format!("10.1.0.{i}")})).collect();
    let cases: Vec<(Value, &str, Value)> = vec![
        (json!({"indicators": [{"type": "mac", "value": "00:11"}]}), "enum", json!(["body", "indicators", 0, "type"])),
        (json!({"indicators": [{"type": "IP", "value": "1.2.3.4"}]}), "enum", json!(["body", "indicators", 0, "type"])),
        (json!({"indicators": [{"type": "ip", "value": ""}]}), "string_length", json!(["body", "indicators", 0, "value"])),
        (json!({"indicators": [{"type": "ip", "value": "1.2.3.4"}, {"type": "ip", "value": "   "}]}), "string_length", json!(["body", "indicators", 1, "value"])),
        (json!({"indicators": [{"type": "url", "value": "a".repeat(2049)}]}), "string_length", json!(["body", "indicators", 0, "value"])),
        (json!({"indicators": []}), "too_short", json!(["body", "indicators"])),
        (json!({"indicators": too_many}), "too_long", json!(["body", "indicators"])),
        (json!({"indicators": [{"type": "ip", "value": "1.2.3.4", "malice": "Malicious"}]}), "extra_forbidden", json!(["body", "indicators", 0, "malice"])),
        (json!({"indicators": [{"type": "ip"}]}), "missing", json!(["body", "indicators", 0, "value"])),
        (json!({"indicators": [{"type": "ip", "value": 5}]}), "type_error", json!(["body", "indicators", 0, "value"])),
        (json!({"indicators": "ip"}), "type_error", json!(["body", "indicators"])),
        (json!({}), "missing", json!(["body", "indicators"])),
    ];
    for (case, kind, loc) in cases {
        let json = expect_error(server.post_json(&path, &key, &case).await, 422, "VALIDATION_ERROR").await;
        let error = &json["error"]["details"]["errors"][0];
        assert_eq!(error["type"], kind, "{json}");
        assert_eq!(error["loc"], loc, "{json}");
    }
    let json = expect_error(server.post_json(&format!("{path}?enrich=maybe"), &key, &json!({"indicators": [{"type": "ip", "value": "1.2.3.4"}]})).await, 422, "VALIDATION_ERROR").await;
    assert_eq!(json["error"]["details"]["errors"][0]["loc"], json!(["query", "enrich"]));
    // NUL characters never reach validation: the JSON layer refuses them.
    let nul = server.request(Method::POST, &path, Some(&key)).header("content-type", "application/json")
        .body(r#"{"indicators": [{"type": "ip", "value": "1.2\u0000"}]}"#).send().await.unwrap();
    expect_error(nul, 400, "INVALID_JSON").await;
    let missing = format!("/v1/alerts/{}/indicators", uuid::Uuid::new_v4());
    expect_error(server.post_json(&missing, &key, &json!({"indicators": [{"type": "ip", "value": "1.2.3.4"}]})).await, 404, "NOT_FOUND").await;
    // None of the rejected requests linked anything.
    assert_eq!(body(server.get(&path, &key).await).await["data"].as_array().unwrap().len(), 8);
    server.stop().await;
}
dual!(add_indicators_and_reenrich);

async fn enrich_endpoint_requeues(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let uuid = create_generic(&server, json!({"title": "re-enrich me", "src_ip": "198.51.100.30"})).await;
    wait_enriched(&server, &uuid).await;
    let response = server.request(Method::POST, &format!("/v1/alerts/{uuid}/enrich"), Some(&admin)).send().await.unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(body(response).await, json!({"data": {"message": "Enrichment queued"}, "meta": {}}));
    wait_enrichment_runs(&server, &uuid, 2).await;
    let detail = wait_enriched(&server, &uuid).await;
    assert_eq!(detail["meta"]["indicator_count"], 1, "re-extraction does not duplicate links");
    let missing = server.request(Method::POST, &format!("/v1/alerts/{}/enrich", uuid::Uuid::new_v4()), Some(&admin)).send().await.unwrap();
    expect_error(missing, 404, "NOT_FOUND").await;
    let bad = server.request(Method::POST, "/v1/alerts/zzz/enrich", Some(&admin)).send().await.unwrap();
    expect_error(bad, 422, "VALIDATION_ERROR").await;
    server.stop().await;
}
dual!(enrich_endpoint_requeues);

fn node_of<'a>(graph: &'a Value, value: &str) -> &'a Value {
    graph["data"]["indicators"].as_array().unwrap().iter().find(|i| i["value"] == value).unwrap()
}

async fn relationship_graph(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let elastic = ingest(&server, "elastic", &fixture("elastic_alert")).await;
    let sentinel = ingest(&server, "sentinel", &fixture("sentinel_alert")).await;
    let later = create_generic(&server, json!({"title": "later sighting", "severity": "low", "occurred_at": "2025-06-01T00:00:00Z", "src_ip": "10.0.0.55", "tags": ["t"]})).await;
    for uuid in [&elastic, &sentinel, &later] {
        wait_enriched(&server, uuid).await;
    }
    // Stored provider results (no provider runs in tests) feed the per-provider summary.
    execute_sql(&server, r#"UPDATE indicators SET is_enriched = TRUE, enrichment_results = '{"virustotal": {"success": true, "extracted": {"malice": "Malicious"}, "raw": {"x": 1}}, "abuseipdb": {"success": true, "extracted": {"risk_score": 73}}, "okta": {"success": false}}' WHERE value = '185.220.101.32'"#).await;

    let graph = body(server.get(&format!("/v1/alerts/{elastic}/relationship-graph"), &admin).await).await;
    assert_eq!(graph["meta"], json!({}));
    assert_eq!(
        graph["data"]["alert"],
        json!({"uuid": elastic, "title": "Suspicious PowerShell Execution", "severity": "High", "status": "Open",
               "source_name": "elastic", "occurred_at": "2024-01-15T10:29:50Z", "tags": ["PowerShell", "Endpoint", "T1059.001"]})
    );
    assert_eq!(graph["data"]["indicators"].as_array().unwrap().len(), 9);
    let sentinel_node = json!({"uuid": sentinel, "title": "Suspicious PowerShell Execution on WORKSTATION-01", "severity": "High",
        "status": "Open", "source_name": "sentinel", "occurred_at": "2024-01-15T10:29:50Z", "tags": ["powershell", "endpoint"]});
    let later_node = json!({"uuid": later, "title": "later sighting", "severity": "Low", "status": "Open", "source_name": "generic",
        "occurred_at": "2025-06-01T00:00:00Z", "tags": ["t"]});
    let shared_ip = node_of(&graph, "10.0.0.55");
    assert_eq!(
        sorted_keys(shared_ip),
        ["enrichment_summary", "first_seen", "is_enriched", "last_seen", "malice", "sibling_alerts", "total_alert_count", "type", "uuid", "value"]
    );
    assert_eq!(shared_ip["type"], "ip");
    assert_eq!(shared_ip["malice"], "Pending");
    assert_eq!(shared_ip["total_alert_count"], 2);
    assert_eq!(shared_ip["sibling_alerts"], json!([later_node, sentinel_node]), "newest occurred_at first");
    assert_eq!(shared_ip["enrichment_summary"], json!({}));
    let enriched = node_of(&graph, "185.220.101.32");
    assert_eq!(enriched["total_alert_count"], 1);
    assert_eq!(enriched["is_enriched"], true);
    assert_eq!(enriched["enrichment_summary"], json!({"virustotal": "Malicious", "abuseipdb": "73", "okta": "failed"}));
    let lonely = node_of(&graph, "https://evil.example.com/payload/stage2.ps1");
    assert_eq!(lonely["total_alert_count"], 0);
    assert_eq!(lonely["sibling_alerts"], json!([]));

    // sibling_limit caps the list, not the count.
    let capped = body(server.get(&format!("/v1/alerts/{elastic}/relationship-graph?sibling_limit=1"), &admin).await).await;
    let shared_ip = node_of(&capped, "10.0.0.55");
    assert_eq!(shared_ip["total_alert_count"], 2);
    assert_eq!(shared_ip["sibling_alerts"], json!([later_node]));
    for bad in ["0", "51", "x", "-1"] {
        let json = expect_error(server.get(&format!("/v1/alerts/{elastic}/relationship-graph?sibling_limit={bad}"), &admin).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["loc"][0], "query", "{bad}");
    }

    // Provider results reach the detail view without `raw`, and the metadata block.
    let detail = body(server.get(&format!("/v1/alerts/{elastic}"), &admin).await).await;
    let results = &node_of(&detail, "185.220.101.32")["enrichment_results"];
    assert_eq!(results["virustotal"], json!({"success": true, "extracted": {"malice": "Malicious"}}));
    assert_eq!(detail["meta"]["enrichment"]["succeeded"], json!(["abuseipdb", "virustotal"]));
    assert_eq!(detail["meta"]["enrichment"]["failed"], json!(["okta"]));
    server.stop().await;
}
dual!(relationship_graph);

async fn delete_cascades(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let elastic = ingest(&server, "elastic", &fixture("elastic_alert")).await;
    let sentinel = ingest(&server, "sentinel", &fixture("sentinel_alert")).await;
    wait_enriched(&server, &elastic).await;
    let detail = wait_enriched(&server, &sentinel).await;
    let indicator_uuid = detail["data"]["indicators"][0]["uuid"].as_str().unwrap().to_owned();

    let response = delete(&server, &format!("/v1/alerts/{sentinel}"), &admin).await;
    assert_eq!(response.status(), 204);
    assert_eq!(response.text().await.unwrap(), "");
    for path in ["", "/findings", "/indicators", "/activity", "/relationship-graph", "/context"] {
        expect_error(server.get(&format!("/v1/alerts/{sentinel}{path}"), &admin).await, 404, "NOT_FOUND").await;
    }
    expect_error(delete(&server, &format!("/v1/alerts/{sentinel}"), &admin).await, 404, "NOT_FOUND").await;
    expect_error(delete(&server, "/v1/alerts/nope", &admin).await, 422, "VALIDATION_ERROR").await;
    // Indicators are global and survive; the other alert no longer sees the deleted sibling.
    assert_eq!(server.get(&format!("/v1/indicators/{indicator_uuid}"), &admin).await.status(), 200);
    let graph = body(server.get(&format!("/v1/alerts/{elastic}/relationship-graph"), &admin).await).await;
    assert_eq!(node_of(&graph, "10.0.0.55")["total_alert_count"], 0);
    let list = body(server.get("/v1/alerts", &admin).await).await;
    assert_eq!(list["meta"]["total"], 1);
    server.stop().await;
}
dual!(delete_cascades);

async fn scopes_are_enforced_before_validation(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let uuid = create_generic(&server, json!({"title": "scoped", "src_ip": "198.51.100.40"})).await;
    wait_enriched(&server, &uuid).await;
    let (reader, _) = server.create_key(&["alerts:read"], json!({"key_type": "agent"})).await;
    let (writer, _) = server.create_key(&["alerts:write"], json!({})).await;
    let (other, _) = server.create_key(&["workflows:read"], json!({})).await;

    let reads = [
        "/v1/alerts".to_owned(),
        format!("/v1/alerts/{uuid}"),
        format!("/v1/alerts/{uuid}/findings"),
        format!("/v1/alerts/{uuid}/indicators"),
        format!("/v1/alerts/{uuid}/activity"),
        format!("/v1/alerts/{uuid}/relationship-graph"),
        format!("/v1/alerts/{uuid}/context"),
    ];
    for path in &reads {
        assert_eq!(server.get(path, &reader).await.status(), 200, "{path}");
        for key in [&writer, &other] {
            let json = expect_error(server.get(path, key).await, 403, "FORBIDDEN").await;
            assert_eq!(json["error"]["message"], "Insufficient scope. Required: alerts:read");
            assert_eq!(json["error"]["details"]["required_scopes"], json!(["alerts:read"]));
        }
        expect_error(server.request(Method::GET, path, None).send().await.unwrap(), 401, "UNAUTHORIZED").await;
    }
    // Scope is checked before query validation: a bad sort from a key without the scope is a 403.
    expect_error(server.get("/v1/alerts?sort_by=nope&page=0", &writer).await, 403, "FORBIDDEN").await;
    expect_error(server.get("/v1/alerts/not-a-uuid", &writer).await, 403, "FORBIDDEN").await;

    // Writes with a read-only key: 403 whatever the path or body (junk included).
    let junk = json!({"no": "such field"});
    let writes: Vec<(Method, String)> = vec![
        (Method::PATCH, format!("/v1/alerts/{uuid}")),
        (Method::DELETE, format!("/v1/alerts/{uuid}")),
        (Method::POST, format!("/v1/alerts/{uuid}/findings")),
        (Method::POST, format!("/v1/alerts/{uuid}/indicators")),
        (Method::POST, format!("/v1/alerts/{uuid}/enrich")),
        (Method::PATCH, "/v1/alerts/not-a-uuid".to_owned()),
    ];
    for (method, path) in &writes {
        let response = server.request(method.clone(), path, Some(&reader)).json(&junk).send().await.unwrap();
        let json = expect_error(response, 403, "FORBIDDEN").await;
        assert_eq!(json["error"]["message"], "Insufficient scope. Required: alerts:write", "{method} {path}");
    }
    // Ingest too: the scope before the body, even a body that is not JSON at all.
    for path in ["/v1/alerts", "/v1/ingest/generic"] {
        let response = server.request(Method::POST, path, Some(&reader)).header("content-type", "application/json").body("{nope").send().await.unwrap();
        let json = expect_error(response, 403, "FORBIDDEN").await;
        assert_eq!(json["error"]["message"], "Insufficient scope. Required: alerts:write", "{path}");
    }
    // The writer can write.
    assert_eq!(server.patch_json(&format!("/v1/alerts/{uuid}"), &writer, &json!({"severity": "Low"})).await.status(), 200);
    let finding = server.post_json(&format!("/v1/alerts/{uuid}/findings"), &writer, &json!({"agent_name": "a", "summary": "b"})).await;
    assert_eq!(finding.status(), 201);
    // Nothing the denied requests sent changed the alert.
    let detail = body(server.get(&format!("/v1/alerts/{uuid}"), &admin).await).await;
    assert_eq!(detail["data"]["severity"], "Low");
    assert_eq!(detail["data"]["agent_findings"].as_array().unwrap().len(), 1);
    server.stop().await;
}
dual!(scopes_are_enforced_before_validation);

/// Every `id` / `*_id` key of `value` whose value is not a string or null (an internal
/// sequential id), with its JSON path. Client payloads (`raw_payload`) and vendor responses
/// (`enrichment_results`) are echoed as received and not ours to judge.
fn integer_ids(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                if key == "raw_payload" || key == "enrichment_results" {
                    continue;
                }
                let here = format!("{path}.{key}");
                if (key == "id" || key.ends_with("_id")) && !(item.is_string() || item.is_null()) {
                    found.push(format!("{here} = {item}"));
                }
                integer_ids(item, &here, found);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                integer_ids(item, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// Defect e: internal sequential ids reveal volumes. Every alert-related response (ingest,
/// list, detail, each sub-resource, the writes' answers, the activity timeline with events of
/// every kind) names rows by UUID only.
async fn no_internal_ids_leave_the_server(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let mut responses: Vec<(String, Value)> = Vec::new();
    let ingested = body(server.post_json("/v1/ingest/splunk", &admin, &fixture("splunk_alert")).await).await;
    let uuid = ingested["data"]["alert_uuid"].as_str().unwrap().to_owned();
    responses.push(("ingest".into(), ingested));
    let duplicate = body(server.post_json("/v1/ingest/splunk", &admin, &fixture("splunk_alert")).await).await;
    assert_eq!(duplicate["data"]["status"], "deduplicated");
    responses.push(("ingest duplicate".into(), duplicate));
    let detail = wait_enriched(&server, &uuid).await;
    let ip_uuid = detail["data"]["indicators"][0]["uuid"].as_str().unwrap().to_owned();
    let rule_uuid = detail["data"]["detection_rule"]["uuid"].as_str().unwrap().to_owned();
    assert_eq!(detail["data"]["detection_rule_uuid"], rule_uuid.as_str());
    responses.push(("detail".into(), detail));
    let path = format!("/v1/alerts/{uuid}");
    for (name, response) in [
        ("patch", server.patch_json(&path, &admin, &json!({"status": "Closed", "close_classification": "Duplicate", "malice_override": "Benign"})).await),
        ("finding", server.post_json(&format!("{path}/findings"), &admin, &json!({"agent_name": "a", "summary": "b"})).await),
        ("indicators added", server.post_json(&format!("{path}/indicators?enrich=false"), &admin, &json!({"indicators": [{"type": "ip", "value": "203.0.113.5"}]})).await),
        ("indicator patch", server.patch_json(&format!("/v1/indicators/{ip_uuid}"), &admin, &json!({"malice": "Suspicious"})).await),
    ] {
        assert!(response.status().is_success(), "{name}");
        responses.push((name.into(), body(response).await));
    }
    // An event that names a detection rule (no route writes one yet): planted beside the alert's.
    let alert_sql = server.uuid_sql(uuid.parse().unwrap());
    let rule_sql = server.uuid_sql(rule_uuid.parse().unwrap());
    let planted = server
        .db_execute(&format!(
            "INSERT INTO activity_events (uuid, event_type, actor_type, alert_id, detection_rule_id, created_at) \
             SELECT {}, 'planted_rule_event', 'system', alert_id, (SELECT id FROM detection_rules WHERE uuid = {rule_sql}), created_at \
             FROM activity_events WHERE event_type = 'alert_ingested' AND alert_id = (SELECT id FROM alerts WHERE uuid = {alert_sql})",
            server.uuid_sql(uuid::Uuid::new_v4())
        ))
        .await;
    assert_eq!(planted, 1);
    for read in [
        "/v1/alerts".to_owned(),
        path.clone(),
        format!("{path}/activity?page_size=500"),
        format!("{path}/findings"),
        format!("{path}/indicators"),
        format!("{path}/context"),
        format!("{path}/relationship-graph"),
        format!("/v1/indicators/{ip_uuid}"),
        format!("/v1/detection-rules/{rule_uuid}"),
    ] {
        let response = server.get(&read, &admin).await;
        assert_eq!(response.status(), 200, "{read}");
        responses.push((read, body(response).await));
    }
    let activity = &responses.iter().find(|(name, _)| name.contains("/activity")).unwrap().1;
    let events = activity["data"].as_array().unwrap();
    assert!(events.len() >= 7, "{activity}");
    assert!(events.iter().all(|e| e["alert_uuid"] == uuid.as_str()), "{activity}");
    let planted = events.iter().find(|e| e["event_type"] == "planted_rule_event").unwrap();
    assert_eq!(planted["detection_rule_uuid"], rule_uuid.as_str());
    assert_eq!(planted["workflow_uuid"], Value::Null);
    let mut found = Vec::new();
    for (name, json) in &responses {
        integer_ids(json, name, &mut found);
    }
    assert!(found.is_empty(), "internal ids in responses:\n{}", found.join("\n"));
    server.stop().await;
}
dual!(no_internal_ids_leave_the_server);

/// Every mutating alert or indicator operation writes one audit record in its own transaction:
/// the operation's name, the target's UUID, the key's prefix, what changed. A refused request
/// writes none.
async fn mutations_are_audited(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (key, _) = server.create_key(&["alerts:read", "alerts:write"], json!({})).await;
    let uuid = create_generic(&server, json!({"title": "audited", "severity": "low", "src_ip": "198.51.100.30"})).await;
    let detail = wait_enriched(&server, &uuid).await;
    let ip_uuid = detail["data"]["indicators"][0]["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/alerts/{uuid}");
    const AUDITED: &str = "FROM audit_log WHERE action LIKE 'alerts.%' OR action LIKE 'indicators.%'";
    // Refused: bad input and not found write nothing.
    expect_error(server.patch_json(&path, &key, &json!({"status": "Done"})).await, 422, "VALIDATION_ERROR").await;
    let missing = format!("/v1/alerts/{}", uuid::Uuid::new_v4());
    expect_error(server.patch_json(&missing, &key, &json!({"severity": "High"})).await, 404, "NOT_FOUND").await;
    assert_eq!(server.db_count(&format!("SELECT COUNT(*) {AUDITED}")).await, 0);

    assert_eq!(server.patch_json(&path, &key, &json!({"status": "Triaging", "severity": "High", "tags": ["t"]})).await.status(), 200);
    assert_eq!(server.post_json(&format!("{path}/findings"), &key, &json!({"agent_name": "bot", "summary": "s"})).await.status(), 201);
    let added = server.post_json(&format!("{path}/indicators?enrich=false"), &key, &json!({"indicators": [{"type": "domain", "value": "a.example"}]})).await;
    assert_eq!(added.status(), 201);
    assert_eq!(server.post_json(&format!("{path}/enrich"), &key, &json!({})).await.status(), 202);
    assert_eq!(server.patch_json(&format!("/v1/indicators/{ip_uuid}"), &key, &json!({"malice": "Malicious"})).await.status(), 200);
    assert_eq!(delete(&server, &path, &key).await.status(), 204);

    let actions = server.db_texts(&format!("SELECT action {AUDITED} ORDER BY id")).await;
    let actions: Vec<String> = actions.into_iter().map(Option::unwrap).collect();
    assert_eq!(
        actions,
        ["alerts.patch", "alerts.findings.add", "alerts.indicators.add", "alerts.enrich", "indicators.patch", "alerts.delete"]
    );
    let targets = server.db_texts(&format!("SELECT target_id {AUDITED} ORDER BY id")).await;
    let expected_targets: Vec<Option<String>> =
        [&uuid, &uuid, &uuid, &uuid, &ip_uuid, &uuid].iter().map(|u| Some(u.to_string())).collect();
    assert_eq!(targets, expected_targets);
    let prefixes = server.db_texts(&format!("SELECT actor_key_prefix {AUDITED}")).await;
    assert!(prefixes.iter().all(|p| p.as_deref() == Some(&key[..8])), "{prefixes:?}");
    let details = server.db_texts(&format!("SELECT CAST(details AS TEXT) {AUDITED} AND action = 'alerts.patch'")).await;
    let details: Value = serde_json::from_str(details[0].as_deref().unwrap()).unwrap();
    assert_eq!(
        details,
        json!({"changes": {
            "status": {"from": "Open", "to": "Triaging"},
            "severity": {"from": "Low", "to": "High"},
            "tags": {"from": [], "to": ["t"]},
        }})
    );
    server.stop().await;
}
dual!(mutations_are_audited);
