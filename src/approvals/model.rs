//! The approval API's shapes (the contract's field names and order), plus the authenticated
//! decider beside Calseta's unverified `responder_id` label.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::ApprovalRow;

/// Who decided, as authenticated: `type` is api, mcp, slack, browser or system; `id` the key
/// uuid, the Slack user id or `browser`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecidedBy {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub key_prefix: Option<String>,
    pub key_name: Option<String>,
}

/// `WorkflowApprovalRequestResponse`. `responder_id` is the client's own label (REST body) and
/// is not verified; `decided_by` is who actually decided.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalResponse {
    pub uuid: Uuid,
    pub workflow_id: i64,
    pub workflow_name: Option<String>,
    pub workflow_uuid: Option<Uuid>,
    pub trigger_type: String,
    pub trigger_agent_key_prefix: Option<String>,
    pub trigger_context: Option<Value>,
    pub reason: String,
    pub confidence: f64,
    pub notifier_type: String,
    pub notifier_channel: Option<String>,
    pub status: String,
    pub responder_id: Option<String>,
    pub responded_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub execution_result: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub decided_by: Option<DecidedBy>,
}

impl From<ApprovalRow> for ApprovalResponse {
    fn from(r: ApprovalRow) -> Self {
        let decided_by = r.decided_by_type.map(|kind| DecidedBy {
            kind,
            id: r.decided_by_id,
            key_prefix: r.decided_by_key_prefix,
            key_name: r.decided_by_key_name,
        });
        ApprovalResponse {
            uuid: r.uuid,
            workflow_id: r.workflow_id,
            workflow_name: r.workflow_name,
            workflow_uuid: r.workflow_uuid,
            trigger_type: r.trigger_type,
            trigger_agent_key_prefix: Some(r.trigger_agent_key_prefix),
            trigger_context: r.trigger_context.map(|c| c.0),
            reason: r.reason,
            confidence: r.confidence,
            notifier_type: r.notifier_type,
            notifier_channel: r.notifier_channel,
            status: r.status,
            responder_id: r.responder_id,
            responded_at: r.responded_at,
            expires_at: r.expires_at,
            execution_result: r.execution_result.map(|c| c.0),
            created_at: r.created_at,
            updated_at: r.updated_at,
            decided_by,
        }
    }
}

/// `WorkflowApproveRequest` / `WorkflowRejectRequest` (`reason` is accepted and ignored, as
/// Calseta). `responder_id` is a label only.
#[derive(Debug, Default, Clone, Deserialize, ToSchema)]
pub struct DecisionBody {
    #[serde(default)]
    pub responder_id: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub reason: Option<String>,
}

/// `GET /v1/settings/approval-defaults` data.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalDefaults {
    pub notifier: String,
    pub default_channel: Option<String>,
    pub default_timeout_seconds: i64,
    pub slack_configured: bool,
    pub teams_configured: bool,
}
