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
//! workers still claim from the table on every pass, so the jobs of other processes and older
//! ones are not starved by a steady stream of handed jobs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::store::{self, JobRow};
use crate::db::{Db, now};

/// This process's handoff: closed (nothing is reserved) unless workers run here.
#[derive(Default)]
pub(crate) struct Handoff {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    open: Option<Open>,
    queued: VecDeque<Handed>,
    /// Rows reserved by producers whose transactions have not ended yet.
    reserved: usize,
}

struct Open {
    /// The claim (`locked_by`) every handed job is inserted under.
    worker: Arc<str>,
    lease: Duration,
    /// Queued and reserved jobs together stay under this.
    capacity: usize,
    /// The tasks the workers run, with their batch sizes.
    batch_sizes: HashMap<&'static str, usize>,
}

/// A job handed over, and when its claim's run budget ends.
pub(crate) struct Handed {
    pub job: JobRow,
    pub deadline: tokio::time::Instant,
}

/// Room for `count` jobs of one task, taken for one producer transaction; given back when dropped
/// unless the jobs were handed over.
pub struct Reservation {
    handoff: Arc<Handoff>,
    count: usize,
    worker: Arc<str>,
    locked_until: DateTime<Utc>,
    deadline: tokio::time::Instant,
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
    /// Opens the handoff to the workers about to run with `lease`; `batch_sizes` names the tasks
    /// they run. Room: a full batch per worker.
    pub(crate) fn open(&self, worker: Arc<str>, lease: Duration, concurrency: usize, batch_sizes: HashMap<&'static str, usize>) {
        let largest = batch_sizes.values().copied().max().unwrap_or(1);
        let mut state = self.lock();
        state.open = Some(Open { worker, lease, capacity: concurrency.max(1) * largest, batch_sizes });
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
        let State { open, queued, reserved } = &mut *state;
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
            deadline: tokio::time::Instant::now() + super::runner::run_budget(open.lease),
        })
    }

    /// Hands the reserved jobs, committed, to the workers. If the handoff closed meanwhile they
    /// are released instead. Returns whether any job was handed over.
    pub(crate) async fn hand_over(&self, db: &Db, reservation: Reservation, jobs: Vec<JobRow>) -> bool {
        let refused = {
            let mut state = self.lock();
            if state.open.as_ref().is_some_and(|open| *open.worker == *reservation.worker) {
                state.queued.extend(jobs.into_iter().map(|job| Handed { job, deadline: reservation.deadline }));
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

    /// The oldest handed job and the jobs of its task behind it, up to the task's batch size.
    pub(crate) fn take(&self) -> Option<(Arc<str>, usize, Vec<Handed>)> {
        let mut state = self.lock();
        let State { open, queued, .. } = &mut *state;
        let open = open.as_ref()?;
        let task = queued.front()?.job.task.clone();
        let batch_size = open.batch_sizes.get(task.as_str()).copied().unwrap_or(1);
        let mut taken = Vec::with_capacity(batch_size.min(queued.len()));
        let mut kept = VecDeque::with_capacity(queued.len());
        for handed in queued.drain(..) {
            if taken.len() < batch_size && handed.job.task == task {
                taken.push(handed);
            } else {
                kept.push_back(handed);
            }
        }
        *queued = kept;
        Some((open.worker.clone(), batch_size, taken))
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
        handoff.open("w".into(), Duration::from_secs(60), concurrency, HashMap::from([("a", 3), ("b", 2)]));
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

    #[tokio::test]
    async fn workers_take_the_oldest_task_in_batches_and_handed_jobs_keep_their_room() {
        let handoff = opened(4);
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/handoff.db", dir.path().display()), 2).await.unwrap();
        let reservation = handoff.reserve("a", 6).unwrap();
        let jobs = vec![row(1, "a"), row(2, "b"), row(3, "a"), row(4, "a"), row(5, "a"), row(6, "b")];
        assert!(handoff.hand_over(&db, reservation, jobs).await);
        // Queued jobs count against the room after their reservation ended.
        assert_eq!(handoff.reserve("a", 100).unwrap().count(), 12 - 6);
        let (worker, batch_size, first) = handoff.take().unwrap();
        assert_eq!((&*worker, batch_size), ("w", 3));
        assert_eq!(first.iter().map(|h| h.job.id).collect::<Vec<_>>(), vec![1, 3, 4]);
        let (_, _, second) = handoff.take().unwrap();
        assert_eq!(second.iter().map(|h| h.job.id).collect::<Vec<_>>(), vec![2, 6]);
        let (_, _, third) = handoff.take().unwrap();
        assert_eq!(third.iter().map(|h| h.job.id).collect::<Vec<_>>(), vec![5]);
        assert!(handoff.take().is_none());
    }
}
