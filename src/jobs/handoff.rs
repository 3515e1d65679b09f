//! Jobs handed straight to this process's workers: inserted already claimed by them, in the
//! transaction that creates them, so no claim transaction has to find them afterwards.
//!
//! Why: a claim is a write transaction of its own (on SQLite it takes the one write gate that
//! ingest and enrichment wait on), paid for every batch a worker runs, for jobs that the process
//! which enqueued them could have kept. A producer reserves room here, inserts that many of its
//! jobs as `doing` under this process's handoff claim (attempt 1, the usual lease) and, after its
//! commit, hands the rows over; a worker takes them before it claims from the table. The rest of
//! the jobs queue as usual.
//!
//! Nothing is lost: a handed job is a `doing` row with a lease like any claimed job. If this
//! process dies before running it, the lease expires and the reaper requeues it. At shutdown the
//! jobs no worker took are released (back to `todo`, attempt restored). Room is bounded (a full
//! batch per worker), so a handed job starts within about one batch's run, far inside its lease;
//! workers still claim from the table whenever jobs were announced there and once per poll
//! interval (`runner::Wakeup`), so the jobs of other processes and older ones are not starved by
//! a steady stream of handed jobs.
//!
//! When a handed batch runs (`take`): a full one at once; a partial one `LINGER` after its oldest
//! job was handed over, so the commits that follow join it — unless a batch of its task is still
//! running, then it waits for that batch to end (at most `MAX_HOLD`). Why: with fast providers a
//! batch runs in a few milliseconds and starting a new one every `LINGER` made many small ones,
//! each paying a transaction with a dozen statements (on SQLite, each behind the one write gate).
//! Waiting for the running batch lets the next one grow with the load (measured with the mock
//! providers on PostgreSQL: batches of 63 jobs instead of 32, its CPU per alert −10 to −25 %).
//! With slow providers batches still start every `MAX_HOLD`, side by side, so a job waits at
//! most that long behind a slow one.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::WorkerConfig;
use super::store::{self, JobRow};
use crate::db::{Db, now};

/// How long a partial batch waits for more jobs after its oldest was handed over, when no batch
/// of its task is running.
pub(crate) const LINGER: Duration = Duration::from_millis(20);

/// How long at most a partial batch waits for a running batch of its task to end.
pub const MAX_HOLD: Duration = Duration::from_millis(100);

/// This process's handoff: closed (nothing is reserved) unless workers run here.
#[derive(Default)]
pub(crate) struct Handoff {
    state: Mutex<State>,
    /// A worker waits for a held batch (`hold`): it, not an idle worker, is told of new jobs.
    holding: AtomicBool,
    /// Wakes that worker: jobs were handed over, or a handed batch ended (`Wakeup::handed`).
    progress: Notify,
}

#[derive(Default)]
struct State {
    open: Option<Open>,
    queued: VecDeque<Handed>,
    /// Rows reserved by producers whose transactions have not ended yet.
    reserved: usize,
    /// Handed batches running, by task.
    running: HashMap<String, usize>,
}

struct Open {
    /// The claim (`locked_by`) every handed job is inserted under.
    worker: Arc<str>,
    lease: Duration,
    /// Queued and reserved jobs together stay under this.
    capacity: usize,
    /// The tasks the workers run, with their batch sizes.
    batch_sizes: HashMap<&'static str, usize>,
    /// `MAX_HOLD`, unless a test says otherwise.
    max_hold: Duration,
}

/// A job handed over, when, and when its claim's run budget ends.
pub(crate) struct Handed {
    pub job: JobRow,
    pub deadline: Instant,
    handed_at: Instant,
}

/// What a worker finds in the handoff.
pub(crate) enum Take {
    /// Nothing handed over.
    Empty,
    /// Only partial batches that wait: take again at this instant, or on `Handoff::progressed`.
    Hold(Instant),
    Batch(Taken),
}

/// A batch taken from the handoff: the jobs of one task, and the claim they run under. It counts
/// as running until dropped.
pub(crate) struct Taken {
    pub owner: Arc<str>,
    pub jobs: Vec<Handed>,
    handoff: Arc<Handoff>,
    task: String,
}

impl Drop for Taken {
    fn drop(&mut self) {
        let mut state = self.handoff.lock();
        if let Some(running) = state.running.get_mut(&self.task) {
            *running = running.saturating_sub(1);
        }
    }
}

/// The one worker waiting for held batches; the role is free again when this is dropped.
pub(crate) struct Holder<'a>(&'a Handoff);

impl Drop for Holder<'_> {
    fn drop(&mut self) {
        self.0.holding.store(false, Ordering::Release);
    }
}

/// Room for `count` jobs of one task, taken for one producer transaction; given back when dropped
/// unless the jobs were handed over.
pub struct Reservation {
    handoff: Arc<Handoff>,
    count: usize,
    worker: Arc<str>,
    locked_until: DateTime<Utc>,
    deadline: Instant,
}

impl Reservation {
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The claim the reserved jobs are inserted under: `(locked_by, locked_until)`.
    pub(crate) fn claim(&self) -> (&str, DateTime<Utc>) {
        (&self.worker, self.locked_until)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.handoff.state.lock().unwrap_or_else(|e| e.into_inner()).reserved -= self.count;
    }
}

impl Handoff {
    /// Opens the handoff to the workers about to run with `config`; `batch_sizes` names the
    /// tasks they run. Room: a full batch per worker.
    pub(crate) fn open(&self, worker: Arc<str>, config: &WorkerConfig, batch_sizes: HashMap<&'static str, usize>) {
        let largest = batch_sizes.values().copied().max().unwrap_or(1);
        let capacity = config.concurrency.max(1) * largest;
        let mut state = self.lock();
        state.open = Some(Open { worker, lease: config.lease, capacity, batch_sizes, max_hold: config.hold });
    }

    /// Closes the handoff and releases the jobs no worker took (back to `todo`). Jobs handed over
    /// after this are released by `hand_over`.
    pub(crate) async fn close(&self, db: &Db) {
        let (worker, left): (Option<Arc<str>>, Vec<Handed>) = {
            let mut state = self.lock();
            (state.open.take().map(|open| open.worker), state.queued.drain(..).collect())
        };
        if let Some(worker) = worker {
            release(db, &worker, left.into_iter().map(|handed| handed.job.id).collect()).await;
        }
    }

    /// Room for up to `wanted` jobs of `task`: zero when no worker here runs it or the workers
    /// have enough waiting.
    pub(crate) fn reserve(self: &Arc<Self>, task: &str, wanted: usize) -> Option<Reservation> {
        let mut state = self.lock();
        let State { open, queued, reserved, .. } = &mut *state;
        let open = open.as_ref().filter(|open| open.batch_sizes.contains_key(task))?;
        let count = wanted.min(open.capacity.saturating_sub(queued.len() + *reserved));
        if count == 0 {
            return None;
        }
        *reserved += count;
        let lease = chrono::Duration::from_std(open.lease).unwrap_or(chrono::Duration::minutes(5));
        Some(Reservation {
            handoff: self.clone(),
            count,
            worker: open.worker.clone(),
            locked_until: now() + lease,
            deadline: Instant::now() + super::runner::run_budget(open.lease),
        })
    }

    /// Hands the reserved jobs, committed, to the workers. If the handoff closed meanwhile they
    /// are released instead. Returns whether any job was handed over.
    pub(crate) async fn hand_over(&self, db: &Db, reservation: Reservation, jobs: Vec<JobRow>) -> bool {
        let refused = {
            let mut state = self.lock();
            if state.open.as_ref().is_some_and(|open| *open.worker == *reservation.worker) {
                let handed_at = Instant::now();
                state.queued.extend(jobs.into_iter().map(|job| Handed { job, deadline: reservation.deadline, handed_at }));
                None
            } else {
                Some(jobs)
            }
        };
        match refused {
            None => true,
            Some(jobs) => {
                release(db, &reservation.worker, jobs.iter().map(|job| job.id).collect()).await;
                false
            }
        }
    }

    /// The first batch ready at `now`, oldest task first: a task's queued jobs in the order they
    /// were handed over, up to its batch size. A batch is ready when full, or once its oldest job
    /// waited `LINGER` (no batch of its task running) or `MAX_HOLD` (one running).
    pub(crate) fn take(self: &Arc<Self>, now: Instant) -> Take {
        let mut state = self.lock();
        let State { open, queued, running, .. } = &mut *state;
        let Some(open) = open.as_ref() else { return Take::Empty };
        let mut hold: Option<Instant> = None;
        let mut considered: Vec<&str> = Vec::new();
        let mut ready: Option<(String, usize)> = None;
        for oldest in queued.iter() {
            let task = oldest.job.task.as_str();
            if considered.contains(&task) {
                continue;
            }
            considered.push(task);
            let batch_size = open.batch_sizes.get(task).copied().unwrap_or(1);
            let waiting = queued.iter().filter(|handed| handed.job.task == task).take(batch_size).count();
            let busy = running.get(task).is_some_and(|&count| count > 0);
            let ready_at = oldest.handed_at + if busy { open.max_hold } else { LINGER };
            if waiting >= batch_size || now >= ready_at {
                ready = Some((task.to_owned(), batch_size));
                break;
            }
            hold = Some(hold.map_or(ready_at, |earliest| earliest.min(ready_at)));
        }
        let Some((task, batch_size)) = ready else {
            return hold.map_or(Take::Empty, Take::Hold);
        };
        let mut jobs = Vec::with_capacity(batch_size.min(queued.len()));
        let mut kept = VecDeque::with_capacity(queued.len());
        for handed in queued.drain(..) {
            if jobs.len() < batch_size && handed.job.task == task {
                jobs.push(handed);
            } else {
                kept.push_back(handed);
            }
        }
        *queued = kept;
        *running.entry(task.clone()).or_default() += 1;
        Take::Batch(Taken { owner: open.worker.clone(), jobs, handoff: self.clone(), task })
    }

    /// The holder's role, unless another worker has it.
    pub(crate) fn hold(&self) -> Option<Holder<'_>> {
        (!self.holding.swap(true, Ordering::AcqRel)).then(|| Holder(self))
    }

    /// What the holder waits on. Enable it before looking at the queue again: a signal sent after
    /// that look is not missed.
    pub(crate) fn progressed(&self) -> tokio::sync::futures::Notified<'_> {
        self.progress.notified()
    }

    /// Wakes the holder, if a worker has that role: returns false when none does.
    pub(crate) fn signal_holder(&self) -> bool {
        let holding = self.holding.load(Ordering::Acquire);
        if holding {
            self.progress.notify_waiters();
        }
        holding
    }

    /// Whether handed jobs wait for a worker.
    pub(crate) fn waiting(&self) -> bool {
        !self.lock().queued.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.lock().open.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn release(db: &Db, worker: &str, ids: Vec<i64>) {
    if ids.is_empty() {
        return;
    }
    match store::release(db, &ids, worker).await {
        Ok(()) => tracing::info!(jobs = ids.len(), "handed jobs no worker took were released"),
        // Their lease expires and the reaper requeues them.
        Err(e) => tracing::warn!(error = %e, jobs = ids.len(), "releasing handed jobs failed; their lease will expire"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, task: &str) -> JobRow {
        JobRow {
            id,
            uuid: uuid::Uuid::nil(),
            queue: "q".into(),
            task: task.into(),
            payload: crate::db::Json(serde_json::json!({})),
            attempts: 1,
        }
    }

    fn opened(concurrency: usize) -> Arc<Handoff> {
        let handoff = Arc::new(Handoff::default());
        let config = WorkerConfig {
            concurrency,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            reap_every: Duration::from_secs(1),
            hold: MAX_HOLD,
        };
        handoff.open("w".into(), &config, HashMap::from([("a", 3), ("b", 2)]));
        handoff
    }

    #[test]
    fn room_is_a_batch_per_worker_and_comes_back_when_a_reservation_is_dropped() {
        let handoff = opened(2);
        let first = handoff.reserve("a", 4).unwrap();
        assert_eq!(first.count(), 4);
        assert_eq!(first.claim().0, "w");
        // Two workers, batches of at most 3: room for 6.
        let second = handoff.reserve("a", 4).unwrap();
        assert_eq!(second.count(), 2);
        assert!(handoff.reserve("b", 1).is_none(), "full");
        drop(second);
        assert_eq!(handoff.reserve("b", 5).unwrap().count(), 2);
        assert!(handoff.reserve("unregistered", 1).is_none(), "no worker here runs it");
        assert!(Arc::new(Handoff::default()).reserve("a", 1).is_none(), "closed: no workers in this process");
    }

    /// The batch taken at `now`, as job ids (None when nothing is ready).
    fn ids(taken: Take) -> Option<Vec<i64>> {
        match taken {
            Take::Batch(taken) => Some(taken.jobs.iter().map(|h| h.job.id).collect()),
            _ => None,
        }
    }

    async fn handed_over(handoff: &Arc<Handoff>, db: &Db, jobs: Vec<JobRow>) {
        let reservation = handoff.reserve("a", jobs.len()).unwrap();
        assert!(handoff.hand_over(db, reservation, jobs).await);
    }

    async fn sqlite() -> (Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/handoff.db", dir.path().display()), 2).await.unwrap();
        (db, dir)
    }

    #[tokio::test]
    async fn workers_take_the_oldest_task_in_batches_and_handed_jobs_keep_their_room() {
        let handoff = opened(4);
        let (db, _dir) = sqlite().await;
        let reservation = handoff.reserve("a", 6).unwrap();
        let jobs = vec![row(1, "a"), row(2, "b"), row(3, "a"), row(4, "a"), row(5, "a"), row(6, "b")];
        assert!(handoff.hand_over(&db, reservation, jobs).await);
        // Queued jobs count against the room after their reservation ended.
        assert_eq!(handoff.reserve("a", 100).unwrap().count(), 12 - 6);
        let now = Instant::now();
        let Take::Batch(first) = handoff.take(now) else { panic!("a full batch of 'a' is ready at once") };
        assert_eq!(&*first.owner, "w");
        assert_eq!(first.jobs.iter().map(|h| h.job.id).collect::<Vec<_>>(), vec![1, 3, 4]);
        // 'b' (2 of 2) is full; the last 'a' waits for the running batch of 'a'.
        assert_eq!(ids(handoff.take(now)), Some(vec![2, 6]));
        assert!(matches!(handoff.take(now + LINGER), Take::Hold(_)));
        assert_eq!(ids(handoff.take(now + MAX_HOLD)), Some(vec![5]));
        assert!(matches!(handoff.take(now + MAX_HOLD), Take::Empty));
    }

    #[tokio::test]
    async fn a_partial_batch_lingers_and_waits_for_the_running_one_at_most_max_hold() {
        let handoff = opened(4);
        let (db, _dir) = sqlite().await;
        handed_over(&handoff, &db, vec![row(1, "a")]).await;
        let handed_at = handoff.lock().queued[0].handed_at;
        // Nothing of 'a' runs: the lone job waits LINGER for company, then goes.
        assert!(matches!(handoff.take(handed_at), Take::Hold(until) if until == handed_at + LINGER));
        handed_over(&handoff, &db, vec![row(2, "a")]).await;
        let running = handoff.take(handed_at + LINGER);
        assert_eq!(ids(running), Some(vec![1, 2]));

        // While a batch of 'a' runs, the next partial one is held up to MAX_HOLD...
        let Take::Batch(running) = ({
            handed_over(&handoff, &db, vec![row(3, "a")]).await;
            handoff.take(Instant::now() + LINGER)
        }) else {
            panic!("ready after LINGER")
        };
        handed_over(&handoff, &db, vec![row(4, "a"), row(5, "a")]).await;
        let handed_at = handoff.lock().queued[0].handed_at;
        assert!(matches!(handoff.take(handed_at + LINGER), Take::Hold(until) if until == handed_at + MAX_HOLD));
        // ...unless it fills up: a full batch goes at once.
        handed_over(&handoff, &db, vec![row(6, "a")]).await;
        assert_eq!(ids(handoff.take(handed_at)), Some(vec![4, 5, 6]));
        // When the running batch ends, a waiting one needs only LINGER, and the holder is woken.
        handed_over(&handoff, &db, vec![row(7, "a")]).await;
        let handed_at = handoff.lock().queued[0].handed_at;
        assert!(matches!(handoff.take(handed_at + LINGER), Take::Hold(_)), "batch [3] still runs");
        drop(running);
        // ([4, 5, 6] was dropped by `ids` above.) No batch of 'a' runs now.
        assert_eq!(ids(handoff.take(handed_at + LINGER)), Some(vec![7]));
    }

    #[tokio::test]
    async fn one_worker_holds_and_it_is_the_one_told_of_progress() {
        let handoff = opened(2);
        assert!(!handoff.signal_holder(), "nobody holds: the caller wakes an idle worker instead");
        let holder = handoff.hold().unwrap();
        assert!(handoff.hold().is_none(), "one holder at a time");
        let notified = handoff.progressed();
        tokio::pin!(notified);
        notified.as_mut().enable();
        assert!(handoff.signal_holder());
        assert!(tokio::time::timeout(Duration::from_secs(1), notified).await.is_ok(), "the holder was woken");
        drop(holder);
        assert!(handoff.hold().is_some(), "the role is free again");
    }
}
