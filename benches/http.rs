//! `cargo bench --bench http`: authentication cost and authenticated-GET throughput/latency on
//! loopback. The load generator runs in this process and shares the machine's cores with the
//! server, so figures are for "client + server on one box".
//!
//! 1. Auth micro-benchmark (in process, real SQLite): the first verification of a key (one
//!    argon2id verify), then the steady state (cache hit), then an unknown key (one indexed
//!    lookup that misses).
//! 2. HTTP: the release binary on an ephemeral port; closed loop with `BENCH_CONCURRENCY`
//!    connections for `BENCH_SECONDS` → peak throughput; then an open loop at half the peak
//!    rate (requests launched on a fixed schedule, each timed from its send).

use std::process::Stdio;
use std::time::{Duration, Instant};

use calseta::auth::{AuthOutcome, Authenticator, KeyType};
use calseta::db::Db;
use tokio::io::{AsyncBufReadExt, BufReader};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn auth_micro() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/bench.db", dir.path().display()), 4).await.unwrap();
    db.migrate().await.unwrap();
    let (_, key) = calseta::auth::http::create_key(&db, "bench", &["admin".into()], KeyType::Agent, None, None, false)
        .await
        .unwrap()
        .unwrap();
    let auth = Authenticator::new(db.clone(), Duration::from_secs(3600), Duration::from_secs(3600));
    let header = format!("Bearer {key}");

    let started = Instant::now();
    assert!(matches!(auth.authenticate(Some(&header)).await.unwrap(), AuthOutcome::Authenticated(_)));
    let first = started.elapsed();

    let iterations = 200_000u32;
    let started = Instant::now();
    for _ in 0..iterations {
        let outcome = auth.authenticate(Some(&header)).await.unwrap();
        std::hint::black_box(outcome);
    }
    let cached = started.elapsed() / iterations;

    let unknown = format!("Bearer cai_{}", "x".repeat(43));
    let misses = 5_000u32;
    let started = Instant::now();
    for _ in 0..misses {
        std::hint::black_box(auth.authenticate(Some(&unknown)).await.unwrap());
    }
    let miss = started.elapsed() / misses;

    println!("auth: first verification (argon2id + lookup): {:.2} ms", first.as_secs_f64() * 1e3);
    println!("auth: steady state per request (cache hit):   {:.2} µs", cached.as_secs_f64() * 1e6);
    println!("auth: unknown key per request (indexed miss): {:.2} µs", miss.as_secs_f64() * 1e6);
    db.close().await;
}

struct Server {
    child: tokio::process::Child,
    base: String,
    key: String,
    _dir: tempfile::TempDir,
}

async fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_calseta"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", format!("sqlite://{}/calseta.db", dir.path().display()))
        .env("LOG_FORMAT", "json")
        .env("DATABASE_MAX_CONNECTIONS", env_or("BENCH_DB_CONNECTIONS", "16".to_owned()))
        .env("LOG_LEVEL", env_or("BENCH_LOG_LEVEL", "info".to_owned()))
        // Limits are lifted: the benchmark measures the request path, not the limiter's verdict.
        .env("RATE_LIMIT_DEFAULT_PER_MINUTE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut key, mut base) = (String::new(), String::new());
    while let Some(line) = stderr.next_line().await.unwrap() {
        if let Some(k) = line.strip_prefix("CALSETA_BOOTSTRAP_ADMIN_KEY=") {
            key = k.to_owned();
        }
        if let Some(b) = line.strip_prefix("calseta listening on ") {
            base = b.to_owned();
            break;
        }
    }
    assert!(!key.is_empty() && !base.is_empty(), "server did not start");
    // Keep draining the logs so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    Server { child, base, key, _dir: dir }
}

async fn http_bench() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = start_server().await;
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 16);
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    // BENCH_PATH picks the GET (default: one API key by id: auth + rate limit + one indexed read).
    let path = std::env::var("BENCH_PATH").unwrap_or_else(|_| "/v1/api-keys?page_size=1".to_owned());
    let url = format!("{}{path}", server.base);
    let auth = format!("Bearer {}", server.key);

    // Warm-up (also pays the one argon2 verification).
    for _ in 0..200 {
        let r = client.get(&url).header("authorization", &auth).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }

    // Closed loop: peak throughput.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let r = client.get(&url).header("authorization", &auth).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let peak = total as f64 / seconds as f64;
    println!("http: GET {path} peak throughput: {peak:.0} req/s ({concurrency} connections, {seconds} s)");

    // Open loop at half the peak, generated by a fixed set of workers, each owning every
    // `workers`-th slot of one global schedule. A sample is timed from its scheduled slot when the
    // worker was still busy then (real queueing counts), otherwise from the moment it is sent
    // (tokio's 1 ms timer ticks are client-side lateness, not server latency).
    let rate = (peak / 2.0).max(1.0);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let count = (rate * seconds as f64) as usize;
    let workers = 64usize;
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (client, url, auth) = (client.clone(), url.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(count / workers + 1);
            for slot in (worker..count).step_by(workers) {
                let scheduled = start + interval * slot as u32;
                let sent_from = if Instant::now() >= scheduled {
                    scheduled
                } else {
                    tokio::time::sleep_until(scheduled.into()).await;
                    Instant::now()
                };
                let r = client.get(&url).header("authorization", &auth).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                samples.push(sent_from.elapsed());
            }
            samples
        }));
    }
    let latencies = std::sync::Mutex::new(Vec::with_capacity(count));
    for t in tasks {
        latencies.lock().unwrap().extend(t.await.unwrap());
    }
    let mut sorted = latencies.lock().unwrap().clone();
    sorted.sort();
    println!(
        "http: at {rate:.0} req/s (half of peak): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} requests)",
        percentile(&sorted, 0.50).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        sorted.len()
    );
    drop(server.child);
}

fn main() {
    // Cargo passes `--bench`; a filter argument is not supported here.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        auth_micro().await;
        http_bench().await;
    });
}
