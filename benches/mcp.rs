//! `cargo bench --bench mcp`: MCP round trips over streamable HTTP, driven by rmcp's own client,
//! on SQLite (and PostgreSQL when `BENCH_POSTGRES_URL` is set).
//!
//! 1. `tools/call search_alerts` (status + severity filter, 25 results) round trip, p50/p99, one
//!    session sending back to back, then `BENCH_CONCURRENCY` sessions in parallel (calls/s).
//! 2. `resources/read calseta://alerts/{uuid}` of one enriched alert, p50/p99.
//!
//! `BENCH_ALERTS` (default 500) alerts are seeded through the API first and enriched in mock mode.

mod common;

use std::time::{Duration, Instant};

use common::{env_or, fresh_database, ms, percentile, start_server};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ReadResourceRequestParams};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

async fn connect(http: &reqwest::Client, base: &str, key: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(key.to_owned());
    ().serve(StreamableHttpClientTransport::with_client(http.clone(), config)).await.expect("MCP initialize")
}

async fn search(client: &Client) {
    let arguments = json!({"status": "Open", "severity": "High", "page_size": 25});
    let params = CallToolRequestParams::new("search_alerts").with_arguments(arguments.as_object().unwrap().clone());
    let result = client.call_tool(params).await.expect("search_alerts");
    assert_ne!(result.is_error, Some(true), "search_alerts failed: {result:?}");
}

async fn read_alert(client: &Client, uri: &str) {
    let result = client.read_resource(ReadResourceRequestParams::new(uri)).await.expect("resources/read");
    assert!(!result.contents.is_empty());
}

/// Seeds `count` alerts over REST and waits until every one is enriched; returns one uuid.
async fn seed(http: &reqwest::Client, base: &str, auth: &str, count: usize) -> String {
    let mut first = String::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(32) {
        let sends = chunk.iter().map(|n| {
            let payload = json!({"source_name": "generic", "payload": {"title": format!("bench mcp {n}"),
                "severity": if n % 2 == 0 { "high" } else { "low" }, "src_ip": format!("45.2.{}.{}", (n >> 8) & 0xff, (n & 0xff).max(1))}});
            http.post(format!("{base}/v1/alerts")).header("authorization", auth).json(&payload).send()
        });
        for response in futures::future::join_all(sends).await {
            let response = response.unwrap();
            assert_eq!(response.status(), 202);
            let body: Value = response.json().await.unwrap();
            if first.is_empty() {
                first = body["data"]["alert_uuid"].as_str().unwrap().to_owned();
            }
        }
    }
    for _ in 0..600 {
        let r = http.get(format!("{base}/v1/alerts?enrichment_status=Pending&page_size=1")).header("authorization", auth).send().await.unwrap();
        let body: Value = r.json().await.unwrap();
        if body["meta"]["total"].as_u64() == Some(0) || body["data"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first
}

/// Sequential round trips on one session for `seconds`; returns the sorted latencies.
async fn sequential<F, Fut>(seconds: u64, mut call: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        call().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    samples
}

fn report(backend: &str, what: &str, samples: &[Duration], seconds: u64) {
    println!(
        "mcp[{backend}]: {what}: p50 {:.2} ms, p99 {:.2} ms, {:.0}/s on one session ({} calls)",
        ms(percentile(samples, 0.50)),
        ms(percentile(samples, 0.99)),
        samples.len() as f64 / seconds as f64,
        samples.len()
    );
}

async fn run(postgres: bool) {
    let backend = if postgres { "postgres" } else { "sqlite" };
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 8);
    let alerts: usize = env_or("BENCH_ALERTS", 500);
    let dir = tempfile::tempdir().unwrap();
    let Some(database_url) = fresh_database(postgres, dir.path()).await else {
        println!("mcp[{backend}]: skipped (BENCH_POSTGRES_URL not set)");
        return;
    };
    let env = [
        ("RATE_LIMIT_INGEST_PER_MINUTE", "0"),
        ("RATE_LIMIT_DEFAULT_PER_MINUTE", "0"),
        ("RATE_LIMIT_AUTHED_PER_MINUTE", "0"),
        ("ENRICHMENT_MOCK_MODE", "true"),
    ];
    let server = start_server(database_url, dir, &env).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let auth = format!("Bearer {}", server.key);
    let alert = seed(&http, &server.base, &auth, alerts).await;

    let client = connect(&http, &server.base, &server.key).await;
    // Warm-up: caches, prepared statements, connections.
    for _ in 0..50 {
        search(&client).await;
    }
    let samples = sequential(seconds, || search(&client)).await;
    report(backend, "tools/call search_alerts (25 of the High+Open alerts)", &samples, seconds);

    let uri = format!("calseta://alerts/{alert}");
    let samples = sequential(seconds, || read_alert(&client, &uri)).await;
    report(backend, "resources/read calseta://alerts/{uuid}", &samples, seconds);

    // Throughput: several sessions in parallel, each back to back.
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        clients.push(connect(&http, &server.base, &server.key).await);
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let per_session = futures::future::join_all(clients.iter().map(|c| async move {
        let mut calls = 0u64;
        while Instant::now() < deadline {
            search(c).await;
            calls += 1;
        }
        calls
    }))
    .await;
    let total: u64 = per_session.iter().sum();
    println!(
        "mcp[{backend}]: {concurrency} sessions in parallel: {:.0} search_alerts calls/s; server peak RSS {:.1} MiB, CPU {:.1} s",
        total as f64 / seconds as f64,
        server.peak_rss_mib(),
        server.cpu_seconds()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        run(false).await;
        run(true).await;
    });
}
