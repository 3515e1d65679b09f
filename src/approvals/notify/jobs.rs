//! The notification jobs. Each reads the request afresh, calls the configured notifier, and fails
//! its attempt on a transient vendor failure so the queue retries it after a backoff
//! (`APPROVAL_NOTIFY_MAX_ATTEMPTS`, exponential from `APPROVAL_NOTIFY_RETRY_SECONDS`).
//!
//! A decision can land before the request's message is posted: whichever of the two commits
//! second sees the other (the decision's UPDATE returns the stored message id; storing the
//! message id returns the status), and enqueues the outcome update, so no message keeps live
//! buttons for a decided request.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Approval, NotifyError, from_settings};
use crate::approvals::store;
use crate::db::Tx;
use crate::jobs::{Backoff, Job, JobCtx, JobError, RetryPolicy};
use crate::state::AppState;
use crate::workflows::runs::WORKFLOWS_QUEUE;

pub const SEND_APPROVAL_NOTIFICATION: &str = "send_approval_notification_task";
pub const UPDATE_APPROVAL_NOTIFICATION: &str = "update_approval_notification_task";
pub const SEND_APPROVAL_RESULT: &str = "send_approval_result_task";

/// The retry policy of the three jobs (registered with it in `app::job_registry`).
pub fn retry_policy(settings: &crate::config::Settings) -> RetryPolicy {
    RetryPolicy {
        max_attempts: settings.approval_notify_max_attempts.max(1),
        backoff: Backoff::Exponential { base: Duration::from_secs(settings.approval_notify_retry_seconds.max(1)), max: Duration::from_secs(3600) },
    }
}

/// `send_approval_notification_task` (§6.1): announces a pending request. `decide_token_sealed`
/// is the decide token sealed with the server's key (for the browser link); the database keeps
/// only its hash.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendApprovalNotification {
    pub approval_request_id: i64,
    #[serde(default)]
    pub decide_token_sealed: Option<String>,
}

impl Job for SendApprovalNotification {
    const NAME: &'static str = SEND_APPROVAL_NOTIFICATION;
    const QUEUE: &'static str = WORKFLOWS_QUEUE;
    type Context = AppState;

    async fn run(self, state: AppState, job: JobCtx) -> Result<(), JobError> {
        let Some(row) = store::find_by_id(&state.db, self.approval_request_id).await? else { return Ok(()) };
        if row.status != "pending" || row.external_message_id.is_some() {
            // Decided, expired or cancelled before it was announced, or announced by an earlier
            // attempt whose completion was lost: nothing to ask anyone.
            return Ok(());
        }
        let notifier = from_settings(&state.settings).map_err(JobError::Fatal)?;
        let approval = Approval::from_row(&row, decide_url(&state, row.uuid, self.decide_token_sealed.as_deref()));
        let Some(posted) = notifier.request(&state.egress, &approval).await.map_err(|e| failed(e, row.uuid))? else { return Ok(()) };
        tracing::info!(approval = %row.uuid, attempt = job.attempt(), "approval notification posted");
        let mut tx = state.db.begin().await?;
        let status = store::set_posted(&mut tx, row.id, &posted.channel, &posted.ts).await?;
        let decided_meanwhile = status.as_deref().is_some_and(|s| s != "pending");
        if decided_meanwhile {
            enqueue_outcome(&mut tx, row.id).await?;
        }
        job.complete_in(&mut tx).await?;
        tx.commit().await?;
        if decided_meanwhile {
            state.wakeup.job_enqueued();
        }
        Ok(())
    }
}

/// `update_approval_notification_task`: the posted message shows the outcome instead of buttons.
#[derive(Debug, Serialize, Deserialize)]
pub struct UpdateApprovalNotification {
    pub approval_request_id: i64,
}

impl Job for UpdateApprovalNotification {
    const NAME: &'static str = UPDATE_APPROVAL_NOTIFICATION;
    const QUEUE: &'static str = WORKFLOWS_QUEUE;
    type Context = AppState;

    async fn run(self, state: AppState, _job: JobCtx) -> Result<(), JobError> {
        let Some(row) = store::find_by_id(&state.db, self.approval_request_id).await? else { return Ok(()) };
        let approval = Approval::from_row(&row, None);
        let Some(posted) = approval.posted.as_ref().filter(|_| approval.status != "pending") else { return Ok(()) };
        let notifier = from_settings(&state.settings).map_err(JobError::Fatal)?;
        notifier.outcome(&state.egress, &approval, posted).await.map_err(|e| failed(e, row.uuid))
    }
}

/// `send_approval_result_task` (§6.4): an approved request's execution result.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendApprovalResult {
    pub approval_request_id: i64,
}

impl Job for SendApprovalResult {
    const NAME: &'static str = SEND_APPROVAL_RESULT;
    const QUEUE: &'static str = WORKFLOWS_QUEUE;
    type Context = AppState;

    async fn run(self, state: AppState, _job: JobCtx) -> Result<(), JobError> {
        let Some(row) = store::find_by_id(&state.db, self.approval_request_id).await? else { return Ok(()) };
        if row.execution_result.is_none() {
            return Ok(());
        }
        let notifier = from_settings(&state.settings).map_err(JobError::Fatal)?;
        notifier.result(&state.egress, &Approval::from_row(&row, None)).await.map_err(|e| failed(e, row.uuid))
    }
}

/// A failed notification as the job's outcome; the queue logs it with the job (never the token).
fn failed(error: NotifyError, approval: Uuid) -> JobError {
    match error {
        NotifyError::Transient(message) => JobError::Retry(format!("approval {approval}: {message}")),
        NotifyError::Permanent(message) => JobError::Fatal(format!("approval {approval}: {message}")),
    }
}

/// The browser decide link: the sealed token opened with the server's key. Without the key (or
/// with a token sealed under a key since retired) the message simply has no link.
fn decide_url(state: &AppState, uuid: Uuid, sealed: Option<&str>) -> Option<String> {
    let token = state.cipher.as_ref()?.decrypt(sealed?).ok()?;
    let token = String::from_utf8(token).ok()?;
    Some(format!("{}/v1/approvals/{uuid}/decide?token={token}", state.settings.calseta_base_url.trim_end_matches('/')))
}

/// After a decision on a request whose message is posted (in the decision's transaction).
pub async fn enqueue_outcome(tx: &mut Tx, approval_request_id: i64) -> sqlx::Result<()> {
    crate::jobs::enqueue(tx, &UpdateApprovalNotification { approval_request_id }).await.map(|_| ())
}

/// After requests expired or were cancelled: those with a posted message get the outcome update.
pub async fn enqueue_outcomes(tx: &mut Tx, uuids: &[Uuid]) -> sqlx::Result<()> {
    for id in store::posted_ids(tx, uuids).await? {
        enqueue_outcome(tx, id).await?;
    }
    Ok(())
}

/// After an approved request executed (in the run's transaction). The "none" notifier has
/// nothing to send.
pub async fn enqueue_result(tx: &mut Tx, approval_request_id: i64, notifier_type: &str) -> sqlx::Result<()> {
    if notifier_type == "none" {
        return Ok(());
    }
    crate::jobs::enqueue(tx, &SendApprovalResult { approval_request_id }).await.map(|_| ())
}
