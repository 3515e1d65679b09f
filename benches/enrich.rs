//! `cargo bench --bench enrich`: enrichment latency and throughput on SQLite (and PostgreSQL when
//! `BENCH_POSTGRES_URL` is set).
//!
//! 1. Mock mode (`ENRICHMENT_MOCK_MODE=true`, the seven builtins answer with canned data): alerts
//!    with two public IPs, a domain and a hash each (unique values, so every lookup is a cache
//!    miss) at a fixed rate → 202 → Enriched p50/p99 (both timestamps taken by the server).
//! 2. The same against a local fake vendor (an HTTP provider on loopback, allow-listed), live
//!    through the egress gateway.
//! 3. On-demand `POST /v1/enrichments` against the fake vendor: cold cache (every value new: one
//!    vendor call per lookup) and warm cache (a small set of values: cache hits), closed loop →
//!    lookups/s over HTTP.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{closed_loop, env_or, fresh_database, ms, open_loop, percentile, start_server};
use serde_json::{Value, json};

/// A VirusTotal-shaped vendor on loopback; counts calls.
async fn fake_vendor() -> (u16, Arc<AtomicU64>) {
    use axum::routing::get;
    let calls = Arc::new(AtomicU64::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/api/v3/ip_addresses/{ip}",
        get(move |axum::extract::Path(ip): axum::extract::Path<String>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                let malicious = u64::from(ip.ends_with('7'));
                axum::Json(json!({"data": {"attributes": {"last_analysis_stats": {"malicious": malicious, "suspicious": 0},
                    "country": "NL", "reputation": 3}}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, calls)
}

/// A public, unique IPv4 for counter `n` (45.0.0.0/8 is globally routable and is never contacted:
/// providers point at the fake vendor or are mocked).
fn ip(n: u64) -> String {
    format!("45.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, (n & 0xff).max(1))
}

async fn query_rows(database_url: &str, sql: &str) -> Vec<(chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>)> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

/// `enriched_at − ingested_at` of every alert tagged `tag`, once all are enriched.
async fn e2e(database_url: &str, tag: &str, expected: usize) -> Vec<Duration> {
    let sql = format!("SELECT ingested_at, enriched_at FROM alerts WHERE title LIKE 'bench {tag} %'");
    for _ in 0..600 {
        let rows = query_rows(database_url, &sql).await;
        if rows.len() >= expected && rows.iter().all(|(_, e)| e.is_some()) {
            let mut out: Vec<Duration> = rows.iter().map(|(i, e)| (e.unwrap() - *i).to_std().unwrap_or_default()).collect();
            out.sort();
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("alerts tagged {tag} were not all enriched within 60 s");
}

fn report(backend: &str, what: &str, rate: f64, latencies: &[Duration]) {
    println!(
        "enrich[{backend}]: {what} at {rate:.0} alerts/s: 202 → Enriched p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} alerts)",
        ms(percentile(latencies, 0.50)),
        ms(percentile(latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len()
    );
}

/// Posts generic alerts tagged `tag`, each with fresh indicator values.
fn alert_sender(client: reqwest::Client, base: String, auth: String, tag: &'static str) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync + 'static {
    move |n: u64| {
        let (client, base, auth) = (client.clone(), base.clone(), auth.clone());
        Box::pin(async move {
            let payload = json!({"source_name": "generic", "payload": {
                "title": format!("bench {tag} {n}"), "severity": "high",
                "src_ip": ip(2 * n + 1), "dest_ip": ip(2 * n + 2),
                "domain": format!("host-{tag}-{n}.example.com"),
                "sha256": format!("{:064x}", n + 1)}});
            let r = client.post(format!("{base}/v1/alerts")).header("authorization", &auth).json(&payload).send().await.unwrap();
            assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
        })
    }
}

async fn run(postgres: bool) {
    let backend = if postgres { "postgres" } else { "sqlite" };
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let rate: f64 = env_or("BENCH_ENRICH_RATE", 100.0);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().pool_max_idle_per_host(128).build().unwrap();
    let limits = [("RATE_LIMIT_INGEST_PER_MINUTE", "0"), ("RATE_LIMIT_DEFAULT_PER_MINUTE", "0"), ("RATE_LIMIT_ENRICHMENT_PER_MINUTE", "0")];

    // 1. Mock mode.
    let dir = tempfile::tempdir().unwrap();
    let Some(database_url) = fresh_database(postgres, dir.path()).await else {
        println!("enrich[{backend}]: skipped (BENCH_POSTGRES_URL not set)");
        return;
    };
    let mut env = limits.to_vec();
    env.push(("ENRICHMENT_MOCK_MODE", "true"));
    let server = start_server(database_url.clone(), dir, &env).await;
    let send = alert_sender(client.clone(), server.base.clone(), format!("Bearer {}", server.key), "mock");
    let sent = open_loop(rate, seconds, 0, send).await;
    report(backend, "mock mode", rate, &e2e(&database_url, "mock", sent.len()).await);
    println!("enrich[{backend}]: mock-mode server peak RSS {:.1} MiB", server.peak_rss_mib());
    drop(server);

    // 2. A live provider on a local fake vendor (builtins stay unconfigured: no credentials).
    let (port, vendor_calls) = fake_vendor().await;
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(postgres, dir.path()).await.unwrap();
    let allow = format!("127.0.0.1:{port}");
    let mut env = limits.to_vec();
    env.push(("SSRF_ALLOWED_HOSTS", &allow));
    let server = start_server(database_url.clone(), dir, &env).await;
    let auth = format!("Bearer {}", server.key);
    let provider = json!({
        "provider_name": "fakevt", "display_name": "Fake VT", "supported_indicator_types": ["ip"],
        "http_config": {"steps": [{"name": "lookup", "url": format!("http://127.0.0.1:{port}/api/v3/ip_addresses/{{{{indicator.value}}}}"),
            "timeout_seconds": 5, "not_found_status": [404]}]},
        "malice_rules": {"rules": [{"field": "data.attributes.last_analysis_stats.malicious", "operator": ">", "value": 0, "verdict": "Malicious"}],
            "default_verdict": "Benign", "not_found_verdict": "Pending"}});
    let r = client.post(format!("{}/v1/enrichment-providers", server.base)).header("authorization", &auth).json(&provider).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let send = alert_sender(client.clone(), server.base.clone(), auth.clone(), "live");
    let sent = open_loop(rate, seconds, 0, send).await;
    report(backend, "live fake vendor", rate, &e2e(&database_url, "live", sent.len()).await);

    // 3. On-demand lookups: cold (new values) and warm (8 values, cached after the first call).
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 32);
    let lookup = |values: u64| {
        let (client, base, auth) = (client.clone(), server.base.clone(), auth.clone());
        move |n: u64| {
            let (client, base, auth) = (client.clone(), base.clone(), auth.clone());
            async move {
                let value = if values == 0 { ip(1_000_000 + n) } else { ip(n % values + 1) };
                let r = client
                    .post(format!("{base}/v1/enrichments"))
                    .header("authorization", &auth)
                    .json(&json!({"type": "ip", "value": value}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["data"]["results"]["fakevt"]["success"], true, "{body}");
            }
        }
    };
    let before = vendor_calls.load(Ordering::Relaxed);
    let cold = closed_loop(concurrency, seconds, lookup(0)).await;
    let cold_calls = vendor_calls.load(Ordering::Relaxed) - before;
    println!("enrich[{backend}]: on-demand cold cache: {cold:.0} lookups/s ({cold_calls} vendor calls, {concurrency} clients)");
    let before = vendor_calls.load(Ordering::Relaxed);
    let warm = closed_loop(concurrency, seconds, lookup(8)).await;
    let warm_calls = vendor_calls.load(Ordering::Relaxed) - before;
    println!("enrich[{backend}]: on-demand warm cache: {warm:.0} lookups/s ({warm_calls} vendor calls, {concurrency} clients)");
    println!("enrich[{backend}]: live server peak RSS {:.1} MiB", server.peak_rss_mib());
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        run(false).await;
        run(true).await;
    });
}
