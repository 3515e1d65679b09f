//! `JobCtx`: what a handler knows about the run it is in, and the one way it commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use uuid::Uuid;

use super::JobError;
use super::store;
use crate::db::Tx;

/// One claimed job as its handler sees it: which job, which attempt, and the claim that must
/// still hold when the handler's writes commit.
#[derive(Debug, Clone)]
pub struct JobCtx {
    id: i64,
    uuid: Uuid,
    attempt: i32,
    max_attempts: i32,
    worker: Arc<str>,
    /// Set once the handler's completion UPDATE succeeded, so the runner does not complete the
    /// job a second time.
    completed: Arc<AtomicBool>,
}

impl JobCtx {
    pub(crate) fn new(id: i64, uuid: Uuid, attempt: i32, max_attempts: i32, worker: Arc<str>) -> Self {
        JobCtx { id, uuid, attempt, max_attempts, worker, completed: Arc::default() }
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// 1 for the first run.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// Whether a failure of this run is final (no attempt remains): handlers that must leave their
    /// subject in a terminal state (an alert `Failed`) do it then.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    pub(crate) fn worker(&self) -> &str {
        &self.worker
    }

    pub(crate) fn is_completed(&self) -> bool {
        self.completed.load(Ordering::Acquire)
    }

    /// Marks the job succeeded inside the handler's transaction, if this worker still holds this
    /// attempt of it. If another worker took the job over (this run outlived its lease), this
    /// returns `JobError::LeaseLost` and the caller must not commit: dropping the transaction
    /// rolls back every write of the stale run.
    pub async fn complete_in(&self, tx: &mut Tx) -> Result<(), JobError> {
        complete_all_in(tx, std::slice::from_ref(self)).await
    }
}

/// `complete_in` for a batch sharing one transaction: all of them still held, or `LeaseLost` (and
/// the transaction must be dropped).
pub async fn complete_all_in(tx: &mut Tx, jobs: &[JobCtx]) -> Result<(), JobError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let claims: Vec<store::Claim<'_>> = jobs.iter().map(|job| store::Claim { id: job.id, attempt: job.attempt, worker: job.worker() }).collect();
    let completed = store::complete_in(tx, &claims).await.map_err(|e| JobError::Retry(e.to_string()))?;
    if completed != jobs.len() as u64 {
        return Err(JobError::LeaseLost);
    }
    for job in jobs {
        job.completed.store(true, Ordering::Release);
    }
    Ok(())
}
