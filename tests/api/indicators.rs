//! `/v1/indicators/{uuid}`: the detail view (with provider raw responses) and the analyst
//! verdict override, and how verdicts roll up into the alert's computed malice.

use serde_json::{Value, json};

use crate::alerts::{create_generic, event_types, execute_sql, ingest, fixture, wait_enriched};
use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error};

fn indicator<'a>(alert: &'a Value, value: &str) -> &'a Value {
    alert["data"]["indicators"].as_array().unwrap().iter().find(|i| i["value"] == value).unwrap()
}

async fn detail_and_override(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let (writer, _) = server.create_key(&["alerts:write", "alerts:read"], json!({})).await;
    let (enrichment_reader, _) = server.create_key(&["enrichments:read"], json!({})).await;
    let alert_uuid = ingest(&server, "splunk", &fixture("splunk_alert")).await;
    let alert = wait_enriched(&server, &alert_uuid).await;
    let ip = indicator(&alert, "10.0.0.99").clone();
    let ip_uuid = ip["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/indicators/{ip_uuid}");

    // Detail: the alert view's fields, results as stored (null: nothing enriched yet).
    let detail = body(server.get(&path, &enrichment_reader).await).await;
    assert_eq!(detail, json!({"data": ip, "meta": {}}));

    // Stored provider results: the detail view keeps `raw`, alert views drop it.
    execute_sql(&server, &format!(
        r#"UPDATE indicators SET is_enriched = TRUE, enrichment_results = '{{"virustotal": {{"provider_name": "virustotal", "status": "success", "success": true, "extracted": {{"verdict": "Suspicious"}}, "raw": {{"data": 1}}}}, "abuseipdb": {{"success": true, "extracted": {{"malice": "Benign"}}, "raw": null}}}}' WHERE uuid = {}"#,
        uuid_literal(&server, &ip_uuid)
    )).await;
    let detail = body(server.get(&path, &enrichment_reader).await).await;
    assert_eq!(detail["data"]["enrichment_results"]["virustotal"]["raw"], json!({"data": 1}));
    assert_eq!(detail["data"]["is_enriched"], true);
    let alert = body(server.get(&format!("/v1/alerts/{alert_uuid}"), &admin).await).await;
    let in_alert = indicator(&alert, "10.0.0.99");
    assert_eq!(
        in_alert["enrichment_results"],
        json!({"virustotal": {"provider_name": "virustotal", "status": "success", "success": true, "extracted": {"verdict": "Suspicious"}},
               "abuseipdb": {"success": true, "extracted": {"malice": "Benign"}}})
    );
    let listed = body(server.get(&format!("/v1/alerts/{alert_uuid}/indicators"), &admin).await).await;
    assert!(listed["data"].as_array().unwrap().iter().all(|i| i["enrichment_results"].get("virustotal").is_none_or(|v| v.get("raw").is_none())));

    // Override: sticky analyst verdict; the alert's computed malice follows the worst indicator.
    let patched = server.patch_json(&path, &writer, &json!({"malice": "Malicious"})).await;
    assert_eq!(patched.status(), 200);
    let patched = body(patched).await;
    assert_eq!(patched["data"]["malice"], "Malicious");
    assert_eq!(patched["data"]["malice_source"], "analyst");
    assert!(patched["data"]["malice_overridden_at"].is_string());
    assert_eq!(patched["data"]["enrichment_results"]["virustotal"]["raw"], json!({"data": 1}), "detail form");
    let alert = body(server.get(&format!("/v1/alerts/{alert_uuid}"), &admin).await).await;
    assert_eq!(alert["data"]["malice"], "Malicious");
    // The alert-level override beats the indicators.
    let overridden = body(server.patch_json(&format!("/v1/alerts/{alert_uuid}"), &admin, &json!({"malice_override": "Benign"})).await).await;
    assert_eq!(overridden["data"]["malice"], "Benign");
    server.patch_json(&format!("/v1/alerts/{alert_uuid}"), &admin, &json!({"reset_malice_override": true})).await;

    // Reset by `null`: back to what enrichment says (worst of verdict/malice per provider).
    let reset = body(server.patch_json(&path, &writer, &json!({"malice": null})).await).await;
    assert_eq!(reset["data"]["malice"], "Suspicious");
    assert_eq!(reset["data"]["malice_source"], "enrichment");
    assert_eq!(reset["data"]["malice_overridden_at"], Value::Null);
    let alert = body(server.get(&format!("/v1/alerts/{alert_uuid}"), &admin).await).await;
    assert_eq!(alert["data"]["malice"], "Suspicious");
    // An empty body resets too.
    server.patch_json(&path, &writer, &json!({"malice": "Benign"})).await;
    let reset = body(server.patch_json(&path, &writer, &json!({})).await).await;
    assert_eq!(reset["data"]["malice"], "Suspicious");
    assert_eq!(reset["data"]["malice_source"], "enrichment");

    // Each change is an event on the (first) linked alert.
    let activity = body(server.get(&format!("/v1/alerts/{alert_uuid}/activity"), &admin).await).await;
    let indicator_events: Vec<&Value> =
        activity["data"].as_array().unwrap().iter().filter(|e| e["event_type"] == "indicator_malice_updated").collect();
    assert_eq!(indicator_events.len(), 4);
    let base = json!({"indicator_type": "ip", "indicator_value": "10.0.0.99"});
    let expected = [
        ("Benign", "Suspicious", "enrichment"),
        ("Suspicious", "Benign", "analyst"),
        ("Malicious", "Suspicious", "enrichment"),
        ("Pending", "Malicious", "analyst"),
    ];
    for (event, (from, to, source)) in indicator_events.iter().zip(expected) {
        let mut references = base.clone();
        references["from_malice"] = json!(from);
        references["to_malice"] = json!(to);
        references["malice_source"] = json!(source);
        assert_eq!(event["references"], references);
        assert_eq!(event["actor_type"], "api");
        assert_eq!(event["actor_key_prefix"], &writer[..8]);
        assert_eq!(event["alert_uuid"], alert_uuid.as_str());
    }

    // An indicator with no alert left still takes an override (event without an alert).
    let orphan_alert = create_generic(&server, json!({"title": "soon gone", "src_ip": "198.51.100.77"})).await;
    let orphan = wait_enriched(&server, &orphan_alert).await;
    let orphan_uuid = indicator(&orphan, "198.51.100.77")["uuid"].as_str().unwrap().to_owned();
    assert_eq!(server.request(reqwest::Method::DELETE, &format!("/v1/alerts/{orphan_alert}"), Some(&admin)).send().await.unwrap().status(), 204);
    let patched = server.patch_json(&format!("/v1/indicators/{orphan_uuid}"), &writer, &json!({"malice": "Benign"})).await;
    assert_eq!(patched.status(), 200);
    assert_eq!(event_types(&server, &alert_uuid).await.iter().filter(|t| *t == "indicator_malice_updated").count(), 4);
    server.stop().await;
}
dual!(detail_and_override);

/// The pipeline writes an indicator's results and verdict with its upsert: a fresh indicator is
/// stored enriched; one seen before gets the new results merged over the stored ones provider by
/// provider (others kept, a provider's own replaced) and keeps an analyst's verdict.
async fn enrichment_merges_over_stored_results(backend: Backend) {
    let server = TestServer::builder(backend).env("ENRICHMENT_MOCK_MODE", "true").start().await;
    let admin = server.admin_key.clone();
    let first = create_generic(&server, json!({"title": "first sighting", "severity": "high", "src_ip": "45.33.32.66"})).await;
    let first = wait_enriched(&server, &first).await;
    let ip = indicator(&first, "45.33.32.66").clone();
    assert_eq!(ip["is_enriched"], true, "{ip}");
    assert_eq!(ip["malice"], "Malicious");
    assert!(ip["enrichment_results"]["virustotal"]["success"] == true, "{ip}");
    let ip_uuid = ip["uuid"].as_str().unwrap().to_owned();
    execute_sql(&server, &format!(
        r#"UPDATE indicators SET enrichment_results = '{{"legacy": {{"success": true, "extracted": {{"note": "kept"}}}}, "virustotal": {{"stale": true}}}}' WHERE uuid = {}"#,
        uuid_literal(&server, &ip_uuid)
    )).await;
    let path = format!("/v1/indicators/{ip_uuid}");
    assert_eq!(server.patch_json(&path, &admin, &json!({"malice": "Benign"})).await.status(), 200);

    let second = create_generic(&server, json!({"title": "second sighting", "severity": "high", "src_ip": "45.33.32.66",
        "dest_ip": "10.0.0.5", "domain": "c2-merge.example-bad.net"})).await;
    let second = wait_enriched(&server, &second).await;
    let detail = body(server.get(&path, &admin).await).await["data"].clone();
    assert_eq!(detail["enrichment_results"]["legacy"]["extracted"]["note"], "kept", "{detail}");
    assert_eq!(detail["enrichment_results"]["virustotal"]["success"], true, "{detail}");
    assert!(detail["enrichment_results"]["virustotal"].get("stale").is_none(), "a provider's result is replaced whole: {detail}");
    assert_eq!(detail["malice"], "Benign", "the analyst's verdict stays");
    assert_eq!(detail["malice_source"], "analyst");
    assert_eq!(detail["is_enriched"], true);
    assert_eq!(indicator(&second, "45.33.32.66")["uuid"], ip_uuid, "one global indicator");
    let domain = indicator(&second, "c2-merge.example-bad.net");
    assert_eq!(domain["is_enriched"], true, "{domain}");
    assert_eq!(domain["enrichment_results"]["virustotal"]["success"], true, "{domain}");
    let private = indicator(&second, "10.0.0.5");
    assert_eq!(private["malice"], "Pending", "{private}");
    assert_eq!(private["malice_source"], "enrichment");
    server.stop().await;
}
dual!(enrichment_merges_over_stored_results);

/// A SQL literal for a uuid column: 16-byte blob on SQLite, uuid text on PostgreSQL.
fn uuid_literal(server: &TestServer, uuid: &str) -> String {
    if server.db.url.starts_with("sqlite") {
        format!("X'{}'", uuid.replace('-', ""))
    } else {
        format!("'{uuid}'")
    }
}

async fn indicator_errors_and_scopes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    let alert_uuid = create_generic(&server, json!({"title": "indicator errors", "src_ip": "198.51.100.8"})).await;
    let alert = wait_enriched(&server, &alert_uuid).await;
    let ip_uuid = indicator(&alert, "198.51.100.8")["uuid"].as_str().unwrap().to_owned();
    let path = format!("/v1/indicators/{ip_uuid}");

    for (case, kind) in [
        (json!({"malice": "Evil"}), "enum"),
        (json!({"malice": "malicious"}), "enum"),
        (json!({"malice": 3}), "type_error"),
        (json!({"malice_source": "analyst"}), "extra_forbidden"),
        (json!({"value": "1.1.1.1"}), "extra_forbidden"),
    ] {
        let json = expect_error(server.patch_json(&path, &admin, &case).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(json["error"]["details"]["errors"][0]["type"], kind, "{case}");
    }
    let missing = format!("/v1/indicators/{}", uuid::Uuid::new_v4());
    let json = expect_error(server.get(&missing, &admin).await, 404, "NOT_FOUND").await;
    assert_eq!(json["error"]["message"], "Indicator not found.");
    expect_error(server.patch_json(&missing, &admin, &json!({"malice": "Benign"})).await, 404, "NOT_FOUND").await;
    expect_error(server.get("/v1/indicators/not-a-uuid", &admin).await, 422, "VALIDATION_ERROR").await;
    expect_error(server.patch_json("/v1/indicators/not-a-uuid", &admin, &json!({})).await, 422, "VALIDATION_ERROR").await;

    // GET needs enrichments:read (alerts:read is not enough); PATCH needs alerts:write.
    let (alerts_reader, _) = server.create_key(&["alerts:read"], json!({})).await;
    let (enrichment_reader, _) = server.create_key(&["enrichments:read"], json!({})).await;
    let (writer, _) = server.create_key(&["alerts:write"], json!({})).await;
    let json = expect_error(server.get(&path, &alerts_reader).await, 403, "FORBIDDEN").await;
    assert_eq!(json["error"]["message"], "Insufficient scope. Required: enrichments:read");
    expect_error(server.get(&path, &writer).await, 403, "FORBIDDEN").await;
    assert_eq!(server.get(&path, &enrichment_reader).await.status(), 200);
    for key in [&alerts_reader, &enrichment_reader] {
        // Scope first: even an invalid body or path is a 403.
        let json = expect_error(server.patch_json(&path, key, &json!({"malice": "Evil"})).await, 403, "FORBIDDEN").await;
        assert_eq!(json["error"]["message"], "Insufficient scope. Required: alerts:write");
        expect_error(server.patch_json("/v1/indicators/nope", key, &json!({})).await, 403, "FORBIDDEN").await;
    }
    expect_error(server.request(reqwest::Method::GET, &path, None).send().await.unwrap(), 401, "UNAUTHORIZED").await;
    assert_eq!(server.patch_json(&path, &writer, &json!({"malice": "Benign"})).await.status(), 200);
    // Nothing the rejected requests sent changed the indicator.
    let detail = body(server.get(&path, &admin).await).await;
    assert_eq!(detail["data"]["malice"], "Benign");
    assert_eq!(event_types(&server, &alert_uuid).await.iter().filter(|t| *t == "indicator_malice_updated").count(), 1);
    server.stop().await;
}
dual!(indicator_errors_and_scopes);
