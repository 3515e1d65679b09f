//! Rate limiting (requirement item 6): a pure library; the axum middleware calls
//! [`RateLimiter::check`] and turns the [`Decision`] into headers / a 429 / a 503.
//!
//! # Algorithm
//! GCRA (generic cell rate algorithm) per (family, key): burst = the per-minute limit, one
//! cell replenished every `60 s / limit`. So `limit` requests can pass at once, the bucket
//! refills continuously, and a **rejected request never changes state** (it consumes no quota).
//! A limit of 0 means unlimited for that family.
//!
//! # Backends
//! * [`RateLimiter::in_memory`]: `governor` keyed limiters (the engine of `tower_governor`),
//!   one per family. Memory is bounded by sweeping keys whose bucket is full again
//!   (`retain_recent`) every `max(1024, live keys)` checks (O(1) amortised; no background task,
//!   so it works without a runtime).
//! * [`RateLimiter::redis`]: one Lua script per decision (EVALSHA, atomic, Redis `TIME` as the
//!   shared clock), so all replicas share the limits. State key:
//!   `{namespace}:rl:{family}:{key}` holding the TAT in µs, with `PX` expiry at the moment the
//!   bucket is full again.
//!
//! # Redis failures
//! Any Redis error or timeout applies the family's [`FailurePolicy`] (default: closed for
//! `unauthenticated` and `ingest`, open for the rest): `Open` → [`Outcome::Allowed`] with
//! `remaining = limit`; `Closed` → [`Outcome::StoreUnavailable`] (answer 503 with
//! `Retry-After`). Never a panic, never an error the caller must map to 500. After a failure
//! the store is skipped for [`RedisOptions::retry_interval`] (decisions are immediate, no
//! timeout per request); the next decision after that probes Redis again, and the
//! `ConnectionManager` reconnects by itself, so recovery needs no restart. Only the transition
//! to "down" is logged at WARN (and "reachable again" at INFO); the log carries `host:port`
//! only, never the URL (which may hold a password).
//!
//! **Redis down at start:** [`RateLimiter::redis`] only fails for an invalid URL. If Redis is
//! unreachable it logs a warning and returns a limiter that applies the failure policies until
//! Redis answers (lazy `ConnectionManager`), so the process can start and recover on its own.
//! That includes a first connection refused for its credentials (or its TLS set-up): the
//! manager only reconnects after I/O errors, so the store replaces it with a fresh one after any
//! other connection failure, and the next probe (`retry_interval` later) connects anew.
//! [`RateLimiter::ping`] reports reachability for a readiness/health endpoint.
//!
//! Keys passed to `check` are stored verbatim (in memory or as part of a Redis key): pass
//! identifiers such as `key:<api-key-id>` or `ip:1.2.3.4`, never a secret.

mod memory;
mod redis_store;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use self::memory::MemoryStore;
use self::redis_store::RedisStore;

/// Rate-limit family: each has its own limit and its own counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Authenticated requests, per API key (`RATE_LIMIT_DEFAULT_PER_MINUTE`).
    Default,
    /// Every request without a valid key (failed authentications included), per client IP.
    Unauthenticated,
    /// Alert ingest, per API key.
    Ingest,
    /// Enrichment endpoints, per API key.
    Enrichment,
    /// Workflow execution, per API key.
    WorkflowExecute,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::Default,
        Family::Unauthenticated,
        Family::Ingest,
        Family::Enrichment,
        Family::WorkflowExecute,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Default => "default",
            Family::Unauthenticated => "unauthenticated",
            Family::Ingest => "ingest",
            Family::Enrichment => "enrichment",
            Family::WorkflowExecute => "workflow_execute",
        }
    }

    fn index(self) -> usize {
        match self {
            Family::Default => 0,
            Family::Unauthenticated => 1,
            Family::Ingest => 2,
            Family::Enrichment => 3,
            Family::WorkflowExecute => 4,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Requests per minute per family; 0 = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub default_per_minute: u32,
    pub unauthenticated_per_minute: u32,
    pub ingest_per_minute: u32,
    pub enrichment_per_minute: u32,
    pub workflow_execute_per_minute: u32,
}

impl Default for Limits {
    /// 60 / 10 / 120 / 60 / 30.
    fn default() -> Self {
        Self {
            default_per_minute: 60,
            unauthenticated_per_minute: 10,
            ingest_per_minute: 120,
            enrichment_per_minute: 60,
            workflow_execute_per_minute: 30,
        }
    }
}

impl Limits {
    pub fn for_family(&self, family: Family) -> u32 {
        match family {
            Family::Default => self.default_per_minute,
            Family::Unauthenticated => self.unauthenticated_per_minute,
            Family::Ingest => self.ingest_per_minute,
            Family::Enrichment => self.enrichment_per_minute,
            Family::WorkflowExecute => self.workflow_execute_per_minute,
        }
    }
}

/// What to do when the shared store (Redis) errors or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Let the request through (`Outcome::Allowed`, `remaining = limit`).
    Open,
    /// Refuse it (`Outcome::StoreUnavailable`: the caller answers 503).
    Closed,
}

impl FromStr for FailurePolicy {
    type Err = Error;

    /// Accepts `open`, `fail_open`, `fail-open`, `closed`, `fail_closed`, `fail-closed`
    /// (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" | "fail_open" | "fail-open" => Ok(FailurePolicy::Open),
            "closed" | "fail_closed" | "fail-closed" => Ok(FailurePolicy::Closed),
            other => Err(Error::InvalidConfig(format!(
                "failure policy must be \"open\" or \"closed\", got {other:?}"
            ))),
        }
    }
}

/// Failure policy per family. `Default::default()` = closed for `unauthenticated` and `ingest`,
/// open for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicies {
    pub default: FailurePolicy,
    pub unauthenticated: FailurePolicy,
    pub ingest: FailurePolicy,
    pub enrichment: FailurePolicy,
    pub workflow_execute: FailurePolicy,
}

impl Default for FailurePolicies {
    fn default() -> Self {
        Self {
            default: FailurePolicy::Open,
            unauthenticated: FailurePolicy::Closed,
            ingest: FailurePolicy::Closed,
            enrichment: FailurePolicy::Open,
            workflow_execute: FailurePolicy::Open,
        }
    }
}

impl FailurePolicies {
    /// The same policy for every family.
    pub fn all(policy: FailurePolicy) -> Self {
        Self {
            default: policy,
            unauthenticated: policy,
            ingest: policy,
            enrichment: policy,
            workflow_execute: policy,
        }
    }

    pub fn for_family(&self, family: Family) -> FailurePolicy {
        match family {
            Family::Default => self.default,
            Family::Unauthenticated => self.unauthenticated,
            Family::Ingest => self.ingest,
            Family::Enrichment => self.enrichment,
            Family::WorkflowExecute => self.workflow_execute,
        }
    }
}

/// Redis connection tuning (defaults are fine for production).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisOptions {
    /// Per connection attempt. Default 500 ms.
    pub connect_timeout: Duration,
    /// Per command. Default 500 ms.
    pub response_timeout: Duration,
    /// After a failure, decisions skip Redis (failure policy applies at once) for this long
    /// before probing again; also the `Retry-After` of a `StoreUnavailable` decision
    /// (at least 1 s). Default 1 s.
    pub retry_interval: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(500),
            response_timeout: Duration::from_millis(500),
            retry_interval: Duration::from_secs(1),
        }
    }
}

impl RedisOptions {
    /// Upper bound on the time one decision may wait for Redis.
    pub fn decision_timeout(&self) -> Duration {
        self.connect_timeout + self.response_timeout
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    /// Over the limit: answer 429.
    Limited,
    /// Shared store down and the family fails closed: answer 503 (with `Retry-After`).
    StoreUnavailable,
}

/// The result of one check. `limit == 0` means the family is unlimited (omit the headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The family's per-minute limit (= burst size); 0 = unlimited.
    pub limit: u32,
    /// Requests that could pass right now after this one.
    pub remaining: u32,
    /// Until the bucket is full again (`remaining` back to `limit`).
    pub reset_after: Duration,
    /// Zero when allowed; when limited, until the next request would pass; for
    /// `StoreUnavailable`, the back-off before the store is tried again.
    pub retry_after: Duration,
}

impl Decision {
    fn unlimited() -> Self {
        Decision {
            outcome: Outcome::Allowed,
            limit: 0,
            remaining: 0,
            reset_after: Duration::ZERO,
            retry_after: Duration::ZERO,
        }
    }

    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allowed
    }

    pub fn is_unlimited(&self) -> bool {
        self.limit == 0
    }

    /// Value for `Retry-After`: whole seconds rounded **up** (a truncated value would be too
    /// early, e.g. `0` for a 0.4 s wait); at least 1 when not allowed, 0 when allowed.
    pub fn retry_after_secs(&self) -> u64 {
        if self.is_allowed() {
            0
        } else {
            ceil_secs(self.retry_after).max(1)
        }
    }

    /// Seconds until the bucket is full again, rounded up (for a delta-seconds
    /// `X-RateLimit-Reset`).
    pub fn reset_after_secs(&self) -> u64 {
        ceil_secs(self.reset_after)
    }

    /// Unix time (seconds, rounded up) at which the bucket is full again (for an epoch-style
    /// `X-RateLimit-Reset`).
    pub fn reset_at_unix_secs(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        ceil_secs(now + self.reset_after)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse (the message never contains the URL itself).
    #[error("invalid REDIS_URL: {0}")]
    InvalidRedisUrl(String),
    #[error("invalid rate-limit configuration: {0}")]
    InvalidConfig(String),
}

/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    backend: Backend,
}

enum Backend {
    Memory(Box<MemoryStore>),
    Redis(Box<RedisStore>),
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("backend", &self.backend_name())
            .field("limits", &self.inner.limits)
            .finish()
    }
}

impl RateLimiter {
    /// In-process limiter (one replica). Needs no runtime.
    pub fn in_memory(limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                backend: Backend::Memory(Box::new(MemoryStore::new(&limits))),
            }),
        }
    }

    /// Limits shared by every replica through Redis, with default [`RedisOptions`].
    /// Must be called inside a tokio runtime. Fails only for an invalid URL; an unreachable
    /// Redis is logged and the failure policies apply until it answers.
    /// `key_namespace` prefixes every Redis key (e.g. `"calseta"`).
    pub async fn redis(
        url: &str,
        limits: Limits,
        policies: FailurePolicies,
        key_namespace: &str,
    ) -> Result<Self, Error> {
        Self::redis_with_options(url, limits, policies, key_namespace, RedisOptions::default())
            .await
    }

    pub async fn redis_with_options(
        url: &str,
        limits: Limits,
        policies: FailurePolicies,
        key_namespace: &str,
        options: RedisOptions,
    ) -> Result<Self, Error> {
        let store = RedisStore::connect(url, policies, key_namespace, options).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                limits,
                backend: Backend::Redis(Box::new(store)),
            }),
        })
    }

    /// Checks a Redis URL (scheme, TLS support, syntax) without connecting, so a bad `REDIS_URL`
    /// stops a start before anything else happens.
    pub fn check_redis_url(url: &str) -> Result<(), Error> {
        redis_store::open_client(url).map(drop)
    }

    /// Redis when `redis_url` is `Some` and non-empty (i.e. `REDIS_URL` is set), else in-memory.
    pub async fn from_config(
        redis_url: Option<&str>,
        limits: Limits,
        policies: FailurePolicies,
        key_namespace: &str,
    ) -> Result<Self, Error> {
        match redis_url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => Self::redis(url, limits, policies, key_namespace).await,
            None => Ok(Self::in_memory(limits)),
        }
    }

    /// One decision for `key` in `family`; an allowed decision consumes one unit, a limited one
    /// consumes nothing. Never panics, never returns an error.
    pub async fn check(&self, family: Family, key: &str) -> Decision {
        let limit = self.inner.limits.for_family(family);
        if limit == 0 {
            return Decision::unlimited();
        }
        match &self.inner.backend {
            Backend::Memory(store) => store.check(family, limit, key),
            Backend::Redis(store) => store.check(family, limit, key).await,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.inner.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// For readiness/health: `Ok` for the in-memory backend; for Redis, PING + script load
    /// within the decision timeout. The error text contains no URL or credentials.
    pub async fn ping(&self) -> Result<(), String> {
        match &self.inner.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(store) => store.ping().await,
        }
    }

    /// True while the Redis backend is in its post-failure back-off (failure policies in force).
    pub fn store_degraded(&self) -> bool {
        match &self.inner.backend {
            Backend::Memory(_) => false,
            Backend::Redis(store) => store.is_marked_down(),
        }
    }

    /// Number of keys held in process memory (0 for Redis: keys live there, with expiry).
    pub fn tracked_keys(&self) -> usize {
        match &self.inner.backend {
            Backend::Memory(store) => store.tracked_keys(),
            Backend::Redis(_) => 0,
        }
    }

    /// Sweep idle in-memory keys now (also done automatically during `check`); returns the
    /// keys still tracked. No-op for Redis.
    pub fn retain_recent(&self) -> usize {
        match &self.inner.backend {
            Backend::Memory(store) => store.retain_recent(),
            Backend::Redis(_) => 0,
        }
    }
}
