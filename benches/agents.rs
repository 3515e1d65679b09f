//! `cargo bench --bench agents`: agent dispatch latency and throughput on SQLite (and PostgreSQL
//! when `BENCH_POSTGRES_URL` is set), in enrichment mock mode, with a fast receiver on loopback.
//!
//! 1. One agent; alerts at a fixed rate (`BENCH_AGENT_RATE`, default 100/s) → from the 202 to the
//!    signed webhook's arrival at the receiver (both instants taken in this process), p50/p99,
//!    after a warm-up second at the same rate (`BENCH_WARMUP_SECONDS`, reported apart).
//! 2. `BENCH_AGENTS` agents (default 20) matching every alert; a burst of alerts → deliveries/s
//!    received, from the first delivery to the last.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{env_or, fresh_database, ms, open_loop, percentile, start_server};
use serde_json::{Value, json};

/// Arrival instant of every delivery, by alert uuid (several per uuid with several agents).
type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

async fn receiver() -> (u16, Arrivals) {
    use axum::routing::post;
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let at = Instant::now();
                let payload: Value = serde_json::from_slice(&body).unwrap_or_default();
                let uuid = payload["alert"]["uuid"].as_str().unwrap_or_default().to_owned();
                seen.lock().unwrap().entry(uuid).or_default().push(at);
                axum::Json(json!({"ok": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, arrivals)
}

/// Posts generic alerts; records the instant each 202 came back, by alert uuid.
fn sender(
    client: reqwest::Client,
    base: String,
    auth: String,
    accepted: Arc<Mutex<HashMap<String, Instant>>>,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync + 'static {
    move |n: u64| {
        let (client, base, auth, accepted) = (client.clone(), base.clone(), auth.clone(), accepted.clone());
        Box::pin(async move {
            let payload = json!({"source_name": "generic", "payload": {"title": format!("bench agent {n}"), "severity": "high",
                "src_ip": format!("45.1.{}.{}", (n >> 8) & 0xff, (n & 0xff).max(1))}});
            let r = client.post(format!("{base}/v1/alerts")).header("authorization", &auth).json(&payload).send().await.unwrap();
            let at = Instant::now();
            assert_eq!(r.status(), 202);
            let body: Value = r.json().await.unwrap();
            accepted.lock().unwrap().insert(body["data"]["alert_uuid"].as_str().unwrap().to_owned(), at);
        })
    }
}

async fn register_agents(client: &reqwest::Client, base: &str, auth: &str, port: u16, count: usize) {
    for i in 0..count {
        let agent = json!({"name": format!("bench-{i}"), "endpoint_url": format!("http://127.0.0.1:{port}/hook"), "retry_count": 0});
        let r = client.post(format!("{base}/v1/agents")).header("authorization", auth).json(&agent).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    }
}

async fn wait_for(arrivals: &Arrivals, expected: usize) -> bool {
    for _ in 0..1200 {
        if arrivals.lock().unwrap().values().map(Vec::len).sum::<usize>() >= expected {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn run(postgres: bool) {
    let backend = if postgres { "postgres" } else { "sqlite" };
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let rate: f64 = env_or("BENCH_AGENT_RATE", 100.0);
    let agents: usize = env_or("BENCH_AGENTS", 20);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().pool_max_idle_per_host(128).build().unwrap();
    let (port, arrivals) = receiver().await;
    let allow = format!("127.0.0.1:{port}");
    let env = [
        ("RATE_LIMIT_INGEST_PER_MINUTE", "0"),
        ("RATE_LIMIT_DEFAULT_PER_MINUTE", "0"),
        ("ENRICHMENT_MOCK_MODE", "true"),
        ("ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ("SSRF_ALLOWED_HOSTS", allow.as_str()),
    ];

    // 1. Latency, one agent.
    let dir = tempfile::tempdir().unwrap();
    let Some(database_url) = fresh_database(postgres, dir.path()).await else {
        println!("agents[{backend}]: skipped (BENCH_POSTGRES_URL not set)");
        return;
    };
    let server = start_server(database_url, dir, &env).await;
    let auth = format!("Bearer {}", server.key);
    register_agents(&client, &server.base, &auth, port, 1).await;
    // Warm-up, not measured: a fresh server's first requests open and warm its database
    // connections (on PostgreSQL each backend's first statements parse, plan and load catalogs).
    let warmup: u64 = env_or("BENCH_WARMUP_SECONDS", 1);
    let warm: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let warmed = open_loop(rate, warmup, 1_000_000, sender(client.clone(), server.base.clone(), auth.clone(), warm.clone())).await;
    assert!(wait_for(&arrivals, warmed.len()).await, "the warm-up alerts did not reach the agent within 60 s");
    let cold = {
        let (warm, arrivals) = (warm.lock().unwrap(), arrivals.lock().unwrap());
        warm.iter().filter_map(|(uuid, at)| arrivals.get(uuid).map(|got| ms(got[0].saturating_duration_since(*at)))).fold(0.0, f64::max)
    };
    println!("agents[{backend}]: warm-up ({warmup} s at {rate:.0}/s, not measured): slowest {cold:.1} ms");
    arrivals.lock().unwrap().clear();
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let sent = open_loop(rate, seconds, 0, sender(client.clone(), server.base.clone(), auth.clone(), accepted.clone())).await;
    assert!(wait_for(&arrivals, sent.len()).await, "not every alert reached the agent within 60 s");
    // (202 instant, latency) per alert, in the order the 202s came back.
    let mut timeline: Vec<(Instant, Duration)> = {
        let accepted = accepted.lock().unwrap();
        let arrivals = arrivals.lock().unwrap();
        accepted.iter().filter_map(|(uuid, at)| arrivals.get(uuid).map(|got| (*at, got[0].saturating_duration_since(*at)))).collect()
    };
    timeline.sort();
    let mut latencies: Vec<Duration> = timeline.iter().map(|(_, l)| *l).collect();
    latencies.sort();
    // Where the tail sits: the slowest latency of each second of the run (a warm-up shows first).
    if let Some((start, _)) = timeline.first().copied() {
        let mut worst: Vec<f64> = Vec::new();
        for (at, latency) in &timeline {
            let second = at.duration_since(start).as_secs() as usize;
            worst.resize(worst.len().max(second + 1), 0.0);
            worst[second] = worst[second].max(ms(*latency));
        }
        let worst: Vec<String> = worst.iter().map(|w| format!("{w:.0}")).collect();
        println!("agents[{backend}]: slowest per second of the run (ms): {}", worst.join(" "));
    }
    println!(
        "agents[{backend}]: mock mode at {rate:.0} alerts/s: 202 → signed webhook received p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} alerts)",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len()
    );
    drop(server);

    // 2. Throughput: many agents, a burst of alerts.
    arrivals.lock().unwrap().clear();
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(postgres, dir.path()).await.unwrap();
    let server = start_server(database_url, dir, &env).await;
    let auth = format!("Bearer {}", server.key);
    register_agents(&client, &server.base, &auth, port, agents).await;
    let burst: u64 = env_or("BENCH_AGENT_BURST", 200);
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let send = sender(client.clone(), server.base.clone(), auth, accepted);
    let started = Instant::now();
    futures::future::join_all((0..burst).map(&send)).await;
    let expected = burst as usize * agents;
    let all = wait_for(&arrivals, expected).await;
    let (first, last, received) = {
        let arrivals = arrivals.lock().unwrap();
        let times: Vec<Instant> = arrivals.values().flatten().copied().collect();
        (times.iter().min().copied().unwrap_or(started), times.iter().max().copied().unwrap_or(started), times.len())
    };
    let window = last.saturating_duration_since(first).as_secs_f64().max(1e-3);
    println!(
        "agents[{backend}]: {agents} agents × {burst} alerts: {received}/{expected} deliveries, {:.0} deliveries/s (first→last {:.2} s){}",
        received as f64 / window,
        window,
        if all { "" } else { " (timed out)" }
    );
    println!("agents[{backend}]: server peak RSS {:.1} MiB, CPU {:.1} s", server.peak_rss_mib(), server.cpu_seconds());
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        run(false).await;
        run(true).await;
    });
}
