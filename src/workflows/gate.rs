//! The approval gate of an execute request (workflows.md §5.1, §6.1): whether a run needs a
//! human decision first, and creating the approval request when it does. The decide token is
//! stored only as a SHA-256 hash; the plaintext leaves once, sealed, with the notification job.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::store::{self, NewApproval, WorkflowRow};
use crate::activity::{self, NewEvent};
use crate::db::{Tx, now};
use crate::service::Principal;
use crate::state::AppState;

pub const WORKFLOW_APPROVAL_REQUESTED: &str = "workflow_approval_requested";

/// The §5.1 table: `always` gates everyone, `agent_only` gates agents, `never` no one.
pub fn needs_approval(approval_mode: &str, agent: bool) -> bool {
    match approval_mode {
        "always" => true,
        "agent_only" => agent,
        _ => false,
    }
}

/// 32 random bytes, URL-safe base64 without padding (43 characters), as Calseta's token.
pub fn new_decide_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a decide token; the decision handler hashes what it is given and
/// compares the hashes in constant time.
pub fn hash_decide_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub struct Requested {
    pub uuid: Uuid,
    pub expires_at: DateTime<Utc>,
}

pub struct GateInput<'a> {
    pub workflow: &'a WorkflowRow,
    pub trigger_type: &'a str,
    pub trigger_context: &'a Value,
    pub alert_id: Option<i64>,
    pub reason: &'a str,
    pub confidence: f64,
}

/// Creates the pending request, its `workflow_approval_requested` event and the notification
/// job, in the caller's transaction.
pub async fn request_approval(state: &AppState, tx: &mut Tx, who: &Principal, input: GateInput<'_>) -> crate::error::Result<Requested> {
    let workflow = input.workflow;
    let timeout_seconds = match workflow.approval_timeout_seconds {
        0 => state.settings.approval_default_timeout_seconds,
        own => i64::from(own),
    };
    let expires_at = now() + Duration::seconds(timeout_seconds.max(1));
    let token = new_decide_token();
    let notifier = state.settings.approval_notifier.trim().to_ascii_lowercase();
    let key_prefix = who.key_prefix().unwrap_or("system");
    let (id, uuid) = store::insert_approval(
        tx,
        &NewApproval {
            workflow_id: workflow.id,
            trigger_type: input.trigger_type,
            trigger_agent_key_prefix: key_prefix,
            trigger_key_uuid: who.key().map(|k| k.key_uuid),
            trigger_context: input.trigger_context,
            reason: input.reason,
            confidence: input.confidence,
            notifier_type: &notifier,
            notifier_channel: workflow.approval_channel.as_deref(),
            expires_at,
            decide_token_hash: &hash_decide_token(&token),
        },
    )
    .await?;
    let actor = who.actor();
    let references = json!({
        "workflow_uuid": workflow.uuid,
        "workflow_name": workflow.name,
        "approval_uuid": uuid,
        "trigger_source": input.trigger_type,
        "reason": input.reason,
        "confidence": input.confidence,
        "indicator_type": input.trigger_context["indicator_type"],
        "indicator_value": input.trigger_context["indicator_value"],
        "expires_at": expires_at,
    });
    activity::record(
        tx,
        NewEvent {
            event_type: WORKFLOW_APPROVAL_REQUESTED,
            actor: &actor,
            alert_id: input.alert_id,
            workflow_id: Some(workflow.id),
            detection_rule_id: None,
            references,
        },
    )
    .await?;
    // The plaintext token is for the notifier's browser link only. It rides in the job payload
    // sealed with the server's key; without a key no link can be offered, so none is stored.
    let sealed_token = state.cipher.as_ref().map(|cipher| cipher.encrypt(token.as_bytes()));
    crate::jobs::enqueue(tx, &crate::approvals::notify::SendApprovalNotification { approval_request_id: id, decide_token_sealed: sealed_token }).await?;
    Ok(Requested { uuid, expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_table() {
        for (mode, human, agent) in [("always", true, true), ("agent_only", false, true), ("never", false, false)] {
            assert_eq!(needs_approval(mode, false), human, "{mode} human");
            assert_eq!(needs_approval(mode, true), agent, "{mode} agent");
        }
    }

    #[test]
    fn tokens_are_43_chars_and_stored_hashed() {
        let token = new_decide_token();
        assert_eq!(token.len(), 43);
        assert_ne!(token, new_decide_token());
        let hash = hash_decide_token(&token);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token));
    }
}
