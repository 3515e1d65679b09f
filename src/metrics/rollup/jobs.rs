//! Job-queue statistics of the summary without reading the whole job table.
//!
//! Finished jobs are counted per queue and UTC hour of `finished_at` in `job_metrics_hourly`
//! once the hour has settled (migration 0013); a summary adds the rolled-up hours of its window
//! to the jobs finished since the mark (an index range on `finished_at`) and counts the waiting
//! and running jobs by `ix_jobs_status_queue_run_at`. Before, every request grouped the whole
//! table: over a second on PostgreSQL with 500,000 finished jobs.
//!
//! The counters record a job in the hour it finished, as the runner stamps it; they outlive the
//! 7-day pruning of finished jobs, so `succeeded_30d`/`failed_30d` now span the 30 days their
//! names promise (the table alone held 7). A finished job written by hand into an hour already
//! rolled up is not counted: only the runner finishes jobs, with its own clock, and the ten-minute
//! margin covers commits in flight.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::plan::Grain;
use crate::db::Db;
use crate::metrics::store::{Dialect, QueueRow};
use crate::{with_db, with_tx};

/// Rolls the jobs finished in `[mark, target)` into `job_metrics_hourly` and moves the mark, in
/// one transaction. The first run starts at the hour of the oldest finished job.
pub(super) async fn roll_up(db: &Db, d: &Dialect, target: DateTime<Utc>) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    // Read the mark under a write lock (a no-op UPDATE): two overlapping runs would otherwise both
    // add the same range to the counters. The second waits, then finds nothing left to roll.
    const LOCK_MARK: &str =
        "UPDATE alert_metrics_rollup_state SET jobs_rolled_until = jobs_rolled_until WHERE id = 1 RETURNING jobs_rolled_until";
    let until: Option<String> = with_tx!(&mut tx, c => sqlx::query_scalar(LOCK_MARK).fetch_optional(&mut *c).await)?.flatten();
    let start = match until.as_deref().and_then(|k| Grain::Hour.parse(k)) {
        Some(start) => start,
        None => {
            let first: Option<DateTime<Utc>> =
                with_tx!(&mut tx, c => sqlx::query_scalar("SELECT MIN(finished_at) FROM jobs WHERE finished_at IS NOT NULL").fetch_one(&mut *c).await)?;
            first.map(|t| Grain::Hour.floor(t)).unwrap_or(target)
        }
    };
    if start >= target {
        return Ok(());
    }
    let hour = d.hour("finished_at");
    let duration = d.seconds("finished_at", "started_at");
    let insert = format!(
        "INSERT INTO job_metrics_hourly (hour, queue, succeeded, failed, duration_sum, duration_n) \
         SELECT {hour}, queue, COUNT(*) FILTER (WHERE status = 'succeeded'), COUNT(*) FILTER (WHERE status = 'failed'), \
           COALESCE(SUM({duration}) FILTER (WHERE status = 'succeeded'), 0), COUNT({duration}) FILTER (WHERE status = 'succeeded') \
         FROM jobs WHERE finished_at >= $1 AND finished_at < $2 GROUP BY {hour}, queue \
         HAVING COUNT(*) FILTER (WHERE status IN ('succeeded', 'failed')) > 0 \
         ON CONFLICT (hour, queue) DO UPDATE SET succeeded = job_metrics_hourly.succeeded + excluded.succeeded, \
           failed = job_metrics_hourly.failed + excluded.failed, duration_sum = job_metrics_hourly.duration_sum + excluded.duration_sum, \
           duration_n = job_metrics_hourly.duration_n + excluded.duration_n"
    );
    with_tx!(&mut tx, c => {
        sqlx::query(sqlx::AssertSqlSafe(insert)).bind(start).bind(target).execute(&mut *c).await?;
        sqlx::query("UPDATE alert_metrics_rollup_state SET jobs_rolled_until = $1 WHERE id = 1")
            .bind(Grain::Hour.key(target)).execute(&mut *c).await?;
        Ok::<(), sqlx::Error>(())
    })?;
    tx.commit().await
}

#[derive(FromRow)]
struct Finished {
    queue: String,
    succeeded: i64,
    failed: i64,
    duration_sum: Option<f64>,
    duration_n: i64,
}

#[derive(FromRow)]
struct Open {
    queue: String,
    pending: i64,
    in_progress: i64,
    oldest_pending_age_seconds: Option<f64>,
}

/// Per queue: jobs waiting and running now, jobs finished since `since` (to the hour: the hour
/// holding `since` counts whole once rolled up), the mean run time of the successful ones and the
/// age of the oldest waiting job at `now`. Queues with neither open jobs nor jobs finished in the
/// window are not listed.
pub(in crate::metrics) async fn queues(db: &Db, since: DateTime<Utc>, now: DateTime<Utc>) -> sqlx::Result<Vec<QueueRow>> {
    let d = Dialect::of(db);
    let until: Option<String> =
        with_db!(db, p => sqlx::query_scalar("SELECT jobs_rolled_until FROM alert_metrics_rollup_state WHERE id = 1").fetch_optional(p).await)?
            .flatten();
    // Jobs finished before the mark are read from the counters, the rest from the table.
    let live_from = match until.as_deref().and_then(|k| Grain::Hour.parse(k)) {
        Some(mark) => mark.max(since),
        None => since,
    };
    let duration = d.seconds("finished_at", "started_at");
    // Only `finished_at` in the WHERE clause: with a status condition SQLite walks a status index
    // over every finished job instead (measured: 50 ms at 233,000 finished jobs). Cancelled jobs
    // count in neither column.
    let finished = format!(
        "SELECT queue, CAST(SUM(succeeded) AS BIGINT) AS succeeded, CAST(SUM(failed) AS BIGINT) AS failed, \
           SUM(duration_sum) AS duration_sum, CAST(SUM(duration_n) AS BIGINT) AS duration_n FROM ( \
           SELECT queue, succeeded, failed, duration_sum, duration_n FROM job_metrics_hourly WHERE hour >= $1 AND hour < $2 \
           UNION ALL \
           SELECT queue, COUNT(*) FILTER (WHERE status = 'succeeded'), COUNT(*) FILTER (WHERE status = 'failed'), \
             SUM({duration}) FILTER (WHERE status = 'succeeded'), COUNT({duration}) FILTER (WHERE status = 'succeeded') \
           FROM jobs WHERE finished_at >= $3 GROUP BY queue \
         ) AS f GROUP BY queue"
    );
    let open = format!(
        "SELECT queue, COUNT(*) FILTER (WHERE status = 'todo') AS pending, COUNT(*) FILTER (WHERE status = 'doing') AS in_progress, \
           MAX({age}) FILTER (WHERE status = 'todo') AS oldest_pending_age_seconds \
         FROM jobs WHERE status IN ('todo', 'doing') GROUP BY queue",
        age = d.seconds("$1", "run_at"),
    );
    let (first_hour, mark_hour) = (Grain::Hour.key(Grain::Hour.floor(since)), Grain::Hour.key(live_from));
    let (finished, open) = tokio::try_join!(
        async {
            with_db!(db, p => sqlx::query_as::<_, Finished>(sqlx::AssertSqlSafe(finished))
                .bind(&first_hour).bind(&mark_hour).bind(live_from).fetch_all(p).await)
        },
        async { with_db!(db, p => sqlx::query_as::<_, Open>(sqlx::AssertSqlSafe(open)).bind(now).fetch_all(p).await) },
    )?;
    let empty = |queue: &str| QueueRow {
        queue: queue.to_owned(),
        pending: 0,
        in_progress: 0,
        succeeded: 0,
        failed: 0,
        avg_duration_seconds: None,
        oldest_pending_age_seconds: None,
    };
    let mut rows: BTreeMap<String, QueueRow> = BTreeMap::new();
    // Groups of cancelled jobs only count neither way: no row for them.
    for f in finished.into_iter().filter(|f| f.succeeded > 0 || f.failed > 0) {
        let row = rows.entry(f.queue.clone()).or_insert_with(|| empty(&f.queue));
        row.succeeded = f.succeeded;
        row.failed = f.failed;
        row.avg_duration_seconds = (f.duration_n > 0).then(|| f.duration_sum.unwrap_or(0.0) / f.duration_n as f64);
    }
    for o in open {
        let row = rows.entry(o.queue.clone()).or_insert_with(|| empty(&o.queue));
        row.pending = o.pending;
        row.in_progress = o.in_progress;
        row.oldest_pending_age_seconds = o.oldest_pending_age_seconds;
    }
    Ok(rows.into_values().collect())
}
