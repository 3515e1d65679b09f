//! In-process store: one `governor` keyed GCRA limiter per family.
//!
//! `governor` is the engine behind `tower_governor`; we use it directly (with
//! `StateInformationMiddleware`, which reports the remaining burst capacity) because the
//! limits differ per family and the decision must be returned to our own middleware rather
//! than turned into a response by `GovernorLayer`.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter as GovernorLimiter};

use super::{Decision, Family, Limits, Outcome};

type KeyedLimiter = GovernorLimiter<
    String,
    DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Minimum number of checks between two clean-ups of idle keys.
pub(super) const RETAIN_EVERY: u64 = 1024;

pub(super) struct MemoryStore {
    /// Indexed by `Family::index()`; `None` for a family whose limit is 0 (unlimited).
    limiters: [Option<KeyedLimiter>; 5],
    checks_since_retain: AtomicU64,
    /// Clean up after this many checks: `max(RETAIN_EVERY, keys alive after the last clean-up)`,
    /// so the O(keys) sweep costs O(1) amortised per check even with many live keys.
    retain_threshold: AtomicU64,
    retaining: AtomicBool,
}

impl MemoryStore {
    pub(super) fn new(limits: &Limits) -> Self {
        let make = |family: Family| {
            NonZeroU32::new(limits.for_family(family)).map(|limit| {
                // burst = limit, one cell replenished every 60 s / limit.
                GovernorLimiter::keyed(Quota::per_minute(limit))
                    .with_middleware::<StateInformationMiddleware>()
            })
        };
        Self {
            limiters: Family::ALL.map(make),
            checks_since_retain: AtomicU64::new(0),
            retain_threshold: AtomicU64::new(RETAIN_EVERY),
            retaining: AtomicBool::new(false),
        }
    }

    /// `limit` is the configured (non-zero) limit of `family`.
    pub(super) fn check(&self, family: Family, limit: u32, key: &str) -> Decision {
        let Some(limiter) = &self.limiters[family.index()] else {
            return Decision::unlimited();
        };
        let decision = Self::decide(limiter, limit, key);
        self.maybe_retain();
        decision
    }

    fn decide(limiter: &KeyedLimiter, limit: u32, key: &str) -> Decision {
        // Taken before the decision, so the computed wait is never shorter than the real one.
        let before = limiter.clock().now();
        let interval = limiter_interval(limit);
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(limit);
                // TAT - now lies in ((limit-remaining-1)·T, (limit-remaining)·T]; report the upper
                // bound (the snapshot's TAT is private to governor).
                Decision {
                    outcome: Outcome::Allowed,
                    limit,
                    remaining,
                    reset_after: interval * (limit - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let mut retry_after = not_until.wait_time_from(before);
                if retry_after.is_zero() {
                    retry_after = Duration::from_nanos(1);
                }
                Decision {
                    outcome: Outcome::Limited,
                    limit,
                    remaining: 0,
                    // When limited, TAT = now + retry_after + (limit-1)·T.
                    reset_after: retry_after + interval * (limit - 1),
                    retry_after,
                }
            }
        }
    }

    fn maybe_retain(&self) {
        let n = self.checks_since_retain.fetch_add(1, Ordering::Relaxed) + 1;
        if n < self.retain_threshold.load(Ordering::Relaxed) {
            return;
        }
        if self
            .retaining
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        self.checks_since_retain.store(0, Ordering::Relaxed);
        let alive = self.retain_recent();
        self.retain_threshold
            .store(RETAIN_EVERY.max(alive as u64), Ordering::Relaxed);
        self.retaining.store(false, Ordering::Release);
    }

    /// Drops keys whose bucket is full again (indistinguishable from a fresh key); returns the
    /// number of keys still tracked.
    pub(super) fn retain_recent(&self) -> usize {
        let mut alive = 0;
        for limiter in self.limiters.iter().flatten() {
            let before = limiter.len();
            limiter.retain_recent();
            let after = limiter.len();
            if after * 2 < before {
                limiter.shrink_to_fit();
            }
            alive += after;
        }
        alive
    }

    pub(super) fn tracked_keys(&self) -> usize {
        self.limiters.iter().flatten().map(|l| l.len()).sum()
    }
}

/// Emission interval exactly as `Quota::per_minute` computes it.
fn limiter_interval(limit: u32) -> Duration {
    Duration::from_nanos((60_000_000_000u128 / u128::from(limit.max(1))) as u64)
}
