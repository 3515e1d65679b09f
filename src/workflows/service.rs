//! Workflow operations (REST today, MCP next): each takes the caller's `Principal`, declares its
//! scope once, validates, and writes its audit record in the transaction of its change.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::gate::{self, GateInput};
use super::host::Integrations;
use super::model::*;
use super::runs;
use super::runtime::CompileError;
use super::store::{self, WorkflowFilter, WorkflowRow};
use crate::audit::{self, Record};
use crate::db::{Json, now};
use crate::error::{Error, Result};
use crate::http::query::SortOrder;
use crate::operation;
use crate::pagination::Pagination;
use crate::sandbox::RunRequest;
use crate::service::{Operation, Principal};
use crate::state::AppState;

operation!(ListWorkflows = "workflows.list", scopes ["workflows:read"]);
operation!(GetWorkflow = "workflows.get", scopes ["workflows:read"]);
operation!(CreateWorkflow = "workflows.create", scopes ["workflows:write"]);
operation!(PatchWorkflow = "workflows.patch", scopes ["workflows:write"]);
operation!(DeleteWorkflow = "workflows.delete", scopes ["workflows:write"]);
operation!(ListVersions = "workflows.versions", scopes ["workflows:read"]);
operation!(ListRuns = "workflows.runs", scopes ["workflows:read"]);
operation!(ExecuteWorkflow = "workflows.execute", scopes ["workflows:execute"]);
operation!(TestWorkflow = "workflows.test", scopes ["workflows:execute"]);
operation!(GenerateWorkflow = "workflows.generate", scopes ["workflows:write"]);

fn not_found(uuid: Uuid) -> Error {
    Error::NotFound(format!("Workflow {uuid} not found"))
}

async fn load(state: &AppState, uuid: Uuid) -> Result<WorkflowRow> {
    store::find(&state.db, uuid).await?.ok_or_else(|| not_found(uuid))
}

/// Save-time code checks: the AST rules, then CPython's own `compile()` inside the sandbox.
pub async fn validate_code(state: &AppState, code: &str) -> Result<()> {
    let mut errors = super::validate::validate_code(code);
    if errors.is_empty() {
        match state.workflows.compile_check(code).await {
            Ok(()) => {}
            Err(CompileError::Syntax(message)) => errors.push(message),
            Err(CompileError::Unavailable(message)) => return Err(Error::Unavailable(message)),
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::Client {
        status: StatusCode::BAD_REQUEST,
        code: "WORKFLOW_CODE_INVALID",
        message: "Workflow code failed validation".into(),
        details: json!({ "errors": errors }),
    })
}

pub struct ListQuery {
    pub filter: WorkflowFilter,
    pub sort_key: &'static str,
    pub order: SortOrder,
    pub pagination: Pagination,
}

pub async fn list(state: &AppState, who: &Principal, query: ListQuery) -> Result<(Vec<WorkflowSummary>, i64)> {
    who.authorize::<ListWorkflows>()?;
    let p = query.pagination;
    let (rows, total) = store::list(&state.db, &query.filter, query.sort_key, query.order, p.limit(), p.offset()).await?;
    Ok((rows.into_iter().map(WorkflowSummary::from).collect(), total))
}

pub async fn get(state: &AppState, who: &Principal, uuid: Uuid) -> Result<WorkflowResponse> {
    who.authorize::<GetWorkflow>()?;
    Ok(load(state, uuid).await?.into())
}

pub async fn create(state: &AppState, who: &Principal, input: WorkflowCreate) -> Result<WorkflowResponse> {
    who.authorize::<CreateWorkflow>()?;
    let fields = WorkflowPatch::from(input.clone());
    fields.check()?;
    validate_code(state, &input.code).await?;
    let draft = WorkflowRow {
        id: 0,
        uuid: Uuid::nil(),
        name: input.name,
        workflow_type: input.workflow_type,
        indicator_types: Json(input.indicator_types),
        code: input.code,
        code_version: 1,
        state: input.state,
        timeout_seconds: input.timeout_seconds,
        retry_count: input.retry_count,
        is_active: input.is_active,
        is_system: false,
        tags: Json(input.tags),
        time_saved_minutes: input.time_saved_minutes,
        approval_mode: input.approval_mode,
        approval_channel: input.approval_channel,
        approval_timeout_seconds: input.approval_timeout_seconds,
        risk_level: input.risk_level,
        documentation: input.documentation,
        created_at: now(),
        updated_at: now(),
    };
    let mut tx = state.db.begin().await?;
    let row = store::insert(&mut tx, &draft).await?;
    let details = json!({"name": row.name, "state": row.state, "approval_mode": row.approval_mode, "code_version": 1});
    audit::record(&mut tx, who, Record::success(CreateWorkflow::NAME, "workflow", row.uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(row.into())
}

/// Applies a PATCH: nulls leave fields alone; new code is validated, the old code snapshotted and
/// the version bumped (even for identical code); `state` without `is_active` syncs `is_active`.
pub async fn patch(state: &AppState, who: &Principal, uuid: Uuid, input: WorkflowPatch) -> Result<WorkflowResponse> {
    who.authorize::<PatchWorkflow>()?;
    input.check()?;
    if let Some(code) = &input.code {
        validate_code(state, code).await?;
    }
    let mut tx = state.db.begin().await?;
    let mut row = store::lock_and_read(&mut tx, uuid).await?.ok_or_else(|| not_found(uuid))?;
    let mut changed: Vec<&str> = Vec::new();
    macro_rules! apply {
        ($field:ident) => {
            if let Some(value) = input.$field.clone() {
                row.$field = value.into();
                changed.push(stringify!($field));
            }
        };
    }
    apply!(name);
    apply!(state);
    apply!(timeout_seconds);
    apply!(retry_count);
    apply!(is_active);
    apply!(approval_mode);
    apply!(approval_timeout_seconds);
    apply!(risk_level);
    if let Some(v) = input.workflow_type.clone() {
        row.workflow_type = Some(v);
        changed.push("workflow_type");
    }
    if let Some(v) = input.indicator_types.clone() {
        row.indicator_types = Json(v);
        changed.push("indicator_types");
    }
    if let Some(v) = input.tags.clone() {
        row.tags = Json(v);
        changed.push("tags");
    }
    if let Some(v) = input.time_saved_minutes {
        row.time_saved_minutes = Some(v);
        changed.push("time_saved_minutes");
    }
    if let Some(v) = input.approval_channel.clone() {
        row.approval_channel = Some(v);
        changed.push("approval_channel");
    }
    if let Some(v) = input.documentation.clone() {
        row.documentation = Some(v);
        changed.push("documentation");
    }
    if let (Some(new_state), None) = (&input.state, input.is_active) {
        row.is_active = new_state == "active";
    }
    if let Some(code) = input.code.clone() {
        store::insert_version(&mut tx, row.id, row.code_version, &row.code).await?;
        row.code = code;
        row.code_version += 1;
        changed.push("code");
    }
    let row = store::update(&mut tx, &row).await?;
    // A workflow that can no longer execute takes its pending approval requests (and their
    // decide links) with it.
    let cancelled = if row.state != "active" || !row.is_active {
        crate::approvals::cancel_pending_for_workflow(&mut tx, row.id).await?
    } else {
        Vec::new()
    };
    let details = json!({"changed": changed, "code_version": row.code_version, "cancelled_approvals": cancelled});
    audit::record(&mut tx, who, Record::success(PatchWorkflow::NAME, "workflow", uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn delete(state: &AppState, who: &Principal, uuid: Uuid) -> Result<()> {
    who.authorize::<DeleteWorkflow>()?;
    let mut tx = state.db.begin().await?;
    let row = store::lock_and_read(&mut tx, uuid).await?.ok_or_else(|| not_found(uuid))?;
    if row.is_system {
        return Err(Error::Denied { code: "FORBIDDEN", message: "System workflows cannot be deleted".into() });
    }
    let cancelled = crate::approvals::cancel_pending_for_workflow(&mut tx, row.id).await?;
    store::delete(&mut tx, row.id).await?;
    let details = json!({"name": row.name, "cancelled_approvals": cancelled});
    audit::record(&mut tx, who, Record::success(DeleteWorkflow::NAME, "workflow", uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn versions(state: &AppState, who: &Principal, uuid: Uuid) -> Result<Vec<WorkflowVersionResponse>> {
    who.authorize::<ListVersions>()?;
    let row = load(state, uuid).await?;
    Ok(store::versions(&state.db, row.id).await?.into_iter().map(Into::into).collect())
}

/// Runs of one workflow (`workflow` set) or of all, optionally by status; newest first.
pub async fn runs(
    state: &AppState,
    who: &Principal,
    workflow: Option<Uuid>,
    status: Option<&str>,
    pagination: Pagination,
) -> Result<(Vec<WorkflowRunResponse>, i64)> {
    who.authorize::<ListRuns>()?;
    let workflow_id = match workflow {
        Some(uuid) => Some(load(state, uuid).await?.id),
        None => None,
    };
    let (rows, total) = store::list_runs(&state.db, workflow_id, status, pagination.limit(), pagination.offset()).await?;
    Ok((rows.into_iter().map(Into::into).collect(), total))
}

fn not_executable(message: String) -> Error {
    Error::bad_request("WORKFLOW_NOT_EXECUTABLE", message)
}

/// Execute → gate → a queued run (and its job) or a pending approval request (and its
/// notification job). Agent callers must say why and how sure they are, gate or not.
pub async fn execute(state: &AppState, who: &Principal, uuid: Uuid, input: WorkflowExecuteRequest) -> Result<ExecuteOutcome> {
    who.authorize::<ExecuteWorkflow>()?;
    input.check()?;
    let agent = who.is_agent();
    if agent {
        let mut missing = Vec::new();
        if input.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            missing.push("reason is required for agent API keys");
        }
        if input.confidence.is_none() {
            missing.push("confidence is required for agent API keys");
        }
        if !missing.is_empty() {
            return Err(Error::Client {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "VALIDATION_ERROR",
                message: "Missing required fields for agent-triggered execution".into(),
                details: json!({ "errors": missing }),
            });
        }
    }
    let workflow = load(state, uuid).await?;
    if workflow.state != "active" {
        return Err(not_executable(format!(
            "Workflow cannot be executed: state is '{}'. Set state to 'active' before executing.",
            workflow.state
        )));
    }
    let alert_id = match input.alert_uuid {
        Some(alert_uuid) => Some(
            crate::alerts::store::id_by_uuid(&state.db, alert_uuid)
                .await?
                .ok_or_else(|| Error::NotFound(format!("Alert {alert_uuid} not found")))?,
        ),
        None => None,
    };
    let trigger_type = if agent { "agent" } else { "human" };
    let trigger_context = json!({
        "indicator_type": input.indicator_type,
        "indicator_value": input.indicator_value,
        "alert_id": alert_id,
        "alert_uuid": input.alert_uuid.map(|u| u.to_string()),
    });
    let mut tx = state.db.begin().await?;
    let outcome = if gate::needs_approval(&workflow.approval_mode, agent) {
        let requested = gate::request_approval(
            state,
            &mut tx,
            who,
            GateInput {
                workflow: &workflow,
                trigger_type,
                trigger_context: &trigger_context,
                alert_id,
                reason: input.reason.as_deref().unwrap_or(""),
                confidence: input.confidence.unwrap_or(0.0),
            },
        )
        .await?;
        ExecuteOutcome::PendingApproval { status: "pending_approval", approval_request_uuid: requested.uuid, expires_at: requested.expires_at }
    } else {
        let (run_id, run_uuid) = store::insert_run(&mut tx, workflow.id, trigger_type, &trigger_context, workflow.code_version).await?;
        crate::jobs::enqueue(&mut tx, &runs::ExecuteWorkflowRun { workflow_run_id: run_id }).await?;
        ExecuteOutcome::Queued { run_uuid, status: "queued" }
    };
    let details = json!({
        "trigger_type": trigger_type,
        "indicator_type": input.indicator_type,
        "outcome": match &outcome { ExecuteOutcome::Queued { run_uuid, .. } => json!({"run_uuid": run_uuid}),
                                    ExecuteOutcome::PendingApproval { approval_request_uuid, .. } => json!({"approval_request_uuid": approval_request_uuid}) },
    });
    audit::record(&mut tx, who, Record::success(ExecuteWorkflow::NAME, "workflow", uuid).with_details(details)).await?;
    tx.commit().await?;
    state.wakeup.job_enqueued();
    Ok(outcome)
}

/// Test run with a synthetic indicator; nothing is persisted (§7). `ctx.http` is mocked unless
/// `live_http`, which goes through the egress gateway like real runs (Calseta skips SSRF here).
pub async fn test(state: &AppState, who: &Principal, uuid: Uuid, input: WorkflowTestRequest) -> Result<WorkflowTestResponse> {
    who.authorize::<TestWorkflow>()?;
    input.check()?;
    let workflow = load(state, uuid).await?;
    if workflow.state != "active" || !workflow.is_active {
        return Err(not_executable(format!("Workflow is in '{}' state — set state to 'active' before testing", workflow.state)));
    }
    let mock = if input.live_http {
        None
    } else if input.mock_http_responses.as_object().is_some_and(|m| !m.is_empty()) {
        Some(input.mock_http_responses.clone())
    } else {
        Some(json!({"status": "ok"}))
    };
    let request = RunRequest {
        code: workflow.code,
        ctx_json: json!({"indicator": runs::synthetic_indicator(&input.indicator_type, &input.indicator_value), "alert": Value::Null}),
        timeout: Duration::from_secs(u64::try_from(workflow.timeout_seconds.clamp(1, 30)).unwrap_or(30)),
        mock_http: mock,
    };
    let outcome = state.workflows.run(request, runs::host(state, Integrations::StandIn)).await;
    Ok(WorkflowTestResponse { success: outcome.success, message: outcome.message, log_output: outcome.log_output, duration_ms: 0, result_data: outcome.data })
}

pub async fn generate(state: &AppState, who: &Principal, input: WorkflowGenerateRequest) -> Result<WorkflowGenerateResponse> {
    who.authorize::<GenerateWorkflow>()?;
    input.check()?;
    super::generate::generate(state, &input).await
}
