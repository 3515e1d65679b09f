//! Reads at scale (issue 14) and their behaviour: bounded list totals with correct paging,
//! retention, and metrics served from rollups that stay correct when rolled-up days change.

use std::time::Duration;

use serde_json::{Value, json};

use crate::dual;
use crate::support::{Backend, TestServer, body, eventually};

/// Mirrors `calseta::pagination::COUNT_AHEAD`.
const COUNT_AHEAD: i64 = 1_000;

fn sqlite(server: &TestServer) -> bool {
    server.db.url.starts_with("sqlite:")
}

/// A timestamp `seconds` after 2026-01-01T00:00:00Z, as an SQL expression of `server`'s backend
/// (`seconds` may be an SQL expression).
fn time_sql(server: &TestServer, seconds: &str) -> String {
    if sqlite(server) {
        format!("strftime('%Y-%m-%dT%H:%M:%S+00:00', 1767225600 + {seconds}, 'unixepoch')")
    } else {
        format!("to_timestamp(1767225600 + {seconds})")
    }
}

/// `n` alerts `a1..an`, occurred one second apart (newest last); every fourth Closed, every
/// third High, tag `third` on every third.
async fn plant_alerts(server: &TestServer, n: i64) {
    let (uuid, series) = if sqlite(server) {
        ("randomblob(16)", format!("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT"))
    } else {
        ("gen_random_uuid()", format!("WITH s(i) AS (SELECT generate_series(1, {n})) SELECT"))
    };
    let at = time_sql(server, "i");
    let tags = if sqlite(server) {
        "CASE WHEN i % 3 = 0 THEN '[\"third\"]' ELSE '[]' END".to_owned()
    } else {
        "CAST(CASE WHEN i % 3 = 0 THEN '[\"third\"]' ELSE '[]' END AS JSONB)".to_owned()
    };
    let sql = format!(
        "INSERT INTO alerts (uuid, title, severity, source_name, occurred_at, ingested_at, status, tags, created_at, updated_at) \
         {series} {uuid}, 'a' || i, CASE WHEN i % 3 = 0 THEN 'High' ELSE 'Low' END, 'bulk', {at}, {at}, \
           CASE WHEN i % 4 = 0 THEN 'Closed' ELSE 'Open' END, {tags}, {at}, {at} FROM s"
    );
    assert_eq!(server.db_execute(&sql).await, n as u64);
}

fn titles(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap().to_owned()).collect()
}

async fn get(server: &TestServer, path: &str) -> Value {
    let response = server.get(path, &server.admin_key).await;
    assert_eq!(response.status(), 200, "{path}");
    body(response).await
}

async fn paging_with_bounded_totals(backend: Backend) {
    let server = TestServer::start(backend).await;
    let n = 1_200;
    plant_alerts(&server, n).await;

    // The first page counts up to the bound: a lower bound, flagged, with pages beyond this one.
    let first = get(&server, "/v1/alerts?page_size=50").await;
    assert_eq!(first["meta"], json!({"total": 50 + COUNT_AHEAD, "page": 1, "page_size": 50, "total_pages": 21, "total_is_lower_bound": true}));
    assert_eq!(titles(&first)[..3], ["a1200", "a1199", "a1198"]);

    // Pages of 500 read every row once, in order; the last (short) page knows the exact total.
    let mut all = Vec::new();
    for page in 1..=3 {
        let p = get(&server, &format!("/v1/alerts?page_size=500&page={page}")).await;
        all.extend(titles(&p));
        if page == 3 {
            assert_eq!(p["meta"], json!({"total": n, "page": 3, "page_size": 500, "total_pages": 3}));
        }
    }
    let expected: Vec<String> = (1..=n).rev().map(|i| format!("a{i}")).collect();
    assert_eq!(all, expected);

    // Page N returns the same rows as with an exact count, near the end the count is exact, and
    // past the end the page is empty with the exact total.
    let p24 = get(&server, "/v1/alerts?page_size=50&page=24").await;
    assert_eq!(titles(&p24), expected[1150..1200]);
    assert_eq!(p24["meta"], json!({"total": n, "page": 24, "page_size": 50, "total_pages": 24}));
    let p3 = get(&server, "/v1/alerts?page_size=50&page=3").await;
    assert_eq!(titles(&p3), expected[100..150]);
    assert_eq!(p3["meta"]["total"], 150 + COUNT_AHEAD);
    let past = get(&server, "/v1/alerts?page_size=50&page=40").await;
    assert_eq!(past["meta"], json!({"total": n, "page": 40, "page_size": 50, "total_pages": 24}));
    assert_eq!(past["data"], json!([]));

    // Filters and sorts still select and order the right rows; small sets keep exact totals.
    let closed = get(&server, "/v1/alerts?status=Closed&page_size=500").await;
    assert_eq!(closed["meta"]["total"], 300);
    assert!(closed["meta"].get("total_is_lower_bound").is_none());
    assert!(closed["data"].as_array().unwrap().iter().all(|a| a["status"] == "Closed"));
    let tagged_high = get(&server, "/v1/alerts?tags=third&severity=High&page_size=10&page=40").await;
    assert_eq!(tagged_high["meta"]["total"], 400);
    assert_eq!(titles(&tagged_high), ["a30", "a27", "a24", "a21", "a18", "a15", "a12", "a9", "a6", "a3"]);
    let by_severity = get(&server, "/v1/alerts?sort_by=severity&sort_order=asc&page_size=500&page=2").await;
    let severities: Vec<&str> = by_severity["data"].as_array().unwrap().iter().map(|a| a["severity"].as_str().unwrap()).collect();
    // 800 Low (rank 2) sort before 400 High (rank 4): rows 501–800 are Low, 801–1000 High.
    assert_eq!(severities.iter().filter(|s| **s == "Low").count(), 300);
    assert!(severities.windows(2).all(|w| !(w[0] == "High" && w[1] == "Low")));
    let by_title = get(&server, "/v1/alerts?sort_by=title&sort_order=asc&page_size=3").await;
    assert_eq!(titles(&by_title), ["a1", "a10", "a100"]);
}
dual!(paging_with_bounded_totals);

/// Old rows of every retained kind, and recent ones; indicators linked only to old alerts go
/// with them, an indicator also linked to a recent alert stays.
async fn retention_purges_old_rows(backend: Backend) {
    let server = TestServer::builder(backend)
        .env("RETENTION_ALERTS_DAYS", "30")
        .env("RETENTION_WORKFLOW_RUNS_DAYS", "30")
        .env("RETENTION_AGENT_RUNS_DAYS", "30")
        .env("RETENTION_ACTIVITY_EVENTS_DAYS", "30")
        .env("RETENTION_FINISHED_JOBS_DAYS", "2")
        .env("RETENTION_BATCH_SIZE", "2")
        .env("RETENTION_INTERVAL_SECONDS", "1")
        .start()
        .await;
    let (old, recent) = if sqlite(&server) {
        ("strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now', '-40 days')", "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now', '-1 days')")
    } else {
        ("now() - interval '40 days'", "now() - interval '1 day'")
    };
    let uuid = |server: &TestServer| server.uuid_sql(uuid::Uuid::new_v4());
    // Five old alerts (more than a batch), one recent. The purge job already runs every second:
    // every alert is planted recent and the old ones are aged in ONE statement once their links
    // exist, so the job never sees an old alert whose links are still being written.
    for title in ["old1", "old2", "old3", "old4", "old5", "recent"] {
        let at = recent;
        server
            .db_execute(&format!(
                "INSERT INTO alerts (uuid, title, severity, source_name, occurred_at, ingested_at, created_at, updated_at) \
                 VALUES ({}, '{title}', 'Low', 'bulk', {at}, {at}, {at}, {at})",
                uuid(&server)
            ))
            .await;
    }
    for (value, at) in [("10.0.0.1", old), ("10.0.0.2", old), ("10.0.0.3", recent)] {
        server
            .db_execute(&format!(
                "INSERT INTO indicators (uuid, type, value, first_seen, last_seen, created_at, updated_at) \
                 VALUES ({}, 'ip', '{value}', {at}, {at}, {at}, {at})",
                uuid(&server)
            ))
            .await;
    }
    // 10.0.0.1: old alerts only (purged); 10.0.0.2: an old and the recent alert (kept);
    // 10.0.0.3: the recent alert (kept).
    for (title, value) in [("old1", "10.0.0.1"), ("old2", "10.0.0.1"), ("old3", "10.0.0.2"), ("recent", "10.0.0.2"), ("recent", "10.0.0.3")] {
        server
            .db_execute(&format!(
                "INSERT INTO alert_indicators (alert_id, indicator_id) SELECT a.id, i.id FROM alerts a, indicators i \
                 WHERE a.title = '{title}' AND i.value = '{value}'"
            ))
            .await;
    }
    server
        .db_execute(&format!(
            "UPDATE alerts SET occurred_at = {old}, ingested_at = {old}, created_at = {old}, updated_at = {old} WHERE title LIKE 'old%'"
        ))
        .await;
    for (event, at) in [("old_event", old), ("recent_event", recent)] {
        server
            .db_execute(&format!(
                "INSERT INTO activity_events (uuid, event_type, actor_type, created_at) VALUES ({}, '{event}', 'system', {at})",
                uuid(&server)
            ))
            .await;
    }
    for (task, status, at) in [("old_done", "succeeded", old), ("old_todo", "todo", old), ("recent_done", "succeeded", recent)] {
        server
            .db_execute(&format!(
                "INSERT INTO jobs (uuid, queue, task, payload, status, run_at, finished_at, created_at, updated_at) \
                 VALUES ({}, 'retention-test', '{task}', '{{}}', '{status}', {at}, {at}, {at}, {at})",
                uuid(&server)
            ))
            .await;
    }

    let purged = eventually(Duration::from_secs(60), || async {
        server.db_count("SELECT COUNT(*) FROM alerts").await == 1
            && server.db_count("SELECT COUNT(*) FROM activity_events WHERE event_type = 'old_event'").await == 0
            && server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'old_done'").await == 0
            && server.db_count("SELECT COUNT(*) FROM indicators WHERE value = '10.0.0.1'").await == 0
    })
    .await;
    let errors: Vec<String> = server.stderr.text().lines().filter(|l| l.contains("purge_expired_rows")).map(str::to_owned).collect();
    assert!(purged, "old rows were not purged: {errors:?}");
    assert_eq!(server.db_texts("SELECT title FROM alerts").await, [Some("recent".to_owned())]);
    assert_eq!(
        server.db_texts("SELECT value FROM indicators ORDER BY value").await,
        [Some("10.0.0.2".to_owned()), Some("10.0.0.3".to_owned())]
    );
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alert_indicators").await, 2);
    assert_eq!(server.db_count("SELECT COUNT(*) FROM activity_events WHERE event_type = 'recent_event'").await, 1);
    // Unfinished jobs are never purged; recent finished ones are kept.
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task IN ('old_todo', 'recent_done')").await, 2);
}
dual!(retention_purges_old_rows);

/// With rollups in place, the metrics of old days come from them, and stay right when an alert
/// of a rolled-up day is added, changed or deleted behind the API's back.
async fn metrics_rollups_follow_changes(backend: Backend) {
    let server = TestServer::builder(backend).env("METRICS_ROLLUP_INTERVAL_SECONDS", "1").start().await;
    plant_alerts(&server, 120).await; // 2026-01-01, two minutes' worth
    let window = "/v1/metrics/alerts?from_time=2025-12-31T00:00:00Z&to_time=2026-01-03T00:00:00Z";
    let rolled = eventually(Duration::from_secs(20), || async {
        server.db_count("SELECT COUNT(*) FROM alert_metrics_dirty_days").await == 0
            && server.db_count("SELECT CAST(COALESCE(SUM(alerts), 0) AS BIGINT) FROM alert_metrics_daily WHERE day = '2026-01-01'").await == 120
    })
    .await;
    assert!(rolled, "the rollup job did not roll the day up");
    let hourly = "SELECT CAST(COALESCE(SUM(alerts), 0) AS BIGINT) FROM alert_metrics_hourly WHERE hour = '2026-01-01T00'";
    assert_eq!(server.db_count(hourly).await, 120, "and its hours");
    // A window of partial days: whole hours from the hourly rollups, the last half hour live.
    let hours = "/v1/metrics/alerts?from_time=2026-01-01T00:00:00Z&to_time=2026-01-01T05:30:00Z";
    let m = get(&server, hours).await["data"].clone();
    assert_eq!((m["total_alerts"].clone(), m["alerts_by_status"].clone()), (json!(120), json!({"Open": 90, "Closed": 30})));
    let m = get(&server, window).await["data"].clone();
    assert_eq!(m["total_alerts"], 120);
    assert_eq!(m["alerts_by_status"], json!({"Open": 90, "Closed": 30}));
    assert_eq!(m["alerts_by_severity"], json!({"High": 40, "Low": 80}));
    assert_eq!(m["alerts_over_time"], json!([{"date": "2026-01-01", "count": 120}]));

    // Changes to the rolled-up day show at once (the day is dirty, so read live): a late insert
    // (a backfill) at 00:00:30, then an update and a delete.
    let (uuid, late) = (server.uuid_sql(uuid::Uuid::new_v4()), time_sql(&server, "30"));
    server
        .db_execute(&format!(
            "INSERT INTO alerts (uuid, title, severity, source_name, occurred_at, ingested_at, status, created_at, updated_at) \
             VALUES ({uuid}, 'late', 'Low', 'bulk', {late}, {late}, 'Open', {late}, {late})"
        ))
        .await;
    let m = get(&server, window).await["data"].clone();
    assert_eq!((m["total_alerts"].clone(), m["alerts_by_status"].clone()), (json!(121), json!({"Open": 91, "Closed": 30})));
    server.db_execute("UPDATE alerts SET status = 'Closed' WHERE title = 'a1'").await;
    server.db_execute("DELETE FROM alerts WHERE title = 'a2'").await;
    let m = get(&server, window).await["data"].clone();
    assert_eq!(m["total_alerts"], 120);
    assert_eq!(m["alerts_by_status"], json!({"Open": 89, "Closed": 31}));
    // A window with partial days reads their alerts live: the first minute only.
    let minute = get(&server, "/v1/metrics/alerts?from_time=2026-01-01T00:00:00Z&to_time=2026-01-01T00:01:00Z").await["data"].clone();
    assert_eq!(minute["total_alerts"], 59); // a1..a59 minus a2 (a60 is at 00:01:00), plus the late one
    // The dirty hour too.
    let m = get(&server, hours).await["data"].clone();
    assert_eq!((m["total_alerts"].clone(), m["alerts_by_status"].clone()), (json!(120), json!({"Open": 89, "Closed": 31})));
    // Once recomputed, the rollup agrees.
    let recomputed = eventually(Duration::from_secs(20), || async {
        server.db_count("SELECT CAST(COALESCE(SUM(alerts), 0) AS BIGINT) FROM alert_metrics_daily WHERE day = '2026-01-01'").await == 120
            && server.db_count(hourly).await == 120
    })
    .await;
    assert!(recomputed);
    let m = get(&server, window).await["data"].clone();
    assert_eq!((m["total_alerts"].clone(), m["alerts_by_status"].clone()), (json!(120), json!({"Open": 89, "Closed": 31})));
}
dual!(metrics_rollups_follow_changes);
