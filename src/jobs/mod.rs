//! The durable job queue and its workers. Tasks are named as in Calseta's task table; each has
//! a queue, an attempt budget and a backoff. Workers run in the `serve` process (role `worker`),
//! claim jobs from the database, and drain cleanly on shutdown: a job that was claimed but not
//! started is released, one that is running is allowed to finish.

pub mod store;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
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

/// A batch of one task's jobs, claimed together by `worker`.
pub struct Claimed {
    pub worker: String,
    pub jobs: Vec<store::JobRow>,
}

/// What became of one job of a batch: `Ok` when the handler marked it succeeded in the
/// transaction that committed its work (`store::succeed_in`), else the error for the runner to
/// record (another attempt after the backoff, or failed).
pub type Outcome = (i64, Result<(), JobError>);

/// Runs a batch of its task's jobs and reports every job's outcome.
pub type Handler = fn(AppState, Claimed) -> BoxFuture<'static, Vec<Outcome>>;

pub struct Task {
    pub name: &'static str,
    pub queue: &'static str,
    pub handler: Handler,
}

/// Every task the workers know. A new task is one entry here plus its handler.
pub fn tasks() -> &'static [Task] {
    static TASKS: &[Task] = &[
        Task {
            name: ENRICH_ALERT,
            queue: "enrichment",
            handler: |state, claimed| Box::pin(crate::ingest::pipeline::enrich_alerts(state, claimed)),
        },
        Task { name: crate::agents::MATCH_TASK, queue: crate::agents::DISPATCH_QUEUE, handler: crate::agents::dispatch::run_claimed },
        Task { name: crate::agents::SINGLE_TASK, queue: crate::agents::DISPATCH_QUEUE, handler: crate::agents::dispatch::run_claimed },
        Task { name: crate::agents::DELIVER_TASK, queue: crate::agents::DISPATCH_QUEUE, handler: crate::agents::dispatch::run_claimed },
    ];
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

/// Jobs a worker claims at once: their writes share transactions (the claim, then the work and
/// the success marks), which is what lets the queue keep up with group-committed ingest.
const CLAIM_BATCH: usize = 64;

async fn worker_loop(state: AppState, worker: String, shutdown: CancellationToken) {
    let queues = queues();
    let lease = Duration::from_secs(state.settings.queue_lease_seconds.max(10));
    let poll = Duration::from_millis(state.settings.queue_poll_interval_ms.max(10));
    while !shutdown.is_cancelled() {
        match store::claim(&state.db, &worker, &queues, lease, CLAIM_BATCH).await {
            Ok(jobs) if !jobs.is_empty() => {
                if shutdown.is_cancelled() {
                    let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
                    let _ = store::release(&state.db, &ids, &worker).await;
                    break;
                }
                run_jobs(&state, &worker, jobs, lease).await;
            }
            Ok(_) => {
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

/// Runs claimed jobs, one handler call per task, and records the failures.
async fn run_jobs(state: &AppState, worker: &str, jobs: Vec<store::JobRow>, lease: Duration) {
    let mut by_task: std::collections::BTreeMap<String, Vec<store::JobRow>> = Default::default();
    for job in jobs {
        by_task.entry(job.task.clone()).or_default().push(job);
    }
    for (task_name, jobs) in by_task {
        let Some(task) = tasks().iter().find(|t| t.name == task_name) else {
            for job in &jobs {
                let _ = store::fail(&state.db, job, worker, &format!("unknown task '{task_name}'"), false).await;
            }
            continue;
        };
        let rows: std::collections::HashMap<i64, store::JobRow> = jobs.iter().map(|job| (job.id, job.clone())).collect();
        // The handler runs in its own task (a panic is contained) and within the lease.
        let handle = tokio::spawn((task.handler)(state.clone(), Claimed { worker: worker.to_owned(), jobs }));
        let outcomes: Vec<Outcome> = match tokio::time::timeout(lease.saturating_sub(Duration::from_secs(5)), handle).await {
            Ok(Ok(outcomes)) => outcomes,
            Ok(Err(join_error)) => {
                rows.keys().map(|id| (*id, Err(JobError::Fatal(format!("handler panicked: {join_error}"))))).collect()
            }
            Err(_) => rows.keys().map(|id| (*id, Err(JobError::Retry("handler exceeded its lease".into())))).collect(),
        };
        for (job_id, outcome) in outcomes {
            let (Err(error), Some(job)) = (outcome, rows.get(&job_id)) else { continue };
            let recorded = match &error {
                JobError::Retry(msg) => {
                    tracing::warn!(task = job.task, job = %job.uuid, attempt = job.attempts, error = %msg, "job failed; will retry if attempts remain");
                    store::fail(&state.db, job, worker, msg, true).await
                }
                JobError::Fatal(msg) => {
                    tracing::error!(task = job.task, job = %job.uuid, error = %msg, "job failed permanently");
                    store::fail(&state.db, job, worker, msg, false).await
                }
            };
            if let Err(e) = recorded {
                // The lease will expire and another worker will pick the job up again.
                tracing::warn!(error = %e, job = %job.uuid, "could not record job outcome");
            }
        }
    }
}
