//! Ingestion through HTTP: every source, signatures in every header form, dedup under
//! concurrency, bad input (nothing stored), and durability across a kill -9.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, body, eventually, expect_error, fixture};

fn sign(secret: &str, timestamp: Option<&str>, body: &[u8]) -> String {
    hex::encode(calseta::ingest::signature::hmac_sha256(secret.as_bytes(), timestamp, body))
}

async fn post_raw(server: &TestServer, path: &str, key: &str, body: Vec<u8>, headers: &[(&str, String)]) -> reqwest::Response {
    let mut request = server.request(Method::POST, path, Some(key)).header("content-type", "application/json").body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.unwrap()
}

async fn all_enriched(server: &TestServer, expected: i64) -> bool {
    let server_ref = server;
    eventually(Duration::from_secs(20), || async move {
        server_ref.db_count("SELECT COUNT(*) FROM alerts WHERE enrichment_status = 'Enriched'").await >= expected
    })
    .await
}

async fn every_source_is_accepted_and_processed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let key = server.admin_key.clone();
    for (source, file) in [("sentinel", "sentinel_alert.json"), ("elastic", "elastic_alert.json"), ("splunk", "splunk_alert.json")] {
        let response = post_raw(&server, &format!("/v1/ingest/{source}"), &key, fixture(file).into_bytes(), &[]).await;
        assert_eq!(response.status(), 202, "{source}");
        let json = body(response).await;
        assert_eq!(json["data"]["status"], "queued");
        assert_eq!(json["data"]["is_duplicate"], false);
        assert_eq!(json["data"]["duplicate_count"], Value::Null);
        assert!(uuid::Uuid::parse_str(json["data"]["alert_uuid"].as_str().unwrap()).is_ok());
        assert_eq!(json["meta"], json!({}));
    }
    let generic = server.post_json("/v1/alerts", &key, &json!({"source_name": "generic", "payload": {
        "title": "Brute force", "severity": "high", "src_ip": "198.51.100.7", "username": "bob"}})).await;
    assert_eq!(generic.status(), 202);
    assert!(all_enriched(&server, 4).await, "the worker processed every alert");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 4);
    // Each source's rule reference became a detection rule stub linked to its alert.
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts WHERE detection_rule_id IS NOT NULL").await, 3);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM detection_rules").await, 3);
    // Indicators were extracted and linked, and every job finished.
    assert!(server.db_count("SELECT COUNT(*) FROM indicators").await >= 10);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM indicators WHERE type = 'ip' AND value = '185.220.101.32'").await, 1);
    assert!(eventually(Duration::from_secs(5), || async {
        server.db_count("SELECT COUNT(*) FROM jobs WHERE status <> 'succeeded'").await == 0
    }).await, "every job finished");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM activity_events WHERE event_type = 'alert_ingested' AND actor_key_prefix IS NOT NULL").await, 4);
    assert!(eventually(Duration::from_secs(5), || async {
        server.db_count("SELECT COUNT(*) FROM activity_events WHERE event_type = 'alert_enrichment_completed'").await == 4
    }).await);
    server.stop().await;
}
dual!(every_source_is_accepted_and_processed);

async fn signatures_in_every_form(backend: Backend) {
    let server = TestServer::builder(backend)
        .env("SENTINEL_WEBHOOK_SECRET", "s3ntinel")
        .env("ELASTIC_WEBHOOK_SECRET", "3lastic")
        .env("SPLUNK_WEBHOOK_SECRET", "spl0nk")
        .start()
        .await;
    let key = server.admin_key.clone();
    let sentinel = fixture("sentinel_alert.json").into_bytes();
    let elastic = fixture("elastic_alert.json").into_bytes();
    let splunk = fixture("splunk_alert.json").into_bytes();

    let rejected: Vec<(&str, &Vec<u8>, Vec<(&str, String)>)> = vec![
        ("sentinel", &sentinel, vec![]),
        ("sentinel", &sentinel, vec![("x-webhook-signature", sign("wrong", None, &sentinel))]),
        ("sentinel", &sentinel, vec![("x-webhook-signature", sign("s3ntinel", None, b"other body"))]),
        ("elastic", &elastic, vec![("x-elastic-signature", "sha256=zz".into())]),
        ("splunk", &splunk, vec![("x-splunk-webhook-secret", "nope".into())]),
        // A timestamp header demands a signature over `timestamp.body`, within ±300 s.
        ("sentinel", &sentinel, vec![("x-webhook-timestamp", chrono::Utc::now().timestamp().to_string()), ("x-webhook-signature", sign("s3ntinel", None, &sentinel))]),
        ("sentinel", &sentinel, {
            let stale = (chrono::Utc::now().timestamp() - 301).to_string();
            vec![("x-webhook-signature", sign("s3ntinel", Some(&stale), &sentinel)), ("x-webhook-timestamp", stale)]
        }),
    ];
    for (source, payload, headers) in rejected {
        let response = post_raw(&server, &format!("/v1/ingest/{source}"), &key, payload.clone(), &headers).await;
        expect_error(response, 401, "INVALID_SIGNATURE").await;
    }
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 0, "rejected requests leave no row");

    let now = chrono::Utc::now().timestamp().to_string();
    let accepted: Vec<(&str, &Vec<u8>, Vec<(&str, String)>)> = vec![
        ("sentinel", &sentinel, vec![("x-webhook-signature", sign("s3ntinel", None, &sentinel))]),
        ("sentinel", &sentinel, vec![("X-Sentinel-Signature", format!("sha256={}", sign("s3ntinel", None, &sentinel).to_uppercase()))]),
        ("sentinel", &sentinel, vec![("x-webhook-timestamp", now.clone()), ("x-webhook-signature", sign("s3ntinel", Some(&now), &sentinel))]),
        ("elastic", &elastic, vec![("x-elastic-signature", format!("sha256={}", sign("3lastic", None, &elastic)))]),
        ("elastic", &elastic, vec![("x-webhook-signature", sign("3lastic", None, &elastic))]),
        ("splunk", &splunk, vec![("x-splunk-webhook-secret", "spl0nk".into())]),
        ("splunk", &splunk, vec![("x-splunk-signature", sign("spl0nk", None, &splunk))]),
    ];
    for (source, payload, headers) in accepted {
        let response = post_raw(&server, &format!("/v1/ingest/{source}"), &key, payload.clone(), &headers).await;
        assert_eq!(response.status(), 202, "{source} {headers:?}: {}", response.text().await.unwrap());
    }
    // Identical payloads dedup: one alert per source.
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 3);
    assert_eq!(server.db_count("SELECT COALESCE(SUM(duplicate_count), 0) FROM alerts").await, 4);
    server.stop().await;
}
dual!(signatures_in_every_form);

async fn concurrent_duplicates_make_one_alert(backend: Backend) {
    let server = TestServer::start(backend).await;
    let payload = json!({"source_name": "generic", "payload": {"title": "Same alert", "severity": "medium", "src_ip": "203.0.113.9"}});
    let requests: Vec<_> = (0..50).map(|_| server.post_json("/v1/alerts", &server.admin_key, &payload)).collect();
    let responses = futures::future::join_all(requests).await;
    let mut uuids = std::collections::HashSet::new();
    let mut queued = 0;
    for response in responses {
        assert_eq!(response.status(), 202);
        let json = body(response).await;
        uuids.insert(json["data"]["alert_uuid"].as_str().unwrap().to_owned());
        if json["data"]["status"] == "queued" {
            queued += 1;
        }
    }
    assert_eq!(queued, 1, "exactly one request created the alert");
    assert_eq!(uuids.len(), 1, "every duplicate points at the same alert");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 1);
    assert_eq!(server.db_count("SELECT CAST(duplicate_count AS BIGINT) FROM alerts").await, 49);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'enrich_alert'").await, 1, "duplicates are not re-enriched");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM activity_events WHERE event_type = 'alert_deduplicated'").await, 49);
    server.stop().await;
}
dual!(concurrent_duplicates_make_one_alert);

/// The dedup fingerprint covers Pass 2 (normalized-field mappings), which the ingest writer reads
/// for each batch after its requests arrived: a mapping created or deactivated applies to the very
/// next alert.
async fn mapping_changes_apply_to_the_next_alert_s_fingerprint(backend: Backend) {
    let server = TestServer::start(backend).await;
    let key = server.admin_key.clone();
    let payload = json!({"source_name": "generic", "payload": {"title": "Mapped login", "severity": "low", "src_ip": "203.0.113.10"}});
    let (server_ref, key_ref, payload_ref) = (&server, &key, &payload);
    let ingest = || async move {
        let json = body(server_ref.post_json("/v1/alerts", key_ref, payload_ref).await).await;
        (json["data"]["alert_uuid"].as_str().unwrap().to_owned(), json["data"]["status"].as_str().unwrap().to_owned())
    };
    let (first, status) = ingest().await;
    assert_eq!(status, "queued");
    assert_eq!(ingest().await, (first.clone(), "deduplicated".to_owned()));

    // A normalized-field mapping on the title adds an indicator: a new fingerprint, a new alert.
    let created = server.post_json("/v1/indicator-mappings", &key, &json!({"field_path": "title", "indicator_type": "account"})).await;
    assert_eq!(created.status(), 201);
    let mapping = body(created).await["data"]["uuid"].as_str().unwrap().to_owned();
    let (second, status) = ingest().await;
    assert_eq!(status, "queued", "the new mapping changed the fingerprint");
    assert_ne!(second, first);
    assert_eq!(ingest().await, (second.clone(), "deduplicated".to_owned()));

    // Deactivated: the fingerprint is the first one again.
    let path = format!("/v1/indicator-mappings/{mapping}");
    assert_eq!(server.patch_json(&path, &key, &json!({"is_active": false})).await.status(), 200);
    assert_eq!(ingest().await, (first, "deduplicated".to_owned()));
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 2);
    server.stop().await;
}
dual!(mapping_changes_apply_to_the_next_alert_s_fingerprint);

async fn bad_input_gets_4xx_and_stores_nothing(backend: Backend) {
    let server = TestServer::builder(backend).env("MAX_INGEST_PAYLOAD_SIZE_MB", "2").start().await;
    let admin = server.admin_key.clone();
    let webhook = |source: &str, body: &[u8]| {
        let (path, body, server, admin) = (format!("/v1/ingest/{source}"), body.to_vec(), &server, admin.clone());
        async move { post_raw(server, &path, &admin, body, &[]).await }
    };

    let json = expect_error(webhook("qradar", b"{}").await, 404, "UNKNOWN_SOURCE").await;
    assert_eq!(json["error"]["message"], "Alert source 'qradar' is not registered.");
    expect_error(webhook("generic", b"{not json").await, 400, "INVALID_JSON").await;
    expect_error(webhook("generic", br#"{"title": "a\u0000b"}"#).await, 400, "INVALID_JSON").await;
    expect_error(webhook("generic", "[".repeat(5000).as_bytes()).await, 400, "INVALID_JSON").await;
    let json = expect_error(webhook("generic", b"[1, 2]").await, 422, "INVALID_PAYLOAD").await;
    assert_eq!(json["error"]["message"], "Request body must be a JSON object.");
    let json = expect_error(webhook("sentinel", br#"{"unrelated": true}"#).await, 422, "INVALID_PAYLOAD").await;
    assert_eq!(json["error"]["message"], "Payload does not match expected structure for source 'sentinel'.");
    // A null title is a clear 422, not Calseta's 500.
    let mut null_title: Value = serde_json::from_str(&fixture("sentinel_alert.json")).unwrap();
    null_title["properties"]["title"] = Value::Null;
    expect_error(webhook("sentinel", &serde_json::to_vec(&null_title).unwrap()).await, 422, "INVALID_PAYLOAD").await;

    // Programmatic route.
    let cases = [
        json!({"payload": {"title": "x"}}),
        json!({"source_name": "generic"}),
        json!({"source_name": "generic", "payload": "text"}),
        json!({"source_name": "generic", "payload": [1]}),
        json!({"source_name": 7, "payload": {}}),
        json!({"source_name": "generic", "payload": {"title": "x"}, "status": "Closed"}),
        json!({"source_name": "generic", "payload": {"title": "x".repeat(1_100_000)}}),
    ];
    for case in cases {
        let response = server.post_json("/v1/alerts", &admin, &case).await;
        expect_error(response, 422, "VALIDATION_ERROR").await;
    }
    expect_error(server.post_json("/v1/alerts", &admin, &json!({"source_name": "nope", "payload": {}})).await, 404, "UNKNOWN_SOURCE").await;
    expect_error(server.post_json("/v1/alerts", &admin, &json!({"source_name": "sentinel", "payload": {"x": 1}})).await, 422, "INVALID_PAYLOAD").await;

    // Scope and source restrictions.
    let (reader, _) = server.create_key(&["alerts:read"], json!({})).await;
    expect_error(post_raw(&server, "/v1/ingest/generic", &reader, br#"{"title": "x"}"#.to_vec(), &[]).await, 403, "FORBIDDEN").await;
    let (splunk_only, _) = server.create_key(&["alerts:write"], json!({"allowed_sources": ["splunk"]})).await;
    let json = expect_error(post_raw(&server, "/v1/ingest/generic", &splunk_only, br#"{"title": "x"}"#.to_vec(), &[]).await, 403, "SOURCE_NOT_ALLOWED").await;
    assert_eq!(json["error"]["message"], "API key is not authorized to ingest from source 'generic'.");
    expect_error(server.post_json("/v1/alerts", &splunk_only, &json!({"source_name": "generic", "payload": {"title": "x"}})).await, 403, "SOURCE_NOT_ALLOWED").await;
    let ok = post_raw(&server, "/v1/ingest/splunk", &splunk_only, fixture("splunk_alert.json").into_bytes(), &[]).await;
    assert_eq!(ok.status(), 202, "the allowed source still works");

    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 1, "only the accepted alert was stored");
    assert_eq!(server.client.get(server.url("/health")).send().await.unwrap().status(), 200);
    server.stop().await;
}
dual!(bad_input_gets_4xx_and_stores_nothing);

/// Every alert acknowledged with a 202 survives a kill -9 and is processed after a restart,
/// including those whose job was not run yet (the API-only first process has no worker).
async fn accepted_alerts_survive_kill_9(backend: Backend) {
    let mut api_only = TestServer::builder(backend.clone()).env("RUST_BACKTRACE", "0").start_with_args(&["serve", "--bind", "127.0.0.1:0", "--roles", "api"]).await;
    let key = api_only.admin_key.clone();
    let (client, url) = (api_only.client.clone(), api_only.url("/v1/alerts"));
    let send = |i: usize| {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        let payload = json!({"source_name": "generic", "payload": {"title": format!("crash test {i}"), "severity": "low", "src_ip": format!("198.51.100.{i}")}});
        tokio::spawn(async move { client.post(url).bearer_auth(key).json(&payload).send().await.map(|r| r.status().as_u16()) })
    };
    // 40 requests complete; then 20 more are in flight when the process is killed.
    let mut accepted = Vec::new();
    for handle in (0..40).map(send).collect::<Vec<_>>() {
        accepted.push(handle.await.unwrap().unwrap());
    }
    let in_flight: Vec<_> = (40..60).map(send).collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    api_only.kill9();
    for handle in in_flight {
        if let Ok(Ok(status)) = handle.await {
            accepted.push(status);
        }
    }
    let accepted: Vec<u16> = accepted.into_iter().filter(|s| *s == 202).collect();
    let acknowledged = accepted.len() as i64;
    assert!(acknowledged >= 40, "requests before the kill were acknowledged: {acknowledged}");
    assert!(api_only.db_count("SELECT COUNT(*) FROM alerts").await >= acknowledged, "no acknowledged alert was lost");
    assert_eq!(api_only.db_count("SELECT COUNT(*) FROM alerts WHERE enrichment_status = 'Enriched'").await, 0);

    let worker = TestServer::builder(backend).env("BOOTSTRAP_ADMIN_KEY", "false").sharing(&api_only).start().await;
    let stored = worker.db_count("SELECT COUNT(*) FROM alerts").await;
    let processed = all_enriched(&worker, stored).await;
    if !processed {
        eprintln!("jobs: todo={} doing={} failed={} succeeded={}; stderr: {}",
            worker.db_count("SELECT COUNT(*) FROM jobs WHERE status = 'todo'").await,
            worker.db_count("SELECT COUNT(*) FROM jobs WHERE status = 'doing'").await,
            worker.db_count("SELECT COUNT(*) FROM jobs WHERE status = 'failed'").await,
            worker.db_count("SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'").await,
            worker.stdout.text().lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect::<Vec<_>>().join("\n"));
    }
    assert!(processed, "every stored alert was processed after the restart");
    // A job is marked succeeded just after its alert is marked Enriched.
    assert!(eventually(Duration::from_secs(5), || async {
        worker.db_count("SELECT COUNT(*) FROM jobs WHERE status <> 'succeeded'").await == 0
    }).await, "every job finished");
    drop(api_only);
    worker.stop().await;
}
dual!(accepted_alerts_survive_kill_9);
