//! Approval operations (REST today; the browser page and the Slack callback decide through
//! [`decide`] too). A decision is one conditional UPDATE, so concurrent deciders get exactly one
//! winner and exactly one execution job; who decided comes from the authenticated caller.

use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::execute::ExecuteApprovedWorkflow;
use super::model::{ApprovalDefaults, ApprovalResponse};
use super::store::{self, ApprovalRow, DecidedBy};
use crate::activity::{self, Actor, NewEvent};
use crate::audit::{self, Outcome, Record};
use crate::db::now;
use crate::error::{Error, FieldError, Result};
use crate::operation;
use crate::pagination::Pagination;
use crate::service::{Channel, Operation, Principal};
use crate::state::AppState;

operation!(ListApprovals = "approvals.list", scopes ["approvals:write"]);
operation!(GetApproval = "approvals.get", scopes ["approvals:write"]);
operation!(ApproveRequest = "approvals.approve", scopes ["approvals:write"]);
operation!(RejectRequest = "approvals.reject", scopes ["approvals:write"]);
operation!(GetApprovalDefaults = "settings.approval_defaults", scopes ["admin"]);

pub const WORKFLOW_APPROVAL_RESPONDED: &str = "workflow_approval_responded";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn status(self) -> &'static str {
        match self {
            Decision::Approve => "approved",
            Decision::Reject => "rejected",
        }
    }
    fn operation(self) -> &'static str {
        match self {
            Decision::Approve => ApproveRequest::NAME,
            Decision::Reject => RejectRequest::NAME,
        }
    }
}

/// Who is deciding. Only an API key carries a client label (`responder_id`); the Slack user id
/// comes from a signed callback, `Browser` from holding the request's decide token.
pub enum Decider<'a> {
    Key { who: &'a Principal, label: Option<String> },
    Slack { user_id: String },
    Browser,
}

impl Decider<'_> {
    fn decided_by(&self) -> DecidedBy {
        match self {
            Decider::Key { who, .. } => match who.key() {
                Some(key) => DecidedBy {
                    kind: match who {
                        Principal::Key { channel: Channel::Mcp, .. } => "mcp",
                        _ => "api",
                    },
                    id: key.key_uuid.to_string(),
                    key_prefix: Some(key.key_prefix.clone()),
                    key_name: Some(key.name.clone()),
                },
                None => DecidedBy { kind: "system", id: "system".into(), key_prefix: None, key_name: None },
            },
            Decider::Slack { user_id } => DecidedBy { kind: "slack", id: user_id.clone(), key_prefix: None, key_name: None },
            Decider::Browser => DecidedBy { kind: "browser", id: "browser".into(), key_prefix: None, key_name: None },
        }
    }

    /// Calseta's `responder_id`: REST = the body's label or the key prefix; Slack = user id;
    /// browser = `browser`.
    fn responder_id(&self) -> String {
        match self {
            Decider::Key { who, label } => {
                label.clone().filter(|l| !l.is_empty()).unwrap_or_else(|| who.key_prefix().unwrap_or("system").to_owned())
            }
            Decider::Slack { user_id } => user_id.clone(),
            Decider::Browser => "browser".into(),
        }
    }

    /// The principal audit records are written for (a Slack user or token holder has no key).
    fn principal(&self) -> Principal {
        match self {
            Decider::Key { who, .. } => (*who).clone(),
            _ => Principal::System,
        }
    }
}

/// Whether `key` asked for this request. Requests from before keys were recorded fall back to the
/// (non-unique) prefix: a collision refuses a legitimate decider, never admits the requester.
fn triggered_by(row: &ApprovalRow, key: &crate::auth::KeyIdentity) -> bool {
    match row.trigger_key_uuid {
        Some(trigger) => trigger == key.key_uuid,
        None => row.trigger_agent_key_prefix == key.key_prefix,
    }
}

pub fn not_found(uuid: Uuid) -> Error {
    Error::NotFound(format!("Approval request {uuid} not found"))
}

fn conflict(code: &'static str, message: String) -> Error {
    Error::client(StatusCode::CONFLICT, code, message)
}

/// Lazy expiry (workflows.md §6.2): pending rows past expiry among `rows` become `expired`,
/// committed before they are returned.
async fn materialize_expiry(state: &AppState, rows: &mut [ApprovalRow]) -> Result<()> {
    let at = now();
    let ids: Vec<i64> = rows.iter().filter(|r| r.is_expired_pending(at)).map(|r| r.id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = state.db.begin().await?;
    let expired = store::expire(&mut tx, Some(&ids)).await?;
    audit_expired(&mut tx, &expired).await?;
    tx.commit().await?;
    for row in rows.iter_mut().filter(|r| expired.contains(&r.uuid)) {
        row.status = "expired".into();
        row.updated_at = at;
    }
    Ok(())
}

/// What follows every expiry: the audit records, and the outcome update of posted notifications.
pub(crate) async fn audit_expired(tx: &mut crate::db::Tx, expired: &[Uuid]) -> Result<()> {
    for uuid in expired {
        audit::record(tx, &Principal::System, Record::success("approvals.expire", "workflow_approval_request", uuid)).await?;
    }
    super::notify::enqueue_outcomes(tx, expired).await?;
    Ok(())
}

/// Every status an approval request can be in.
const STATUSES: [&str; 5] = ["pending", "approved", "rejected", "expired", "cancelled"];

pub async fn list(
    state: &AppState,
    who: &Principal,
    status: Option<String>,
    workflow: Option<Uuid>,
    pagination: Pagination,
) -> Result<(Vec<ApprovalResponse>, i64)> {
    who.authorize::<ListApprovals>()?;
    // An unknown status can never match a row: a typo gets a 422 rather than a silent empty page.
    if let Some(status) = status.as_deref().filter(|s| !STATUSES.contains(s)) {
        let message = format!("Invalid status '{status}'. Must be one of: {}", STATUSES.join(", "));
        return Err(Error::Validation(vec![FieldError::new("value_error", vec![json!("query"), json!("status")], message)]));
    }
    let workflow_id = match workflow {
        Some(uuid) => Some(store::workflow_id_by_uuid(&state.db, uuid).await?.ok_or_else(|| Error::NotFound(format!("Workflow {uuid} not found")))?),
        None => None,
    };
    let (mut rows, total) = store::list(&state.db, status, workflow_id, pagination.limit(), pagination.offset()).await?;
    materialize_expiry(state, &mut rows).await?;
    Ok((rows.into_iter().map(Into::into).collect(), total))
}

/// One request (with its risk level and token hash, for the decide page).
pub(crate) async fn load(state: &AppState, uuid: Uuid) -> Result<ApprovalRow> {
    let mut rows = [store::find(&state.db, uuid).await?.ok_or_else(|| not_found(uuid))?];
    materialize_expiry(state, &mut rows).await?;
    let [row] = rows;
    Ok(row)
}

pub async fn get(state: &AppState, who: &Principal, uuid: Uuid) -> Result<ApprovalResponse> {
    who.authorize::<GetApproval>()?;
    Ok(load(state, uuid).await?.into())
}

pub async fn approve(state: &AppState, who: &Principal, uuid: Uuid, responder_id: Option<String>) -> Result<ApprovalResponse> {
    who.authorize::<ApproveRequest>()?;
    Ok(decide(state, uuid, Decision::Approve, Decider::Key { who, label: responder_id }).await?.into())
}

pub async fn reject(state: &AppState, who: &Principal, uuid: Uuid, responder_id: Option<String>) -> Result<ApprovalResponse> {
    who.authorize::<RejectRequest>()?;
    Ok(decide(state, uuid, Decision::Reject, Decider::Key { who, label: responder_id }).await?.into())
}

/// workflows.md §6.3 with the integrity rules of issue 10: four-eyes for keys, then ONE
/// conditional UPDATE; the loser learns why (already decided, or expired) and changes nothing.
/// The winner's transaction holds the execution job, the activity event and the audit record.
pub(crate) async fn decide(state: &AppState, uuid: Uuid, decision: Decision, decider: Decider<'_>) -> Result<ApprovalRow> {
    let mut tx = state.db.begin().await?;
    let row = store::find_in(&mut tx, uuid).await?.ok_or_else(|| not_found(uuid))?;
    let principal = decider.principal();
    if let Decider::Key { who, .. } = &decider
        && who.key().is_some_and(|key| triggered_by(&row, key))
        && !state.settings.approval_allow_self_approval
    {
        let denied = Record { outcome: Outcome::Denied, ..Record::success(decision.operation(), "workflow_approval_request", uuid) }
            .with_details(json!({"decision": decision.status(), "reason": "self_approval"}));
        audit::record(&mut tx, &principal, denied).await?;
        tx.commit().await?;
        return Err(Error::Denied {
            code: "SELF_APPROVAL_FORBIDDEN",
            message: "The API key that requested this approval cannot decide it".into(),
        });
    }
    let by = decider.decided_by();
    let responder_id = decider.responder_id();
    let Some(posted_message) = store::decide(&mut tx, row.id, decision.status(), &responder_id, &by).await? else {
        let current = store::find_in(&mut tx, uuid).await?.ok_or_else(|| not_found(uuid))?;
        return Err(if current.status != "pending" {
            conflict("APPROVAL_ALREADY_DECIDED", format!("Approval request {uuid} is already in terminal status '{}'", current.status))
        } else {
            conflict("APPROVAL_EXPIRED", format!("Approval request {uuid} has expired"))
        });
    };
    if decision == Decision::Approve {
        crate::jobs::enqueue(&mut tx, &ExecuteApprovedWorkflow { approval_request_id: row.id }).await?;
    }
    if posted_message.is_some() {
        super::notify::enqueue_outcome(&mut tx, row.id).await?;
    }
    let context = row.trigger_context.as_ref().map(|c| c.0.clone()).unwrap_or_default();
    let references = json!({
        "approval_uuid": uuid,
        "decision": decision.status(),
        "responder_id": responder_id,
        "indicator_type": context["indicator_type"],
        "indicator_value": context["indicator_value"],
        "actor_key_prefix": by.key_prefix,
        "actor_key_name": by.key_name,
        "workflow_uuid": row.workflow_uuid,
        "workflow_name": row.workflow_name,
        "decided_by": {"type": by.kind, "id": by.id},
    });
    // Calseta writes actor_type `api` for every decision; a key keeps its own channel.
    let actor = match &decider {
        Decider::Key { who, .. } if who.key().is_some() => who.actor(),
        _ => Actor { actor_type: "api", key_prefix: None },
    };
    activity::record(
        &mut tx,
        NewEvent {
            event_type: WORKFLOW_APPROVAL_RESPONDED,
            actor: &actor,
            alert_id: context["alert_id"].as_i64(),
            workflow_id: Some(row.workflow_id),
            detection_rule_id: None,
            references,
        },
    )
    .await?;
    let details = json!({
        "decision": decision.status(),
        "decided_by": {"type": by.kind, "id": by.id, "key_prefix": by.key_prefix},
        "responder_label": responder_id,
        "workflow_uuid": row.workflow_uuid,
    });
    audit::record(&mut tx, &principal, Record::success(decision.operation(), "workflow_approval_request", uuid).with_details(details)).await?;
    tx.commit().await?;
    if decision == Decision::Approve || posted_message.is_some() {
        state.wakeup.job_enqueued();
    }
    store::find(&state.db, uuid).await?.ok_or_else(|| not_found(uuid))
}

pub fn defaults(state: &AppState, who: &Principal) -> Result<ApprovalDefaults> {
    who.authorize::<GetApprovalDefaults>()?;
    let s = &state.settings;
    Ok(ApprovalDefaults {
        notifier: s.approval_notifier.clone(),
        default_channel: s.approval_default_channel.clone(),
        default_timeout_seconds: s.approval_default_timeout_seconds,
        slack_configured: s.slack_bot_token.is_some(),
        teams_configured: s.teams_webhook_url.is_some(),
    })
}
