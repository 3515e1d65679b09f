//! SQL for `agent_registrations` and `agent_runs`: the only place that reads or writes them.
//! The sealed secrets (auth header value, signing secrets) are read only by `find_secrets`,
//! which the dispatcher calls at send time; the rows every response is built from do not hold
//! them, so a secret cannot reach a response by accident.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Filter, Json, Tx, fetch_page, now};
use crate::{with_db, with_tx};

#[derive(Debug, Clone, FromRow)]
pub struct AgentRow {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub endpoint_url: String,
    pub auth_header_name: Option<String>,
    pub trigger_on_sources: Json<Vec<String>>,
    pub trigger_on_severities: Json<Vec<String>>,
    pub trigger_filter: Option<Json<Value>>,
    pub timeout_seconds: i32,
    pub retry_count: i32,
    pub is_active: bool,
    pub documentation: Option<String>,
    pub redact_untrusted_fields: bool,
    pub previous_signing_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, uuid, name, description, endpoint_url, auth_header_name, trigger_on_sources, \
    trigger_on_severities, trigger_filter, timeout_seconds, retry_count, is_active, documentation, \
    redact_untrusted_fields, previous_signing_secret_expires_at, created_at, updated_at";

/// The sealed secrets of one agent, as stored (envelopes; opened by the dispatcher).
#[derive(Debug, Clone, FromRow)]
pub struct SealedSecrets {
    pub auth_header_value_encrypted: Option<String>,
    pub signing_secret_encrypted: Option<String>,
    pub previous_signing_secret_encrypted: Option<String>,
    pub previous_signing_secret_expires_at: Option<DateTime<Utc>>,
}

/// One page, newest first, plus the total.
pub async fn list(db: &Db, limit: i64, offset: i64) -> sqlx::Result<(Vec<AgentRow>, i64)> {
    let select = format!("SELECT {COLUMNS} FROM agent_registrations");
    fetch_page(db, &select, &Filter::new(db), "created_at DESC, id DESC", limit, offset).await
}

/// Every active agent, oldest first (the matching order of agents-mcp-metrics.md §1.1).
pub async fn active(db: &Db) -> sqlx::Result<Vec<AgentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM agent_registrations WHERE is_active = TRUE ORDER BY created_at, id");
    with_db!(db, p => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(sql)).fetch_all(p).await)
}

/// Every active agent, oldest first, read in the caller's transaction (the enrichment pipeline
/// matches inside the transaction that marks the alerts enriched).
pub async fn active_in(tx: &mut Tx) -> sqlx::Result<Vec<AgentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM agent_registrations WHERE is_active = TRUE ORDER BY created_at, id");
    with_tx!(tx, c => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(sql)).fetch_all(c).await)
}

/// What matching reads of an alert: `(id, source_name, severity, tags)`, in the caller's
/// transaction.
pub async fn match_facts_in(tx: &mut Tx, alert_ids: &[i64]) -> sqlx::Result<Vec<(i64, String, String, Json<Vec<String>>)>> {
    if alert_ids.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = (1..=alert_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT id, source_name, severity, tags FROM alerts WHERE id IN ({})", list.join(", "));
    with_tx!(tx, c => {
        let mut query = sqlx::query_as::<_, (i64, String, String, Json<Vec<String>>)>(sqlx::AssertSqlSafe(sql));
        for id in alert_ids {
            query = query.bind(*id);
        }
        query.fetch_all(c).await
    })
}

pub async fn find_by_uuid(db: &Db, uuid: Uuid) -> sqlx::Result<Option<AgentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM agent_registrations WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

pub async fn find_by_id(db: &Db, id: i64) -> sqlx::Result<Option<AgentRow>> {
    let sql = format!("SELECT {COLUMNS} FROM agent_registrations WHERE id = $1");
    with_db!(db, p => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)
}

pub async fn find_secrets(db: &Db, id: i64) -> sqlx::Result<Option<SealedSecrets>> {
    with_db!(db, p => sqlx::query_as::<_, SealedSecrets>(
        "SELECT auth_header_value_encrypted, signing_secret_encrypted, previous_signing_secret_encrypted, \
         previous_signing_secret_expires_at FROM agent_registrations WHERE id = $1")
        .bind(id).fetch_optional(p).await)
}

/// A new registration; secrets already sealed.
pub struct NewAgent<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub endpoint_url: &'a str,
    pub auth_header_name: Option<&'a str>,
    pub sealed_auth_header_value: Option<String>,
    pub sealed_signing_secret: Option<String>,
    pub trigger_on_sources: &'a [String],
    pub trigger_on_severities: &'a [String],
    pub trigger_filter: Option<&'a Value>,
    pub timeout_seconds: i32,
    pub retry_count: i32,
    pub is_active: bool,
    pub documentation: Option<&'a str>,
    pub redact_untrusted_fields: bool,
}

pub async fn insert(tx: &mut Tx, agent: NewAgent<'_>) -> sqlx::Result<AgentRow> {
    let sql = format!(
        "INSERT INTO agent_registrations (uuid, name, description, endpoint_url, auth_header_name, auth_header_value_encrypted, \
         signing_secret_encrypted, trigger_on_sources, trigger_on_severities, trigger_filter, timeout_seconds, retry_count, \
         is_active, documentation, redact_untrusted_fields, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) RETURNING {COLUMNS}"
    );
    with_tx!(tx, c => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4())
        .bind(agent.name)
        .bind(agent.description)
        .bind(agent.endpoint_url)
        .bind(agent.auth_header_name)
        .bind(agent.sealed_auth_header_value)
        .bind(agent.sealed_signing_secret)
        .bind(Json(agent.trigger_on_sources))
        .bind(Json(agent.trigger_on_severities))
        .bind(agent.trigger_filter.map(Json))
        .bind(agent.timeout_seconds)
        .bind(agent.retry_count)
        .bind(agent.is_active)
        .bind(agent.documentation)
        .bind(agent.redact_untrusted_fields)
        .bind(now())
        .fetch_one(c)
        .await)
}

/// Fields a PATCH changes; `None` keeps the column (api.md: nulls ignored).
#[derive(Default)]
pub struct AgentChanges<'a> {
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub endpoint_url: Option<&'a str>,
    pub auth_header_name: Option<&'a str>,
    pub sealed_auth_header_value: Option<String>,
    pub trigger_on_sources: Option<&'a [String]>,
    pub trigger_on_severities: Option<&'a [String]>,
    pub trigger_filter: Option<&'a Value>,
    pub timeout_seconds: Option<i32>,
    pub retry_count: Option<i32>,
    pub is_active: Option<bool>,
    pub documentation: Option<&'a str>,
    pub redact_untrusted_fields: Option<bool>,
}

pub async fn update(tx: &mut Tx, uuid: Uuid, changes: AgentChanges<'_>) -> sqlx::Result<Option<AgentRow>> {
    let sql = format!(
        "UPDATE agent_registrations SET \
           name = COALESCE($2, name), description = COALESCE($3, description), endpoint_url = COALESCE($4, endpoint_url), \
           auth_header_name = COALESCE($5, auth_header_name), \
           auth_header_value_encrypted = COALESCE($6, auth_header_value_encrypted), \
           trigger_on_sources = COALESCE($7, trigger_on_sources), trigger_on_severities = COALESCE($8, trigger_on_severities), \
           trigger_filter = COALESCE($9, trigger_filter), timeout_seconds = COALESCE($10, timeout_seconds), \
           retry_count = COALESCE($11, retry_count), is_active = COALESCE($12, is_active), \
           documentation = COALESCE($13, documentation), redact_untrusted_fields = COALESCE($14, redact_untrusted_fields), \
           updated_at = $15 \
         WHERE uuid = $1 RETURNING {COLUMNS}"
    );
    with_tx!(tx, c => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(sql))
        .bind(uuid)
        .bind(changes.name)
        .bind(changes.description)
        .bind(changes.endpoint_url)
        .bind(changes.auth_header_name)
        .bind(changes.sealed_auth_header_value)
        .bind(changes.trigger_on_sources.map(Json))
        .bind(changes.trigger_on_severities.map(Json))
        .bind(changes.trigger_filter.map(Json))
        .bind(changes.timeout_seconds)
        .bind(changes.retry_count)
        .bind(changes.is_active)
        .bind(changes.documentation)
        .bind(changes.redact_untrusted_fields)
        .bind(now())
        .fetch_optional(c)
        .await)
}

/// Installs a new signing secret; the one it replaces keeps signing until `previous_until`.
pub async fn rotate_secret(tx: &mut Tx, uuid: Uuid, sealed_new: &str, previous_until: DateTime<Utc>) -> sqlx::Result<Option<AgentRow>> {
    let sql = format!(
        "UPDATE agent_registrations SET previous_signing_secret_encrypted = signing_secret_encrypted, \
           previous_signing_secret_expires_at = CASE WHEN signing_secret_encrypted IS NULL THEN NULL ELSE $3 END, \
           signing_secret_encrypted = $2, updated_at = $4 WHERE uuid = $1 RETURNING {COLUMNS}"
    );
    with_tx!(tx, c => sqlx::query_as::<_, AgentRow>(sqlx::AssertSqlSafe(sql))
        .bind(uuid).bind(sealed_new).bind(previous_until).bind(now()).fetch_optional(c).await)
}

/// Hard delete (cascades `agent_runs`); `false` when no row had that uuid.
pub async fn delete(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<bool> {
    let removed = with_tx!(tx, c => sqlx::query("DELETE FROM agent_registrations WHERE uuid = $1")
        .bind(uuid).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(removed > 0)
}

/// One delivery attempt, for `agent_runs`.
pub struct NewRun<'a> {
    pub agent_id: i64,
    pub alert_id: i64,
    pub endpoint_url: &'a str,
    pub webhook_id: &'a str,
    pub status: &'a str,
    pub response_status_code: Option<i32>,
    pub response_body: Option<Value>,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub completed_at: DateTime<Utc>,
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub async fn insert_run(tx: &mut Tx, run: NewRun<'_>) -> sqlx::Result<()> {
    let at = now();
    with_tx!(tx, c => sqlx::query(
        "INSERT INTO agent_runs (uuid, agent_registration_id, alert_id, request_payload, response_status_code, response_body, \
         status, attempt_count, started_at, completed_at, webhook_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)")
        .bind(Uuid::new_v4())
        .bind(run.agent_id)
        .bind(run.alert_id)
        .bind(Json(serde_json::json!({"endpoint_url": run.endpoint_url})))
        .bind(run.response_status_code)
        .bind(run.response_body.map(Json))
        .bind(run.status)
        .bind(run.attempt)
        .bind(iso(run.started_at))
        .bind(iso(run.completed_at))
        .bind(run.webhook_id)
        .bind(at)
        .execute(c)
        .await
        .map(|_| ()))
}

/// The uuid of the alert with this internal id (job payloads carry ids, as Calseta's do).
pub async fn alert_uuid(db: &Db, alert_id: i64) -> sqlx::Result<Option<Uuid>> {
    with_db!(db, p => sqlx::query_scalar("SELECT uuid FROM alerts WHERE id = $1").bind(alert_id).fetch_optional(p).await)
}

/// A workflow as agent payloads list it (no code).
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct PayloadWorkflow {
    pub uuid: Uuid,
    pub name: String,
    pub workflow_type: Option<String>,
    pub documentation: Option<String>,
    pub risk_level: String,
    pub approval_mode: String,
    pub indicator_types: Json<Vec<String>>,
    pub tags: Json<Vec<String>>,
}

/// Up to 20 active workflows, oldest first (agents-mcp-metrics.md §1.3). Read here because the
/// payload is this module's; the workflows domain owns every write to the table.
pub async fn payload_workflows(db: &Db) -> sqlx::Result<Vec<PayloadWorkflow>> {
    with_db!(db, p => sqlx::query_as::<_, PayloadWorkflow>(
        "SELECT uuid, name, workflow_type, documentation, risk_level, approval_mode, indicator_types, tags FROM workflows \
         WHERE state = 'active' ORDER BY created_at, id LIMIT 20")
        .fetch_all(p).await)
}
