//! The approval gate's decisions (issue 10): REST approve/reject with exactly-one-winner
//! semantics and four-eyes, lazy and swept expiry, cancellation when a workflow stops being
//! executable, and the job that runs an approved request. Requests are created by the workflow
//! gate (`crate::workflows`).

mod callback;
mod decide;
mod execute;
pub mod http;
pub mod model;
pub mod notify;
pub mod service;
mod store;

pub use decide::DECIDE_PAGE_CSP;
pub use execute::{ExecuteApprovedWorkflow, ExpireApprovalRequests};

use serde_json::Value;
use uuid::Uuid;

use crate::db::Tx;

/// Copies an approved request's run result into its `execution_result` and enqueues the result
/// notification (in the run's transaction).
pub async fn record_execution_result(tx: &mut Tx, uuid: Uuid, result: &Value) -> sqlx::Result<()> {
    match store::set_execution_result(tx, uuid, result).await? {
        Some((id, notifier_type)) => notify::enqueue_result(tx, id, &notifier_type).await,
        None => Ok(()),
    }
}

/// Pending requests of a workflow that was deleted or deactivated become `cancelled` (their
/// decide links die with them); returns their uuids.
pub async fn cancel_pending_for_workflow(tx: &mut Tx, workflow_id: i64) -> sqlx::Result<Vec<Uuid>> {
    let cancelled = store::cancel_pending_for_workflow(tx, workflow_id).await?;
    notify::enqueue_outcomes(tx, &cancelled).await?;
    Ok(cancelled)
}
