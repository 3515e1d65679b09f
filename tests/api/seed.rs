//! Demo data: `calseta seed-demo-data` (with `--skip-alerts` / `--skip-enrichment`),
//! `calseta seed-sandbox`, sandbox mode (`SANDBOX_MODE=true serve`: demo data and the two
//! well-known keys with their documented scopes) and the `sandbox_reset` periodic job (re-seeds,
//! once per period across replicas).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, body, eventually, run_cli};

const READ_ONLY_KEY: &str = "cai_sandbox_demo_key_not_for_production";
const FULL_ACCESS_KEY: &str = "cai_lab_demo_full_access_key_not_for_prod";

async fn seed_cli(server: &TestServer, args: &[&str], extra_env: &[(&str, &str)]) -> (i32, String, String) {
    let mut env = server.cli_env();
    env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    run_cli(args, &server.dir(), &env).await
}

/// `--skip-enrichment`: the rules, documents and alerts are written, no enrichment is queued and
/// the alerts stay `Pending` while a worker runs; a second run skips everything.
async fn seed_demo_data_without_enrichment(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (code, stdout, stderr) = seed_cli(&server, &["seed-demo-data", "--skip-enrichment"], &[]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("detection rule 'Encoded PowerShell Download Cradle': created"), "{stdout}");
    assert!(stdout.contains("context document 'Data Exfiltration Investigation Plan': created"), "{stdout}");
    assert!(stdout.contains("not enriched (--skip-enrichment)"), "{stdout}");
    assert!(stdout.contains("done: 5 detection rules, 3 context documents, 5 alerts created (0 skipped as existing)"), "{stdout}");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM detection_rules WHERE is_system = FALSE").await, 5);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM context_documents WHERE is_system = FALSE").await, 3);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 5);
    // Every demo alert links to its demo rule (no stub rules were created).
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts WHERE detection_rule_id IS NOT NULL").await, 5);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'enrich_alert'").await, 0);
    // Through the normal ingest path: extraction still ran at ingest (fingerprints), events recorded.
    assert_eq!(server.db_count("SELECT COUNT(*) FROM activity_events WHERE event_type = 'alert_ingested'").await, 5);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts WHERE enrichment_status = 'Pending'").await, 5);

    // Re-running changes nothing.
    let (code, stdout, stderr) = seed_cli(&server, &["seed-demo-data"], &[]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("done: 0 detection rules, 0 context documents, 0 alerts created (13 skipped as existing)"), "{stdout}");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 5);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM detection_rules").await, 5);
    assert_eq!(server.db_count("SELECT COALESCE(SUM(duplicate_count), 0) FROM alerts").await, 0);
    server.stop().await;
}
dual!(seed_demo_data_without_enrichment);

/// `--skip-alerts` writes only rules and documents; a later run ingests the alerts, queues their
/// enrichment, and the server's workers enrich them.
async fn seed_demo_data_alerts_are_enriched(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (code, stdout, stderr) = seed_cli(&server, &["seed-demo-data", "--skip-alerts"], &[]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("done: 5 detection rules, 3 context documents, 0 alerts created"), "{stdout}");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 0);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM detection_rules").await, 5);

    let (code, stdout, stderr) = seed_cli(&server, &["seed-demo-data"], &[]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("0 detection rules, 0 context documents, 5 alerts created (8 skipped as existing)"), "{stdout}");
    assert!(stdout.contains("5 alerts queued for enrichment"), "{stdout}");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'enrich_alert'").await, 5);
    assert!(
        eventually(Duration::from_secs(20), || async {
            server.db_count("SELECT COUNT(*) FROM alerts WHERE enrichment_status = 'Enriched'").await == 5
        })
        .await,
        "the demo alerts were not enriched"
    );
    // Their indicators were extracted by the pipeline.
    assert!(server.db_count("SELECT COUNT(*) FROM alert_indicators").await >= 10);
    server.stop().await;
}
dual!(seed_demo_data_alerts_are_enriched);

/// Clear errors: `seed-sandbox` needs SANDBOX_MODE; nothing demo-like runs in production.
async fn seed_commands_refuse_clearly(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (code, stdout, stderr) = seed_cli(&server, &["seed-sandbox"], &[]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("SANDBOX_MODE=true"), "{stderr}");
    let production = [("ENVIRONMENT", "production"), ("ENCRYPTION_KEY", "q6Zt1m3sJ0xq4m2w5c8v0b7n9k1j3h5g7f9d2s4a6p8="), ("HTTPS_ENABLED", "true"),
        ("SENTINEL_WEBHOOK_SECRET", "s"), ("ELASTIC_WEBHOOK_SECRET", "e"), ("SPLUNK_WEBHOOK_SECRET", "k")];
    let (code, _, stderr) = seed_cli(&server, &["seed-demo-data"], &production).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("ENVIRONMENT=production"), "{stderr}");
    let mut sandbox_in_production = production.to_vec();
    sandbox_in_production.push(("SANDBOX_MODE", "true"));
    let (code, _, stderr) = seed_cli(&server, &["seed-sandbox"], &sandbox_in_production).await;
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("SANDBOX_MODE") && stderr.contains("production"), "{stderr}");
    let (code, _, stderr) = seed_cli(&server, &["serve", "--bind", "127.0.0.1:0"], &sandbox_in_production).await;
    assert_ne!(code, 0, "{stderr}");
    assert!(stderr.contains("SANDBOX_MODE") && stderr.contains("production"), "{stderr}");
    let (code, _, stderr) = seed_cli(&server, &["seed-demo-data"], &[("SANDBOX_RESET_INTERVAL_HOURS", "0")]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("SANDBOX_RESET_INTERVAL_HOURS"), "{stderr}");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, 0);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM detection_rules").await, 0);
    server.stop().await;
}
dual!(seed_commands_refuse_clearly);

async fn status(server: &TestServer, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> u16 {
    let mut request = server.request(method, path, Some(key));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().status().as_u16()
}

/// `SANDBOX_MODE=true serve` seeds the sandbox, its alerts are enriched in mock mode, and the two
/// demo keys work with exactly their documented scopes.
async fn sandbox_mode_seeds_and_the_demo_keys_work(backend: Backend) {
    let server = TestServer::builder(backend).env("SANDBOX_MODE", "true").start().await;
    assert!(server.stderr.text().contains(READ_ONLY_KEY), "{}", server.stderr.text());
    assert_eq!(server.db_count("SELECT COUNT(*) FROM detection_rules WHERE is_system = TRUE").await, 5);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM context_documents WHERE is_system = TRUE").await, 3);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM api_keys WHERE is_system = TRUE AND key_type = 'human'").await, 2);
    assert!(
        eventually(Duration::from_secs(20), || async {
            server.db_count("SELECT COUNT(*) FROM alerts WHERE enrichment_status = 'Enriched'").await == 5
        })
        .await,
        "the sandbox alerts were not enriched"
    );

    // Read-only key: alerts, enrichments, workflows and agents can be read; nothing else.
    let alerts = body(server.get("/v1/alerts", READ_ONLY_KEY).await).await;
    assert_eq!(alerts["meta"]["total"], 5, "{alerts}");
    let identity = alerts["data"].as_array().unwrap().iter().find(|a| a["source_name"] == "sentinel" && a["severity"] == "High").unwrap();
    let detail = body(server.get(&format!("/v1/alerts/{}", identity["uuid"].as_str().unwrap()), READ_ONLY_KEY).await).await;
    assert_eq!(detail["data"]["detection_rule"]["name"], "Impossible Travel Sign-in Followed by MFA Fatigue", "{detail}");
    let documents: Vec<&str> = detail["data"]["context_documents"].as_array().unwrap().iter().map(|d| d["title"].as_str().unwrap()).collect();
    assert_eq!(documents, ["Identity Compromise Investigation Runbook"]);
    // Mock-mode enrichment gave the attacker IP a verdict.
    let ip = detail["data"]["indicators"].as_array().unwrap().iter().find(|i| i["value"] == "185.220.101.47").unwrap();
    assert_ne!(ip["malice"], "Pending", "{ip}");
    use reqwest::Method;
    for (method, path) in [(Method::GET, "/v1/workflows"), (Method::GET, "/v1/agents"), (Method::GET, "/v1/enrichments/providers")] {
        assert_eq!(status(&server, method.clone(), path, READ_ONLY_KEY, None).await, 200, "{method} {path}");
    }
    let ingest = json!({"title": "x", "severity": "low"});
    assert_eq!(status(&server, Method::POST, "/v1/ingest/generic", READ_ONLY_KEY, Some(ingest.clone())).await, 403);
    assert_eq!(status(&server, Method::GET, "/v1/api-keys", READ_ONLY_KEY, None).await, 403);
    let document = json!({"title": "t", "document_type": "runbook", "content": "c"});
    assert_eq!(status(&server, Method::POST, "/v1/context-documents", READ_ONLY_KEY, Some(document)).await, 403);
    assert_eq!(status(&server, Method::GET, "/v1/context-documents", READ_ONLY_KEY, None).await, 200);

    // Full-access key: admin included.
    assert_eq!(status(&server, Method::POST, "/v1/ingest/generic", FULL_ACCESS_KEY, Some(ingest)).await, 202);
    assert_eq!(status(&server, Method::GET, "/v1/api-keys", FULL_ACCESS_KEY, None).await, 200);
    let workflows = body(server.get("/v1/workflows?page_size=50", FULL_ACCESS_KEY).await).await;
    assert!(workflows["data"].as_array().unwrap().iter().any(|w| w["name"] == "Sandbox — Flag Account for Review" && w["is_active"] == true), "{workflows}");

    // `seed-sandbox` against the running sandbox finds everything in place.
    let (code, stdout, stderr) = seed_cli(&server, &["seed-sandbox"], &[("SANDBOX_MODE", "true")]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("done: 0 detection rules, 0 context documents, 0 alerts created (13 skipped as existing)"), "{stdout}");
    assert!(stdout.contains("sandbox: 0 workflow(s) and 0 demo key(s) created"), "{stdout}");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM api_keys WHERE is_system = TRUE").await, 2);
    server.stop().await;
}
dual!(sandbox_mode_seeds_and_the_demo_keys_work);

/// Two sandbox replicas with a tiny SANDBOX_RESET_INTERVAL_HOURS: the reset deletes what visitors
/// created, keeps the system rows, re-seeds the demo alerts, and each period runs once.
async fn sandbox_reset_reseeds_once_per_period(backend: Backend) {
    let started = Instant::now();
    // 0.001 h = 3.6 s.
    let first = TestServer::builder(backend.clone()).env("SANDBOX_MODE", "true").env("SANDBOX_RESET_INTERVAL_HOURS", "0.001").start().await;
    let second = TestServer::builder(backend)
        .env("SANDBOX_MODE", "true")
        .env("SANDBOX_RESET_INTERVAL_HOURS", "0.001")
        .sharing(&first)
        .start()
        .await;
    // A visitor's rule, key and alert.
    let rule = json!({"name": "visitor rule", "source_name": "generic", "source_rule_id": "visitor-1"});
    let response = first.post_json("/v1/detection-rules", FULL_ACCESS_KEY, &rule).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let response = first.post_json("/v1/api-keys", FULL_ACCESS_KEY, &json!({"name": "visitor", "scopes": ["alerts:read"]})).await;
    assert_eq!(response.status(), 201);
    let visitor_key = body(response).await["data"]["key"].as_str().unwrap().to_owned();
    assert_eq!(
        status(&first, reqwest::Method::POST, "/v1/ingest/generic", FULL_ACCESS_KEY, Some(json!({"title": "visitor alert", "severity": "low"}))).await,
        202
    );
    assert!(
        eventually(Duration::from_secs(30), || async {
            first.db_count("SELECT COUNT(*) FROM detection_rules WHERE name = 'visitor rule'").await == 0
        })
        .await,
        "no sandbox reset ran"
    );
    // Re-seeded: the demo alerts are back (and enriched), the visitor's alert is gone.
    assert!(
        eventually(Duration::from_secs(20), || async {
            first.db_count("SELECT COUNT(*) FROM alerts WHERE enrichment_status = 'Enriched' AND title <> 'visitor alert'").await == 5
        })
        .await,
        "the demo alerts were not re-seeded"
    );
    assert_eq!(first.db_count("SELECT COUNT(*) FROM alerts WHERE title = 'visitor alert'").await, 0);
    assert_eq!(first.db_count("SELECT COUNT(*) FROM detection_rules WHERE is_system = TRUE").await, 5);
    assert_eq!(first.db_count("SELECT COUNT(*) FROM context_documents WHERE is_system = TRUE").await, 3);
    assert_eq!(first.db_count("SELECT COUNT(*) FROM api_keys").await, 2, "only the demo keys survive");
    // The visitor's key stopped working on both replicas (the second within its cache refresh).
    assert_eq!(first.get("/v1/alerts", &visitor_key).await.status(), 401);
    assert!(eventually(Duration::from_secs(5), || async { second.get("/v1/alerts", &visitor_key).await.status() == 401 }).await);
    assert_eq!(second.get("/v1/alerts", READ_ONLY_KEY).await.status(), 200);

    // Once per period across the two replicas.
    let resets = first.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'sandbox_reset'").await;
    let periods = (started.elapsed().as_secs_f64() / 3.6).ceil() as i64 + 1;
    assert!(resets >= 1 && resets <= periods, "{resets} resets in {periods} periods");
    assert_eq!(first.db_count("SELECT COUNT(*) - COUNT(DISTINCT dedupe_key) FROM jobs WHERE task = 'sandbox_reset'").await, 0);
    assert_eq!(first.db_count("SELECT COUNT(*) FROM periodic_jobs WHERE name = 'sandbox_reset'").await, 1);
    assert_eq!(first.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'sandbox_reset' AND status = 'failed'").await, 0);
    second.stop().await;
    first.stop().await;
}
dual!(sandbox_reset_reseeds_once_per_period);
