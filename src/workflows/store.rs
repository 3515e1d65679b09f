//! SQL for `workflows`, `workflow_code_versions`, `workflow_runs` and
//! `workflow_approval_requests`: the only place that reads or writes them. Also the two
//! read-only lookups a run needs from other domains (the indicator by exact type and value, the
//! alert for `ctx.alert`), kept here so the run path has one data-access module.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Filter, Json, Tx, fetch_page, now};
use crate::http::query::SortOrder;
use crate::{with_db, with_tx};

#[derive(Debug, Clone, FromRow)]
pub struct WorkflowRow {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub workflow_type: Option<String>,
    pub indicator_types: Json<Vec<String>>,
    pub code: String,
    pub code_version: i32,
    pub state: String,
    pub timeout_seconds: i32,
    pub retry_count: i32,
    pub is_active: bool,
    pub is_system: bool,
    pub tags: Json<Vec<String>>,
    pub time_saved_minutes: Option<i32>,
    pub approval_mode: String,
    pub approval_channel: Option<String>,
    pub approval_timeout_seconds: i32,
    pub risk_level: String,
    pub documentation: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, uuid, name, workflow_type, indicator_types, code, code_version, state, timeout_seconds, \
    retry_count, is_active, is_system, tags, time_saved_minutes, approval_mode, approval_channel, \
    approval_timeout_seconds, risk_level, documentation, created_at, updated_at";

/// Inserts a workflow row as given (`id`, `uuid`, timestamps are assigned here).
pub async fn insert(tx: &mut Tx, w: &WorkflowRow) -> sqlx::Result<WorkflowRow> {
    let sql = format!(
        "INSERT INTO workflows (uuid, name, workflow_type, indicator_types, code, code_version, state, timeout_seconds, \
         retry_count, is_active, is_system, tags, time_saved_minutes, approval_mode, approval_channel, \
         approval_timeout_seconds, risk_level, documentation, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19) RETURNING {COLUMNS}"
    );
    with_tx!(tx, c => sqlx::query_as::<_, WorkflowRow>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4()).bind(&w.name).bind(&w.workflow_type).bind(&w.indicator_types).bind(&w.code)
        .bind(w.code_version).bind(&w.state).bind(w.timeout_seconds).bind(w.retry_count).bind(w.is_active)
        .bind(w.is_system).bind(&w.tags).bind(w.time_saved_minutes).bind(&w.approval_mode).bind(&w.approval_channel)
        .bind(w.approval_timeout_seconds).bind(&w.risk_level).bind(&w.documentation).bind(now())
        .fetch_one(c).await)
}

/// Inserts a system workflow unless one with its name exists (the partial unique index makes
/// concurrent start-ups seed it once). Returns whether a row was written.
pub async fn insert_system_if_absent(tx: &mut Tx, w: &WorkflowRow) -> sqlx::Result<bool> {
    let sql = "INSERT INTO workflows (uuid, name, workflow_type, indicator_types, code, code_version, state, timeout_seconds, \
         retry_count, is_active, is_system, tags, time_saved_minutes, approval_mode, approval_channel, \
         approval_timeout_seconds, risk_level, documentation, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, TRUE, $10, NULL, $11, NULL, $12, $13, $14, $15, $15) \
         ON CONFLICT (name) WHERE is_system DO NOTHING";
    let done = with_tx!(tx, c => sqlx::query(sql)
        .bind(Uuid::new_v4()).bind(&w.name).bind(&w.workflow_type).bind(&w.indicator_types).bind(&w.code)
        .bind(&w.state).bind(w.timeout_seconds).bind(w.retry_count).bind(w.is_active).bind(&w.tags)
        .bind(&w.approval_mode).bind(w.approval_timeout_seconds).bind(&w.risk_level).bind(&w.documentation).bind(now())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

pub async fn find(db: &Db, uuid: Uuid) -> sqlx::Result<Option<WorkflowRow>> {
    let sql = format!("SELECT {COLUMNS} FROM workflows WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, WorkflowRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

pub async fn find_by_id(db: &Db, id: i64) -> sqlx::Result<Option<WorkflowRow>> {
    let sql = format!("SELECT {COLUMNS} FROM workflows WHERE id = $1");
    with_db!(db, p => sqlx::query_as::<_, WorkflowRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)
}

pub async fn find_by_id_in(tx: &mut Tx, id: i64) -> sqlx::Result<Option<WorkflowRow>> {
    let sql = format!("SELECT {COLUMNS} FROM workflows WHERE id = $1");
    with_tx!(tx, c => sqlx::query_as::<_, WorkflowRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(c).await)
}

/// Reads the workflow for a read-modify-write, holding it until the transaction ends (advisory
/// lock on PostgreSQL; SQLite's `BEGIN IMMEDIATE` serialises writers already).
pub async fn lock_and_read(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<Option<WorkflowRow>> {
    crate::db::lock_key(tx, &format!("workflow:{uuid}")).await?;
    let sql = format!("SELECT {COLUMNS} FROM workflows WHERE uuid = $1");
    with_tx!(tx, c => sqlx::query_as::<_, WorkflowRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(c).await)
}

/// Writes every mutable column of `w` (the service computed the new row).
pub async fn update(tx: &mut Tx, w: &WorkflowRow) -> sqlx::Result<WorkflowRow> {
    let sql = format!(
        "UPDATE workflows SET name = $2, workflow_type = $3, indicator_types = $4, code = $5, code_version = $6, state = $7, \
         timeout_seconds = $8, retry_count = $9, is_active = $10, tags = $11, time_saved_minutes = $12, approval_mode = $13, \
         approval_channel = $14, approval_timeout_seconds = $15, risk_level = $16, documentation = $17, updated_at = $18 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    with_tx!(tx, c => sqlx::query_as::<_, WorkflowRow>(sqlx::AssertSqlSafe(sql))
        .bind(w.id).bind(&w.name).bind(&w.workflow_type).bind(&w.indicator_types).bind(&w.code).bind(w.code_version)
        .bind(&w.state).bind(w.timeout_seconds).bind(w.retry_count).bind(w.is_active).bind(&w.tags)
        .bind(w.time_saved_minutes).bind(&w.approval_mode).bind(&w.approval_channel).bind(w.approval_timeout_seconds)
        .bind(&w.risk_level).bind(&w.documentation).bind(now())
        .fetch_one(c).await)
}

pub async fn delete(tx: &mut Tx, id: i64) -> sqlx::Result<()> {
    with_tx!(tx, c => sqlx::query("DELETE FROM workflows WHERE id = $1").bind(id).execute(c).await.map(|_| ()))
}

/// `GET /v1/workflows` filters.
#[derive(Debug, Default)]
pub struct WorkflowFilter {
    pub workflow_type: Option<String>,
    pub states: Option<Vec<String>>,
    pub risk_levels: Option<Vec<String>>,
    pub is_active: Option<bool>,
}

pub const SORT_KEYS: [&str; 5] = ["name", "state", "risk_level", "updated_at", "created_at"];

fn sort_expression(key: &str) -> &'static str {
    match key {
        "name" => "name",
        "state" => "state",
        // Calseta sorts risk by severity, not alphabetically.
        "risk_level" => "CASE risk_level WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END",
        "updated_at" => "updated_at",
        _ => "created_at",
    }
}

pub async fn list(
    db: &Db,
    filter: &WorkflowFilter,
    sort_key: &str,
    order: SortOrder,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<WorkflowRow>, i64)> {
    let mut f = Filter::new(db);
    f.eq_opt("workflow_type", filter.workflow_type.clone());
    f.any_of("state", filter.states.as_deref().unwrap_or_default());
    f.any_of("risk_level", filter.risk_levels.as_deref().unwrap_or_default());
    f.eq_opt("is_active", filter.is_active);
    let order_by = format!("{} {dir}, id {dir}", sort_expression(sort_key), dir = order.sql());
    fetch_page(db, &format!("SELECT {COLUMNS} FROM workflows"), &f, &order_by, limit, offset).await
}

#[derive(Debug, Clone, FromRow)]
pub struct VersionRow {
    pub version: i32,
    pub code: String,
    pub saved_at: DateTime<Utc>,
}

pub async fn insert_version(tx: &mut Tx, workflow_id: i64, version: i32, code: &str) -> sqlx::Result<()> {
    with_tx!(tx, c => sqlx::query("INSERT INTO workflow_code_versions (workflow_id, version, code, saved_at) VALUES ($1, $2, $3, $4)")
        .bind(workflow_id).bind(version).bind(code).bind(now()).execute(c).await.map(|_| ()))
}

pub async fn versions(db: &Db, workflow_id: i64) -> sqlx::Result<Vec<VersionRow>> {
    with_db!(db, p => sqlx::query_as::<_, VersionRow>(
        "SELECT version, code, saved_at FROM workflow_code_versions WHERE workflow_id = $1 ORDER BY version DESC, id DESC")
        .bind(workflow_id).fetch_all(p).await)
}

#[derive(Debug, Clone, FromRow)]
pub struct RunRow {
    pub id: i64,
    pub uuid: Uuid,
    pub workflow_id: i64,
    pub trigger_type: String,
    pub trigger_context: Option<Json<Value>>,
    pub code_version_executed: i32,
    pub log_output: Option<String>,
    pub result: Option<Json<Value>>,
    pub status: String,
    pub attempt_count: i32,
    pub duration_ms: Option<i32>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const RUN_COLUMNS: &str = "id, uuid, workflow_id, trigger_type, trigger_context, code_version_executed, log_output, result, \
    status, attempt_count, duration_ms, started_at, completed_at, created_at, updated_at";

/// Creates a `queued` run; returns (id, uuid).
pub async fn insert_run(
    tx: &mut Tx,
    workflow_id: i64,
    trigger_type: &str,
    trigger_context: &Value,
    code_version: i32,
) -> sqlx::Result<(i64, Uuid)> {
    let uuid = Uuid::new_v4();
    let id = with_tx!(tx, c => sqlx::query_scalar::<_, i64>(
        "INSERT INTO workflow_runs (uuid, workflow_id, trigger_type, trigger_context, code_version_executed, status, attempt_count, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $6) RETURNING id")
        .bind(uuid).bind(workflow_id).bind(trigger_type).bind(Json(trigger_context)).bind(code_version).bind(now())
        .fetch_one(c).await)?;
    Ok((id, uuid))
}

pub async fn run_by_id(db: &Db, id: i64) -> sqlx::Result<Option<RunRow>> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE id = $1");
    with_db!(db, p => sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)
}

/// What a finished run records.
pub struct RunFinish<'a> {
    pub status: &'a str,
    pub log_output: &'a str,
    pub result: Value,
    pub duration_ms: i32,
    pub started_at: &'a str,
    pub completed_at: &'a str,
}

pub async fn finish_run(tx: &mut Tx, id: i64, finish: &RunFinish<'_>) -> sqlx::Result<()> {
    with_tx!(tx, c => sqlx::query(
        "UPDATE workflow_runs SET status = $2, log_output = $3, result = $4, duration_ms = $5, started_at = $6, completed_at = $7, \
         attempt_count = attempt_count + 1, updated_at = $8 WHERE id = $1")
        .bind(id).bind(finish.status).bind(finish.log_output).bind(Json(&finish.result)).bind(finish.duration_ms)
        .bind(finish.started_at).bind(finish.completed_at).bind(now())
        .execute(c).await.map(|_| ()))
}

pub async fn list_runs(
    db: &Db,
    workflow_id: Option<i64>,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<RunRow>, i64)> {
    let mut f = Filter::new(db);
    f.eq_opt("workflow_id", workflow_id);
    f.eq_opt("status", status);
    fetch_page(db, &format!("SELECT {RUN_COLUMNS} FROM workflow_runs"), &f, "created_at DESC, id DESC", limit, offset).await
}

/// A new approval request; the decide token arrives hashed.
pub struct NewApproval<'a> {
    pub workflow_id: i64,
    pub trigger_type: &'a str,
    pub trigger_agent_key_prefix: &'a str,
    /// The key that asked (NULL for the system): the four-eyes rule compares keys, not prefixes.
    pub trigger_key_uuid: Option<Uuid>,
    pub trigger_context: &'a Value,
    pub reason: &'a str,
    pub confidence: f64,
    pub notifier_type: &'a str,
    pub notifier_channel: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
    pub decide_token_hash: &'a str,
}

pub async fn insert_approval(tx: &mut Tx, a: &NewApproval<'_>) -> sqlx::Result<(i64, Uuid)> {
    let uuid = Uuid::new_v4();
    let id = with_tx!(tx, c => sqlx::query_scalar::<_, i64>(
        "INSERT INTO workflow_approval_requests (uuid, workflow_id, trigger_type, trigger_agent_key_prefix, trigger_context, reason, \
         confidence, notifier_type, notifier_channel, status, expires_at, decide_token_hash, created_at, updated_at, trigger_key_uuid) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12, $12, $13) RETURNING id")
        .bind(uuid).bind(a.workflow_id).bind(a.trigger_type).bind(a.trigger_agent_key_prefix).bind(Json(a.trigger_context))
        .bind(a.reason).bind(a.confidence).bind(a.notifier_type).bind(a.notifier_channel).bind(a.expires_at)
        .bind(a.decide_token_hash).bind(now()).bind(a.trigger_key_uuid)
        .fetch_one(c).await)?;
    Ok((id, uuid))
}

/// The indicator a run acts on, found by exact type and value.
pub async fn indicator(db: &Db, indicator_type: &str, value: &str) -> sqlx::Result<Option<crate::indicators::store::IndicatorRow>> {
    with_db!(db, p => sqlx::query_as::<_, crate::indicators::store::IndicatorRow>(
        "SELECT id, uuid, type, value, first_seen, last_seen, is_enriched, malice, malice_source, malice_overridden_at, \
         enrichment_results, created_at, updated_at FROM indicators WHERE type = $1 AND value = $2")
        .bind(indicator_type).bind(value).fetch_optional(p).await)
}

/// The alert fields `ctx.alert` exposes.
#[derive(Debug, Clone, FromRow)]
pub struct AlertContext {
    pub uuid: Uuid,
    pub title: String,
    pub severity: String,
    pub source_name: String,
    pub status: String,
    pub occurred_at: DateTime<Utc>,
    pub tags: Json<Vec<String>>,
    pub raw_payload: Json<Value>,
}

pub async fn alert_context(db: &Db, alert_id: i64) -> sqlx::Result<Option<AlertContext>> {
    with_db!(db, p => sqlx::query_as::<_, AlertContext>(
        "SELECT uuid, title, severity, source_name, status, occurred_at, tags, raw_payload FROM alerts WHERE id = $1")
        .bind(alert_id).fetch_optional(p).await)
}
