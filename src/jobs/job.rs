//! The `Job` trait, its errors and its retry policy.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::JobCtx;

/// The queue a job runs on unless it names another.
pub const DEFAULT_QUEUE: &str = "default";

/// A background job type. The struct itself is the payload: it is serialized into the `jobs` row
/// when enqueued and deserialized by the worker that claims it.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The task name stored in `jobs.task`; unique across the application.
    const NAME: &'static str;
    /// The queue it runs on (workers consume the queues of every registered job).
    const QUEUE: &'static str = DEFAULT_QUEUE;
    /// Attempts in all (the first run included) unless the registry overrides the policy.
    const MAX_ATTEMPTS: i32 = 3;
    /// Jobs of this type a worker claims at once and hands to `run_batch` together. Jobs that
    /// share work or a transaction across a batch (enrich_alert) raise it; 1 otherwise.
    const BATCH_SIZE: usize = 1;

    /// What the handler needs from the application (the registry's context converts into it).
    type Context: Clone + Send + Sync + 'static;

    /// The wait before attempt `attempt + 1` after attempt `attempt` failed.
    fn backoff(attempt: i32) -> Duration {
        RetryPolicy::default().backoff.delay(attempt)
    }

    /// Runs one job. A handler that writes must commit its writes in the transaction in which it
    /// calls `job.complete_in(&mut tx)`: that is what keeps a worker that lost its lease from
    /// committing anything. A handler without writes may simply return `Ok(())`.
    fn run(self, ctx: Self::Context, job: JobCtx) -> impl Future<Output = Result<(), JobError>> + Send;

    /// Runs a claimed batch and returns one outcome per job, in order. The default runs them one
    /// after the other; a job type that gains from sharing work across the batch overrides it.
    fn run_batch(ctx: Self::Context, jobs: Vec<(Self, JobCtx)>) -> impl Future<Output = Vec<Result<(), JobError>>> + Send {
        async move {
            let mut outcomes = Vec::with_capacity(jobs.len());
            for (job, job_ctx) in jobs {
                outcomes.push(job.run(ctx.clone(), job_ctx).await);
            }
            outcomes
        }
    }
}

/// Why a job did not succeed.
#[derive(Debug)]
pub enum JobError {
    /// Worth another attempt (after the backoff) while attempts remain.
    Retry(String),
    /// Never worth retrying (bad payload, unknown task, a panic).
    Fatal(String),
    /// The job was handed to another worker (this one's lease expired): nothing of this run was
    /// committed and nothing is recorded; the new holder owns the job now.
    LeaseLost,
}

impl JobError {
    pub fn message(&self) -> String {
        match self {
            JobError::Retry(msg) | JobError::Fatal(msg) => msg.clone(),
            JobError::LeaseLost => "the job's lease was lost to another worker".into(),
        }
    }
}

/// Any error is worth a retry by default (a database hiccup, a timeout); say `Fatal` explicitly.
impl<E: std::fmt::Display> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::Retry(e.to_string())
    }
}

/// How many attempts a job gets and how long it waits between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, backoff: Backoff::Exponential { base: Duration::from_secs(10), max: Duration::from_secs(3600) } }
    }
}

impl RetryPolicy {
    /// The policy a job type declares (`MAX_ATTEMPTS`, `backoff`).
    pub fn of<J: Job>() -> Self {
        RetryPolicy { max_attempts: J::MAX_ATTEMPTS.max(1), backoff: Backoff::Declared(J::backoff) }
    }

    /// `max_attempts` in all, `wait` apart (Calseta's `enrich_alert` policy).
    pub fn fixed(max_attempts: i32, wait: Duration) -> Self {
        RetryPolicy { max_attempts: max_attempts.max(1), backoff: Backoff::Fixed(wait) }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Backoff {
    Fixed(Duration),
    /// `base * 2^(attempt-1)`, capped at `max`, with "full jitter" on the upper half: the wait
    /// is uniform in [d/2, d], so retries of jobs that failed together (a vendor outage) spread
    /// out instead of stampeding back at once.
    Exponential { base: Duration, max: Duration },
    /// The job type's own `Job::backoff`.
    Declared(fn(i32) -> Duration),
}

impl PartialEq for Backoff {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Backoff::Fixed(a), Backoff::Fixed(b)) => a == b,
            (Backoff::Exponential { base: a, max: x }, Backoff::Exponential { base: b, max: y }) => a == b && x == y,
            (Backoff::Declared(a), Backoff::Declared(b)) => std::ptr::fn_addr_eq(*a, *b),
            _ => false,
        }
    }
}

impl Backoff {
    /// The wait after attempt `attempt` (1-based) failed.
    pub fn delay(&self, attempt: i32) -> Duration {
        match *self {
            Backoff::Fixed(wait) => wait,
            Backoff::Exponential { base, max } => {
                let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
                let ceiling = base.saturating_mul(1u32 << exponent).min(max);
                let floor = ceiling / 2;
                floor + ceiling.saturating_sub(floor).mul_f64(rand::random::<f64>())
            }
            Backoff::Declared(backoff) => backoff(attempt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_within_jitter_bounds_and_caps() {
        let backoff = Backoff::Exponential { base: Duration::from_secs(10), max: Duration::from_secs(300) };
        for _ in 0..200 {
            for (attempt, ceiling) in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 300), (20, 300), (i32::MAX, 300)] {
                let wait = backoff.delay(attempt);
                let ceiling = Duration::from_secs(ceiling);
                assert!(wait >= ceiling / 2 && wait <= ceiling, "attempt {attempt}: {wait:?} outside [{:?}, {ceiling:?}]", ceiling / 2);
            }
            // A nonsensical attempt number still yields a bounded wait.
            let wait = backoff.delay(0);
            assert!(wait >= Duration::from_secs(5) && wait <= Duration::from_secs(10));
        }
    }

    #[test]
    fn jitter_spreads_retries() {
        let backoff = Backoff::Exponential { base: Duration::from_secs(60), max: Duration::from_secs(3600) };
        let waits: std::collections::HashSet<Duration> = (0..50).map(|_| backoff.delay(3)).collect();
        assert!(waits.len() > 40, "jittered waits are spread, got {} distinct of 50", waits.len());
    }

    #[test]
    fn fixed_backoff_is_fixed_and_policies_keep_at_least_one_attempt() {
        let policy = RetryPolicy::fixed(0, Duration::from_secs(60));
        assert_eq!(policy.max_attempts, 1);
        assert_eq!(policy.backoff.delay(1), Duration::from_secs(60));
        assert_eq!(policy.backoff.delay(7), Duration::from_secs(60));
    }
}
