//! The workers: claim loops, the lease watchdog, failure recording, the lease reaper and the
//! periodic scheduler, all stopped by one shutdown token. A job that was claimed but not started
//! at shutdown is released; one that is running is allowed to finish (within its lease).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::handoff::{Handed, Handoff, Take, Taken};
use super::registry::{Entry, Registry};
use super::store::{self, AfterFailure, Claim, JobRow};
use super::{JobCtx, JobError};
use crate::db::{Db, now};

/// How long a woken worker waits for more jobs before it claims from the table (see
/// `Runner::gather`): at most this much added to a job's start, so that under load a claim takes
/// the jobs of several commits. (Handed jobs wait by the handoff's own rule, `Handoff::take`.)
const CLAIM_LINGER: Duration = super::handoff::LINGER;

/// How producers in this process reach its workers: a wake-up when a job is enqueued here, so
/// latency is not bound by the poll interval (workers in other processes find jobs by polling),
/// and the handoff of jobs inserted already claimed by these workers (`handoff`).
///
/// A worker claims from the table only when that may find something: jobs were enqueued in it
/// here (`job_enqueued`), the process's poll interval passed (for other processes' jobs, retries
/// coming due, requeued ones), or its last claim found jobs. Handed jobs wake a worker without a
/// claim (`handed`). Why: every worker used to claim from each claim class on every pass and on
/// its own poll timer; on PostgreSQL each empty claim is a transaction: dropping them halved the
/// transactions of a 20 s run of 24,000 alerts (~12,500 → ~6,000), and an idle server's from 149
/// to 25 a second.
#[derive(Default, Clone)]
pub struct Wakeup {
    notify: Arc<Notify>,
    /// The table may hold jobs for this process's workers: the next pass claims.
    table_due: Arc<AtomicBool>,
    pub(crate) handoff: Arc<Handoff>,
}

impl Wakeup {
    /// Jobs were enqueued in the table (committed): a worker claims them.
    pub fn job_enqueued(&self) {
        self.table_due.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Jobs were handed over, or a handed batch ended: the worker waiting on held batches
    /// re-checks them; without one, an idle worker wakes to take them.
    pub(crate) fn handed(&self) {
        if !self.handoff.signal_holder() {
            self.notify.notify_one();
        }
    }

    async fn wait(&self) {
        self.notify.notified().await
    }

    fn take_table_due(&self) -> bool {
        self.table_due.swap(false, Ordering::AcqRel)
    }
}

/// How the workers of one process run.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Worker loops (`QUEUE_CONCURRENCY`).
    pub concurrency: usize,
    /// How long a claim reserves its jobs (`QUEUE_LEASE_SECONDS`). A handler is cancelled
    /// shortly before it ends, so it never runs while another worker may hold the job.
    pub lease: Duration,
    /// How often one of the workers claims from the table unannounced: how jobs enqueued by
    /// other processes, and retries coming due, are found.
    pub poll: Duration,
    /// How often expired leases are requeued.
    pub reap_every: Duration,
    /// How long at most a partial batch of handed jobs waits for a running batch of its task
    /// (`handoff::MAX_HOLD`).
    pub hold: Duration,
}

/// The time a claimed batch may run: the lease minus a safety margin for recording the outcome
/// (a fifth of the lease, at most 5 s).
pub(crate) fn run_budget(lease: Duration) -> Duration {
    lease.saturating_sub((lease / 5).min(Duration::from_secs(5)))
}

/// Runs the worker loops, the reaper and the periodic scheduler until `shutdown` fires, then
/// waits for running jobs. The process's handoff (`wakeup`) is open while they run; at the end
/// the handed jobs no worker took are released.
pub async fn run_workers<Ctx: Clone + Send + Sync + 'static>(
    registry: Registry<Ctx>,
    ctx: Ctx,
    db: Db,
    config: WorkerConfig,
    wakeup: Wakeup,
    shutdown: CancellationToken,
) {
    let registry = Arc::new(registry);
    let batch_sizes = registry.names().into_iter().filter_map(|name| registry.get(name).map(|entry| (entry.name, entry.batch_size))).collect();
    wakeup.handoff.open(worker_id("handoff").into(), &config, batch_sizes);
    // SQLite: one claim at a time in this process. Workers woken together all saw jobs in their
    // read probe and queued on the write gate, where the first took every job and the rest
    // committed empty claims (measured: half of all claims under sustained load, each a write
    // transaction the ingest writer waited behind). Taking turns, a later worker's probe sees the
    // first one's claim. PostgreSQL claims in parallel (`SKIP LOCKED`).
    let claim_turn = matches!(db, Db::Sqlite(_)).then(|| tokio::sync::Mutex::new(()));
    let runner = Arc::new(Runner {
        registry: registry.clone(),
        ctx,
        db: db.clone(),
        config: config.clone(),
        wakeup: wakeup.clone(),
        claim_turn,
        gathering: AtomicBool::new(false),
        backlog: AtomicBool::new(false),
    });
    let mut loops: Vec<_> = (0..config.concurrency.max(1))
        .map(|i| tokio::spawn(runner.clone().worker_loop(worker_id(i), shutdown.clone())))
        .collect();
    loops.push(tokio::spawn(reaper(db.clone(), config.reap_every, wakeup.clone(), shutdown.clone())));
    loops.push(tokio::spawn(poller(config.poll, wakeup.clone(), shutdown.clone())));
    let scheduler_wakeup = wakeup.clone();
    loops.push(tokio::spawn(super::periodic::scheduler(db, registry.periodic().to_vec(), shutdown.clone(), move || {
        scheduler_wakeup.job_enqueued()
    })));
    tracing::info!(concurrency = config.concurrency, queues = ?registry.queues(), tasks = ?registry.names(), "workers started");
    for handle in loops {
        let _ = handle.await;
    }
    runner.wakeup.handoff.close(&runner.db).await;
    tracing::info!("workers drained");
}

/// `host:pid:label:random`, where label is the worker loop's index (or `handoff`).
fn worker_id(label: impl std::fmt::Display) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "calseta".into());
    format!("{host}:{}:{label}:{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// Every `poll`, one worker claims from the table: how this process finds the jobs that nobody
/// here announced (other processes', retries coming due).
async fn poller(poll: Duration, wakeup: Wakeup, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => wakeup.job_enqueued(),
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Requeues jobs whose lease expired, every `every`. Several processes may run it at once.
async fn reaper(db: Db, every: Duration, wakeup: Wakeup, shutdown: CancellationToken) {
    loop {
        match store::requeue_expired(&db).await {
            Ok(0) => {}
            Ok(requeued) => {
                tracing::info!(requeued, "jobs with an expired lease requeued");
                wakeup.job_enqueued();
            }
            Err(e) => tracing::warn!(error = %e, "requeueing expired jobs failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// What one pass over the claim classes found.
enum TablePass {
    Empty,
    Claimed,
    /// Every claim that was tried failed.
    Failed,
    /// Shutdown came before a claimed batch ran (its jobs were released).
    Stopped,
}

pub(crate) struct Runner<Ctx> {
    registry: Arc<Registry<Ctx>>,
    ctx: Ctx,
    db: Db,
    config: WorkerConfig,
    wakeup: Wakeup,
    /// Serializes this process's claims on SQLite (see `run_workers`).
    claim_turn: Option<tokio::sync::Mutex<()>>,
    /// A woken worker is waiting for more jobs before it claims (see `gather`).
    gathering: AtomicBool,
    /// The last claim of a batching class came back full (see `gather`).
    backlog: AtomicBool,
}

impl<Ctx: Clone + Send + Sync + 'static> Runner<Ctx> {
    async fn worker_loop(self: Arc<Self>, worker: String, shutdown: CancellationToken) {
        let worker: Arc<str> = worker.into();
        let groups = self.registry.claim_groups();
        // This worker's last claim found jobs: claim again, more may be waiting.
        let mut claim_again = true;
        while !shutdown.is_cancelled() {
            let mut worked = false;
            // Jobs handed over by this process's producers first (already claimed), then the
            // table's, so that jobs of other processes and older ones still get their turn.
            if let Some(mut taken) = self.next_handed(&shutdown).await {
                if self.wakeup.handoff.waiting() {
                    // More wait (another task's, or a full batch more): another worker takes them.
                    self.wakeup.handed();
                }
                let handed = std::mem::take(&mut taken.jobs);
                let deadline = handed.iter().map(|h| h.deadline).min().unwrap_or_else(tokio::time::Instant::now);
                let jobs: Vec<JobRow> = handed.into_iter().map(|Handed { job, .. }| job).collect();
                if !self.run_taken(&taken.owner, jobs, deadline, &shutdown).await {
                    return;
                }
                // A batch of this task no longer runs: a held one may go now.
                drop(taken);
                if self.wakeup.handoff.waiting() {
                    self.wakeup.handed();
                }
                worked = true;
            }
            if (std::mem::take(&mut claim_again) | self.wakeup.take_table_due()) && self.gather(&shutdown).await {
                match self.claim_from_table(&worker, &groups, &shutdown).await {
                    TablePass::Stopped => return,
                    TablePass::Claimed => {
                        claim_again = true;
                        worked = true;
                    }
                    TablePass::Empty => {}
                    TablePass::Failed => {
                        tokio::select! {
                            _ = tokio::time::sleep(self.config.poll * 4) => {}
                            _ = shutdown.cancelled() => {}
                        }
                        claim_again = true;
                    }
                }
            }
            if !worked {
                self.idle(&shutdown).await;
            }
        }
    }

    /// One claim from each claim class in turn (batching job types first), running what it finds.
    /// Only registered task names are claimed: a job of a type this binary does not know (a newer
    /// release's, during a rolling deploy) waits for a worker that does.
    async fn claim_from_table(&self, worker: &Arc<str>, groups: &[super::registry::ClaimGroup], shutdown: &CancellationToken) -> TablePass {
        let mut pass = TablePass::Empty;
        // Whether a batch came back full: more are waiting, claim again without lingering.
        let mut backlog = false;
        for group in groups {
            let turn = match &self.claim_turn {
                Some(turn) => Some(turn.lock().await),
                None => None,
            };
            let deadline = tokio::time::Instant::now() + run_budget(self.config.lease);
            let claimed = store::claim(&self.db, worker, &[group.queue], &group.tasks, self.config.lease, group.batch_size).await;
            drop(turn);
            match claimed {
                Ok(jobs) if jobs.is_empty() => {}
                Ok(jobs) => {
                    if jobs.len() >= group.batch_size {
                        backlog |= group.batch_size > 1;
                        // More may be waiting, and producers wake one worker per commit.
                        self.wakeup.job_enqueued();
                    }
                    if !self.run_taken(worker, jobs, deadline, shutdown).await {
                        return TablePass::Stopped;
                    }
                    pass = TablePass::Claimed;
                }
                Err(e) => {
                    tracing::warn!(error = %e, queue = group.queue, "job claim failed; backing off");
                    if matches!(pass, TablePass::Empty) {
                        pass = TablePass::Failed;
                    }
                }
            }
        }
        self.backlog.store(backlog, Ordering::Relaxed);
        pass
    }

    /// Runs a batch taken under `owner`'s claim (handed over or claimed), unless shutdown came
    /// first: then the jobs are given back and this returns false.
    async fn run_taken(&self, owner: &Arc<str>, jobs: Vec<JobRow>, deadline: tokio::time::Instant, shutdown: &CancellationToken) -> bool {
        if shutdown.is_cancelled() {
            let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
            let _ = store::release(&self.db, &ids, owner).await;
            return false;
        }
        self.run_claimed(owner, jobs, deadline).await;
        true
    }

    /// A batch of handed jobs, if one is ready. When only held batches are queued, one worker
    /// waits for them (until one is ready, more jobs are handed over or a batch ends); the others
    /// go on to the table.
    async fn next_handed(&self, shutdown: &CancellationToken) -> Option<Taken> {
        let handoff = &self.wakeup.handoff;
        match handoff.take(tokio::time::Instant::now()) {
            Take::Batch(taken) => return Some(taken),
            Take::Empty => return None,
            Take::Hold(_) => {}
        }
        let _holder = handoff.hold()?;
        loop {
            let progressed = handoff.progressed();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            let until = match handoff.take(tokio::time::Instant::now()) {
                Take::Batch(taken) => return Some(taken),
                Take::Empty => return None,
                Take::Hold(until) => until,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = progressed => {}
                _ = shutdown.cancelled() => return None,
            }
        }
    }

    /// Until a wake-up or shutdown.
    async fn idle(&self, shutdown: &CancellationToken) {
        tokio::select! {
            _ = self.wakeup.wait() => {}
            _ = shutdown.cancelled() => {}
        }
    }

    /// Before a claim: waits `CLAIM_LINGER` so the jobs of the commits that follow join one
    /// claim, unless another worker is already gathering (then returns false: that worker's claim
    /// takes these jobs, and this one goes back to waiting) or the last claim came back full
    /// (a backlog: no reason to wait).
    ///
    /// Why: producers wake one idle worker per commit, and with idle workers to spare each claim
    /// took only the few jobs of one commit. On PostgreSQL that made enrichment batches of ~6
    /// alerts, each paying a claim, a transaction and a dozen statements. Gathering made them ~28
    /// (measured, the rest unchanged: 990 → 1,160 alerts/s sustained, database CPU 1.43 → 1.19 ms
    /// per alert). Fewer workers also make larger batches, but then enrichment falls behind.
    async fn gather(&self, shutdown: &CancellationToken) -> bool {
        if self.backlog.load(Ordering::Relaxed) {
            return true;
        }
        if self.gathering.swap(true, Ordering::AcqRel) {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(CLAIM_LINGER) => {}
            _ = shutdown.cancelled() => {}
        }
        // Cleared before the claim: a job committed after the claim's snapshot wakes a worker
        // that gathers again.
        self.gathering.store(false, Ordering::Release);
        true
    }

    /// Runs one claim's jobs (all of one claim class), one handler call per task, and records
    /// what did not succeed. Handlers still running at `deadline` (shortly before the claim's
    /// lease ends) are cancelled.
    pub(crate) async fn run_claimed(&self, worker: &Arc<str>, jobs: Vec<JobRow>, deadline: tokio::time::Instant) {
        let mut by_task: std::collections::BTreeMap<String, Vec<JobRow>> = Default::default();
        for job in jobs {
            by_task.entry(job.task.clone()).or_default().push(job);
        }
        for (task, jobs) in by_task {
            let Some(entry) = self.registry.get(&task) else {
                for job in &jobs {
                    self.record(worker, job, None, JobError::Fatal(format!("unknown task '{task}'")), None).await;
                }
                continue;
            };
            let mut runnable = Vec::with_capacity(jobs.len());
            for job in jobs {
                if job.attempts > entry.retry.max_attempts {
                    // Requeued after its lease expired on its last attempt: it gets no more.
                    let error = JobError::Fatal("out of attempts (its last attempt outlived its lease)".into());
                    self.record(worker, &job, Some(entry.retry.max_attempts), error, Some(entry)).await;
                } else {
                    runnable.push(job);
                }
            }
            if !runnable.is_empty() {
                self.run_batch(worker, entry, runnable, deadline).await;
            }
        }
    }

    async fn run_batch(&self, worker: &Arc<str>, entry: &Entry<Ctx>, jobs: Vec<JobRow>, deadline: tokio::time::Instant) {
        let contexts: Vec<JobCtx> =
            jobs.iter().map(|job| JobCtx::new(job.id, job.uuid, job.attempts, entry.retry.max_attempts, worker.clone())).collect();
        let input: Vec<(Value, JobCtx)> = jobs.iter().zip(&contexts).map(|(job, ctx)| (job.payload.0.clone(), ctx.clone())).collect();
        // The handler runs in its own task (a panic is contained) and is cancelled (aborted: its
        // future is dropped, so none of its open transactions commits) before the lease ends.
        let started = std::time::Instant::now();
        let span = crate::observability::otel::job_span(entry.name, entry.queue, jobs.iter().map(|job| &job.payload.0));
        let mut handle = tokio::spawn(tracing::Instrument::instrument((entry.run)(self.ctx.clone(), input), span));
        let outcomes: Vec<Result<(), JobError>> = match tokio::time::timeout_at(deadline, &mut handle).await {
            Ok(Ok(outcomes)) => outcomes,
            Ok(Err(join_error)) => jobs.iter().map(|_| Err(JobError::Fatal(format!("handler panicked: {join_error}")))).collect(),
            Err(_) => {
                handle.abort();
                let _ = handle.await;
                tracing::warn!(task = entry.name, jobs = jobs.len(), "job handler outlived its lease and was cancelled");
                jobs.iter().map(|_| Err(JobError::Retry("handler exceeded its lease and was cancelled".into()))).collect()
            }
        };
        for ((job, job_ctx), outcome) in jobs.iter().zip(&contexts).zip(outcomes) {
            crate::observability::job(&job.queue, entry.name, if outcome.is_ok() { "succeeded" } else { "failed" }, started.elapsed());
            match outcome {
                Ok(()) if job_ctx.is_completed() => {}
                // A handler without writes of its own: complete it here, under the same condition.
                Ok(()) => {
                    if let Err(e) = self.complete(job_ctx).await {
                        tracing::warn!(task = entry.name, job = %job.uuid, error = %e.message(), "could not record job success");
                    }
                }
                Err(error) => self.record(worker, job, Some(entry.retry.max_attempts), error, Some(entry)).await,
            }
        }
    }

    async fn complete(&self, job: &JobCtx) -> Result<(), JobError> {
        let mut tx = self.db.begin().await?;
        job.complete_in(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt: another one after the backoff while attempts remain, else failed.
    async fn record(&self, worker: &str, job: &JobRow, max_attempts: Option<i32>, error: JobError, entry: Option<&Entry<Ctx>>) {
        let claim = Claim { id: job.id, attempt: job.attempts, worker };
        let then = match (&error, entry) {
            (JobError::LeaseLost, _) => {
                tracing::warn!(task = job.task, job = %job.uuid, "job handed to another worker; this run's work was rolled back");
                return;
            }
            (JobError::Retry(msg), Some(entry)) if job.attempts < entry.retry.max_attempts => {
                let wait = entry.retry.backoff.delay(job.attempts);
                tracing::warn!(task = job.task, job = %job.uuid, attempt = job.attempts, retry_in = ?wait, error = %msg, "job failed; will retry");
                AfterFailure::RetryAt(now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1)))
            }
            (error, _) => {
                tracing::error!(task = job.task, job = %job.uuid, attempt = job.attempts, error = %error.message(), "job failed permanently");
                AfterFailure::GiveUp
            }
        };
        if let Err(e) = store::fail(&self.db, claim, max_attempts, &error.message(), then).await {
            // The lease will expire and the job will be claimed again.
            tracing::warn!(error = %e, job = %job.uuid, "could not record job outcome");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn runner() -> (Arc<Runner<()>>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/runner.db", dir.path().display()), 2).await.unwrap();
        let config = WorkerConfig {
            concurrency: 2,
            lease: Duration::from_secs(2),
            poll: Duration::from_millis(20),
            reap_every: Duration::from_millis(100),
            hold: crate::jobs::MAX_HOLD,
        };
        let runner = Runner {
            registry: Arc::new(Registry::new()),
            ctx: (),
            db,
            config,
            wakeup: Wakeup::default(),
            claim_turn: None,
            gathering: AtomicBool::new(false),
            backlog: AtomicBool::new(false),
        };
        (Arc::new(runner), dir)
    }

    #[tokio::test]
    async fn one_woken_worker_gathers_while_the_others_go_back_to_waiting() {
        let (runner, _dir) = runner().await;
        let shutdown = CancellationToken::new();
        let started = std::time::Instant::now();
        let first = tokio::spawn({
            let (runner, shutdown) = (runner.clone(), shutdown.clone());
            async move { runner.gather(&shutdown).await }
        });
        while !runner.gathering.load(Ordering::Acquire) {
            tokio::task::yield_now().await;
        }
        // A second worker woken meanwhile leaves the jobs to the first one's claim, at once.
        assert!(!runner.gather(&shutdown).await);
        assert!(started.elapsed() < CLAIM_LINGER);
        // The first claims after the linger, and the next worker may gather again.
        assert!(first.await.unwrap());
        assert!(started.elapsed() >= CLAIM_LINGER);
        assert!(!runner.gathering.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn a_backlog_is_claimed_without_lingering() {
        let (runner, _dir) = runner().await;
        let shutdown = CancellationToken::new();
        runner.backlog.store(true, Ordering::Relaxed);
        let started = std::time::Instant::now();
        assert!(runner.gather(&shutdown).await);
        assert!(runner.gather(&shutdown).await, "every worker claims while the claims come back full");
        assert!(started.elapsed() < CLAIM_LINGER);
    }
}
