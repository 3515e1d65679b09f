//! Periodic jobs: each registered schedule has a `periodic_jobs` row holding its `next_run_at`.
//! Every process runs a scheduler that reads the rows; when one is due, a transaction advances it
//! with one conditional UPDATE (compare-and-swap on the `next_run_at` it read) and, only if that
//! UPDATE won, enqueues the job. Processes racing for the same period see one winner, so each due
//! period is enqueued exactly once however many replicas share the database. A period missed
//! while every process was down is not replayed: the schedule moves to the next future slot.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::registry::Periodic;
use super::store::{self, NewJob};
use crate::db::{Db, Tx, now};
use crate::{with_db, with_tx};

/// Runs until `shutdown`: checks every schedule each tick and enqueues what is due, calling
/// `on_enqueued` after a pass that enqueued something (to wake this process's workers).
pub(crate) async fn scheduler(db: Db, schedules: Vec<Periodic>, shutdown: CancellationToken, on_enqueued: impl Fn()) {
    if schedules.is_empty() {
        return;
    }
    let shortest = schedules.iter().map(|s| s.every).min().unwrap_or(Duration::from_secs(60));
    // Often enough that a period starts within a quarter of its length (a read when idle).
    let tick = (shortest / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let mut enqueued = false;
        for schedule in &schedules {
            match enqueue_if_due(&db, schedule, now()).await {
                Ok(Some(slot)) => {
                    tracing::info!(job = schedule.name, slot = %slot, "periodic job enqueued");
                    enqueued = true;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(job = schedule.name, error = %e, "periodic job scheduling failed"),
            }
        }
        if enqueued {
            on_enqueued();
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Enqueues `schedule`'s job if its period is due at `at` and this process wins it; returns the
/// period's slot (the `next_run_at` it consumed).
pub(crate) async fn enqueue_if_due(db: &Db, schedule: &Periodic, at: DateTime<Utc>) -> sqlx::Result<Option<DateTime<Utc>>> {
    // A plain read first: on SQLite a write transaction per tick would take the write gate even
    // when nothing is due.
    let due = match next_run_at(db, schedule.name).await? {
        Some(next) => next <= at,
        // First start with this schedule: its row is created, the first run one period later.
        None => true,
    };
    if !due {
        return Ok(None);
    }
    let every = chrono::Duration::from_std(schedule.every).unwrap_or(chrono::Duration::hours(1));
    let mut tx = db.begin().await?;
    let slot = match lock_or_create(&mut tx, schedule, at).await? {
        Some(slot) if slot <= at => slot,
        _ => {
            // Not due (another process won, or the schedule was just created): keep the row.
            tx.commit().await?;
            return Ok(None);
        }
    };
    // The next slot after `at` on the schedule's grid; missed periods are skipped, not replayed.
    let periods_due = (at - slot).num_milliseconds() / every.num_milliseconds().max(1) + 1;
    let next = slot + every * i32::try_from(periods_due).unwrap_or(i32::MAX);
    if !advance(&mut tx, schedule.name, slot, next, at).await? {
        // Another process took this period between our read and our UPDATE.
        return Ok(None);
    }
    let job = NewJob {
        queue: schedule.queue,
        task: schedule.name,
        payload: (schedule.payload)(),
        max_attempts: schedule.max_attempts,
        run_at: at,
        dedupe_key: Some(format!("periodic:{}@{}", schedule.name, slot.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))),
    };
    store::insert(&mut tx, std::slice::from_ref(&job)).await?;
    tx.commit().await?;
    Ok(Some(slot))
}

async fn next_run_at(db: &Db, name: &str) -> sqlx::Result<Option<DateTime<Utc>>> {
    with_db!(db, p => sqlx::query_scalar::<_, DateTime<Utc>>("SELECT next_run_at FROM periodic_jobs WHERE name = $1")
        .bind(name).fetch_optional(p).await)
}

/// The schedule's current `next_run_at`, creating its row on first use with the first run one
/// period after `at` (a sweep has nothing to do on a database that just appeared, and `/health`
/// does not see a queued job at every first start). A changed
/// period is recorded but takes effect after the pending `next_run_at`: resetting the schedule
/// instead would let two releases with different periods (a rolling deploy) reset it in turn on
/// every tick.
async fn lock_or_create(tx: &mut Tx, schedule: &Periodic, at: DateTime<Utc>) -> sqlx::Result<Option<DateTime<Utc>>> {
    let every_seconds = i64::try_from(schedule.every.as_secs().max(1)).unwrap_or(i64::MAX);
    let first_run = at + chrono::Duration::from_std(schedule.every).unwrap_or(chrono::Duration::hours(1));
    with_tx!(tx, c => {
        sqlx::query("INSERT INTO periodic_jobs (name, every_seconds, next_run_at, updated_at) VALUES ($1, $2, $3, $3) \
                     ON CONFLICT (name) DO UPDATE SET every_seconds = excluded.every_seconds \
                     WHERE periodic_jobs.every_seconds <> excluded.every_seconds")
            .bind(schedule.name).bind(every_seconds).bind(first_run).execute(&mut *c).await?;
        sqlx::query_scalar::<_, DateTime<Utc>>("SELECT next_run_at FROM periodic_jobs WHERE name = $1")
            .bind(schedule.name).fetch_optional(&mut *c).await
    })
}

/// The compare-and-swap: moves `next_run_at` from `slot` to `next`; false if it was no longer
/// `slot` (another process won the period).
async fn advance(tx: &mut Tx, name: &str, slot: DateTime<Utc>, next: DateTime<Utc>, at: DateTime<Utc>) -> sqlx::Result<bool> {
    with_tx!(tx, c => sqlx::query(
        "UPDATE periodic_jobs SET next_run_at = $1, last_enqueued_at = $2, updated_at = $2 WHERE name = $3 AND next_run_at = $4")
        .bind(next).bind(at).bind(name).bind(slot).execute(c).await.map(|r| r.rows_affected() == 1))
}
