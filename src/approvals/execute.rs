//! The approval jobs: `execute_approved_workflow_task` (workflows.md §6.4) runs an approved
//! request once, and `expire_approval_requests` sweeps pending requests past their expiry.

use serde::{Deserialize, Serialize};

use super::store;
use crate::jobs::{Job, JobCtx, JobError};
use crate::state::AppState;
use crate::workflows::runs::WORKFLOWS_QUEUE;

pub const EXECUTE_APPROVED_WORKFLOW: &str = "execute_approved_workflow_task";

/// Creates the run (current code version), links it to the request, and executes it in the
/// sandbox; the run's result is copied into the request's `execution_result`. Never retried, and
/// the link is conditional, so an approved request executes at most once.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecuteApprovedWorkflow {
    pub approval_request_id: i64,
}

impl Job for ExecuteApprovedWorkflow {
    const NAME: &'static str = EXECUTE_APPROVED_WORKFLOW;
    const QUEUE: &'static str = WORKFLOWS_QUEUE;
    const MAX_ATTEMPTS: i32 = 1;
    type Context = AppState;

    async fn run(self, state: AppState, job: JobCtx) -> Result<(), JobError> {
        let Some(row) = store::find_by_id(&state.db, self.approval_request_id).await? else { return Ok(()) };
        if row.status != "approved" || row.workflow_run_id.is_some() {
            return Ok(());
        }
        let context = row.trigger_context.as_ref().map(|c| c.0.clone()).unwrap_or_default();
        let mut tx = state.db.begin().await?;
        let Some(run_id) = crate::workflows::runs::create_run(&mut tx, row.workflow_id, &row.trigger_type, &context).await? else {
            return Ok(());
        };
        if !store::link_run(&mut tx, row.id, run_id).await? {
            return Ok(());
        }
        tx.commit().await?;
        let approval = crate::workflows::runs::ApprovalLink { uuid: row.uuid };
        crate::workflows::runs::execute_approved_run(&state, run_id, &job, approval).await
    }
}

/// The periodic sweep: pending requests past expiry become `expired` without anyone reading
/// them (their decide links die with them).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ExpireApprovalRequests {}

impl Job for ExpireApprovalRequests {
    const NAME: &'static str = "expire_approval_requests";
    type Context = AppState;

    async fn run(self, state: AppState, job: JobCtx) -> Result<(), JobError> {
        let mut tx = state.db.begin().await?;
        let expired = store::expire(&mut tx, None).await?;
        super::service::audit_expired(&mut tx, &expired).await.map_err(|e| JobError::Retry(e.to_string()))?;
        job.complete_in(&mut tx).await?;
        tx.commit().await?;
        if !expired.is_empty() {
            tracing::info!(expired = expired.len(), "approval requests expired");
        }
        Ok(())
    }
}
