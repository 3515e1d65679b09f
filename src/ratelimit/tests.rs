use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn limits_all(n: u32) -> Limits {
    Limits {
        default_per_minute: n,
        unauthenticated_per_minute: n,
        ingest_per_minute: n,
        enrichment_per_minute: n,
        workflow_execute_per_minute: n,
    }
}

/// Fires `total` checks concurrently (spread over the given replicas) and returns
/// (allowed, limited, other).
async fn fire(limiters: &[RateLimiter], family: Family, key: &str, total: usize) -> (usize, usize, usize) {
    let mut handles = Vec::with_capacity(total);
    for i in 0..total {
        let limiter = limiters[i % limiters.len()].clone();
        let key = key.to_owned();
        handles.push(tokio::spawn(async move { limiter.check(family, &key).await }));
    }
    let (mut allowed, mut limited, mut other) = (0, 0, 0);
    for h in handles {
        match h.await.unwrap().outcome {
            Outcome::Allowed => allowed += 1,
            Outcome::Limited => limited += 1,
            Outcome::StoreUnavailable => other += 1,
        }
    }
    (allowed, limited, other)
}

// ---------------------------------------------------------------- in-memory

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_exactly_n_of_3n_concurrent() {
    let n = 20;
    let rl = RateLimiter::in_memory(limits_all(n));
    assert_eq!(rl.backend_name(), "memory");
    let (allowed, limited, other) = fire(std::slice::from_ref(&rl), Family::Default, "key:a", 3 * n as usize).await;
    assert_eq!((allowed, limited, other), (n as usize, 2 * n as usize, 0));
}

#[tokio::test]
async fn memory_keys_and_families_are_independent() {
    let rl = RateLimiter::in_memory(limits_all(3));
    for _ in 0..3 {
        assert!(rl.check(Family::Default, "key:a").await.is_allowed());
    }
    assert_eq!(rl.check(Family::Default, "key:a").await.outcome, Outcome::Limited);
    // other key, same family
    assert!(rl.check(Family::Default, "key:b").await.is_allowed());
    // same key, every other family
    for family in [Family::Unauthenticated, Family::Ingest, Family::Enrichment, Family::WorkflowExecute] {
        let d = rl.check(family, "key:a").await;
        assert!(d.is_allowed(), "{family} should be independent");
        assert_eq!(d.remaining, 2);
    }
    assert_eq!(rl.check(Family::Default, "key:a").await.outcome, Outcome::Limited);
}

#[tokio::test]
async fn memory_remaining_counts_down_and_retry_after_is_bounded() {
    let rl = RateLimiter::in_memory(limits_all(5)); // interval 12 s
    let interval = Duration::from_secs(12);
    for expected in (0..5).rev() {
        let d = rl.check(Family::Ingest, "key:x").await;
        assert_eq!(d.outcome, Outcome::Allowed);
        assert_eq!(d.limit, 5);
        assert_eq!(d.remaining, expected);
        assert_eq!(d.retry_after, Duration::ZERO);
        assert_eq!(d.retry_after_secs(), 0);
        // reset_after ≈ (5 - remaining) · 12 s
        let want = interval * (5 - expected);
        assert!(d.reset_after <= want && d.reset_after + Duration::from_secs(1) >= want, "{d:?}");
    }
    let d = rl.check(Family::Ingest, "key:x").await;
    assert_eq!(d.outcome, Outcome::Limited);
    assert_eq!((d.limit, d.remaining), (5, 0));
    assert!(d.retry_after > Duration::ZERO && d.retry_after <= interval, "{d:?}");
    assert!(d.retry_after > interval - Duration::from_secs(2), "just exhausted: ~12 s wait, got {d:?}");
    assert!((1..=12).contains(&d.retry_after_secs()));
    assert!(d.reset_after >= Duration::from_secs(58) && d.reset_after <= Duration::from_secs(60), "{d:?}");
    assert!((58..=60).contains(&d.reset_after_secs()));
}

#[tokio::test]
async fn memory_rejected_requests_do_not_consume() {
    let rl = RateLimiter::in_memory(limits_all(120)); // interval 500 ms
    for _ in 0..120 {
        assert!(rl.check(Family::Ingest, "key:r").await.is_allowed());
    }
    let mut last = None;
    for _ in 0..50 {
        let d = rl.check(Family::Ingest, "key:r").await;
        assert_eq!(d.outcome, Outcome::Limited);
        last = Some(d);
    }
    let d = last.unwrap();
    assert!(d.retry_after > Duration::ZERO && d.retry_after <= Duration::from_millis(500), "{d:?}");
    tokio::time::sleep(d.retry_after + Duration::from_millis(10)).await;
    let d = rl.check(Family::Ingest, "key:r").await;
    assert_eq!(d.outcome, Outcome::Allowed, "50 rejected calls must not have consumed quota");
    // exactly one cell was replenished
    let d = rl.check(Family::Ingest, "key:r").await;
    assert_eq!(d.outcome, Outcome::Limited);
}

#[tokio::test]
async fn memory_limit_zero_is_unlimited() {
    let limits = Limits { enrichment_per_minute: 0, ..limits_all(1) };
    let rl = RateLimiter::in_memory(limits);
    for _ in 0..1000 {
        let d = rl.check(Family::Enrichment, "key:z").await;
        assert!(d.is_allowed() && d.is_unlimited());
    }
    assert!(rl.check(Family::Default, "key:z").await.is_allowed());
    assert_eq!(rl.check(Family::Default, "key:z").await.outcome, Outcome::Limited);
}

#[tokio::test]
async fn memory_idle_keys_are_swept() {
    let rl = RateLimiter::in_memory(limits_all(60_000)); // interval 1 ms
    for i in 0..2000 {
        rl.check(Family::Unauthenticated, &format!("ip:10.0.{}.{}", i / 256, i % 256)).await;
    }
    assert!(rl.tracked_keys() > 0 && rl.tracked_keys() <= 2000);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // automatic sweep within max(1024, live keys) checks
    for _ in 0..2100 {
        rl.check(Family::Default, "key:hot").await;
    }
    assert!(rl.tracked_keys() <= 1, "idle keys not swept: {}", rl.tracked_keys());
    // the hot key used ~2100 of its 60000 burst: it stays until its bucket is full again
    assert_eq!(rl.retain_recent(), 1);
}

#[test]
fn decision_header_helpers_round_up() {
    let d = Decision {
        outcome: Outcome::Limited,
        limit: 10,
        remaining: 0,
        reset_after: Duration::from_millis(54_001),
        retry_after: Duration::from_millis(400),
    };
    assert_eq!(d.retry_after_secs(), 1);
    assert_eq!(d.reset_after_secs(), 55);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!((now + 55..=now + 56).contains(&d.reset_at_unix_secs()));
    let d = Decision { retry_after: Duration::from_secs(3), ..d };
    assert_eq!(d.retry_after_secs(), 3);
}

#[test]
fn config_parsing_and_defaults() {
    assert_eq!(Limits::default(), Limits {
        default_per_minute: 60,
        unauthenticated_per_minute: 10,
        ingest_per_minute: 120,
        enrichment_per_minute: 60,
        workflow_execute_per_minute: 30,
    });
    let p = FailurePolicies::default();
    assert_eq!(p.for_family(Family::Unauthenticated), FailurePolicy::Closed);
    assert_eq!(p.for_family(Family::Ingest), FailurePolicy::Closed);
    assert_eq!(p.for_family(Family::Default), FailurePolicy::Open);
    assert_eq!(p.for_family(Family::Enrichment), FailurePolicy::Open);
    assert_eq!(p.for_family(Family::WorkflowExecute), FailurePolicy::Open);
    assert_eq!("Fail-Closed".parse::<FailurePolicy>().unwrap(), FailurePolicy::Closed);
    assert_eq!("open".parse::<FailurePolicy>().unwrap(), FailurePolicy::Open);
    assert!("maybe".parse::<FailurePolicy>().is_err());
    let names: Vec<_> = Family::ALL.iter().map(|f| f.as_str()).collect();
    assert_eq!(names, ["default", "unauthenticated", "ingest", "enrichment", "workflow_execute"]);
}

// ---------------------------------------------------------------- Redis

fn test_redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            println!("skipping: TEST_REDIS_URL not set");
            None
        }
    }
}

fn random_namespace() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("rltest-{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_two_replicas_exactly_n_of_3n_concurrent() {
    let Some(url) = test_redis_url() else { return };
    let ns = random_namespace();
    let n = 20;
    let a = RateLimiter::redis(&url, limits_all(n), FailurePolicies::default(), &ns).await.unwrap();
    let b = RateLimiter::redis(&url, limits_all(n), FailurePolicies::default(), &ns).await.unwrap();
    assert_eq!(a.backend_name(), "redis");
    assert!(a.ping().await.is_ok());
    let (allowed, limited, other) = fire(&[a.clone(), b.clone()], Family::Default, "key:shared", 3 * n as usize).await;
    assert_eq!((allowed, limited, other), (n as usize, 2 * n as usize, 0));
    // other keys / families independent, also across replicas
    assert!(b.check(Family::Default, "key:other").await.is_allowed());
    assert_eq!(b.check(Family::Ingest, "key:shared").await.remaining, n - 1);
    // a different namespace does not share state
    let c = RateLimiter::redis(&url, limits_all(n), FailurePolicies::default(), &random_namespace()).await.unwrap();
    assert!(c.check(Family::Default, "key:shared").await.is_allowed());
}

#[tokio::test]
async fn redis_remaining_retry_after_and_no_consumption_when_rejected() {
    let Some(url) = test_redis_url() else { return };
    let ns = random_namespace();
    let limits = Limits { default_per_minute: 5, ingest_per_minute: 120, ..limits_all(10) };
    let a = RateLimiter::redis(&url, limits, FailurePolicies::default(), &ns).await.unwrap();
    let b = RateLimiter::redis(&url, limits, FailurePolicies::default(), &ns).await.unwrap();

    // remaining counts down across replicas; 5/min → 12 s interval
    for expected in (0..5).rev() {
        let rl = if expected % 2 == 0 { &a } else { &b };
        let d = rl.check(Family::Default, "key:cd").await;
        assert_eq!((d.outcome, d.limit, d.remaining), (Outcome::Allowed, 5, expected), "{d:?}");
        let want = Duration::from_secs(12) * (5 - expected);
        assert!(d.reset_after <= want && d.reset_after + Duration::from_secs(1) >= want, "{d:?}");
    }
    let d = a.check(Family::Default, "key:cd").await;
    assert_eq!(d.outcome, Outcome::Limited);
    assert!(d.retry_after > Duration::from_secs(10) && d.retry_after <= Duration::from_secs(12), "{d:?}");
    assert!(d.reset_after > Duration::from_secs(58) && d.reset_after <= Duration::from_secs(60), "{d:?}");

    // 120/min → 500 ms interval
    for _ in 0..120 {
        assert!(a.check(Family::Ingest, "key:r").await.is_allowed());
    }
    let mut last = None;
    for i in 0..40 {
        let rl = if i % 2 == 0 { &a } else { &b };
        let d = rl.check(Family::Ingest, "key:r").await;
        assert_eq!(d.outcome, Outcome::Limited);
        last = Some(d);
    }
    let d = last.unwrap();
    assert!(d.retry_after > Duration::ZERO && d.retry_after <= Duration::from_millis(500), "{d:?}");
    tokio::time::sleep(d.retry_after + Duration::from_millis(10)).await;
    let d = b.check(Family::Ingest, "key:r").await;
    assert_eq!(d.outcome, Outcome::Allowed, "rejected calls must not consume quota: {d:?}");
    assert_eq!(a.check(Family::Ingest, "key:r").await.outcome, Outcome::Limited);
}

#[tokio::test]
async fn redis_down_applies_failure_policy_per_family() {
    // Port 1 on loopback: nothing listens, connections are refused. Runs without Redis.
    let limits = Limits { workflow_execute_per_minute: 0, ..limits_all(5) };
    let options = RedisOptions {
        connect_timeout: Duration::from_millis(200),
        response_timeout: Duration::from_millis(200),
        retry_interval: Duration::from_millis(300),
    };
    let started = std::time::Instant::now();
    let rl = RateLimiter::redis_with_options("redis://127.0.0.1:1", limits, FailurePolicies::default(), "down", options)
        .await
        .expect("an unreachable Redis must not fail construction");
    assert_eq!(rl.backend_name(), "redis");
    assert!(rl.ping().await.is_err());
    assert!(rl.store_degraded());
    // several rounds: in back-off and after it (probing Redis again)
    for round in 0..3 {
        for _ in 0..10 {
            let d = rl.check(Family::Default, "key:d").await;
            assert_eq!((d.outcome, d.remaining), (Outcome::Allowed, 5), "fail open: {d:?}");
            let d = rl.check(Family::Enrichment, "key:d").await;
            assert_eq!(d.outcome, Outcome::Allowed);
            let d = rl.check(Family::Unauthenticated, "ip:1.2.3.4").await;
            assert_eq!(d.outcome, Outcome::StoreUnavailable, "fail closed: {d:?}");
            assert!(d.retry_after_secs() >= 1);
            assert_eq!(rl.check(Family::Ingest, "key:d").await.outcome, Outcome::StoreUnavailable);
            assert!(rl.check(Family::WorkflowExecute, "key:d").await.is_unlimited());
        }
        if round < 2 {
            tokio::time::sleep(Duration::from_millis(350)).await;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "decisions must not hang while Redis is down");

    let all_closed = RateLimiter::redis_with_options(
        "redis://127.0.0.1:1", limits_all(5), FailurePolicies::all(FailurePolicy::Closed), "down", options,
    )
    .await
    .unwrap();
    for family in Family::ALL {
        assert_eq!(all_closed.check(family, "k").await.outcome, Outcome::StoreUnavailable);
    }
}

#[tokio::test]
async fn redis_invalid_url_is_an_error_without_secrets() {
    let err = RateLimiter::redis("http://user:s3cret@example.com:6379", limits_all(5), FailurePolicies::default(), "x")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::InvalidRedisUrl(_)), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
    // from_config: no URL → memory
    let rl = RateLimiter::from_config(None, limits_all(5), FailurePolicies::default(), "x").await.unwrap();
    assert_eq!(rl.backend_name(), "memory");
    let rl = RateLimiter::from_config(Some("  "), limits_all(5), FailurePolicies::default(), "x").await.unwrap();
    assert_eq!(rl.backend_name(), "memory");
}

/// A TCP proxy in front of the test Redis that can be taken down (listener closed and open
/// connections cut) and brought back on the same port.
struct Proxy {
    port: u16,
    upstream: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut p = Proxy { port, upstream, task: None };
        p.serve(listener);
        p
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            // JoinSet dropped on abort → every connection task is aborted, sockets closed.
        }));
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    async fn restart(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => return self.serve(l),
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot re-bind proxy port: {e}"),
            }
        }
    }
}

/// host:port of a redis:// URL, and the URL with host:port replaced.
fn split_redis_url(url: &str, new_authority: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("redis URL with scheme");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (&authority[..=i], &authority[i + 1..]),
        None => ("", authority),
    };
    let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:6379") };
    (hostport, format!("{scheme}://{userinfo}{new_authority}{path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_and_recovery_without_restart() {
    let Some(url) = test_redis_url() else { return };
    let (upstream, _) = split_redis_url(&url, "");
    let mut proxy = Proxy::start(upstream).await;
    let (_, proxied) = split_redis_url(&url, &format!("127.0.0.1:{}", proxy.port));
    let options = RedisOptions {
        connect_timeout: Duration::from_millis(300),
        response_timeout: Duration::from_millis(300),
        retry_interval: Duration::from_millis(300),
    };
    let rl = RateLimiter::redis_with_options(&proxied, limits_all(5), FailurePolicies::default(), &random_namespace(), options)
        .await
        .unwrap();
    assert!(!rl.store_degraded());
    let d = rl.check(Family::Default, "key:o").await;
    assert_eq!((d.outcome, d.remaining), (Outcome::Allowed, 4), "served by Redis: {d:?}");

    proxy.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let d = rl.check(Family::Default, "key:o").await;
    assert_eq!((d.outcome, d.remaining), (Outcome::Allowed, 5), "fail open while down: {d:?}");
    assert_eq!(rl.check(Family::Ingest, "key:o").await.outcome, Outcome::StoreUnavailable);
    assert!(rl.store_degraded());

    proxy.restart().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = rl.check(Family::Ingest, "key:o").await;
        if d.outcome == Outcome::Allowed {
            assert_eq!(d.remaining, 4, "served by Redis again: {d:?}");
            break;
        }
        assert_eq!(d.outcome, Outcome::StoreUnavailable);
        assert!(std::time::Instant::now() < deadline, "did not recover within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // state from before the outage is still there (shared store, not reset)
    let d = rl.check(Family::Default, "key:o").await;
    assert_eq!((d.outcome, d.remaining), (Outcome::Allowed, 3), "{d:?}");
    proxy.stop();
}
