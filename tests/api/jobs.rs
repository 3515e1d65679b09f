//! Background jobs through the real binary: an alert deleted right after ingest never holds back
//! the other alerts of its `enrich_alert` batch (defect m of issue 8), and a periodic job runs
//! once per period across two server processes sharing one database. The lease paths (a handler
//! outliving its lease, a stale worker trying to commit) are unit tests in src/jobs/tests.rs,
//! where a lease can be two seconds long.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::alerts::create_generic;
use crate::dual;
use crate::fake_vendor::FakeVendor;
use crate::support::{Backend, TestServer, body, eventually};

/// Every job ran exactly once and succeeded: no retry, no error recorded.
async fn every_job_succeeded_first_time(server: &TestServer) -> bool {
    server.db_count("SELECT COUNT(*) FROM jobs WHERE status <> 'succeeded' OR attempts <> 1 OR last_error IS NOT NULL").await == 0
}

async fn jobs_report(server: &TestServer) -> String {
    let rows = server
        .db_texts("SELECT task || ' ' || status || ' attempts=' || CAST(attempts AS TEXT) || ' ' || COALESCE(last_error, '') FROM jobs ORDER BY id")
        .await;
    rows.into_iter().flatten().collect::<Vec<_>>().join("\n")
}

async fn delete_alert(server: &TestServer, uuid: &str) {
    let response = server.request(Method::DELETE, &format!("/v1/alerts/{uuid}"), Some(&server.admin_key)).send().await.unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
}

async fn alert_id(server: &TestServer, uuid: &str) -> i64 {
    server.db_count(&format!("SELECT id FROM alerts WHERE uuid = {}", server.uuid_sql(uuid.parse().unwrap()))).await
}

/// Defect m, fast path (no provider wants the indicators): alerts ingested together and one
/// deleted at once. Every other alert ends Enriched promptly, and the deleted alert's job simply
/// succeeds.
async fn a_deleted_alert_never_holds_back_its_batch(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ingests = (0..24).map(|i| {
        let server = &server;
        async move { create_generic(server, json!({"title": format!("batch alert {i}"), "src_ip": format!("198.51.100.{i}")})).await }
    });
    let mut uuids = futures::future::join_all(ingests).await;
    let doomed = uuids.remove(7);
    delete_alert(&server, &doomed).await;
    let started = Instant::now();
    let enriched = eventually(Duration::from_secs(10), || async {
        server.db_count("SELECT COUNT(*) FROM alerts WHERE enrichment_status = 'Enriched'").await == uuids.len() as i64
    })
    .await;
    assert!(enriched, "the other alerts were enriched promptly; jobs:\n{}", jobs_report(&server).await);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(server.db_count("SELECT COUNT(*) FROM alerts").await, uuids.len() as i64);
    assert!(
        eventually(Duration::from_secs(5), || every_job_succeeded_first_time(&server)).await,
        "every job, the deleted alert's included, succeeded on its first attempt:\n{}",
        jobs_report(&server).await
    );
    assert_eq!(server.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'enrich_alert'").await, 24);
    // No batch fell back to running its jobs one by one because of the deleted alert.
    assert!(!server.stdout.text().contains("one by one"), "{}", server.stdout.text());
    server.stop().await;
}
dual!(a_deleted_alert_never_holds_back_its_batch);

/// Defect m, slow path: the alert is deleted while its providers are being called (before the
/// batch's transaction). Before the fix its completion hit a foreign key and was retried a
/// minute later; now it finishes, and the other alerts of the batch are unaffected.
async fn an_alert_deleted_during_enrichment_finishes_its_job(backend: Backend) {
    let vendor = FakeVendor::start().await;
    let server = TestServer::builder(backend)
        .env("SSRF_ALLOWED_HOSTS", &vendor.allow_entry())
        .env("ENRICHMENT_REGISTRY_REFRESH_MS", "100")
        .start()
        .await;
    // A provider that hangs until its 2 s timeout: enrichment takes that long for every alert.
    let provider = json!({
        "provider_name": "slow", "display_name": "slow", "supported_indicator_types": ["ip"],
        "http_config": {"steps": [{"name": "lookup", "url": format!("{}/hang?ip={{{{indicator.value}}}}", vendor.base()), "timeout_seconds": 2}]},
    });
    let response = server.post_json("/v1/enrichment-providers", &server.admin_key, &provider).await;
    assert_eq!(response.status(), 201, "{}", body(response).await);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ingests = (0..5).map(|i| {
        let server = &server;
        async move { create_generic(server, json!({"title": format!("slow alert {i}"), "src_ip": format!("45.33.32.{}", 10 + i)})).await }
    });
    let mut uuids = futures::future::join_all(ingests).await;
    let doomed = uuids.remove(2);
    let doomed_id = alert_id(&server, &doomed).await;
    // Its provider call is in flight (the doomed alert's indicator is 45.33.32.12).
    let calling = eventually(Duration::from_secs(5), || async { vendor.hits_to("/hang?ip=45.33.32.12") > 0 }).await;
    assert!(calling, "the alert's provider was called: {:?}", vendor.hits().iter().map(|h| &h.path).collect::<Vec<_>>());
    assert_eq!(server.db_count(&format!("SELECT COUNT(*) FROM alerts WHERE id = {doomed_id} AND enrichment_status = 'Pending'")).await, 1);
    delete_alert(&server, &doomed).await;

    let enriched = eventually(Duration::from_secs(15), || async {
        server.db_count("SELECT COUNT(*) FROM alerts WHERE enrichment_status = 'Enriched'").await == uuids.len() as i64
    })
    .await;
    assert!(enriched, "the other alerts were enriched; jobs:\n{}", jobs_report(&server).await);
    assert!(
        eventually(Duration::from_secs(10), || every_job_succeeded_first_time(&server)).await,
        "the deleted alert's job finished on its first attempt, without an error:\n{}",
        jobs_report(&server).await
    );
    // Its completion event was not written against a deleted alert.
    assert_eq!(server.db_count("SELECT COUNT(*) FROM activity_events WHERE event_type = 'alert_enrichment_completed'").await, 4);
    assert!(!server.stdout.text().contains("one by one"), "{}", server.stdout.text());
    server.stop().await;
}
dual!(an_alert_deleted_during_enrichment_finishes_its_job);

/// Two server processes (API + worker each) share one database and both schedule
/// `prune_finished_jobs` every second: each period is enqueued once, not once per process.
async fn a_periodic_job_runs_once_per_period_across_processes(backend: Backend) {
    let started = Instant::now();
    let first = TestServer::builder(backend.clone()).env("QUEUE_PRUNE_INTERVAL_SECONDS", "1").start().await;
    let second = TestServer::builder(backend).env("QUEUE_PRUNE_INTERVAL_SECONDS", "1").sharing(&first).start().await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let runs = first.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'prune_finished_jobs'").await;
    // Slots are one second apart from the first scheduler tick on: at most one per elapsed second
    // (plus the first); two uncoordinated schedulers would make about twice as many.
    let periods = started.elapsed().as_secs() as i64 + 1;
    assert!(runs >= 3 && runs <= periods, "{runs} runs in {periods} periods");
    // One job per period slot (read in one statement: the schedule keeps running meanwhile).
    assert_eq!(first.db_count("SELECT COUNT(*) - COUNT(DISTINCT dedupe_key) FROM jobs WHERE task = 'prune_finished_jobs'").await, 0);
    assert_eq!(first.db_count("SELECT COUNT(*) FROM periodic_jobs WHERE name = 'prune_finished_jobs'").await, 1);
    // And the workers of either process ran them.
    assert!(
        eventually(Duration::from_secs(5), || async {
            first.db_count("SELECT COUNT(*) FROM jobs WHERE task = 'prune_finished_jobs' AND status <> 'succeeded'").await <= 1
        })
        .await
    );
    second.stop().await;
    first.stop().await;
}
dual!(a_periodic_job_runs_once_per_period_across_processes);
