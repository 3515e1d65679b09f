//! SQL for decisions on `workflow_approval_requests` (creation lives with the workflow gate): the
//! reads with their workflow, the one conditional UPDATE a decision is, expiry and cancellation.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Filter, Json, Tx, fetch_page, now};
use crate::{with_db, with_tx};

#[derive(Debug, Clone, FromRow)]
pub struct ApprovalRow {
    pub id: i64,
    pub uuid: Uuid,
    pub workflow_id: i64,
    pub workflow_name: Option<String>,
    pub workflow_uuid: Option<Uuid>,
    pub workflow_run_id: Option<i64>,
    pub trigger_type: String,
    pub trigger_agent_key_prefix: String,
    pub trigger_key_uuid: Option<Uuid>,
    pub trigger_context: Option<Json<Value>>,
    pub reason: String,
    pub confidence: f64,
    pub notifier_type: String,
    pub notifier_channel: Option<String>,
    pub status: String,
    pub responder_id: Option<String>,
    pub responded_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub execution_result: Option<Json<Value>>,
    pub decide_token_hash: Option<String>,
    pub decided_by_type: Option<String>,
    pub decided_by_id: Option<String>,
    pub decided_by_key_prefix: Option<String>,
    pub decided_by_key_name: Option<String>,
    pub risk_level: Option<String>,
    /// Where the notifier's message landed (Slack: message `ts` and channel id), once posted.
    pub external_message_id: Option<String>,
    pub external_channel_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ApprovalRow {
    pub fn is_expired_pending(&self, at: DateTime<Utc>) -> bool {
        self.status == "pending" && at > self.expires_at
    }
}

const SELECT: &str = "SELECT a.id, a.uuid, a.workflow_id, w.name AS workflow_name, w.uuid AS workflow_uuid, a.workflow_run_id, \
    a.trigger_type, a.trigger_agent_key_prefix, a.trigger_key_uuid, a.trigger_context, a.reason, a.confidence, a.notifier_type, \
    a.notifier_channel, a.status, a.responder_id, a.responded_at, a.expires_at, a.execution_result, a.decide_token_hash, \
    a.decided_by_type, a.decided_by_id, a.decided_by_key_prefix, a.decided_by_key_name, w.risk_level, a.external_message_id, a.external_channel_id, a.created_at, a.updated_at \
    FROM workflow_approval_requests a LEFT JOIN workflows w ON w.id = a.workflow_id";

pub async fn find(db: &Db, uuid: Uuid) -> sqlx::Result<Option<ApprovalRow>> {
    let sql = format!("{SELECT} WHERE a.uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, ApprovalRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

pub async fn find_in(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<Option<ApprovalRow>> {
    let sql = format!("{SELECT} WHERE a.uuid = $1");
    with_tx!(tx, c => sqlx::query_as::<_, ApprovalRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(c).await)
}

pub async fn find_by_id(db: &Db, id: i64) -> sqlx::Result<Option<ApprovalRow>> {
    let sql = format!("{SELECT} WHERE a.id = $1");
    with_db!(db, p => sqlx::query_as::<_, ApprovalRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)
}

/// `GET /v1/workflow-approvals`: exact status, one workflow; newest first.
pub async fn list(db: &Db, status: Option<String>, workflow_id: Option<i64>, limit: i64, offset: i64) -> sqlx::Result<(Vec<ApprovalRow>, i64)> {
    let mut f = Filter::new(db);
    f.eq_opt("a.status", status);
    f.eq_opt("a.workflow_id", workflow_id);
    fetch_page(db, SELECT, &f, "a.created_at DESC, a.id DESC", limit, offset).await
}

/// Who decided, from the authenticated principal (never from a request body).
#[derive(Debug, Clone)]
pub struct DecidedBy {
    /// `api`, `mcp`, `slack`, `browser` or `system`.
    pub kind: &'static str,
    /// The key uuid, the Slack user id, or `browser`.
    pub id: String,
    pub key_prefix: Option<String>,
    pub key_name: Option<String>,
}

/// The decision: ONE conditional UPDATE (pending and not expired → `status`). Under any
/// concurrency exactly one caller gets `Some`, holding the request's posted message id if its
/// notification was posted (read by the UPDATE itself, so a post storing its id concurrently is
/// either seen here or sees this decision). The decide token cannot decide again (it only opens
/// a `pending` request); its hash stays so its holder can read "already decided".
pub async fn decide(tx: &mut Tx, id: i64, status: &str, responder_id: &str, by: &DecidedBy) -> sqlx::Result<Option<Option<String>>> {
    let at = now();
    with_tx!(tx, c => sqlx::query_scalar::<_, Option<String>>(
        "UPDATE workflow_approval_requests SET status = $2, responder_id = $3, responded_at = $4, updated_at = $4, \
         decided_by_type = $5, decided_by_id = $6, decided_by_key_prefix = $7, decided_by_key_name = $8 \
         WHERE id = $1 AND status = 'pending' AND expires_at >= $4 RETURNING external_message_id")
        .bind(id).bind(status).bind(responder_id).bind(at).bind(by.kind).bind(&by.id).bind(&by.key_prefix).bind(&by.key_name)
        .fetch_optional(c).await)
}

/// Where the request's notification landed; returns the request's status at that moment (a
/// decision committed meanwhile is seen here, see [`decide`]).
pub async fn set_posted(tx: &mut Tx, id: i64, channel: &str, ts: &str) -> sqlx::Result<Option<String>> {
    with_tx!(tx, c => sqlx::query_scalar::<_, String>(
        "UPDATE workflow_approval_requests SET external_channel_id = $2, external_message_id = $3, updated_at = $4 \
         WHERE id = $1 RETURNING status")
        .bind(id).bind(channel).bind(ts).bind(now()).fetch_optional(c).await)
}

/// Ids of the given requests whose notification was posted.
pub async fn posted_ids(tx: &mut Tx, uuids: &[Uuid]) -> sqlx::Result<Vec<i64>> {
    let mut ids = Vec::new();
    for uuid in uuids {
        let id = with_tx!(tx, c => sqlx::query_scalar::<_, i64>(
            "SELECT id FROM workflow_approval_requests WHERE uuid = $1 AND external_message_id IS NOT NULL")
            .bind(uuid).fetch_optional(c).await)?;
        ids.extend(id);
    }
    Ok(ids)
}

/// Marks the given pending requests past expiry `expired` (their decide tokens die); returns the
/// uuids it changed. `ids = None` sweeps every one.
pub async fn expire(tx: &mut Tx, ids: Option<&[i64]>) -> sqlx::Result<Vec<Uuid>> {
    let at = now();
    let mut sql = String::from(
        "UPDATE workflow_approval_requests SET status = 'expired', decide_token_hash = NULL, updated_at = $1 \
         WHERE status = 'pending' AND expires_at < $1",
    );
    if let Some(ids) = ids {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Internal integer ids only: safe to inline.
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        sql.push_str(&format!(" AND id IN ({list})"));
    }
    sql.push_str(" RETURNING uuid");
    with_tx!(tx, c => sqlx::query_scalar::<_, Uuid>(sqlx::AssertSqlSafe(sql)).bind(at).fetch_all(c).await)
}

/// Pending requests of a workflow that stopped being executable become `cancelled`; their
/// decide tokens die with them. Returns the uuids it changed.
pub async fn cancel_pending_for_workflow(tx: &mut Tx, workflow_id: i64) -> sqlx::Result<Vec<Uuid>> {
    with_tx!(tx, c => sqlx::query_scalar::<_, Uuid>(
        "UPDATE workflow_approval_requests SET status = 'cancelled', decide_token_hash = NULL, updated_at = $2 \
         WHERE workflow_id = $1 AND status = 'pending' RETURNING uuid")
        .bind(workflow_id).bind(now()).fetch_all(c).await)
}

/// Links the run created for an approved request; `false` when one is linked already (the
/// execution job ran before), so a request executes at most once.
pub async fn link_run(tx: &mut Tx, id: i64, run_id: i64) -> sqlx::Result<bool> {
    let done = with_tx!(tx, c => sqlx::query(
        "UPDATE workflow_approval_requests SET workflow_run_id = $2, updated_at = $3 \
         WHERE id = $1 AND status = 'approved' AND workflow_run_id IS NULL")
        .bind(id).bind(run_id).bind(now()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Stores an approved request's run result; returns the request's id and notifier.
pub async fn set_execution_result(tx: &mut Tx, uuid: Uuid, result: &Value) -> sqlx::Result<Option<(i64, String)>> {
    with_tx!(tx, c => sqlx::query_as::<_, (i64, String)>(
        "UPDATE workflow_approval_requests SET execution_result = $2, updated_at = $3 WHERE uuid = $1 RETURNING id, notifier_type")
        .bind(uuid).bind(Json(result)).bind(now()).fetch_optional(c).await)
}

pub async fn workflow_id_by_uuid(db: &Db, uuid: Uuid) -> sqlx::Result<Option<i64>> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>("SELECT id FROM workflows WHERE uuid = $1").bind(uuid).fetch_optional(p).await)
}
