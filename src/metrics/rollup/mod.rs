//! Metrics at any table size: rollups for whole buckets, live aggregation for the rest.
//!
//! Why: every alert figure of a window is a sum over its alerts; scanning half a million rows per
//! request took seconds (issue 13). Per UTC day and per UTC hour of `created_at`,
//! `alert_metrics_daily`/`_hourly` hold the counts and duration sums by status/severity/source and
//! `alert_rule_metrics_daily`/`_hourly` the counts by detection rule (migrations 0010, 0013). A
//! window is then (`plan`):
//! - its whole days before the daily mark that are not dirty: read from the daily rollups;
//! - the whole hours of what is left (the partial first and last day, dirty days) before the
//!   hourly mark that are not dirty: read from the hourly rollups;
//! - everything else (the partial first and last hour, the last hour or so, dirty hours):
//!   aggregated live from `alerts`, each piece an index range on `created_at`.
//!
//! Correctness does not depend on the job's timing: database triggers list the day and the hour
//! of any alert write to an already rolled-up bucket as dirty, in the writer's transaction,
//! whatever the path (API, enrichment, retention, manual SQL); a dirty bucket is read at the finer
//! grain or live until the job has recomputed it. Means are Σ/n of the same durations the live
//! SQL averages.
//!
//! Job queues (`jobs`): finished jobs are counted per queue and hour once the hour has settled;
//! the summary adds the jobs finished since.
//!
//! [`RollupAlertMetrics`] (periodic) advances the marks to the bucket before "now − margin" and
//! recomputes the dirty buckets one per transaction, so it never holds the SQLite write lock for
//! long.

mod alerts;
mod jobs;
mod plan;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub use alerts::{AlertWindow, alert_window};
pub(super) use jobs::queues;
use plan::Grain;

use super::store::Dialect;
use crate::db::{Db, now};
use crate::jobs::{Job, JobCtx, JobError};
use crate::with_tx;

/// Buckets that ended less than this long ago are not rolled up yet: a write transaction that
/// took its timestamp before the bucket ended may still be committing.
const SETTLE_MINUTES: i64 = 10;
/// Buckets recomputed per grain and job run at most (the first run over an old database does
/// them all in several runs).
const BUCKETS_PER_RUN: usize = 2_000;

/// Moves `grain`'s mark to `target`, listing the newly covered buckets that hold alerts as dirty
/// (so they stay live until computed; an empty bucket needs no rollup row), in one transaction.
async fn advance(db: &Db, d: &Dialect, grain: Grain, target: DateTime<Utc>) -> sqlx::Result<()> {
    let mark = grain.mark_column();
    let mut tx = db.begin().await?;
    let select = format!("SELECT {mark} FROM alert_metrics_rollup_state WHERE id = 1");
    let until: Option<String> =
        with_tx!(&mut tx, c => sqlx::query_scalar(sqlx::AssertSqlSafe(select)).fetch_optional(&mut *c).await)?.flatten();
    let until = until.as_deref().and_then(|k| grain.parse(k));
    if until.is_some_and(|u| u >= target) {
        return Ok(());
    }
    // From the old mark, or (first run) every alert before the target (`created_at` is stamped by
    // the server: none predates 1970).
    let start = until.unwrap_or(DateTime::UNIX_EPOCH);
    let list = format!(
        "INSERT INTO {table} ({column}) SELECT DISTINCT {key} FROM alerts WHERE created_at >= $1 AND created_at < $2 \
         ON CONFLICT DO NOTHING",
        table = grain.dirty_table(),
        column = grain.column(),
        key = grain.sql_key(d, "created_at"),
    );
    let update = format!("UPDATE alert_metrics_rollup_state SET {mark} = $1 WHERE id = 1");
    with_tx!(&mut tx, c => {
        sqlx::query(sqlx::AssertSqlSafe(list)).bind(start).bind(target).execute(&mut *c).await?;
        sqlx::query(sqlx::AssertSqlSafe(update)).bind(grain.key(target)).execute(&mut *c).await?;
        Ok::<(), sqlx::Error>(())
    })?;
    tx.commit().await
}

/// Recomputes up to `limit` dirty buckets of `grain`, oldest first, one per transaction. Each
/// transaction first claims its bucket by deleting the dirty mark: a concurrent run then skips it,
/// and an alert write to it waits for the recomputation and marks it dirty again (migration 0013).
async fn recompute_dirty(db: &Db, d: &Dialect, grain: Grain, limit: usize) -> sqlx::Result<usize> {
    let claim = format!(
        "DELETE FROM {table} WHERE {column} = (SELECT {column} FROM {table} ORDER BY {column} LIMIT 1) RETURNING {column}",
        column = grain.column(),
        table = grain.dirty_table()
    );
    let mut done = 0;
    while done < limit {
        let mut tx = db.begin().await?;
        let key: Option<String> = with_tx!(&mut tx, c => sqlx::query_scalar(sqlx::AssertSqlSafe(claim.clone())).fetch_optional(&mut *c).await)?;
        // None: nothing is dirty, or another run claimed the oldest bucket first (it goes on).
        let Some(key) = key else { break };
        // A key that is not a bucket (written by hand) is dropped rather than retried forever.
        if let Some(start) = grain.parse(&key) {
            alerts::recompute(&mut tx, d, grain, start).await?;
        }
        tx.commit().await?;
        done += 1;
    }
    Ok(done)
}

/// Brings every rollup up to date: hours first (a day's dirty mark is then read from its hours),
/// then days, then the job-queue counters. Returns the alert buckets recomputed.
pub async fn roll_up(db: &Db, limit: usize) -> sqlx::Result<usize> {
    let d = Dialect::of(db);
    let settled = now() - Duration::minutes(SETTLE_MINUTES);
    let mut done = 0;
    for grain in [Grain::Hour, Grain::Day] {
        advance(db, &d, grain, grain.floor(settled)).await?;
        done += recompute_dirty(db, &d, grain, limit).await?;
    }
    jobs::roll_up(db, &d, Grain::Hour.floor(settled)).await?;
    Ok(done)
}

/// SQLite plans from the statistics `ANALYZE` leaves; without them an equality filter on a
/// low-cardinality column (`status=Open`) looks selective and the planner sorts half the table
/// instead of walking the sort index (measured: 836 ms at 1M alerts). PostgreSQL's autovacuum
/// keeps its own; SQLite's are refreshed here, sampled (`analysis_limit`) and only for tables
/// that changed a lot since their last analysis (`optimize` 0x10002).
async fn refresh_sqlite_statistics(db: &Db) -> sqlx::Result<()> {
    if let Db::Sqlite(pool) = db {
        let mut c = pool.acquire().await?;
        sqlx::query("PRAGMA analysis_limit = 1000").execute(&mut *c).await?;
        sqlx::query("PRAGMA optimize = 0x10002").execute(&mut *c).await?;
    }
    Ok(())
}

/// `rollup_alert_metrics`: the periodic job that keeps the metrics rollups current (the name
/// predates the job-queue counters; kept so scheduled rows stay valid).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RollupAlertMetrics {}

impl Job for RollupAlertMetrics {
    const NAME: &'static str = "rollup_alert_metrics";
    type Context = Db;

    /// Each bucket is recomputed in its own transaction (idempotent: a rerun after a lost lease
    /// recomputes the same rows); the completion is committed last.
    async fn run(self, db: Db, job: JobCtx) -> Result<(), JobError> {
        let buckets = roll_up(&db, BUCKETS_PER_RUN).await?;
        refresh_sqlite_statistics(&db).await?;
        let mut tx = db.begin().await?;
        job.complete_in(&mut tx).await?;
        tx.commit().await?;
        if buckets > 0 {
            tracing::info!(buckets, "metrics rolled up");
        }
        Ok(())
    }
}
