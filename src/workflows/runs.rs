//! The workflow job `execute_workflow_run` (workflows.md §5.2), a typed `Job` registered in
//! `app::job_registry`, and the run execution it shares with approved requests (§6.4). (The
//! approval notification jobs live with the notifiers, `crate::approvals::notify`.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::host::{Host, Integrations};
use super::store::{self, RunFinish};
use crate::activity::{self, Actor, NewEvent};
use crate::db::now;
use crate::jobs::{Job, JobCtx, JobError};
use crate::sandbox::RunRequest;
use crate::state::AppState;

pub const WORKFLOWS_QUEUE: &str = "workflows";
pub const EXECUTE_WORKFLOW_RUN: &str = "execute_workflow_run";
pub const WORKFLOW_EXECUTED: &str = "workflow_executed";

/// `execute_workflow_run`: one queued run, executed in the sandbox. Runs are never retried
/// (Calseta's max 1 attempt): every failure is the run's, recorded on it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecuteWorkflowRun {
    pub workflow_run_id: i64,
}

impl Job for ExecuteWorkflowRun {
    const NAME: &'static str = EXECUTE_WORKFLOW_RUN;
    const QUEUE: &'static str = WORKFLOWS_QUEUE;
    const MAX_ATTEMPTS: i32 = 1;
    /// Runs a worker claims together and executes concurrently (the sandbox's own slots bound how
    /// many interpreters actually run at once).
    const BATCH_SIZE: usize = 4;
    type Context = AppState;

    async fn run(self, state: AppState, job: JobCtx) -> Result<(), JobError> {
        execute_run(&state, self.workflow_run_id, &job, None).await
    }

    async fn run_batch(state: AppState, jobs: Vec<(Self, JobCtx)>) -> Vec<Result<(), JobError>> {
        let runs = jobs.into_iter().map(|(payload, job)| {
            let state = state.clone();
            async move { execute_run(&state, payload.workflow_run_id, &job, None).await }
        });
        futures::future::join_all(runs).await
    }
}

fn iso(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The approval request a run executes for (workflows.md §6.4): its `workflow_executed` event
/// names it and its `execution_result` receives the run's result.
pub struct ApprovalLink {
    pub uuid: uuid::Uuid,
}

/// Creates a queued run of the workflow's **current** code version; `None` if the workflow is gone.
pub async fn create_run(tx: &mut crate::db::Tx, workflow_id: i64, trigger_type: &str, trigger_context: &Value) -> sqlx::Result<Option<i64>> {
    let Some(workflow) = store::find_by_id_in(tx, workflow_id).await? else { return Ok(None) };
    let (run_id, _) = store::insert_run(tx, workflow.id, trigger_type, trigger_context, workflow.code_version).await?;
    Ok(Some(run_id))
}

/// `execute_approved_workflow_task`'s run: executed as any run, plus the approval link.
pub async fn execute_approved_run(state: &AppState, run_id: i64, job: &JobCtx, approval: ApprovalLink) -> Result<(), JobError> {
    execute_run(state, run_id, job, Some(&approval)).await
}

/// Executes one queued run and records it with its activity event and the job's success, in one
/// transaction. Runs are never retried (Calseta's max 1 attempt): every failure is the run's.
async fn execute_run(state: &AppState, run_id: i64, job: &JobCtx, approval: Option<&ApprovalLink>) -> Result<(), JobError> {
    let Some(run) = store::run_by_id(&state.db, run_id).await? else { return Ok(()) };
    let Some(workflow) = store::find_by_id(&state.db, run.workflow_id).await? else { return Ok(()) };
    let clock = Instant::now();
    let started_at = iso(now());
    let context = run.trigger_context.as_ref().map(|c| c.0.clone()).unwrap_or_default();
    let indicator_type = context["indicator_type"].as_str().unwrap_or_default().to_owned();
    let indicator_value = context["indicator_value"].as_str().unwrap_or_default().to_owned();
    let alert_id = context["alert_id"].as_i64();
    let outcome = match store::indicator(&state.db, &indicator_type, &indicator_value).await? {
        None => None,
        Some(indicator) => {
            let alert = match alert_id {
                Some(id) => store::alert_context(&state.db, id).await?,
                None => None,
            };
            let ctx_json = json!({"indicator": indicator_json(&indicator), "alert": alert.map(|a| alert_json(&a))});
            // A run must end inside its job's lease (the runner gives a handler lease - 5 s).
            let lease_bound = state.settings.queue_lease_seconds.max(10).saturating_sub(10).max(1);
            let timeout = Duration::from_secs(u64::try_from(workflow.timeout_seconds.max(1)).unwrap_or(1).min(lease_bound));
            let request = RunRequest { code: workflow.code.clone(), ctx_json, timeout, mock_http: None };
            Some(state.workflows.run(request, Host::new(state.clone(), Integrations::Real)).await)
        }
    };
    let (status, message, data, log_output) = match &outcome {
        None => ("failed", format!("Indicator ({indicator_type}, '{indicator_value}') not found in database"), json!({}), String::new()),
        Some(o) => {
            let status = if o.timed_out { "timed_out" } else if o.success { "success" } else { "failed" };
            (status, o.message.clone(), o.data.clone(), o.log_output.clone())
        }
    };
    let duration_ms = i32::try_from(clock.elapsed().as_millis()).unwrap_or(i32::MAX);
    crate::observability::workflow_run(status);
    let result = json!({"success": status == "success", "message": message, "data": data});
    let mut tx = state.db.begin().await?;
    store::finish_run(
        &mut tx,
        run.id,
        &RunFinish { status, log_output: &log_output, result: result.clone(), duration_ms, started_at: &started_at, completed_at: &iso(now()) },
    )
    .await?;
    let mut references = json!({
        "workflow_uuid": workflow.uuid,
        "workflow_name": workflow.name,
        "run_uuid": run.uuid,
        "trigger_type": run.trigger_type,
        "status": status,
        "duration_ms": duration_ms,
        "indicator_type": indicator_type,
        "indicator_value": indicator_value,
    });
    if let Some(approval) = approval {
        references["approval_uuid"] = json!(approval.uuid);
        crate::approvals::record_execution_result(&mut tx, approval.uuid, &result).await?;
    }
    let actor = Actor::system();
    activity::record(
        &mut tx,
        NewEvent { event_type: WORKFLOW_EXECUTED, actor: &actor, alert_id, workflow_id: Some(workflow.id), detection_rule_id: None, references },
    )
    .await?;
    job.complete_in(&mut tx).await?;
    tx.commit().await?;
    if let Some(kind) = outcome.as_ref().and_then(|o| o.error_kind) {
        tracing::info!(workflow = %workflow.uuid, run = %run.uuid, status, error_kind = ?kind, "workflow run failed");
    }
    Ok(())
}

/// `ctx.indicator` (workflows.md §2.1); timestamps as ISO strings the shim turns into datetimes.
pub fn indicator_json(i: &crate::indicators::store::IndicatorRow) -> Value {
    json!({
        "uuid": i.uuid,
        "type": i.indicator_type,
        "value": i.value,
        "malice": i.malice,
        "is_enriched": i.is_enriched,
        "enrichment_results": i.enrichment_results.as_ref().map(|r| r.0.clone()),
        "first_seen": iso(i.first_seen),
        "last_seen": iso(i.last_seen),
        "created_at": iso(i.created_at),
        "updated_at": iso(i.updated_at),
    })
}

fn alert_json(a: &store::AlertContext) -> Value {
    json!({
        "uuid": a.uuid,
        "title": a.title,
        "severity": a.severity,
        "source_name": a.source_name,
        "status": a.status,
        "occurred_at": iso(a.occurred_at),
        "tags": a.tags.0,
        "raw_payload": a.raw_payload.0,
    })
}

/// A synthetic indicator for the test endpoint (§7): random uuid, `Pending`, not enriched.
pub fn synthetic_indicator(indicator_type: &str, value: &str) -> Value {
    let at = iso(now());
    json!({
        "uuid": uuid::Uuid::new_v4(), "type": indicator_type, "value": value, "malice": "Pending",
        "is_enriched": false, "enrichment_results": {}, "first_seen": at, "last_seen": at,
        "created_at": at, "updated_at": at,
    })
}

/// Shared with the test endpoint so both build hosts the same way.
pub fn host(state: &AppState, integrations: Integrations) -> Arc<dyn crate::sandbox::HostApi> {
    Host::new(state.clone(), integrations)
}
