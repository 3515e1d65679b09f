//! `cargo bench --bench http`: authentication cost and authenticated-GET throughput/latency on
//! loopback. The load generator runs in this process and shares the machine's cores with the
//! server, so figures are for "client + server on one box".
//!
//! 1. Auth micro-benchmark (in process, real SQLite): the first verification of a key (one
//!    argon2id verify), then the steady state (cache hit), then an unknown key (one indexed
//!    lookup that misses).
//! 2. HTTP: the release binary; closed loop with `BENCH_CONCURRENCY` connections for
//!    `BENCH_SECONDS` → peak throughput; then an open loop at half the peak rate.
//!    `BENCH_PATH` picks the GET (default: a page of API keys: auth + limiter + one query).

mod common;

use std::time::{Duration, Instant};

use calseta::auth::{AuthOutcome, Authenticator};
use calseta::db::Db;
use common::{closed_loop, env_or, ms, open_loop, percentile, start_server};

async fn auth_micro() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/bench.db", dir.path().display()), 4).await.unwrap();
    db.migrate().await.unwrap();
    // The bootstrap key: an admin key created the way `serve` creates it on an empty database.
    let key = calseta::auth::service::create_bootstrap_key(&db).await.unwrap().expect("empty database").plaintext;
    let auth = Authenticator::new(db.clone(), Duration::from_secs(3600), Duration::from_secs(3600));
    let header = format!("Bearer {key}");

    let started = Instant::now();
    assert!(matches!(auth.authenticate(Some(&header)).await.unwrap(), AuthOutcome::Authenticated(_)));
    let first = started.elapsed();

    let iterations = 200_000u32;
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(auth.authenticate(Some(&header)).await.unwrap());
    }
    let cached = started.elapsed() / iterations;

    let unknown = format!("Bearer cai_{}", "x".repeat(43));
    let misses = 5_000u32;
    let started = Instant::now();
    for _ in 0..misses {
        std::hint::black_box(auth.authenticate(Some(&unknown)).await.unwrap());
    }
    let miss = started.elapsed() / misses;

    println!("auth: first verification (argon2id + lookup): {:.2} ms", ms(first));
    println!("auth: steady state per request (cache hit):   {:.2} µs", cached.as_secs_f64() * 1e6);
    println!("auth: unknown key per request (indexed miss): {:.2} µs", miss.as_secs_f64() * 1e6);
    db.close().await;
}

async fn http_bench() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/calseta.db", dir.path().display());
    // Limits are lifted: the benchmark measures the request path, not the limiter's verdict.
    let server = start_server(url, dir, &[("RATE_LIMIT_DEFAULT_PER_MINUTE", "0")]).await;
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 16);
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let path = std::env::var("BENCH_PATH").unwrap_or_else(|_| "/v1/api-keys?page_size=1".to_owned());
    let url = format!("{}{path}", server.base);
    let auth = format!("Bearer {}", server.key);
    let get = move |_: u64| {
        let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
        async move {
            let r = client.get(&url).header("authorization", &auth).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    };
    for n in 0..200 {
        get(n).await; // warm-up, including the one argon2 verification
    }
    let peak = closed_loop(concurrency, seconds, get.clone()).await;
    println!("http: GET {path} peak throughput: {peak:.0} req/s ({concurrency} connections, {seconds} s)");
    let latencies = open_loop(peak / 2.0, seconds, 0, get).await;
    println!(
        "http: at {:.0} req/s (half of peak): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} requests); server peak RSS {:.1} MiB",
        peak / 2.0,
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        latencies.len(),
        server.peak_rss_mib()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        auth_micro().await;
        http_bench().await;
    });
}
