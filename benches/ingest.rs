//! `cargo bench --bench ingest`: durable ingest throughput and latency, and 202 → Enriched
//! latency, on SQLite (always) and PostgreSQL (when `BENCH_POSTGRES_URL` is set, e.g.
//! postgres://postgres@127.0.0.1:5432/test; a fresh database is created on it).
//!
//! Payloads are the vendor samples (Sentinel, Elastic, Splunk) rotated, each made unique by a
//! counter in its title so none is deduplicated. Rate limits are lifted. Per backend:
//! 1. closed loop with `BENCH_CONCURRENCY` clients → peak accepted alerts/s (every 202 is a
//!    committed alert + job + activity event);
//! 2. open loop at half the peak → ingest latency p50/p99;
//! 3. 202 → Enriched: `enriched_at − ingested_at` of every alert of step 2, read from the
//!    database once the worker has drained (both timestamps are taken by the server);
//! 4. the server's peak RSS.

mod common;

use std::time::Duration;

use common::{closed_loop, env_or, fresh_database, ms, open_loop, percentile, start_server};
use serde_json::Value;

/// (source, payload text with `{{N}}` where the unique counter goes).
fn templates() -> Vec<(&'static str, String)> {
    ["sentinel", "elastic", "splunk"]
        .into_iter()
        .map(|source| {
            let text = std::fs::read_to_string(format!("{}/tests/fixtures/payloads/{source}_alert.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
            let raw: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
            let title = calseta::ingest::sources::get(source).unwrap().normalize(&raw).unwrap().title;
            let quoted = serde_json::to_string(&title).unwrap();
            let templated = text.replacen(&quoted, &format!("\"{} #{{{{N}}}}\"", &quoted[1..quoted.len() - 1]), 1);
            assert_ne!(templated, text, "title of {source} found in the payload");
            (source, templated)
        })
        .collect()
}

async fn enriched_latencies(database_url: &str, tag: &str, expected: i64) -> Vec<Duration> {
    type Row = (chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>);
    let sql = format!("SELECT ingested_at, enriched_at FROM alerts WHERE title LIKE '%#{tag}-%'");
    for _ in 0..600 {
        let rows: Vec<Row> = if database_url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        } else {
            let pool = sqlx::PgPool::connect(database_url).await.unwrap();
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        };
        if rows.len() as i64 >= expected && rows.iter().all(|(_, e)| e.is_some()) {
            let mut out: Vec<Duration> =
                rows.iter().map(|(i, e)| (e.unwrap() - *i).to_std().unwrap_or_default()).collect();
            out.sort();
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the worker did not drain within 60 s");
}

async fn run(postgres: bool) {
    let backend = if postgres { "postgres" } else { "sqlite" };
    let dir = tempfile::tempdir().unwrap();
    let Some(database_url) = fresh_database(postgres, dir.path()).await else {
        println!("ingest[{backend}]: skipped (BENCH_POSTGRES_URL not set)");
        return;
    };
    let server = start_server(database_url.clone(), dir, &[("RATE_LIMIT_INGEST_PER_MINUTE", "0"), ("RATE_LIMIT_DEFAULT_PER_MINUTE", "0")]).await;
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 32);
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let client = reqwest::Client::builder().pool_max_idle_per_host(128).build().unwrap();
    let templates = std::sync::Arc::new(templates());
    let (base, auth) = (server.base.clone(), format!("Bearer {}", server.key));
    let post = move |tag: &'static str| {
        let (client, base, auth, templates) = (client.clone(), base.clone(), auth.clone(), templates.clone());
        move |n: u64| {
            let (client, base, auth, templates) = (client.clone(), base.clone(), auth.clone(), templates.clone());
            async move {
                let (source, template) = &templates[(n % 3) as usize];
                let body = template.replace("{{N}}", &format!("{tag}-{n}"));
                let r = client
                    .post(format!("{base}/v1/ingest/{source}"))
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
                r.bytes().await.unwrap();
            }
        }
    };
    let cpu_before = server.cpu_seconds();
    let peak = closed_loop(concurrency, seconds, post("peak")).await;
    println!("ingest[{backend}]: peak {peak:.0} accepted alerts/s ({concurrency} clients, {seconds} s, durable 202s)");
    // Let the worker catch up with the backlog before measuring latency.
    let backlog_done = enriched_wait(&database_url).await;
    println!("ingest[{backend}]: backlog of the peak run enriched {:.1} s after it ended", backlog_done.as_secs_f64());
    // CPU the server spent per alert of the peak run, ingest and enrichment included: unlike the
    // rates, this hardly depends on what else the shared machine is running.
    let cpu = server.cpu_seconds() - cpu_before;
    println!(
        "ingest[{backend}]: server CPU {:.0} µs per alert ({:.2} cores over the run)",
        cpu * 1e6 / (peak * seconds as f64).max(1.0),
        cpu / (seconds as f64 + backlog_done.as_secs_f64())
    );

    let rate = peak / 2.0;
    let latencies = open_loop(rate, seconds, 0, post("lat")).await;
    println!(
        "ingest[{backend}]: at {rate:.0} alerts/s (half of peak): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} alerts)",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len()
    );
    let e2e = enriched_latencies(&database_url, "lat", latencies.len() as i64).await;
    println!(
        "ingest[{backend}]: 202 → Enriched at that rate: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&e2e, 0.50)),
        ms(percentile(&e2e, 0.99)),
        ms(e2e.last().copied().unwrap_or_default())
    );
    // The pipeline's own latency, below saturation of the single writer / the workers.
    let low_rate: f64 = env_or("BENCH_LOW_RATE", 50.0);
    let low = open_loop(low_rate, seconds, 0, post("low")).await;
    let e2e = enriched_latencies(&database_url, "low", low.len() as i64).await;
    println!(
        "ingest[{backend}]: at {low_rate:.0} alerts/s: ingest p99 {:.2} ms; 202 → Enriched p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&low, 0.99)),
        ms(percentile(&e2e, 0.50)),
        ms(percentile(&e2e, 0.99))
    );
    println!("ingest[{backend}]: server peak RSS {:.1} MiB", server.peak_rss_mib());
}

/// Waits until no job is pending; returns how long that took.
async fn enriched_wait(database_url: &str) -> Duration {
    let started = std::time::Instant::now();
    let sql = "SELECT COUNT(*) FROM jobs WHERE status IN ('todo', 'doing')";
    loop {
        let pending: i64 = if database_url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        } else {
            let pool = sqlx::PgPool::connect(database_url).await.unwrap();
            let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        };
        if pending == 0 || started.elapsed() > Duration::from_secs(300) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        run(false).await;
        run(true).await;
    });
}
