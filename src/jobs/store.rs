//! SQL for the `jobs` table: the durable queue. A job is enqueued inside the transaction that
//! creates its subject (so a committed alert always has its job), claimed atomically by one
//! worker under a lease, and finished, retried with backoff, or failed. A worker that dies keeps
//! its lease until it expires; the job is then claimable again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Json, Tx, now};
use crate::{with_db, with_tx};

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: i64,
    pub uuid: Uuid,
    pub queue: String,
    pub task: String,
    pub payload: Json<Value>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub backoff_seconds: i32,
}

const COLUMNS: &str = "id, uuid, queue, task, payload, attempts, max_attempts, backoff_seconds";

#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub queue: &'a str,
    pub task: &'a str,
    pub payload: Value,
    pub max_attempts: i32,
    pub backoff_seconds: i32,
    pub run_at: DateTime<Utc>,
}

pub async fn enqueue(tx: &mut Tx, job: &NewJob<'_>) -> sqlx::Result<Uuid> {
    let uuids = enqueue_many(tx, std::slice::from_ref(job)).await?;
    Ok(uuids[0])
}

/// Columns bound per job by `enqueue_many`.
const ENQUEUE_BINDS_PER_JOB: usize = 7;

/// Enqueues jobs in one statement (a group-commit batch's jobs); returns their uuids in order.
pub async fn enqueue_many(tx: &mut Tx, jobs: &[NewJob<'_>]) -> sqlx::Result<Vec<Uuid>> {
    let uuids: Vec<Uuid> = jobs.iter().map(|_| Uuid::new_v4()).collect();
    if jobs.is_empty() {
        return Ok(uuids);
    }
    // $1 = created_at/updated_at, then ENQUEUE_BINDS_PER_JOB placeholders per job.
    let rows: Vec<String> = (0..jobs.len())
        .map(|row| {
            let p = |column: usize| format!("${}", 2 + row * ENQUEUE_BINDS_PER_JOB + column);
            format!("({}, {}, {}, {}, 'todo', 0, {}, {}, {}, $1, $1)", p(0), p(1), p(2), p(3), p(4), p(5), p(6))
        })
        .collect();
    let sql = format!(
        "INSERT INTO jobs (uuid, queue, task, payload, status, attempts, max_attempts, backoff_seconds, run_at, created_at, updated_at) \
         VALUES {}",
        rows.join(", ")
    );
    with_tx!(tx, c => {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now());
        for (job, uuid) in jobs.iter().zip(&uuids) {
            query = query.bind(*uuid).bind(job.queue).bind(job.task).bind(Json(&job.payload)).bind(job.max_attempts)
                .bind(job.backoff_seconds).bind(job.run_at);
        }
        query.execute(c).await.map(|_| ())
    })?;
    Ok(uuids)
}

/// Claims up to `limit` due `todo` jobs of `queues` for `worker`, oldest first, in one statement
/// that the `(status, queue, run_at)` index answers. On PostgreSQL the rows are picked with
/// `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same job and never wait on
/// each other; SQLite runs one writer at a time, which gives the same guarantee.
pub async fn claim(db: &Db, worker: &str, queues: &[&str], lease: Duration, limit: usize) -> sqlx::Result<Vec<JobRow>> {
    let at = now();
    let locked_until = at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
    // Queue names are compile-time constants; only their placeholders are generated.
    let placeholders: Vec<String> = (0..queues.len()).map(|i| format!("${}", i + 5)).collect();
    let pick = format!(
        "SELECT id FROM jobs WHERE status = 'todo' AND queue IN ({}) AND run_at <= $3 ORDER BY run_at, id LIMIT $4",
        placeholders.join(", ")
    );
    let set = "SET status = 'doing', attempts = attempts + 1, locked_by = $1, locked_until = $2, started_at = $3, updated_at = $3";
    let sql = match db {
        // The locking subquery sits in a CTE: PostgreSQL evaluates it exactly once.
        Db::Postgres(_) => format!(
            "WITH picked AS ({pick} FOR UPDATE SKIP LOCKED) UPDATE jobs {set} FROM picked \
             WHERE jobs.id = picked.id AND jobs.status = 'todo' RETURNING {}",
            COLUMNS.split(", ").map(|c| format!("jobs.{c}")).collect::<Vec<_>>().join(", ")
        ),
        Db::Sqlite(_) => format!("UPDATE jobs {set} WHERE id IN ({pick}) AND status = 'todo' RETURNING {COLUMNS}"),
    };
    // A transaction, so that on SQLite the claim queues on the process's write gate with the
    // other writers instead of spinning in SQLite's busy handler.
    let mut tx = db.begin().await?;
    let mut claimed = with_tx!(&mut tx, c => {
        let mut query = sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql)).bind(worker).bind(locked_until).bind(at)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX));
        for queue in queues {
            query = query.bind(*queue);
        }
        query.fetch_all(c).await
    })?;
    tx.commit().await?;
    claimed.sort_by_key(|job| job.id);
    Ok(claimed)
}

/// Housekeeping, run now and then by one worker loop: jobs whose lease expired (their worker
/// died) become claimable again (attempts are kept, so a job that kills its worker every time
/// still runs out of attempts), and finished jobs older than `keep` are deleted.
pub async fn reap(db: &Db, keep: chrono::Duration) -> sqlx::Result<(u64, u64)> {
    let at = now();
    // Transactions, so that on SQLite they queue on the write gate (see `claim`).
    let mut tx = db.begin().await?;
    let requeued = with_tx!(&mut tx, p => sqlx::query(
        "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'todo' END, \
         last_error = 'lease expired (worker lost)', locked_by = NULL, locked_until = NULL, updated_at = $1 \
         WHERE status = 'doing' AND locked_until < $1")
        .bind(at).execute(p).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    let mut tx = db.begin().await?;
    let deleted = with_tx!(&mut tx, p => sqlx::query(
        "DELETE FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND updated_at < $1")
        .bind(at - keep).execute(p).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok((requeued, deleted))
}

/// Marks the jobs done, if this worker still holds them, in the caller's transaction: the
/// handler commits its work and the jobs' success together.
pub async fn succeed_in(tx: &mut Tx, job_ids: &[i64], worker: &str) -> sqlx::Result<()> {
    if job_ids.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = (0..job_ids.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "UPDATE jobs SET status = 'succeeded', finished_at = $1, updated_at = $1, locked_by = NULL, locked_until = NULL, \
         last_error = NULL WHERE locked_by = $2 AND id IN ({})",
        list.join(", ")
    );
    with_tx!(tx, c => {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now()).bind(worker);
        for id in job_ids {
            query = query.bind(*id);
        }
        query.execute(c).await.map(|_| ())
    })
}

/// Records a failure: back to `todo` after the backoff while attempts remain, else `failed`.
pub async fn fail(db: &Db, job: &JobRow, worker: &str, error: &str, retryable: bool) -> sqlx::Result<()> {
    let at = now();
    let retry = retryable && job.attempts < job.max_attempts;
    let run_at = at + chrono::Duration::seconds(job.backoff_seconds.max(0) as i64);
    let error: String = error.chars().take(2000).collect();
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, c => sqlx::query(
        "UPDATE jobs SET status = CASE WHEN $1 THEN 'todo' ELSE 'failed' END, run_at = CASE WHEN $1 THEN $2 ELSE run_at END, \
         finished_at = CASE WHEN $1 THEN NULL ELSE $3 END, last_error = $4, locked_by = NULL, locked_until = NULL, updated_at = $3 \
         WHERE id = $5 AND locked_by = $6")
        .bind(retry).bind(run_at).bind(at).bind(error).bind(job.id).bind(worker).execute(c).await.map(|_| ()))?;
    tx.commit().await
}

/// Gives claimed jobs back untouched (shutdown before they started): attempts are restored.
pub async fn release(db: &Db, job_ids: &[i64], worker: &str) -> sqlx::Result<()> {
    if job_ids.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = (0..job_ids.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "UPDATE jobs SET status = 'todo', attempts = attempts - 1, locked_by = NULL, locked_until = NULL, updated_at = $1 \
         WHERE locked_by = $2 AND id IN ({})",
        list.join(", ")
    );
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, c => {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now()).bind(worker);
        for id in job_ids {
            query = query.bind(*id);
        }
        query.execute(c).await.map(|_| ())
    })?;
    tx.commit().await
}

/// Jobs waiting to run, per queue.
pub async fn depth_by_queue(db: &Db) -> sqlx::Result<Vec<(String, i64)>> {
    with_db!(db, p => sqlx::query_as::<_, (String, i64)>(
        "SELECT queue, COUNT(*) FROM jobs WHERE status = 'todo' GROUP BY queue ORDER BY queue").fetch_all(p).await)
}
