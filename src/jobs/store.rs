//! SQL for the `jobs` table: the durable queue. A job is enqueued inside the transaction that
//! creates its subject (so a committed alert always has its job), claimed atomically by one
//! worker under a lease, and finished, retried after its backoff (a later `run_at`), or failed.
//! A worker that dies keeps its lease until it expires; the job is then claimable again. Every
//! finishing statement is conditioned on the claim (id, attempt, worker), so a worker that lost
//! its lease changes nothing.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Json, Tx, now, placeholders};
use crate::{with_db, with_tx};

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: i64,
    pub uuid: Uuid,
    pub queue: String,
    pub task: String,
    pub payload: Json<Value>,
    /// This attempt's number (the claim counted it).
    pub attempts: i32,
}

const COLUMNS: &str = "id, uuid, queue, task, payload, attempts";

/// A job to insert: its task, queue and payload, and when it may first run.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub queue: &'a str,
    pub task: &'a str,
    pub payload: Value,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    /// Unique among live (todo/doing) jobs: periodic jobs record their period here.
    pub dedupe_key: Option<String>,
}

/// The insert of `count` jobs, `todo` or claimed, returning `(id, uuid)`. Each row binds twelve
/// values, in `bind_jobs!`'s order.
fn insert_sql(tx: &Tx, count: usize, claimed: bool) -> String {
    let (status, attempts) = if claimed { ("'doing'", 1) } else { ("'todo'", 0) };
    let mut p = tx.sequential_placeholders();
    let row = format!("(?, ?, ?, ?, {status}, {attempts}, ?, 0, ?, ?, ?, ?, ?, ?, ?)");
    let rows: Vec<String> = (0..count).map(|_| p.fill(&row)).collect();
    format!(
        "INSERT INTO jobs (uuid, queue, task, payload, status, attempts, max_attempts, backoff_seconds, run_at, dedupe_key, \
         locked_by, locked_until, started_at, created_at, updated_at) VALUES {} RETURNING id, uuid",
        rows.join(", ")
    )
}

/// Binds the jobs of a chunk in `insert_sql`'s order; `$claim` is `Option<(&str, DateTime)>`: the
/// worker and lease end of claimed jobs (which start now), None for `todo` ones.
macro_rules! bind_jobs {
    ($query:expr, $jobs:expr, $uuids:expr, $claim:expr) => {{
        let mut query = $query;
        let at = now();
        let claim: Option<(&str, DateTime<Utc>)> = $claim;
        for (job, uuid) in $jobs.iter().zip($uuids) {
            query = query.bind(*uuid).bind(job.queue).bind(job.task).bind(Json(&job.payload)).bind(job.max_attempts)
                .bind(job.run_at).bind(job.dedupe_key.as_deref()).bind(claim.map(|c| c.0)).bind(claim.map(|c| c.1))
                .bind(claim.map(|_| at)).bind(at).bind(at);
        }
        query
    }};
}

/// Inserts jobs (a group-commit batch's jobs), one statement per `Tx::rows_per_statement` of
/// them; returns their uuids in order.
pub async fn insert(tx: &mut Tx, jobs: &[NewJob<'_>]) -> sqlx::Result<Vec<Uuid>> {
    Ok(insert_rows(tx, jobs, None).await?.into_iter().map(|(_, uuid)| uuid).collect())
}

/// Inserts jobs already claimed (`doing`, attempt 1) by `worker` until `locked_until`: the jobs a
/// producer hands to its own process's workers (`handoff`). Returns them as claimed, in order.
pub async fn insert_claimed(tx: &mut Tx, jobs: &[NewJob<'_>], worker: &str, locked_until: DateTime<Utc>) -> sqlx::Result<Vec<JobRow>> {
    let inserted = insert_rows(tx, jobs, Some((worker, locked_until))).await?;
    Ok(jobs
        .iter()
        .zip(inserted)
        .map(|(job, (id, uuid))| JobRow { id, uuid, queue: job.queue.to_owned(), task: job.task.to_owned(), payload: Json(job.payload.clone()), attempts: 1 })
        .collect())
}

/// `insert` and `insert_claimed`: `(id, uuid)` of each job, in input order.
async fn insert_rows(tx: &mut Tx, jobs: &[NewJob<'_>], claim: Option<(&str, DateTime<Utc>)>) -> sqlx::Result<Vec<(i64, Uuid)>> {
    let uuids: Vec<Uuid> = jobs.iter().map(|_| crate::db::row_uuid()).collect();
    let mut ids: HashMap<Uuid, i64> = HashMap::with_capacity(jobs.len());
    let per_statement = tx.rows_per_statement();
    for (chunk, chunk_uuids) in jobs.chunks(per_statement).zip(uuids.chunks(per_statement)) {
        let sql = insert_sql(tx, chunk.len(), claim.is_some());
        let inserted: Vec<(i64, Uuid)> =
            with_tx!(tx, c => bind_jobs!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), chunk, chunk_uuids, claim).fetch_all(c).await)?;
        ids.extend(inserted.into_iter().map(|(id, uuid)| (uuid, id)));
    }
    // RETURNING does not promise input order: match rows up by uuid.
    uuids
        .into_iter()
        .map(|uuid| {
            let id = ids.get(&uuid).copied().ok_or_else(|| sqlx::Error::Protocol(format!("job {uuid} was not returned by its insert")))?;
            Ok((id, uuid))
        })
        .collect()
}

/// Claims up to `limit` due `todo` jobs of `tasks` on `queues` for `worker`, oldest first, in one
/// statement that the `(status, queue, run_at)` index answers. On PostgreSQL the rows are picked
/// with `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same job and never wait on
/// each other; SQLite runs one writer at a time, which gives the same guarantee.
pub async fn claim(db: &Db, worker: &str, queues: &[&str], tasks: &[&str], lease: Duration, limit: usize) -> sqlx::Result<Vec<JobRow>> {
    let at = now();
    let locked_until = at + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5));
    // Queue and task names are compile-time constants; only their placeholders are generated.
    let queue_list = placeholders(4, queues.len());
    let task_list = placeholders(4 + queues.len(), tasks.len());
    // The limit is written into the statement, not bound: SQLite reads a bound LIMIT while
    // planning and then marks the statement expired whenever it is bound again, so a bound one
    // re-prepared this claim on every call (perf: ~7 % of the SQLite writer's time). Each job
    // type has one batch size, so the statement cache still holds one statement per claim class.
    let pick = format!(
        "SELECT id FROM jobs WHERE status = 'todo' AND queue IN ({queue_list}) AND task IN ({task_list}) AND run_at <= $3 \
         ORDER BY run_at, id LIMIT {limit}"
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
    // SQLite: a plain read first. The claim is a write transaction, which takes the process's
    // write gate (and the file lock) even when it finds nothing; idle workers polling every claim
    // class would otherwise keep the ingest writer waiting.
    if let Db::Sqlite(pool) = db {
        let probe = format!(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'todo' AND queue IN ({}) AND task IN ({}) AND run_at <= $1)",
            placeholders(2, queues.len()),
            placeholders(2 + queues.len(), tasks.len())
        );
        let mut query = sqlx::query_scalar::<_, bool>(sqlx::AssertSqlSafe(probe)).bind(at);
        for name in queues.iter().chain(tasks) {
            query = query.bind(*name);
        }
        if !query.fetch_one(pool).await? {
            return Ok(Vec::new());
        }
    }
    // A transaction, so that on SQLite the claim queues on the process's write gate with the
    // other writers instead of spinning in SQLite's busy handler.
    let mut tx = db.begin().await?;
    let mut claimed = with_tx!(&mut tx, c => {
        let mut query = sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(sql)).bind(worker).bind(locked_until).bind(at);
        for name in queues.iter().chain(tasks) {
            query = query.bind(*name);
        }
        query.fetch_all(c).await
    })?;
    tx.commit().await?;
    claimed.sort_by_key(|job| job.id);
    Ok(claimed)
}

/// Jobs whose lease expired (their worker died or hung) become claimable again. Attempts are
/// kept, so a job that kills its worker every time still runs out of attempts: the runner fails
/// a claimed job whose attempts exceed its policy without running it. Several processes may run
/// this at once: it is idempotent.
pub async fn requeue_expired(db: &Db) -> sqlx::Result<u64> {
    let at = now();
    // A transaction, so that on SQLite it queues on the write gate (see `claim`).
    let mut tx = db.begin().await?;
    let requeued = with_tx!(&mut tx, p => sqlx::query(
        "UPDATE jobs SET status = 'todo', last_error = 'lease expired (worker lost or handler too slow)', \
         locked_by = NULL, locked_until = NULL, updated_at = $1 WHERE status = 'doing' AND locked_until < $1")
        .bind(at).execute(p).await.map(|r| r.rows_affected()))?;
    tx.commit().await?;
    Ok(requeued)
}

/// Live jobs per (queue, status) for the `calseta_queue_depth` gauge (todo and doing only, so
/// the label set stays small).
pub async fn queue_depths(db: &Db) -> sqlx::Result<Vec<(String, String, i64)>> {
    with_db!(db, p => sqlx::query_as::<_, (String, String, i64)>(
        "SELECT queue, status, COUNT(*) FROM jobs WHERE status IN ('todo', 'doing') GROUP BY queue, status")
        .fetch_all(p).await)
}

/// Deletes finished jobs last touched before `before`, in the caller's transaction.
pub async fn delete_finished_before(tx: &mut Tx, before: DateTime<Utc>) -> sqlx::Result<u64> {
    with_tx!(tx, p => sqlx::query("DELETE FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND updated_at < $1")
        .bind(before).execute(p).await.map(|r| r.rows_affected()))
}

/// One attempt of a job as claimed by one worker: what a completion or failure is conditioned on.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub id: i64,
    pub attempt: i32,
    pub worker: &'a str,
}

/// Marks the claimed jobs succeeded in the caller's transaction, each only if it is still
/// `doing` under this worker and this attempt. Returns how many were; fewer than asked means a
/// job was handed to another worker, and the caller must roll back.
pub async fn complete_in(tx: &mut Tx, claims: &[Claim<'_>]) -> sqlx::Result<u64> {
    if claims.is_empty() {
        return Ok(0);
    }
    // One statement for a batch; each job matched on its own (id, attempt, worker) claim.
    let mut p = tx.sequential_placeholders();
    let (finished_at, updated_at) = (p.next(), p.next());
    let matches: Vec<String> = claims.iter().map(|_| p.fill("(id = ? AND attempts = ? AND locked_by = ?)")).collect();
    let sql = format!(
        "UPDATE jobs SET status = 'succeeded', finished_at = {finished_at}, updated_at = {updated_at}, locked_by = NULL, \
         locked_until = NULL, last_error = NULL WHERE status = 'doing' AND ({})",
        matches.join(" OR ")
    );
    let at = now();
    with_tx!(tx, c => {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at).bind(at);
        for claim in claims {
            query = query.bind(claim.id).bind(claim.attempt).bind(claim.worker);
        }
        query.execute(c).await.map(|r| r.rows_affected())
    })
}

/// What to do with a job whose attempt failed.
#[derive(Debug, Clone, Copy)]
pub enum AfterFailure {
    /// Back to `todo`, runnable again at this time.
    RetryAt(DateTime<Utc>),
    /// `failed` for good.
    GiveUp,
}

/// Records a failed attempt, if this worker still holds it; `max_attempts` records the policy
/// that applied (the registry's, which settings may override).
pub async fn fail(db: &Db, claim: Claim<'_>, max_attempts: Option<i32>, error: &str, then: AfterFailure) -> sqlx::Result<()> {
    let at = now();
    let (retry, run_at) = match then {
        AfterFailure::RetryAt(run_at) => (true, run_at),
        AfterFailure::GiveUp => (false, at),
    };
    let error: String = error.chars().take(2000).collect();
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, c => sqlx::query(
        "UPDATE jobs SET status = CASE WHEN $1 THEN 'todo' ELSE 'failed' END, run_at = CASE WHEN $1 THEN $2 ELSE run_at END, \
         finished_at = CASE WHEN $1 THEN NULL ELSE $3 END, last_error = $4, max_attempts = COALESCE($5, max_attempts), locked_by = NULL, locked_until = NULL, \
         updated_at = $3 WHERE id = $6 AND attempts = $7 AND locked_by = $8 AND status = 'doing'")
        .bind(retry).bind(run_at).bind(at).bind(error).bind(max_attempts).bind(claim.id).bind(claim.attempt).bind(claim.worker)
        .execute(c).await.map(|_| ()))?;
    tx.commit().await
}

/// Gives claimed jobs back untouched (shutdown before they started): attempts are restored.
pub async fn release(db: &Db, job_ids: &[i64], worker: &str) -> sqlx::Result<()> {
    if job_ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE jobs SET status = 'todo', attempts = attempts - 1, locked_by = NULL, locked_until = NULL, updated_at = $1 \
         WHERE locked_by = $2 AND status = 'doing' AND id IN ({})",
        placeholders(3, job_ids.len())
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
