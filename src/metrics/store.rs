//! The SQL behind the metrics: aggregates over workflow runs, approval requests, the catalog
//! tables and the job table (alert aggregates: `rollup`). Every statement groups in the database and returns a few
//! rows; the folding into response shapes is in `fold`.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::Db;
use crate::with_db;

/// Per-backend SQL: the UTC day of a timestamp column, and the seconds between two timestamps
/// (millisecond resolution on SQLite).
pub(super) struct Dialect {
    postgres: bool,
}

impl Dialect {
    pub(super) fn of(db: &Db) -> Dialect {
        Dialect { postgres: matches!(db, Db::Postgres(_)) }
    }

    pub(super) fn day(&self, column: &str) -> String {
        if self.postgres {
            format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
        } else {
            format!("strftime('%Y-%m-%d', {column})")
        }
    }

    /// The UTC hour of a timestamp column, `YYYY-MM-DDTHH`.
    pub(super) fn hour(&self, column: &str) -> String {
        if self.postgres {
            format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')")
        } else {
            format!("strftime('%Y-%m-%dT%H', {column})")
        }
    }

    /// The UTC day of a timestamp column for `GROUP BY`: the key to group on and the
    /// `YYYY-MM-DD` text to select. PostgreSQL groups on the truncated timestamp and formats once
    /// per group (`to_char` on every row was the costliest part of the live scan).
    pub(super) fn day_grouped(&self, column: &str) -> (String, String) {
        if self.postgres {
            let key = format!("date_trunc('day', {column} AT TIME ZONE 'UTC')");
            let text = format!("to_char({key}, 'YYYY-MM-DD')");
            (key, text)
        } else {
            let text = self.day(column);
            (text.clone(), text)
        }
    }

    /// `later − earlier` in seconds, NULL when either is NULL. On PostgreSQL `date_part` (double
    /// precision) rather than `EXTRACT` (numeric since version 14, several times slower per row).
    pub(super) fn seconds(&self, later: &str, earlier: &str) -> String {
        if self.postgres {
            format!("date_part('epoch', {later} - {earlier})")
        } else {
            format!("CAST(unixepoch({later}, 'subsec') - unixepoch({earlier}, 'subsec') AS REAL)")
        }
    }
}

/// Whole-window alert aggregates: counts and the mean durations.
#[derive(Debug, Clone, FromRow)]
pub struct AlertTotals {
    pub total: i64,
    pub enriched: i64,
    pub closed: i64,
    pub false_positives: i64,
    pub enrich_seconds: Option<f64>,
    pub detect_seconds: Option<f64>,
    pub acknowledge_seconds: Option<f64>,
    pub triage_seconds: Option<f64>,
    pub conclude_seconds: Option<f64>,
}

/// Alerts of the window counted by status, severity and source.
#[derive(Debug, Clone)]
pub struct AlertGroup {
    pub status: String,
    pub severity: String,
    pub source_name: String,
    pub alerts: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct RuleCount {
    pub uuid: Uuid,
    pub name: String,
    pub count: i64,
}

/// Configured workflows counted by type and state (all time).
#[derive(Debug, Clone, FromRow)]
pub struct WorkflowGroup {
    pub workflow_type: Option<String>,
    pub state: String,
    pub workflows: i64,
}

pub async fn workflow_groups(db: &Db) -> sqlx::Result<Vec<WorkflowGroup>> {
    const SQL: &str = "SELECT workflow_type, state, COUNT(*) AS workflows FROM workflows GROUP BY workflow_type, state";
    with_db!(db, p => sqlx::query_as::<_, WorkflowGroup>(SQL).fetch_all(p).await)
}

/// Workflow runs of the window by UTC day: how many, how many succeeded, and the minutes the
/// successful ones saved (their workflow's `time_saved_minutes`).
#[derive(Debug, Clone, FromRow)]
pub struct RunDay {
    pub day: String,
    pub runs: i64,
    pub successes: i64,
    pub minutes_saved: Option<i64>,
}

pub async fn run_days(db: &Db, from: DateTime<Utc>, to: DateTime<Utc>) -> sqlx::Result<Vec<RunDay>> {
    let day = Dialect::of(db).day("r.created_at");
    let sql = format!(
        "SELECT {day} AS day, COUNT(*) AS runs, COUNT(*) FILTER (WHERE r.status = 'success') AS successes, \
           SUM(CASE WHEN r.status = 'success' THEN w.time_saved_minutes END) AS minutes_saved \
         FROM workflow_runs r JOIN workflows w ON w.id = r.workflow_id \
         WHERE r.created_at >= $1 AND r.created_at < $2 GROUP BY {day} ORDER BY day"
    );
    with_db!(db, p => sqlx::query_as::<_, RunDay>(sqlx::AssertSqlSafe(sql)).bind(from).bind(to).fetch_all(p).await)
}

#[derive(Debug, Clone, FromRow)]
pub struct WorkflowRunCount {
    pub uuid: Uuid,
    pub name: String,
    pub run_count: i64,
}

/// The ten workflows with the most runs in the window (ties: oldest workflow first).
pub async fn most_executed(db: &Db, from: DateTime<Utc>, to: DateTime<Utc>) -> sqlx::Result<Vec<WorkflowRunCount>> {
    const SQL: &str = "SELECT w.uuid, w.name, COUNT(*) AS run_count FROM workflow_runs r \
                       JOIN workflows w ON w.id = r.workflow_id \
                       WHERE r.created_at >= $1 AND r.created_at < $2 \
                       GROUP BY w.id, w.uuid, w.name ORDER BY run_count DESC, w.id ASC LIMIT 10";
    with_db!(db, p => sqlx::query_as::<_, WorkflowRunCount>(SQL).bind(from).bind(to).fetch_all(p).await)
}

/// Approval request counts: pending of all time; the rest among requests created since `since`.
#[derive(Debug, Clone, FromRow)]
pub struct ApprovalCounts {
    pub pending: i64,
    pub approved: i64,
    pub approved_responded: i64,
    pub rejected_responded: i64,
}

pub async fn approval_counts(db: &Db, since: DateTime<Utc>) -> sqlx::Result<ApprovalCounts> {
    // One index range per count (status, created_at): the requests of older windows and of
    // other statuses are not read, however many the table keeps.
    const SQL: &str = "SELECT (SELECT COUNT(*) FROM workflow_approval_requests WHERE status = 'pending') AS pending, \
                         (SELECT COUNT(*) FROM workflow_approval_requests WHERE status = 'approved' AND created_at >= $1) AS approved, \
                         (SELECT COUNT(*) FROM workflow_approval_requests \
                            WHERE status = 'approved' AND created_at >= $1 AND responded_at IS NOT NULL) AS approved_responded, \
                         (SELECT COUNT(*) FROM workflow_approval_requests \
                            WHERE status = 'rejected' AND created_at >= $1 AND responded_at IS NOT NULL) AS rejected_responded";
    with_db!(db, p => sqlx::query_as::<_, ApprovalCounts>(SQL).bind(since).fetch_one(p).await)
}

/// Seconds from creation to response of every responded request created since `since` (for the
/// median, which SQL cannot compute portably; requests are few).
pub async fn approval_response_seconds(db: &Db, since: DateTime<Utc>) -> sqlx::Result<Vec<f64>> {
    let seconds = Dialect::of(db).seconds("responded_at", "created_at");
    let sql = format!(
        "SELECT {seconds} FROM workflow_approval_requests WHERE responded_at IS NOT NULL AND created_at >= $1"
    );
    with_db!(db, p => sqlx::query_scalar::<_, f64>(sqlx::AssertSqlSafe(sql)).bind(since).fetch_all(p).await)
}

#[derive(Debug, Clone, FromRow)]
pub struct PlatformCounts {
    pub context_documents: i64,
    pub detection_rules: i64,
    pub enrichment_providers: i64,
    pub agents: i64,
    pub workflows: i64,
    pub indicator_mappings: i64,
}

pub async fn platform_counts(db: &Db) -> sqlx::Result<PlatformCounts> {
    const SQL: &str = "SELECT (SELECT COUNT(*) FROM context_documents) AS context_documents, \
                         (SELECT COUNT(*) FROM detection_rules) AS detection_rules, \
                         (SELECT COUNT(*) FROM enrichment_providers WHERE is_active) AS enrichment_providers, \
                         (SELECT COUNT(*) FROM agent_registrations WHERE is_active) AS agents, \
                         (SELECT COUNT(*) FROM workflows) AS workflows, \
                         (SELECT COUNT(*) FROM indicator_field_mappings) AS indicator_mappings";
    with_db!(db, p => sqlx::query_as::<_, PlatformCounts>(SQL).fetch_one(p).await)
}

/// The `supported_indicator_types` JSON array of every active provider.
pub async fn active_provider_types(db: &Db) -> sqlx::Result<Vec<String>> {
    const SQL: &str = "SELECT CAST(supported_indicator_types AS TEXT) FROM enrichment_providers WHERE is_active";
    with_db!(db, p => sqlx::query_scalar::<_, String>(SQL).fetch_all(p).await)
}

/// One queue of the job table.
#[derive(Debug, Clone, FromRow)]
pub struct QueueRow {
    pub queue: String,
    pub pending: i64,
    pub in_progress: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub avg_duration_seconds: Option<f64>,
    pub oldest_pending_age_seconds: Option<f64>,
}
