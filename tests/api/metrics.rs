//! `/v1/metrics/alerts`, `/workflows` and `/summary`: every figure asserted against a planted data
//! set (rows written straight into the server's database, since several tables have no write
//! route yet), window defaults and validation, and scopes.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error};

/// A timestamp literal in the text form both backends store and compare consistently.
fn ts(at: DateTime<Utc>) -> String {
    format!("'{}'", at.to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn sql_opt(value: Option<String>) -> String {
    value.unwrap_or_else(|| "NULL".into())
}

#[derive(Clone)]
struct PlantedAlert {
    created: DateTime<Utc>,
    status: &'static str,
    severity: &'static str,
    source: &'static str,
    rule: Option<String>,
    classification: Option<&'static str>,
    /// Seconds between occurrence and creation.
    detect: i64,
    enrich: Option<i64>,
    acknowledge: Option<i64>,
    triage: Option<i64>,
    close: Option<i64>,
}

fn alert(created: DateTime<Utc>, status: &'static str, severity: &'static str, source: &'static str) -> PlantedAlert {
    PlantedAlert {
        created,
        status,
        severity,
        source,
        rule: None,
        classification: None,
        detect: 0,
        enrich: None,
        acknowledge: None,
        triage: None,
        close: None,
    }
}

async fn plant_alert(server: &TestServer, a: PlantedAlert) {
    let after = |s: Option<i64>| sql_opt(s.map(|s| ts(a.created + Duration::seconds(s))));
    let rule = match &a.rule {
        Some(uuid) => format!("(SELECT id FROM detection_rules WHERE uuid = {})", server.uuid_sql(Uuid::parse_str(uuid).unwrap())),
        None => "NULL".into(),
    };
    let sql = format!(
        "INSERT INTO alerts (uuid, title, severity, source_name, occurred_at, ingested_at, enriched_at, is_enriched, enrichment_status, status, \
           close_classification, acknowledged_at, triaged_at, closed_at, detection_rule_id, created_at, updated_at) \
         VALUES ({uuid}, 'planted', '{sev}', '{src}', {occurred}, {created}, {enriched}, {is_enriched}, '{enrichment_status}', '{status}', {class}, \
           {ack}, {triage}, {close}, {rule}, {created}, {created})",
        uuid = server.uuid_sql(Uuid::new_v4()),
        sev = a.severity,
        src = a.source,
        occurred = ts(a.created - Duration::seconds(a.detect)),
        created = ts(a.created),
        enriched = after(a.enrich),
        is_enriched = if a.enrich.is_some() { "TRUE" } else { "FALSE" },
        // is_enriched holds exactly for Enriched alerts (a constraint on PostgreSQL).
        enrichment_status = if a.enrich.is_some() { "Enriched" } else { "Pending" },
        status = a.status,
        class = sql_opt(a.classification.map(|c| format!("'{c}'"))),
        ack = after(a.acknowledge),
        triage = after(a.triage),
        close = after(a.close),
    );
    assert_eq!(server.db_execute(&sql).await, 1);
}

/// A workflow (deleting the builtins first is the caller's business); returns its UUID.
async fn plant_workflow(server: &TestServer, name: &str, kind: Option<&str>, state: &str, saved: Option<i64>) -> Uuid {
    let uuid = Uuid::new_v4();
    let sql = format!(
        "INSERT INTO workflows (uuid, name, workflow_type, code, state, time_saved_minutes) VALUES ({}, '{name}', {}, 'pass', '{state}', {})",
        server.uuid_sql(uuid),
        sql_opt(kind.map(|k| format!("'{k}'"))),
        sql_opt(saved.map(|s| s.to_string())),
    );
    server.db_execute(&sql).await;
    uuid
}

async fn plant_run(server: &TestServer, workflow: Uuid, status: &str, created: DateTime<Utc>) {
    let sql = format!(
        "INSERT INTO workflow_runs (uuid, workflow_id, trigger_type, code_version_executed, status, created_at, updated_at) \
         VALUES ({}, (SELECT id FROM workflows WHERE uuid = {}), 'human', 1, '{status}', {c}, {c})",
        server.uuid_sql(Uuid::new_v4()),
        server.uuid_sql(workflow),
        c = ts(created),
    );
    server.db_execute(&sql).await;
}

async fn create_rule(server: &TestServer, name: &str) -> String {
    let response = server.post_json("/v1/detection-rules", &server.admin_key, &json!({"name": name})).await;
    assert_eq!(response.status(), 201);
    body(response).await["data"]["uuid"].as_str().unwrap().to_owned()
}

fn assert_close(value: &Value, expected: f64) {
    let got = value.as_f64().unwrap_or_else(|| panic!("{value} is not a number"));
    assert!((got - expected).abs() < 0.01, "{got} != {expected}");
}

async fn alert_metrics_over_a_window(backend: Backend) {
    let server = TestServer::start(backend).await;
    let phishing = create_rule(&server, "Phishing").await;
    let brute = create_rule(&server, "Brute force").await;
    let day1 = at("2026-01-01T00:00:00Z");
    plant_alert(
        &server,
        PlantedAlert { rule: Some(phishing.clone()), detect: 60, enrich: Some(10), acknowledge: Some(100), ..alert(day1, "Open", "High", "splunk") },
    )
    .await;
    plant_alert(
        &server,
        PlantedAlert {
            rule: Some(phishing.clone()),
            detect: 120,
            enrich: Some(30),
            acknowledge: Some(200),
            triage: Some(400),
            ..alert(day1 + Duration::hours(12), "Triaging", "High", "elastic")
        },
    )
    .await;
    plant_alert(
        &server,
        PlantedAlert {
            rule: Some(brute.clone()),
            classification: Some("False Positive - Inaccurate Data"),
            close: Some(1000),
            ..alert(day1 + Duration::days(1), "Closed", "Low", "splunk")
        },
    )
    .await;
    plant_alert(
        &server,
        PlantedAlert {
            detect: 60,
            classification: Some("True Positive - Suspicious Activity"),
            close: Some(2000),
            ..alert(day1 + Duration::hours(30), "Closed", "Medium", "splunk")
        },
    )
    .await;
    // The end of the window is exclusive.
    plant_alert(&server, PlantedAlert { rule: Some(brute.clone()), ..alert(day1 + Duration::days(2), "Open", "Critical", "splunk") }).await;

    let path = "/v1/metrics/alerts?from_time=2026-01-01T00:00:00Z&to_time=2026-01-03T00:00:00Z";
    let json = body(server.get(path, &server.admin_key).await).await;
    assert_eq!(json["meta"], json!({}));
    let m = &json["data"];
    let mut keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "active_alerts_by_severity", "alerts_by_severity", "alerts_by_source", "alerts_by_status", "alerts_over_time",
            "enrichment_coverage", "false_positive_rate", "mean_time_to_acknowledge", "mean_time_to_conclusion",
            "mean_time_to_detect", "mean_time_to_enrich", "mean_time_to_triage", "period_from", "period_to",
            "top_detection_rules", "total_alerts",
        ]
    );
    assert_eq!(at(m["period_from"].as_str().unwrap()), day1);
    assert_eq!(at(m["period_to"].as_str().unwrap()), day1 + Duration::days(2));
    assert_eq!(m["total_alerts"], 4);
    assert_eq!(m["alerts_by_status"], json!({"Open": 1, "Triaging": 1, "Closed": 2}));
    assert_eq!(m["alerts_by_severity"], json!({"High": 2, "Low": 1, "Medium": 1}));
    assert_eq!(m["alerts_by_source"], json!({"splunk": 3, "elastic": 1}));
    assert_eq!(m["active_alerts_by_severity"], json!({"High": 2}));
    assert_eq!(m["alerts_over_time"], json!([{"date": "2026-01-01", "count": 2}, {"date": "2026-01-02", "count": 2}]));
    assert_eq!(m["false_positive_rate"].as_f64(), Some(0.5));
    assert_eq!(m["enrichment_coverage"].as_f64(), Some(0.5));
    assert_close(&m["mean_time_to_enrich"], 20.0);
    assert_close(&m["mean_time_to_detect"], 60.0);
    assert_close(&m["mean_time_to_acknowledge"], 150.0);
    assert_close(&m["mean_time_to_triage"], 400.0);
    assert_close(&m["mean_time_to_conclusion"], 1500.0);
    assert_eq!(
        m["top_detection_rules"],
        json!([{"uuid": phishing, "name": "Phishing", "count": 2}, {"uuid": brute, "name": "Brute force", "count": 1}])
    );

    // An empty window: zeros and nulls, never an error.
    let empty = body(server.get("/v1/metrics/alerts?from_time=2025-01-01T00:00:00Z&to_time=2025-01-02T00:00:00Z", &server.admin_key).await).await;
    let e = &empty["data"];
    assert_eq!((e["total_alerts"].as_i64(), e["false_positive_rate"].as_f64(), e["enrichment_coverage"].as_f64()), (Some(0), Some(0.0), Some(0.0)));
    for field in ["mean_time_to_enrich", "mean_time_to_detect", "mean_time_to_acknowledge", "mean_time_to_triage", "mean_time_to_conclusion"] {
        assert!(e[field].is_null(), "{field}: {}", e[field]);
    }
    assert_eq!((e["alerts_over_time"].clone(), e["top_detection_rules"].clone(), e["alerts_by_status"].clone()), (json!([]), json!([]), json!({})));
    server.stop().await;
}
dual!(alert_metrics_over_a_window);

async fn workflow_metrics_over_a_window(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.db_execute("DELETE FROM workflows").await;
    let triage = plant_workflow(&server, "Triage", Some("alert"), "active", Some(30)).await;
    let idle = plant_workflow(&server, "Idle", None, "draft", None).await;
    let lookup = plant_workflow(&server, "Lookup", Some("indicator"), "active", Some(15)).await;
    let day1 = at("2026-01-01T00:00:00Z");
    plant_run(&server, triage, "success", day1).await;
    plant_run(&server, triage, "success", day1 + Duration::hours(23)).await;
    plant_run(&server, triage, "failed", day1 + Duration::days(1)).await;
    plant_run(&server, lookup, "success", day1 + Duration::hours(40)).await;
    plant_run(&server, idle, "success", day1 + Duration::days(2)).await;

    let path = "/v1/metrics/workflows?from_time=2026-01-01T00:00:00Z&to_time=2026-01-03T00:00:00Z";
    let m = body(server.get(path, &server.admin_key).await).await["data"].clone();
    assert_eq!(m["total_configured"], 3);
    assert_eq!(m["workflows_by_type"], json!({"alert": 1, "indicator": 1, "unset": 1}));
    assert_eq!(m["workflow_run_count"], 4);
    assert_eq!(m["workflow_success_rate"].as_f64(), Some(0.75));
    assert_eq!(m["workflow_runs_over_time"], json!([{"date": "2026-01-01", "count": 2}, {"date": "2026-01-02", "count": 2}]));
    assert_eq!(m["time_saved_hours"].as_f64(), Some(1.25));
    assert_eq!(
        m["most_executed_workflows"],
        json!([{"uuid": triage, "name": "Triage", "run_count": 3}, {"uuid": lookup, "name": "Lookup", "run_count": 1}])
    );
    assert_eq!(at(m["period_to"].as_str().unwrap()), day1 + Duration::days(2));
    server.stop().await;
}
dual!(workflow_metrics_over_a_window);

async fn summary_of_the_last_30_days(backend: Backend) {
    let server = TestServer::start(backend).await;
    let now = Utc::now();
    let old = now - Duration::days(40);
    // Alerts.
    plant_alert(&server, PlantedAlert { detect: 30, enrich: Some(5), ..alert(now - Duration::days(2), "Open", "High", "sentinel") }).await;
    plant_alert(
        &server,
        PlantedAlert {
            detect: 30,
            classification: Some("False Positive - Incorrect Detection Logic"),
            close: Some(600),
            ..alert(now - Duration::days(1), "Closed", "Low", "sentinel")
        },
    )
    .await;
    plant_alert(&server, alert(old, "Open", "Critical", "splunk")).await;
    // Workflows and runs.
    server.db_execute("DELETE FROM workflows").await;
    let active = plant_workflow(&server, "Contain", Some("alert"), "active", Some(60)).await;
    let draft = plant_workflow(&server, "Draft", None, "draft", Some(600)).await;
    plant_run(&server, active, "success", now - Duration::days(1)).await;
    plant_run(&server, active, "failed", now - Duration::days(1)).await;
    plant_run(&server, draft, "success", old).await;
    // Approval requests: (status, created, responded after seconds).
    let requests: [(&str, DateTime<Utc>, Option<i64>); 7] = [
        ("pending", old, None),
        ("pending", now - Duration::hours(1), None),
        ("approved", now - Duration::days(3), Some(120)),
        ("approved", now - Duration::days(2), Some(360)),
        ("rejected", now - Duration::days(2), Some(600)),
        ("approved", old, Some(10)),
        ("expired", now - Duration::days(5), None),
    ];
    for (status, created, responded) in requests {
        let sql = format!(
            "INSERT INTO workflow_approval_requests (uuid, workflow_id, trigger_type, trigger_agent_key_prefix, reason, confidence, \
               status, responded_at, expires_at, created_at, updated_at) \
             VALUES ({}, (SELECT id FROM workflows WHERE uuid = {}), 'agent', 'cai_test', 'why', 0.9, '{status}', {}, {}, {c}, {c})",
            server.uuid_sql(Uuid::new_v4()),
            server.uuid_sql(active),
            sql_opt(responded.map(|s| ts(created + Duration::seconds(s)))),
            ts(created + Duration::hours(1)),
            c = ts(created),
        );
        assert_eq!(server.db_execute(&sql).await, 1);
    }
    // Platform inventory.
    create_rule(&server, "Counted").await;
    let doc = format!(
        "INSERT INTO context_documents (uuid, title, document_type, content) VALUES ({}, 'Runbook', 'runbook', 'text')",
        server.uuid_sql(Uuid::new_v4())
    );
    server.db_execute(&doc).await;
    server.db_execute("UPDATE enrichment_providers SET is_active = FALSE").await;
    let first_two = "SELECT id FROM enrichment_providers ORDER BY id LIMIT 2";
    server.db_execute(&format!("UPDATE enrichment_providers SET is_active = TRUE, supported_indicator_types = '[\"ip\"]' WHERE id IN ({first_two})")).await;
    server.db_execute("UPDATE enrichment_providers SET supported_indicator_types = '[\"ip\", \"domain\"]' WHERE id = (SELECT MIN(id) FROM enrichment_providers)").await;
    for (name, active) in [("on", "TRUE"), ("off", "FALSE")] {
        let sql = format!(
            "INSERT INTO agent_registrations (uuid, name, endpoint_url, is_active) VALUES ({}, '{name}', 'https://agent.test/', {active})",
            server.uuid_sql(Uuid::new_v4())
        );
        server.db_execute(&sql).await;
    }
    let mappings = server.db_count("SELECT COUNT(*) FROM indicator_field_mappings").await;
    assert!(mappings > 0, "system mappings are seeded");
    // Jobs of a queue no worker serves: (status, run_at, started, finished). The finished ones
    // finished just now, as the runner stamps them: hours already rolled up are read from the
    // counters (`job_counters_outlive_pruned_jobs`).
    type PlantedJob = (&'static str, DateTime<Utc>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    let recent = |seconds: i64| now - Duration::seconds(seconds);
    let jobs: [PlantedJob; 7] = [
        ("todo", now - Duration::seconds(100), None, None),
        ("todo", now + Duration::hours(1), None, None),
        ("doing", now - Duration::seconds(5), Some(now - Duration::seconds(5)), None),
        ("succeeded", recent(40), Some(recent(40)), Some(recent(38))),
        ("succeeded", recent(30), Some(recent(30)), Some(recent(26))),
        ("succeeded", old, Some(old), Some(old + Duration::seconds(100))),
        ("failed", recent(20), Some(recent(20)), Some(recent(20))),
    ];
    for (status, run_at, started, finished) in jobs {
        let sql = format!(
            "INSERT INTO jobs (uuid, queue, task, payload, status, run_at, started_at, finished_at) \
             VALUES ({}, 'metrics-test', 'nothing', '{{}}', '{status}', {}, {}, {})",
            server.uuid_sql(Uuid::new_v4()),
            ts(run_at),
            sql_opt(started.map(ts)),
            sql_opt(finished.map(ts)),
        );
        assert_eq!(server.db_execute(&sql).await, 1);
    }
    // A queue with only jobs the window does not count (cancelled, finished long ago) is not
    // listed: the statistics no longer group the whole table.
    for (status, finished) in [("cancelled", now - Duration::hours(1)), ("succeeded", old)] {
        let sql = format!(
            "INSERT INTO jobs (uuid, queue, task, payload, status, run_at, started_at, finished_at) \
             VALUES ({}, 'metrics-idle', 'nothing', '{{}}', '{status}', {f}, {f}, {f})",
            server.uuid_sql(Uuid::new_v4()),
            f = ts(finished),
        );
        assert_eq!(server.db_execute(&sql).await, 1);
    }

    let json = body(server.get("/v1/metrics/summary", &server.admin_key).await).await;
    assert_eq!(json["meta"], json!({}));
    let s = &json["data"];
    assert_eq!(s["period"], "last_30_days");
    let a = &s["alerts"];
    assert_eq!((a["total"].as_i64(), a["active"].as_i64()), (Some(2), Some(1)));
    assert_eq!(a["by_severity"], json!({"High": 1}), "active alerts only");
    assert_eq!(a["by_status"], json!({"Open": 1, "Closed": 1}));
    assert_eq!(a["by_source"], json!({"sentinel": 2}));
    assert_eq!(a["enrichment_coverage"].as_f64(), Some(0.5));
    assert_eq!(a["false_positive_rate"].as_f64(), Some(1.0));
    assert_close(&a["mean_time_to_enrich_seconds"], 5.0);
    assert_close(&a["mttd_seconds"], 30.0);
    assert!(a["mtta_seconds"].is_null() && a["mttt_seconds"].is_null());
    assert_close(&a["mttc_seconds"], 600.0);
    assert_eq!(
        s["workflows"],
        json!({"total_configured": 1, "executions": 2, "success_rate": 0.5, "estimated_time_saved_hours": 1.0})
    );
    let ap = &s["approvals"];
    assert_eq!((ap["pending"].as_i64(), ap["approved_last_30_days"].as_i64()), (Some(2), Some(2)));
    assert_close(&ap["approval_rate"], 2.0 / 3.0);
    assert_close(&ap["median_response_time_minutes"], 6.0);
    assert_eq!(
        s["platform"],
        json!({"context_documents": 1, "detection_rules": 1, "enrichment_providers": 2,
               "enrichment_providers_by_indicator_type": {"ip": 2, "domain": 1}, "agents": 1, "workflows": 2,
               "indicator_mappings": mappings})
    );
    let q = &s["queue"];
    let entry = q["queues"].as_array().unwrap().iter().find(|e| e["queue"] == "metrics-test").expect("the planted queue").clone();
    assert_eq!((entry["pending"].as_i64(), entry["in_progress"].as_i64()), (Some(2), Some(1)));
    assert_eq!((entry["succeeded_30d"].as_i64(), entry["failed_30d"].as_i64()), (Some(2), Some(1)));
    assert_close(&entry["avg_duration_seconds"], 3.0);
    let age = entry["oldest_pending_age_seconds"].as_f64().unwrap();
    assert!((100.0..130.0).contains(&age), "oldest pending age {age}");
    assert!(!q["queues"].as_array().unwrap().iter().any(|e| e["queue"] == "metrics-idle"), "{q}");
    assert!(q["total_pending"].as_i64().unwrap() >= 2 && q["total_failed_30d"].as_i64().unwrap() >= 1);
    assert!(q["oldest_pending_age_seconds"].as_f64().unwrap() >= age);
    server.stop().await;
}
dual!(summary_of_the_last_30_days);

/// Finished jobs are counted per queue and hour once the hour has settled: the counts outlive the
/// 7-day pruning of the rows (so `*_30d` span 30 days), and the hours since are read live.
async fn job_counters_outlive_pruned_jobs(backend: Backend) {
    // An API-only server runs no job, so the jobs are planted before the first rollup.
    let api_only = TestServer::builder(backend.clone()).start_with_args(&["serve", "--bind", "127.0.0.1:0", "--roles", "api"]).await;
    let now = Utc::now();
    // (status, finished, run seconds) in a queue no worker serves.
    let planted = [
        ("succeeded", now - Duration::days(2), 2),
        ("succeeded", now - Duration::hours(26), 6),
        ("failed", now - Duration::days(3), 1),
        ("succeeded", now - Duration::days(40), 9),
        ("succeeded", now - Duration::seconds(30), 4),
    ];
    for (status, finished, seconds) in planted {
        let sql = format!(
            "INSERT INTO jobs (uuid, queue, task, payload, status, run_at, started_at, finished_at) \
             VALUES ({}, 'metrics-rolled', 'nothing', '{{}}', '{status}', {f}, {}, {f})",
            api_only.uuid_sql(Uuid::new_v4()),
            ts(finished - Duration::seconds(seconds)),
            f = ts(finished),
        );
        assert_eq!(api_only.db_execute(&sql).await, 1);
    }
    let worker = TestServer::builder(backend)
        .env("BOOTSTRAP_ADMIN_KEY", "false")
        .env("METRICS_ROLLUP_INTERVAL_SECONDS", "1")
        .sharing(&api_only)
        .start()
        .await;
    let rolled = crate::support::eventually(std::time::Duration::from_secs(20), || async {
        worker.db_count("SELECT COUNT(*) FROM job_metrics_hourly WHERE queue = 'metrics-rolled'").await == 4
    })
    .await;
    assert!(rolled, "the four settled hours were rolled up");
    // Pruned, as finished jobs are after 7 days (the one of a moment ago stays).
    let pruned = format!("DELETE FROM jobs WHERE queue = 'metrics-rolled' AND finished_at < {}", ts(now - Duration::hours(1)));
    assert_eq!(worker.db_execute(&pruned).await, 4);

    let summary = body(api_only.get("/v1/metrics/summary", &api_only.admin_key).await).await;
    let queues = summary["data"]["queue"]["queues"].as_array().unwrap().clone();
    let entry = queues.iter().find(|e| e["queue"] == "metrics-rolled").expect("the planted queue");
    assert_eq!((entry["succeeded_30d"].as_i64(), entry["failed_30d"].as_i64()), (Some(3), Some(1)), "{entry}");
    assert_close(&entry["avg_duration_seconds"], 4.0);
    assert_eq!((entry["pending"].as_i64(), entry["in_progress"].as_i64()), (Some(0), Some(0)));
    worker.stop().await;
    api_only.stop().await;
}
dual!(job_counters_outlive_pruned_jobs);

async fn windows_scopes_and_bad_input(backend: Backend) {
    let server = TestServer::start(backend).await;
    let admin = server.admin_key.clone();
    // Unless both bounds are given, the window is the last 30 days.
    for query in ["", "?from_time=2020-01-01T00:00:00Z", "?to_time=2020-01-01T00:00:00Z"] {
        for route in ["/v1/metrics/alerts", "/v1/metrics/workflows"] {
            let before = Utc::now() - Duration::seconds(1);
            let m = body(server.get(&format!("{route}{query}"), &admin).await).await["data"].clone();
            let (from, to) = (at(m["period_from"].as_str().unwrap()), at(m["period_to"].as_str().unwrap()));
            assert!(to >= before && to <= Utc::now() + Duration::seconds(1), "{route}{query}: {to}");
            assert_eq!(to - from, Duration::days(30), "{route}{query}");
        }
    }
    for route in ["/v1/metrics/alerts", "/v1/metrics/workflows"] {
        for query in [
            "from_time=yesterday&to_time=2026-01-01T00:00:00Z",
            "from_time=2026-01-01T00:00:00Z&to_time=13",
            "from_time=2026-01-02T00:00:00Z&to_time=2026-01-01T00:00:00Z",
            "from_time=2026-01-01T00:00:00Z&to_time=2026-01-01T00:00:00Z",
        ] {
            expect_error(server.get(&format!("{route}?{query}"), &admin).await, 422, "VALIDATION_ERROR").await;
        }
    }
    let (alerts_reader, _) = server.create_key(&["alerts:read"], json!({})).await;
    let (workflows_reader, _) = server.create_key(&["workflows:read"], json!({})).await;
    assert_eq!(server.get("/v1/metrics/alerts", &alerts_reader).await.status(), 200);
    assert_eq!(server.get("/v1/metrics/summary", &alerts_reader).await.status(), 200);
    assert_eq!(server.get("/v1/metrics/workflows", &workflows_reader).await.status(), 200);
    for (route, key, scope) in [
        ("/v1/metrics/alerts", &workflows_reader, "alerts:read"),
        ("/v1/metrics/summary", &workflows_reader, "alerts:read"),
        ("/v1/metrics/workflows", &alerts_reader, "workflows:read"),
    ] {
        // The scope is checked before the query is read.
        let json = expect_error(server.get(&format!("{route}?from_time=bad"), key).await, 403, "FORBIDDEN").await;
        assert_eq!(json["error"]["details"]["required_scopes"], json!([scope]), "{route}");
        let anonymous = server.request(reqwest::Method::GET, route, None).send().await.unwrap();
        expect_error(anonymous, 401, "UNAUTHORIZED").await;
    }
    server.stop().await;
}
dual!(windows_scopes_and_bad_input);
