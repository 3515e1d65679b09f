//! Shared by the benchmarks: start the release binary on an ephemeral port, and drive load in a
//! closed loop (peak throughput) or an open loop (latency at a fixed rate). `BENCH_SERVER_BIN`
//! runs another build of the server under the same load (an A/B against an older commit).

#![allow(dead_code)]

use std::future::Future;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub struct Server {
    pub child: tokio::process::Child,
    pub base: String,
    pub key: String,
    pub database_url: String,
    pub _dir: tempfile::TempDir,
}

impl Server {
    /// CPU time (user + system) the server process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let Some(pid) = self.child.id() else { return 0.0 };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Linux reports clock ticks of 1/100 s (USER_HZ).
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Peak resident set size of the server process so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        let Some(pid) = self.child.id() else { return 0.0 };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }
}

/// A fresh database: a SQLite file, or a new database on `BENCH_POSTGRES_URL` when `postgres`.
pub async fn fresh_database(postgres: bool, dir: &std::path::Path) -> Option<String> {
    if !postgres {
        return Some(format!("sqlite://{}/calseta.db", dir.display()));
    }
    let admin_url = std::env::var("BENCH_POSTGRES_URL").ok()?;
    let name = format!("calseta_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&admin_url).await.ok()?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.ok()?;
    admin.close().await;
    let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin_url);
    Some(format!("{base}/{name}"))
}

pub async fn start_server(database_url: String, dir: tempfile::TempDir, env: &[(&str, &str)]) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut child = tokio::process::Command::new(std::env::var("BENCH_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_calseta").to_owned()))
        .args(["serve", "--bind", "127.0.0.1:0", "--roles", &env_or("BENCH_ROLES", "api,worker".to_owned())])
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", &database_url)
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", env_or("BENCH_LOG_LEVEL", "info".to_owned()))
        .envs(env.iter().copied())
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
    Server { child, base, key, database_url, _dir: dir }
}

/// Closed loop: `concurrency` tasks send back to back for `seconds`; returns requests/s.
pub async fn closed_loop<F, Fut>(concurrency: usize, seconds: u64, send: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let send = Arc::new(send);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (send, counter) = (send.clone(), counter.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    send(n).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    counter.load(std::sync::atomic::Ordering::Relaxed) as f64 / seconds as f64
}

/// Open loop at `rate` requests/s for `seconds`, generated by a fixed set of workers each owning
/// every `workers`-th slot of one global schedule. A sample is timed from its scheduled slot when
/// its worker was still busy then (real queueing counts), otherwise from the send (tokio's 1 ms
/// timer ticks are client-side lateness, not server latency). Returns sorted latencies.
pub async fn open_loop<F, Fut>(rate: f64, seconds: u64, first_slot: u64, send: F) -> Vec<Duration>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let send = Arc::new(send);
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let count = (rate * seconds as f64) as usize;
    let workers = 64usize;
    let start = Instant::now() + Duration::from_millis(50);
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let send = send.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(count / workers + 1);
                for slot in (worker..count).step_by(workers) {
                    let scheduled = start + interval * slot as u32;
                    let timed_from = if Instant::now() >= scheduled {
                        scheduled
                    } else {
                        tokio::time::sleep_until(scheduled.into()).await;
                        Instant::now()
                    };
                    send(first_slot + slot as u64).await;
                    samples.push(timed_from.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}
