//! Shared store: GCRA in one Lua script per decision (EVALSHA via `redis::Script`).
//!
//! State is one string key per (family, client key) holding the theoretical arrival time
//! (TAT) in **microseconds** since the Unix epoch of the Redis server clock (`TIME`), so every
//! replica uses the same clock. The key expires (`PX`) when its bucket is full again, so idle
//! keys cost nothing. A limited request does not write anything, so it does not consume quota.
//! The script runs atomically: no check-then-set race between replicas.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Decision, Error, FailurePolicies, FailurePolicy, Family, Outcome, RedisOptions};

/// KEYS[1] = state key; ARGV[1] = emission interval (µs); ARGV[2] = burst (= limit).
/// Returns {allowed (0|1), remaining, reset_after_us, retry_after_us}.
const GCRA_LUA: &str = r#"
if redis.replicate_commands then pcall(redis.replicate_commands) end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tau = interval * (burst - 1)
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local allow_at = tat - tau
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
local new_tat = tat + interval
local reset_after = new_tat - now
local remaining = math.floor((burst * interval - reset_after) / interval)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(reset_after / 1000))
return {1, remaining, reset_after, 0}
"#;

pub(super) struct RedisStore {
    /// Replaced by a fresh manager when a connection attempt fails in a way the manager does not
    /// recover from by itself (see [`RedisStore::renew_after`]).
    conn: RwLock<ConnectionManager>,
    client: redis::Client,
    config: ConnectionManagerConfig,
    script: redis::Script,
    namespace: String,
    policies: FailurePolicies,
    options: RedisOptions,
    /// `host:port` (or socket path) only: never the URL, which may carry a password.
    target: String,
    base: Instant,
    /// 0 = store considered up; otherwise ms since `base` until which decisions skip Redis and
    /// apply the failure policy directly (so an outage does not add a timeout to every request).
    down_until_ms: AtomicU64,
}

impl RedisStore {
    pub(super) async fn connect(
        url: &str,
        policies: FailurePolicies,
        namespace: &str,
        options: RedisOptions,
    ) -> Result<Self, Error> {
        let client = open_client(url)?;
        let target = client.get_connection_info().addr().to_string();
        let config = ConnectionManagerConfig::new()
            // One attempt per (re)connection: our own back-off (`retry_interval`) paces retries,
            // and requests must not wait through the manager's exponential retry loop.
            .set_number_of_retries(0)
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| Error::InvalidRedisUrl(e.to_string()))?;
        let store = Self {
            conn: RwLock::new(conn),
            client,
            config,
            script: redis::Script::new(GCRA_LUA),
            namespace: namespace.to_owned(),
            policies,
            options,
            target,
            base: Instant::now(),
            down_until_ms: AtomicU64::new(0),
        };
        // Start-up probe: connects and loads the script. Failure is not fatal (see module docs).
        if let Err(e) = store.ping().await {
            tracing::warn!(
                target: "calseta::ratelimit",
                redis = %store.target,
                error = %e,
                "rate-limit store (Redis) unreachable at startup; applying failure policies until it is reachable"
            );
            store.mark_down();
        }
        Ok(store)
    }

    /// PING + SCRIPT LOAD, bounded by the decision timeout.
    pub(super) async fn ping(&self) -> Result<(), String> {
        let mut conn = self.connection();
        let fut = async {
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
            self.script.load_async(&mut conn).await?;
            Ok::<(), redis::RedisError>(())
        };
        match tokio::time::timeout(self.options.decision_timeout(), fut).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.renew_after(&e);
                Err(e.to_string())
            }
            Err(_) => Err("timed out".to_owned()),
        }
    }

    fn connection(&self) -> ConnectionManager {
        self.conn.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The `ConnectionManager` reconnects by itself only after I/O errors. A connection attempt
    /// that fails otherwise (wrong password: `AuthenticationFailed`, a refused `SELECT`, a TLS
    /// set-up error) stays cached as the manager's connection forever, so every later decision
    /// would fail until a restart. Such an error gets a fresh (lazy) manager, which the next probe
    /// after `retry_interval` uses; I/O errors and timeouts are left to the manager.
    fn renew_after(&self, error: &redis::RedisError) {
        let answered_over_a_working_connection =
            matches!(error.kind(), redis::ErrorKind::Server(_)) && !error.is_unrecoverable_error();
        if error.is_io_error() || answered_over_a_working_connection {
            return;
        }
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(fresh) => *self.conn.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh,
            Err(e) => tracing::debug!(target: "calseta::ratelimit", redis = %self.target, error = %e, "cannot renew the Redis connection manager"),
        }
    }

    fn now_ms(&self) -> u64 {
        // +1 so that 0 keeps meaning "up".
        self.base.elapsed().as_millis() as u64 + 1
    }

    fn mark_down(&self) -> bool {
        let until = self.now_ms() + self.options.retry_interval.as_millis() as u64;
        self.down_until_ms.swap(until, Ordering::AcqRel) == 0
    }

    pub(super) fn is_marked_down(&self) -> bool {
        let until = self.down_until_ms.load(Ordering::Acquire);
        until != 0 && self.now_ms() < until
    }

    pub(super) async fn check(&self, family: Family, limit: u32, key: &str) -> Decision {
        if self.is_marked_down() {
            return self.on_failure(family, limit);
        }
        let redis_key = format!("{}:rl:{}:{}", self.namespace, family.as_str(), key);
        let interval_us = (60_000_000u64 / u64::from(limit)).max(1);
        let mut conn = self.connection();
        let mut invocation = self.script.key(&redis_key);
        invocation.arg(interval_us).arg(limit);
        let result = tokio::time::timeout(
            self.options.decision_timeout(),
            invocation.invoke_async::<Vec<i64>>(&mut conn),
        )
        .await;
        let error = match result {
            Ok(Ok(v)) if v.len() == 4 => {
                if self.down_until_ms.swap(0, Ordering::AcqRel) != 0 {
                    tracing::info!(target: "calseta::ratelimit", redis = %self.target, "rate-limit store (Redis) reachable again");
                }
                let us = |x: i64| Duration::from_micros(x.max(0) as u64);
                let allowed = v[0] == 1;
                let mut retry_after = us(v[3]);
                if !allowed && retry_after.is_zero() {
                    retry_after = Duration::from_micros(1);
                }
                return Decision {
                    outcome: if allowed { Outcome::Allowed } else { Outcome::Limited },
                    limit,
                    remaining: v[1].clamp(0, i64::from(limit)) as u32,
                    reset_after: us(v[2]),
                    retry_after,
                };
            }
            Ok(Ok(v)) => format!("unexpected script reply of length {}", v.len()),
            Ok(Err(e)) => {
                self.renew_after(&e);
                e.to_string()
            }
            Err(_) => format!("no answer within {:?}", self.options.decision_timeout()),
        };
        if self.mark_down() {
            tracing::warn!(
                target: "calseta::ratelimit",
                redis = %self.target,
                family = family.as_str(),
                error = %error,
                "rate-limit store (Redis) unavailable; applying failure policies"
            );
        } else {
            tracing::debug!(target: "calseta::ratelimit", redis = %self.target, error = %error, "rate-limit store (Redis) still unavailable");
        }
        self.on_failure(family, limit)
    }

    fn on_failure(&self, family: Family, limit: u32) -> Decision {
        match self.policies.for_family(family) {
            FailurePolicy::Open => Decision {
                outcome: Outcome::Allowed,
                limit,
                remaining: limit,
                reset_after: Duration::ZERO,
                retry_after: Duration::ZERO,
            },
            FailurePolicy::Closed => Decision {
                outcome: Outcome::StoreUnavailable,
                limit,
                remaining: 0,
                reset_after: Duration::ZERO,
                retry_after: self.options.retry_interval.max(Duration::from_secs(1)),
            },
        }
    }
}

/// Parses a `redis://`, `rediss://` (TLS, with the rustls ring provider and the system's root
/// certificates) or `unix://` URL without connecting. The error never contains the URL.
pub(super) fn open_client(url: &str) -> Result<redis::Client, Error> {
    redis::Client::open(url).map_err(|e| Error::InvalidRedisUrl(e.to_string()))
}
