//! `sandbox_reset`: the sandbox's periodic reset (registered only with `SANDBOX_MODE=true`, every
//! `SANDBOX_RESET_INTERVAL_HOURS`; Calseta ignores that setting and resets daily at 00:00 UTC).
//! As a periodic job each period runs once however many replicas share the database.
//!
//! It deletes what visitors made of the sandbox — every alert, indicator, run, approval, agent
//! and activity event, and the rules, documents, workflows and API keys that are not system rows —
//! then seeds the sandbox again. The deletes are the one place that sweeps these tables wholesale,
//! so they live here rather than in each domain's store. The audit trail is kept: it is
//! tamper-evident, and a reset is exactly what it should show.

use serde::{Deserialize, Serialize};

use crate::db::Tx;
use crate::jobs::{Job, JobCtx, JobError};
use crate::state::AppState;
use crate::with_tx;

/// Deleted in this order (children before parents), in one transaction.
const RESET_STATEMENTS: &[&str] = &[
    "DELETE FROM workflow_approval_requests",
    "DELETE FROM workflow_runs",
    "DELETE FROM workflow_code_versions",
    "DELETE FROM agent_runs",
    "DELETE FROM activity_events",
    "DELETE FROM agent_registrations",
    "DELETE FROM alert_indicators",
    "DELETE FROM alerts",
    "DELETE FROM indicators",
    "DELETE FROM detection_rules WHERE is_system = FALSE",
    "DELETE FROM context_documents WHERE is_system = FALSE",
    "DELETE FROM workflows WHERE is_system = FALSE",
    "DELETE FROM api_keys WHERE is_system = FALSE",
];

async fn delete_demo_data(tx: &mut Tx) -> sqlx::Result<u64> {
    let mut deleted = 0;
    for statement in RESET_STATEMENTS {
        deleted += with_tx!(tx, c => sqlx::query(sqlx::AssertSqlSafe(*statement)).execute(c).await.map(|r| r.rows_affected()))?;
    }
    Ok(deleted)
}

/// Deletes the visitors' data and seeds the sandbox again; returns the rows deleted.
pub async fn reset_sandbox(state: &AppState) -> crate::error::Result<u64> {
    let mut tx = state.db.begin().await?;
    let deleted = delete_demo_data(&mut tx).await?;
    tx.commit().await?;
    // Keys deleted above must stop working in this process at once (other processes re-read
    // within AUTH_CACHE_REFRESH_SECONDS).
    state.auth.clear();
    crate::seed::seed_sandbox(state, &|line| tracing::debug!(target: "calseta::seed", "{line}")).await?;
    Ok(deleted)
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SandboxReset {}

impl Job for SandboxReset {
    const NAME: &'static str = "sandbox_reset";
    /// A failed reset (the seed failed after the deletes) is retried; deletes and seed are
    /// idempotent, so a retry finishes the job.
    const MAX_ATTEMPTS: i32 = 3;
    type Context = AppState;

    async fn run(self, state: AppState, job: JobCtx) -> Result<(), JobError> {
        let deleted = reset_sandbox(&state).await.map_err(|e| JobError::Retry(e.to_string()))?;
        // The reset is done; marking the job succeeded is the only write left.
        let mut tx = state.db.begin().await?;
        job.complete_in(&mut tx).await?;
        tx.commit().await?;
        tracing::info!(deleted, "sandbox reset");
        Ok(())
    }
}
