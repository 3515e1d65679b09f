//! The queue against real databases: a SQLite file always, and a fresh PostgreSQL database when
//! `TEST_DATABASE_URL` is set. Test-only job types live here; the runner is driven with leases
//! of two seconds so the lease paths run in test time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::handoff::LINGER;
use super::periodic::enqueue_if_due;
use super::registry::Periodic;
use super::store::{self, Claim};
use super::*;
use crate::db::{Db, now};
use crate::with_db;

/// A database for one test, dropped (PostgreSQL) when the test ends.
struct TestDb {
    db: Db,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    async fn drop_database(self) {
        self.db.close().await;
        if let Some((admin_url, name)) = self.postgres {
            let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&admin).await;
            admin.close().await;
        }
    }
}

/// SQLite, plus PostgreSQL when `TEST_DATABASE_URL` is set.
async fn databases() -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/jobs.db", dir.path().display()), 4).await.unwrap();
    db.migrate().await.unwrap();
    let mut all = vec![TestDb { db, _dir: Some(dir), postgres: None }];
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("calseta_jobs_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
            admin.close().await;
            let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url);
            let db = Db::connect(&format!("{base}/{name}"), 8).await.unwrap();
            db.migrate().await.unwrap();
            all.push(TestDb { db, _dir: None, postgres: Some((admin_url, name)) });
        }
        _ => eprintln!("jobs unit tests: TEST_DATABASE_URL not set, PostgreSQL variant skipped"),
    }
    all
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await.unwrap())
}

async fn eventually(timeout: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    check().await
}

#[derive(Clone)]
struct TestCtx {
    db: Db,
    /// Runs of `Sleepy` that got past their sleep.
    woke: Arc<AtomicUsize>,
    /// The batches `Batched` ran, by their jobs' `n`.
    batches: Arc<std::sync::Mutex<Vec<Vec<u32>>>>,
    /// What a gated `Batched` batch waits for.
    gate: Arc<tokio::sync::Semaphore>,
}

impl TestCtx {
    fn new(db: Db) -> Self {
        TestCtx { db, woke: Arc::default(), batches: Arc::default(), gate: Arc::new(tokio::sync::Semaphore::new(0)) }
    }

    fn batches(&self) -> Vec<Vec<u32>> {
        self.batches.lock().unwrap().clone()
    }
}

impl From<TestCtx> for Db {
    fn from(ctx: TestCtx) -> Db {
        ctx.db
    }
}

/// A row the handlers write, to see whether a run's writes landed (a job row of a type no worker
/// runs).
#[derive(Serialize, Deserialize)]
struct Marker {
    by: String,
}

impl Job for Marker {
    const NAME: &'static str = "marker";
    const QUEUE: &'static str = "nowhere";
    type Context = TestCtx;
    async fn run(self, _: TestCtx, _: JobCtx) -> Result<(), JobError> {
        Ok(())
    }
}

/// Sleeps past the test lease (2 s) on its first attempt, then writes; later attempts write at once.
#[derive(Serialize, Deserialize)]
struct Sleepy {}

const SLEEPY_FIRST_RUN: Duration = Duration::from_secs(3);

impl Job for Sleepy {
    const NAME: &'static str = "sleepy";
    type Context = TestCtx;
    fn backoff(_: i32) -> Duration {
        Duration::from_millis(10)
    }
    async fn run(self, ctx: TestCtx, job: JobCtx) -> Result<(), JobError> {
        if job.attempt() == 1 {
            tokio::time::sleep(SLEEPY_FIRST_RUN).await;
            ctx.woke.fetch_add(1, Ordering::SeqCst);
        }
        let mut tx = ctx.db.begin().await?;
        enqueue(&mut tx, &Marker { by: format!("sleepy attempt {}", job.attempt()) }).await?;
        job.complete_in(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Succeeds without writing: the runner completes it.
#[derive(Serialize, Deserialize)]
struct NoWrites {}

impl Job for NoWrites {
    const NAME: &'static str = "no_writes";
    type Context = TestCtx;
    async fn run(self, _: TestCtx, _: JobCtx) -> Result<(), JobError> {
        Ok(())
    }
}

/// Writes a marker naming the claim it ran under (`by`: the worker, or this process's handoff).
#[derive(Serialize, Deserialize)]
struct WhoRan {}

impl Job for WhoRan {
    const NAME: &'static str = "who_ran";
    type Context = TestCtx;
    async fn run(self, ctx: TestCtx, job: JobCtx) -> Result<(), JobError> {
        let mut tx = ctx.db.begin().await?;
        enqueue(&mut tx, &Marker { by: job.worker().to_owned() }).await?;
        job.complete_in(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Records each batch it runs; a batch with a `gated` job waits for a permit of the test's gate.
#[derive(Serialize, Deserialize)]
struct Batched {
    n: u32,
    gated: bool,
}

impl Job for Batched {
    const NAME: &'static str = "batched";
    const BATCH_SIZE: usize = 8;
    type Context = TestCtx;
    async fn run(self, _: TestCtx, _: JobCtx) -> Result<(), JobError> {
        Ok(())
    }
    async fn run_batch(ctx: TestCtx, jobs: Vec<(Self, JobCtx)>) -> Vec<Result<(), JobError>> {
        ctx.batches.lock().unwrap().push(jobs.iter().map(|(job, _)| job.n).collect());
        if jobs.iter().any(|(job, _)| job.gated) {
            ctx.gate.acquire().await.unwrap().forget();
        }
        jobs.iter().map(|_| Ok(())).collect()
    }
}

fn test_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 2,
        // Long enough that a busy machine finishes a quick job well within it.
        lease: Duration::from_secs(2),
        poll: Duration::from_millis(20),
        reap_every: Duration::from_millis(100),
        hold: MAX_HOLD,
    }
}

fn start_workers(registry: Registry<TestCtx>, ctx: TestCtx) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let db = ctx.db.clone();
    let handle = tokio::spawn(run_workers(registry, ctx, db, test_config(), Wakeup::default(), shutdown.clone()));
    (shutdown, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_outliving_its_lease_is_cancelled_and_retried() {
    for test in databases().await {
        let db = test.db.clone();
        let ctx = TestCtx::new(db.clone());
        let mut tx = db.begin().await.unwrap();
        enqueue(&mut tx, &Sleepy {}).await.unwrap();
        enqueue(&mut tx, &NoWrites {}).await.unwrap();
        tx.commit().await.unwrap();
        let started = tokio::time::Instant::now();
        let (shutdown, workers) = start_workers(Registry::new().register::<Sleepy>().register::<NoWrites>(), ctx.clone());
        let done = eventually(Duration::from_secs(10), async || {
            count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'sleepy' AND status = 'succeeded'").await == 1
        })
        .await;
        assert!(done, "the job was retried after its first run was cancelled ({})", db.backend());
        assert_eq!(count(&db, "SELECT CAST(attempts AS BIGINT) FROM jobs WHERE task = 'sleepy'").await, 2);
        // The first run's future was dropped at the lease: it never woke (it would have by now),
        // never wrote.
        tokio::time::sleep_until(started + SLEEPY_FIRST_RUN + Duration::from_millis(500)).await;
        assert_eq!(ctx.woke.load(Ordering::SeqCst), 0, "the timed-out handler kept running");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'marker'").await, 1, "only the second attempt wrote");
        // A handler without writes of its own is completed by the runner.
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'no_writes' AND status = 'succeeded' AND attempts = 1").await, 1);
        shutdown.cancel();
        workers.await.unwrap();
        test.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_worker_cannot_commit_after_its_job_was_reclaimed() {
    let queues = ["default"];
    let tasks = ["no_writes"];
    for test in databases().await {
        let db = test.db.clone();
        let mut tx = db.begin().await.unwrap();
        enqueue(&mut tx, &NoWrites {}).await.unwrap();
        enqueue(&mut tx, &NoWrites {}).await.unwrap();
        tx.commit().await.unwrap();
        // Worker A claims both with a lease that is over at once; the reaper hands them back and
        // worker B claims the first one again (attempt 2).
        let stale = store::claim(&db, "worker-a", &queues, &tasks, Duration::ZERO, 10).await.unwrap();
        assert_eq!(stale.len(), 2);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(store::requeue_expired(&db).await.unwrap(), 2);
        let fresh = store::claim(&db, "worker-b", &queues, &tasks, Duration::from_secs(60), 1).await.unwrap();
        assert_eq!((fresh.len(), fresh[0].id, fresh[0].attempts), (1, stale[0].id, 2));

        let a = |row: &store::JobRow| JobCtx::new(row.id, row.uuid, row.attempts, 3, "worker-a".into());
        // A's write and completion in one transaction: refused, and the transaction is dropped.
        let mut tx = db.begin().await.unwrap();
        enqueue(&mut tx, &Marker { by: "stale a".into() }).await.unwrap();
        assert!(matches!(a(&stale[0]).complete_in(&mut tx).await, Err(JobError::LeaseLost)));
        drop(tx);
        // Even A's other job, still unclaimed by anyone, cannot be completed by A: A no longer
        // holds it (the reaper released it).
        let mut tx = db.begin().await.unwrap();
        assert!(matches!(a(&stale[1]).complete_in(&mut tx).await, Err(JobError::LeaseLost)));
        drop(tx);
        // A batch completion with one lost job fails as a whole.
        let b = JobCtx::new(fresh[0].id, fresh[0].uuid, 2, 3, "worker-b".into());
        let mut tx = db.begin().await.unwrap();
        assert!(matches!(complete_all_in(&mut tx, &[b.clone(), a(&stale[1])]).await, Err(JobError::LeaseLost)));
        drop(tx);
        // Same worker, wrong attempt: refused too.
        let b_old_attempt = JobCtx::new(fresh[0].id, fresh[0].uuid, 1, 3, "worker-b".into());
        let mut tx = db.begin().await.unwrap();
        assert!(matches!(b_old_attempt.complete_in(&mut tx).await, Err(JobError::LeaseLost)));
        drop(tx);
        // A's failure report changes nothing either.
        store::fail(&db, Claim { id: stale[0].id, attempt: 1, worker: "worker-a" }, Some(3), "late", store::AfterFailure::GiveUp)
            .await
            .unwrap();
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'marker'").await, 0, "the stale write never landed");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE status = 'failed'").await, 0);

        // The current holder commits.
        let mut tx = db.begin().await.unwrap();
        enqueue(&mut tx, &Marker { by: "b".into() }).await.unwrap();
        b.complete_in(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'marker'").await, 1);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'no_writes' AND status = 'succeeded' AND attempts = 2").await, 1);
        test.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_jobs_wait_for_run_at_and_retries_are_delayed_jobs() {
    #[derive(Serialize, Deserialize)]
    struct FailsOnce {}
    impl Job for FailsOnce {
        const NAME: &'static str = "fails_once";
        type Context = TestCtx;
        fn backoff(_: i32) -> Duration {
            Duration::from_millis(700)
        }
        async fn run(self, _: TestCtx, job: JobCtx) -> Result<(), JobError> {
            if job.attempt() == 1 { Err(JobError::Retry("first try fails".into())) } else { Ok(()) }
        }
    }
    for test in databases().await {
        let db = test.db.clone();
        let ctx = TestCtx::new(db.clone());
        let mut tx = db.begin().await.unwrap();
        enqueue_at(&mut tx, &NoWrites {}, now() + chrono::Duration::milliseconds(800)).await.unwrap();
        enqueue(&mut tx, &FailsOnce {}).await.unwrap();
        tx.commit().await.unwrap();
        let started = tokio::time::Instant::now();
        let (shutdown, workers) = start_workers(Registry::new().register::<NoWrites>().register::<FailsOnce>(), ctx);
        // The failed attempt is back in the queue with a later run_at, not retried in place.
        assert!(
            eventually(Duration::from_secs(5), async || {
                count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'fails_once' AND status = 'todo' AND attempts = 1 AND last_error = 'first try fails'").await == 1
            })
            .await
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'no_writes' AND status = 'todo'").await, 1, "not due yet");
        assert!(
            eventually(Duration::from_secs(5), async || count(&db, "SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'").await == 2).await
        );
        assert!(started.elapsed() >= Duration::from_millis(600), "ran no earlier than run_at / the backoff");
        assert_eq!(count(&db, "SELECT CAST(attempts AS BIGINT) FROM jobs WHERE task = 'fails_once'").await, 2);
        shutdown.cancel();
        workers.await.unwrap();
        test.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_out_of_attempts_after_a_lost_lease_is_failed_without_running() {
    for test in databases().await {
        let db = test.db.clone();
        let ctx = TestCtx::new(db.clone());
        let mut tx = db.begin().await.unwrap();
        enqueue(&mut tx, &Sleepy {}).await.unwrap();
        tx.commit().await.unwrap();
        // Its third (last) attempt's worker died: the lease expired and the reaper requeued it.
        with_db!(&db, p => sqlx::query("UPDATE jobs SET attempts = 3").execute(p).await.map(|_| ()).unwrap());
        let (shutdown, workers) = start_workers(Registry::new().register::<Sleepy>(), ctx.clone());
        assert!(eventually(Duration::from_secs(5), async || count(&db, "SELECT COUNT(*) FROM jobs WHERE status = 'failed'").await == 1).await);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'marker'").await, 0, "it did not run");
        shutdown.cancel();
        workers.await.unwrap();
        test.drop_database().await;
    }
}

/// `count` `WhoRan` jobs enqueued with `enqueue_many_here` in a committed transaction, then
/// handed over.
async fn enqueue_here(db: &Db, wakeup: &Wakeup, count: usize) {
    let jobs: Vec<WhoRan> = (0..count).map(|_| WhoRan {}).collect();
    commit_here(db, wakeup, &jobs).await;
}

/// `jobs` enqueued with `enqueue_many_here` in a committed transaction, then handed over.
async fn commit_here<J: Job>(db: &Db, wakeup: &Wakeup, jobs: &[J]) {
    let mut tx = db.begin().await.unwrap();
    let enqueued = enqueue_many_here(&mut tx, wakeup, jobs).await.unwrap();
    tx.commit().await.unwrap();
    enqueued.hand_over(db, wakeup).await;
}

const BY_HANDOFF: &str = "SELECT COUNT(*) FROM jobs WHERE task = 'marker' AND CAST(payload AS TEXT) LIKE '%:handoff:%'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_enqueued_here_go_to_this_process_s_workers_up_to_their_room() {
    for test in databases().await {
        let db = test.db.clone();
        let ctx = TestCtx::new(db.clone());
        let wakeup = Wakeup::default();
        // No workers in this process (an API-only server): the job queues as usual.
        enqueue_here(&db, &wakeup, 1).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE status = 'todo' AND attempts = 0 AND locked_by IS NULL").await, 1);

        // Two workers, batches of one: room for two jobs.
        let shutdown = CancellationToken::new();
        let registry = Registry::new().register::<WhoRan>();
        let workers = tokio::spawn(run_workers(registry, ctx, db.clone(), test_config(), wakeup.clone(), shutdown.clone()));
        assert!(eventually(Duration::from_secs(5), async || wakeup.handoff.is_open()).await);
        enqueue_here(&db, &wakeup, 3).await;
        assert!(
            eventually(Duration::from_secs(5), async || {
                count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'who_ran' AND status = 'succeeded' AND attempts = 1").await == 4
            })
            .await,
            "{}",
            db.backend()
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'marker'").await, 4);
        assert_eq!(count(&db, BY_HANDOFF).await, 2, "two ran as handed over, the others were claimed from the table");
        shutdown.cancel();
        workers.await.unwrap();
        test.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_batch_of_handed_jobs_waits_for_the_running_one_and_runs_with_the_jobs_behind_it() {
    for test in databases().await {
        let db = test.db.clone();
        let ctx = TestCtx::new(db.clone());
        let wakeup = Wakeup::default();
        let shutdown = CancellationToken::new();
        // A hold far longer than the test: only the running batch's end can release the held jobs.
        let config = WorkerConfig { hold: Duration::from_secs(60), lease: Duration::from_secs(120), ..test_config() };
        let registry = Registry::new().register::<Batched>();
        let workers = tokio::spawn(run_workers(registry, ctx.clone(), db.clone(), config, wakeup.clone(), shutdown.clone()));
        assert!(eventually(Duration::from_secs(5), async || wakeup.handoff.is_open()).await);

        commit_here(&db, &wakeup, &[Batched { n: 1, gated: true }]).await;
        assert!(eventually(Duration::from_secs(5), async || ctx.batches().len() == 1).await, "{}", db.backend());
        // Two commits while [1] runs, further apart than the linger, with a worker free: they
        // wait for [1], and then run together.
        commit_here(&db, &wakeup, &[Batched { n: 2, gated: false }]).await;
        tokio::time::sleep(LINGER * 4).await;
        commit_here(&db, &wakeup, &[Batched { n: 3, gated: false }]).await;
        tokio::time::sleep(LINGER * 4).await;
        assert_eq!(ctx.batches(), vec![vec![1]], "{}: held while a batch of their task runs", db.backend());
        ctx.gate.add_permits(1);
        assert!(eventually(Duration::from_secs(5), async || ctx.batches().len() == 2).await, "{}", db.backend());
        assert_eq!(ctx.batches()[1], vec![2, 3]);

        // Nothing of its task runs: a lone job goes after the linger, not the hold.
        commit_here(&db, &wakeup, &[Batched { n: 4, gated: false }]).await;
        assert!(eventually(Duration::from_secs(5), async || ctx.batches().len() == 3).await, "{}", db.backend());
        assert_eq!(ctx.batches()[2], vec![4]);
        assert!(
            eventually(Duration::from_secs(5), async || count(&db, "SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'").await == 4).await,
            "{}",
            db.backend()
        );
        shutdown.cancel();
        workers.await.unwrap();
        test.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_jobs_are_released_at_shutdown_and_requeued_when_their_process_died() {
    let handed_to = |worker: &str| {
        let wakeup = Wakeup::default();
        let config = WorkerConfig { lease: Duration::from_millis(300), concurrency: 4, ..test_config() };
        wakeup.handoff.open(worker.into(), &config, std::collections::HashMap::from([(WhoRan::NAME, 1)]));
        wakeup
    };
    for test in databases().await {
        let db = test.db.clone();
        let ctx = TestCtx::new(db.clone());
        // Handed over, then the workers stop before taking them: released, attempt restored.
        let wakeup = handed_to("host:1:handoff:a");
        enqueue_here(&db, &wakeup, 2).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE status = 'doing' AND attempts = 1 AND locked_by = 'host:1:handoff:a'").await, 2);
        wakeup.handoff.close(&db).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE status = 'todo' AND attempts = 0 AND locked_by IS NULL").await, 2);

        // Committed while the workers were stopping, handed over after: released at once.
        let wakeup = handed_to("host:1:handoff:b");
        let mut tx = db.begin().await.unwrap();
        let enqueued = enqueue_many_here(&mut tx, &wakeup, &[WhoRan {}]).await.unwrap();
        tx.commit().await.unwrap();
        wakeup.handoff.close(&db).await;
        enqueued.hand_over(&db, &wakeup).await;
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE status = 'todo' AND attempts = 0").await, 3);

        // A transaction that does not commit leaves nothing and gives its room back.
        let wakeup = handed_to("host:1:handoff:c");
        let mut tx = db.begin().await.unwrap();
        let enqueued = enqueue_many_here(&mut tx, &wakeup, &[WhoRan {}, WhoRan {}, WhoRan {}, WhoRan {}]).await.unwrap();
        drop(tx);
        drop(enqueued);
        assert_eq!(wakeup.handoff.reserve(WhoRan::NAME, 10).map(|r| r.count()), Some(4));

        // The process died holding one: its lease expires, the reaper requeues it, and another
        // process's workers run it (attempt 2).
        let dead = handed_to("host:2:handoff:d");
        enqueue_here(&db, &dead, 1).await;
        drop(dead);
        let (shutdown, workers) = start_workers(Registry::new().register::<WhoRan>(), ctx);
        assert!(
            eventually(Duration::from_secs(5), async || {
                count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'who_ran' AND status = 'succeeded'").await == 4
            })
            .await,
            "{}",
            db.backend()
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'who_ran' AND attempts = 2").await, 1);
        assert_eq!(count(&db, BY_HANDOFF).await, 0);
        shutdown.cancel();
        workers.await.unwrap();
        test.drop_database().await;
    }
}

fn schedule(every: Duration) -> Periodic {
    Periodic { name: PruneFinishedJobs::NAME, queue: DEFAULT_QUEUE, every, payload: || serde_json::json!({}), max_attempts: 3 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_period_is_enqueued_once_by_competing_schedulers() {
    for test in databases().await {
        let db = test.db.clone();
        // Two schedulers race for every instant (on PostgreSQL on two connections, so they
        // really run at once; the two-process version is tests/api/jobs.rs).
        let every = Duration::from_secs(60);
        let start = now();
        let mut enqueued = 0;
        for offset_seconds in [0, 1, 59, 60, 61, 119, 120, 330] {
            let at = start + chrono::Duration::seconds(offset_seconds);
            let schedule = schedule(every);
            let (first, second) = tokio::join!(enqueue_if_due(&db, &schedule, at), enqueue_if_due(&db, &schedule, at));
            let wins = [first.unwrap(), second.unwrap()].into_iter().flatten().count();
            assert!(wins <= 1, "two schedulers won the same period at +{offset_seconds}s");
            enqueued += wins;
        }
        // The schedule appeared at +0, so its periods are due at +60, +120 and then +180, taken at
        // +330 (+240 and +300 were missed while nobody looked, and are not replayed).
        assert_eq!(enqueued, 3, "{}", db.backend());
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'prune_finished_jobs'").await, 3);
        assert_eq!(count(&db, "SELECT COUNT(DISTINCT dedupe_key) FROM jobs WHERE task = 'prune_finished_jobs'").await, 3);
        // The next is due at +360: not before.
        assert!(enqueue_if_due(&db, &schedule(every), start + chrono::Duration::seconds(359)).await.unwrap().is_none());
        assert!(enqueue_if_due(&db, &schedule(every), start + chrono::Duration::seconds(360)).await.unwrap().is_some());
        test.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_finished_jobs_deletes_only_old_finished_jobs() {
    for test in databases().await {
        let db = test.db.clone();
        let ctx = TestCtx::new(db.clone());
        let mut tx = db.begin().await.unwrap();
        for _ in 0..4 {
            enqueue(&mut tx, &Marker { by: "history".into() }).await.unwrap();
        }
        tx.commit().await.unwrap();
        let old = now() - chrono::Duration::days(KEEP_FINISHED_JOBS_DAYS + 1);
        let recent = now() - chrono::Duration::days(KEEP_FINISHED_JOBS_DAYS - 1);
        with_db!(&db, p => {
            let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY id").fetch_all(p).await.unwrap();
            for (id, status, at) in [(ids[0], "succeeded", old), (ids[1], "failed", old), (ids[2], "succeeded", recent)] {
                sqlx::query("UPDATE jobs SET status = $1, updated_at = $2 WHERE id = $3").bind(status).bind(at).bind(id).execute(p).await.unwrap();
            }
            // ids[3] stays todo: an old unfinished job is never pruned.
            sqlx::query("UPDATE jobs SET updated_at = $1 WHERE id = $2").bind(old).bind(ids[3]).execute(p).await.unwrap();
        });
        // Registered as the app does (its first period ends in an hour), and enqueued now.
        let registry = Registry::new().register_periodic::<PruneFinishedJobs>(Duration::from_secs(3600));
        let mut tx = db.begin().await.unwrap();
        enqueue(&mut tx, &PruneFinishedJobs::default()).await.unwrap();
        tx.commit().await.unwrap();
        let (shutdown, workers) = start_workers(registry, ctx);
        assert!(
            eventually(Duration::from_secs(5), async || {
                count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'prune_finished_jobs' AND status = 'succeeded'").await == 1
            })
            .await
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'marker'").await, 2, "the recent and the unfinished job remain");
        assert!(eventually(Duration::from_secs(2), async || count(&db, "SELECT COUNT(*) FROM periodic_jobs WHERE name = 'prune_finished_jobs'").await == 1).await);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM jobs WHERE task = 'prune_finished_jobs'").await, 1, "the schedule waits a period");
        shutdown.cancel();
        workers.await.unwrap();
        test.drop_database().await;
    }
}

#[tokio::test]
async fn payloads_must_be_objects() {
    #[derive(Serialize, Deserialize)]
    struct Unit;
    impl Job for Unit {
        const NAME: &'static str = "unit";
        type Context = ();
        async fn run(self, _: (), _: JobCtx) -> Result<(), JobError> {
            Ok(())
        }
    }
    assert!(super::new_job(&Unit, now()).is_err());
    assert!(super::new_job(&NoWrites {}, now()).is_ok());
}
