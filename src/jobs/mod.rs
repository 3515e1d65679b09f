//! The durable job queue and its workers. Tasks are named as in Calseta's task table; each has
//! a queue, an attempt budget and a backoff. Workers run in the `serve` process (role `worker`),
//! claim jobs from the database, and drain cleanly on shutdown: a job that was claimed but not
//! started is released, one that is running is allowed to finish.

pub mod store;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

pub const ENRICH_ALERT: &str = "enrich_alert";

#[derive(Debug)]
pub enum JobError {
    /// Worth another attempt (after the task's backoff) while attempts remain.
    Retry(String),
    /// Never worth retrying (bad payload, unknown task).
    Fatal(String),
}

impl<E: std::fmt::Display> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::Retry(e.to_string())
    }
}

pub type Handler = fn(AppState, Value) -> BoxFuture<'static, Result<(), JobError>>;

pub struct Task {
    pub name: &'static str,
    pub queue: &'static str,
    pub handler: Handler,
}

/// Every task the workers know. A new task is one entry here plus its handler.
pub fn tasks() -> &'static [Task] {
    static TASKS: &[Task] = &[Task {
        name: ENRICH_ALERT,
        queue: "enrichment",
        handler: |state, payload| Box::pin(crate::ingest::pipeline::enrich_alert(state, payload)),
    }];
    TASKS
}

pub fn queues() -> Vec<&'static str> {
    let mut queues: Vec<&str> = tasks().iter().map(|t| t.queue).collect();
    queues.sort_unstable();
    queues.dedup();
    queues
}

/// Wakes idle workers in this process when a job is enqueued here, so latency is not bound by
/// the poll interval; workers in other processes find jobs by polling.
#[derive(Default, Clone)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    pub fn job_enqueued(&self) {
        self.0.notify_one();
    }
    async fn wait(&self) {
        self.0.notified().await
    }
}

fn worker_id(index: usize) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "calseta".into());
    format!("{host}:{}:{index}:{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Runs `QUEUE_CONCURRENCY` worker loops until `shutdown` fires, then waits for running jobs.
pub async fn run_workers(state: AppState, shutdown: CancellationToken) {
    let concurrency = state.settings.queue_concurrency.max(1);
    let mut loops: Vec<_> = (0..concurrency)
        .map(|i| tokio::spawn(worker_loop(state.clone(), worker_id(i), shutdown.clone())))
        .collect();
    loops.push(tokio::spawn(reaper(state.clone(), shutdown.clone())));
    tracing::info!(concurrency, queues = ?queues(), "workers started");
    for handle in loops {
        let _ = handle.await;
    }
    tracing::info!("workers drained");
}

/// Finished jobs are kept this long for inspection, then deleted.
const KEEP_FINISHED_JOBS_DAYS: i64 = 7;

/// Requeues jobs whose worker died (lease expired) and prunes old finished jobs, every
/// `REAP_EVERY`. Several processes may run it at once: both statements are idempotent.
async fn reaper(state: AppState, shutdown: CancellationToken) {
    const REAP_EVERY: Duration = Duration::from_secs(15);
    loop {
        match store::reap(&state.db, chrono::Duration::days(KEEP_FINISHED_JOBS_DAYS)).await {
            Ok((requeued, deleted)) if requeued + deleted > 0 => {
                tracing::info!(requeued, deleted, "job reaper");
                if requeued > 0 {
                    state.wakeup.job_enqueued();
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "job reaper failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(REAP_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn worker_loop(state: AppState, worker: String, shutdown: CancellationToken) {
    let queues = queues();
    let lease = Duration::from_secs(state.settings.queue_lease_seconds.max(10));
    let poll = Duration::from_millis(state.settings.queue_poll_interval_ms.max(10));
    while !shutdown.is_cancelled() {
        match store::claim(&state.db, &worker, &queues, lease).await {
            Ok(Some(job)) => {
                if shutdown.is_cancelled() {
                    let _ = store::release(&state.db, job.id, &worker).await;
                    break;
                }
                run_job(&state, &worker, job, lease).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = state.wakeup.wait() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "job claim failed; backing off");
                tokio::select! {
                    _ = tokio::time::sleep(poll * 4) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

async fn run_job(state: &AppState, worker: &str, job: store::JobRow, lease: Duration) {
    let Some(task) = tasks().iter().find(|t| t.name == job.task) else {
        let _ = store::fail(&state.db, &job, worker, &format!("unknown task '{}'", job.task), false).await;
        return;
    };
    // The handler runs in its own task (a panic is contained) and within the lease.
    let handle = tokio::spawn((task.handler)(state.clone(), job.payload.0.clone()));
    let outcome = match tokio::time::timeout(lease.saturating_sub(Duration::from_secs(5)), handle).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(JobError::Fatal(format!("handler panicked: {join_error}"))),
        Err(_) => Err(JobError::Retry("handler exceeded its lease".into())),
    };
    let recorded = match &outcome {
        Ok(()) => store::succeed(&state.db, job.id, worker).await,
        Err(JobError::Retry(msg)) => {
            tracing::warn!(task = job.task, job = %job.uuid, attempt = job.attempts, error = %msg, "job failed; will retry if attempts remain");
            store::fail(&state.db, &job, worker, msg, true).await
        }
        Err(JobError::Fatal(msg)) => {
            tracing::error!(task = job.task, job = %job.uuid, error = %msg, "job failed permanently");
            store::fail(&state.db, &job, worker, msg, false).await
        }
    };
    if let Err(e) = recorded {
        // The lease will expire and another worker will pick the job up again.
        tracing::warn!(error = %e, job = %job.uuid, "could not record job outcome");
    }
}
