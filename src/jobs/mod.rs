//! Typed background jobs on a durable queue (the `jobs` table), in the style of crates.io's
//! background jobs. This module depends only on the database layer: handlers get whatever
//! context the application registers (`Registry<Ctx>`), so jobs of any domain plug in here
//! without this module knowing them.
//!
//! Adding a job type is one file plus one registration line:
//!
//! ```ignore
//! // src/<domain>/jobs.rs
//! #[derive(Serialize, Deserialize)]
//! pub struct NotifyApprover { pub approval_request_id: i64 }
//!
//! impl Job for NotifyApprover {
//!     const NAME: &'static str = "send_approval_notification_task";
//!     const QUEUE: &'static str = "dispatch";
//!     const MAX_ATTEMPTS: i32 = 3;           // backoff: exponential with jitter unless overridden
//!     type Context = AppState;               // or anything AppState converts into (e.g. Db)
//!
//!     async fn run(self, state: AppState, job: JobCtx) -> Result<(), JobError> {
//!         let mut tx = state.db.begin().await?;
//!         // ... the handler's writes ...
//!         job.complete_in(&mut tx).await?;    // conditioned on this worker's claim and attempt
//!         tx.commit().await?;
//!         Ok(())
//!     }
//! }
//!
//! // src/app.rs, `job_registry`:
//! Registry::new().register::<EnrichAlert>().register::<NotifyApprover>()
//!
//! // Enqueue inside the transaction that creates the subject, then wake local workers:
//! jobs::enqueue(&mut tx, &NotifyApprover { approval_request_id }).await?;
//! tx.commit().await?;
//! state.wakeup.job_enqueued();
//! ```
//!
//! - Delayed jobs: `enqueue_at(&mut tx, &job, run_at)`; retries are delayed jobs too (the job's
//!   backoff sets `run_at`), never a sleep in a worker.
//! - Periodic jobs: `register_periodic::<Sweep>(every)`; each period is enqueued once across all
//!   processes sharing the database (`periodic`).
//! - Batches: a job type with `BATCH_SIZE > 1` is claimed in batches and may override
//!   `run_batch` to share work and one transaction across them (`enrich_alert`).
//! - Leases: a handler still running near the end of its claim's lease is cancelled (its future
//!   dropped) and the job retried. A run that lost its job to another worker cannot commit:
//!   `JobCtx::complete_in` fails with `LeaseLost` in the very transaction of its writes.

mod context;
mod handoff;
mod job;
mod periodic;
mod prune;
mod registry;
mod runner;
pub mod store;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use context::{JobCtx, complete_all_in};
pub use job::{Backoff, DEFAULT_QUEUE, Job, JobError, RetryPolicy};
pub use prune::{KEEP_FINISHED_JOBS_DAYS, PruneFinishedJobs};
pub use registry::Registry;
pub use store::queue_depths;
pub use handoff::MAX_HOLD;
pub use runner::{Wakeup, WorkerConfig, run_workers};

use crate::db::{Db, Tx, now};
use handoff::Reservation;
use store::JobRow;

/// Enqueues `job` to run as soon as a worker is free, in the caller's transaction: it exists
/// exactly when the caller's writes commit. Call `Wakeup::job_enqueued` after the commit so this
/// process's idle workers start at once.
pub async fn enqueue<J: Job>(tx: &mut Tx, job: &J) -> sqlx::Result<Uuid> {
    enqueue_at(tx, job, now()).await
}

/// Enqueues `job` to run no earlier than `run_at`, in the caller's transaction.
pub async fn enqueue_at<J: Job>(tx: &mut Tx, job: &J, run_at: DateTime<Utc>) -> sqlx::Result<Uuid> {
    let uuids = store::insert(tx, &[new_job(job, run_at)?]).await?;
    Ok(uuids[0])
}

/// Enqueues many jobs of one type in one statement (a group-commit batch's jobs).
pub async fn enqueue_many<J: Job>(tx: &mut Tx, jobs: &[J]) -> sqlx::Result<Vec<Uuid>> {
    let at = now();
    let rows = jobs.iter().map(|job| new_job(job, at)).collect::<sqlx::Result<Vec<_>>>()?;
    store::insert(tx, &rows).await
}

/// `enqueue_many` for jobs this process's own workers may run: as many as they have room for are
/// inserted already claimed by them (see `handoff`: no claim transaction has to find them), the
/// rest queue as usual. After the commit, `Enqueued::hand_over` gives them to the workers; if the
/// transaction does not commit, dropping the `Enqueued` gives the room back.
pub async fn enqueue_many_here<J: Job>(tx: &mut Tx, wakeup: &Wakeup, jobs: &[J]) -> sqlx::Result<Enqueued> {
    let at = now();
    let rows = jobs.iter().map(|job| new_job(job, at)).collect::<sqlx::Result<Vec<_>>>()?;
    let reservation = wakeup.handoff.reserve(J::NAME, rows.len());
    let (claimed, queued) = rows.split_at(reservation.as_ref().map_or(0, Reservation::count));
    let handed = match reservation {
        Some(reservation) => {
            let (worker, locked_until) = reservation.claim();
            let jobs = store::insert_claimed(tx, claimed, worker, locked_until).await?;
            Some((reservation, jobs))
        }
        None => None,
    };
    store::insert(tx, queued).await?;
    Ok(Enqueued { handed, queued: !queued.is_empty() })
}

/// Jobs inserted by `enqueue_many_here`, some of them claimed for this process's workers.
pub struct Enqueued {
    handed: Option<(Reservation, Vec<JobRow>)>,
    /// Some queued in the table as usual.
    queued: bool,
}

impl Enqueued {
    /// After the commit: hands the claimed jobs to this process's workers, and wakes one for them
    /// and one for the jobs that queued as usual (a released handed job is one of those).
    pub async fn hand_over(self, db: &Db, wakeup: &Wakeup) {
        let mut queued = self.queued;
        if let Some((reservation, jobs)) = self.handed {
            if wakeup.handoff.hand_over(db, reservation, jobs).await {
                wakeup.handed();
            } else {
                queued = true;
            }
        }
        if queued {
            wakeup.job_enqueued();
        }
    }
}

fn new_job<J: Job>(job: &J, run_at: DateTime<Utc>) -> sqlx::Result<store::NewJob<'static>> {
    let mut payload = serde_json::to_value(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    crate::observability::otel::stamp_job(&mut payload);
    if !payload.is_object() {
        // The table stores objects only (ck_jobs_payload): a unit struct would break the insert.
        return Err(sqlx::Error::Encode(format!("job {} must serialize to a JSON object", J::NAME).into()));
    }
    Ok(store::NewJob { queue: J::QUEUE, task: J::NAME, payload, max_attempts: J::MAX_ATTEMPTS.max(1), run_at, dedupe_key: None })
}
