//! `/v1/workflows…` and `/v1/workflow-runs`: extract, call the service, render (api.md §9).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::model::*;
use super::service::{self, *};
use super::store::{SORT_KEYS, WorkflowFilter};
use crate::auth::Authorized;
use crate::error::{Error, FieldError, Result};
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::http::query::{SortOrder, comma_list, lenient_bool, parse_sort};
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workflows, create_workflow))
        .routes(routes!(generate_workflow))
        .routes(routes!(get_workflow, patch_workflow, delete_workflow))
        .routes(routes!(list_workflow_versions))
        .routes(routes!(list_workflow_runs))
        .routes(routes!(execute_workflow))
        .routes(routes!(test_workflow))
        .routes(routes!(list_all_workflow_runs))
}

#[derive(Debug, Deserialize)]
pub struct WorkflowListQuery {
    #[serde(default)]
    workflow_type: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    risk_level: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    is_active: Option<bool>,
    #[serde(default)]
    sort_by: Option<String>,
    #[serde(default)]
    sort_order: Option<String>,
}

#[utoipa::path(get, path = "/v1/workflows", tag = "workflows",
    params(("workflow_type" = Option<String>, Query), ("state" = Option<String>, Query, description = "Comma-separated"),
           ("risk_level" = Option<String>, Query, description = "Comma-separated"), ("is_active" = Option<bool>, Query),
           ("sort_by" = Option<String>, Query, description = "name, state, risk_level, updated_at or created_at (default)"),
           ("sort_order" = Option<String>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "One page of WorkflowSummary")),
    security(("bearer" = ["workflows:read"])))]
pub async fn list_workflows(
    auth: Authorized<ListWorkflows>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<WorkflowListQuery>,
) -> Result<Response> {
    let pagination = pagination.validate()?;
    let (sort_key, order) = parse_sort(query.sort_by.as_deref(), query.sort_order.as_deref(), &SORT_KEYS, "created_at", SortOrder::Desc)?;
    let filter = WorkflowFilter {
        workflow_type: query.workflow_type.filter(|t| !t.is_empty()),
        states: comma_list(query.state.as_deref()),
        risk_levels: comma_list(query.risk_level.as_deref()),
        is_active: query.is_active,
    };
    let (items, total) = service::list(&state, &auth.principal, service::ListQuery { filter, sort_key, order, pagination }).await?;
    Ok(Page::new(items, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/workflows", tag = "workflows", request_body = WorkflowCreate,
    responses((status = 201, body = WorkflowResponse), (status = 400, description = "WORKFLOW_CODE_INVALID")),
    security(("bearer" = ["workflows:write"])))]
pub async fn create_workflow(auth: Authorized<CreateWorkflow>, State(state): State<AppState>, JsonBody(body): JsonBody<WorkflowCreate>) -> Result<Response> {
    let workflow = service::create(&state, &auth.principal, body).await?;
    Ok((StatusCode::CREATED, Data::new(workflow)).into_response())
}

#[utoipa::path(post, path = "/v1/workflows/generate", tag = "workflows", request_body = WorkflowGenerateRequest,
    responses((status = 200, body = WorkflowGenerateResponse), (status = 400, description = "WORKFLOW_GENERATION_FAILED")),
    security(("bearer" = ["workflows:write"])))]
pub async fn generate_workflow(auth: Authorized<GenerateWorkflow>, State(state): State<AppState>, JsonBody(body): JsonBody<WorkflowGenerateRequest>) -> Result<Response> {
    Ok(Data::new(service::generate(&state, &auth.principal, body).await?).into_response())
}

#[utoipa::path(get, path = "/v1/workflows/{workflow_uuid}", tag = "workflows", params(("workflow_uuid" = Uuid, Path)),
    responses((status = 200, body = WorkflowResponse), (status = 404, description = "Not found")),
    security(("bearer" = ["workflows:read"])))]
pub async fn get_workflow(auth: Authorized<GetWorkflow>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    Ok(Data::new(service::get(&state, &auth.principal, uuid).await?).into_response())
}

#[utoipa::path(patch, path = "/v1/workflows/{workflow_uuid}", tag = "workflows", params(("workflow_uuid" = Uuid, Path)),
    request_body = WorkflowPatch, responses((status = 200, body = WorkflowResponse)),
    security(("bearer" = ["workflows:write"])))]
pub async fn patch_workflow(
    auth: Authorized<PatchWorkflow>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<WorkflowPatch>,
) -> Result<Response> {
    Ok(Data::new(service::patch(&state, &auth.principal, uuid, body).await?).into_response())
}

#[utoipa::path(delete, path = "/v1/workflows/{workflow_uuid}", tag = "workflows", params(("workflow_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, description = "System workflow")),
    security(("bearer" = ["workflows:write"])))]
pub async fn delete_workflow(auth: Authorized<DeleteWorkflow>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    service::delete(&state, &auth.principal, uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/v1/workflows/{workflow_uuid}/versions", tag = "workflows", params(("workflow_uuid" = Uuid, Path)),
    responses((status = 200, body = Vec<WorkflowVersionResponse>)), security(("bearer" = ["workflows:read"])))]
pub async fn list_workflow_versions(auth: Authorized<ListVersions>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    Ok(Data::new(service::versions(&state, &auth.principal, uuid).await?).into_response())
}

#[utoipa::path(get, path = "/v1/workflows/{workflow_uuid}/runs", tag = "workflows",
    params(("workflow_uuid" = Uuid, Path), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "One page of WorkflowRunResponse")), security(("bearer" = ["workflows:read"])))]
pub async fn list_workflow_runs(
    auth: Authorized<ListRuns>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    ValidQuery(pagination): ValidQuery<Pagination>,
) -> Result<Response> {
    let pagination = pagination.validate()?;
    let (runs, total) = service::runs(&state, &auth.principal, Some(uuid), None, pagination).await?;
    Ok(Page::new(runs, total, pagination).into_response())
}

#[derive(Debug, Deserialize)]
pub struct RunListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    workflow_uuid: Option<String>,
}

#[utoipa::path(get, path = "/v1/workflow-runs", tag = "workflows",
    params(("status" = Option<String>, Query), ("workflow_uuid" = Option<Uuid>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "One page of WorkflowRunResponse")), security(("bearer" = ["workflows:read"])))]
pub async fn list_all_workflow_runs(
    auth: Authorized<ListRuns>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<RunListQuery>,
) -> Result<Response> {
    let pagination = pagination.validate()?;
    let workflow = match query.workflow_uuid.as_deref().filter(|w| !w.is_empty()) {
        Some(text) => Some(text.parse::<Uuid>().map_err(|_| {
            Error::Validation(vec![FieldError::new("uuid_parsing", vec![json!("query"), json!("workflow_uuid")], "Input should be a valid UUID")])
        })?),
        None => None,
    };
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    let (runs, total) = service::runs(&state, &auth.principal, workflow, status, pagination).await?;
    Ok(Page::new(runs, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/workflows/{workflow_uuid}/execute", tag = "workflows", params(("workflow_uuid" = Uuid, Path)),
    request_body = WorkflowExecuteRequest,
    responses((status = 202, description = "A queued run, or a pending approval request"),
              (status = 400, description = "WORKFLOW_NOT_EXECUTABLE"), (status = 422, description = "Agent keys must send reason and confidence")),
    security(("bearer" = ["workflows:execute"])))]
pub async fn execute_workflow(
    auth: Authorized<ExecuteWorkflow>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<WorkflowExecuteRequest>,
) -> Result<Response> {
    let outcome = service::execute(&state, &auth.principal, uuid, body).await?;
    // Calseta answers the pending-approval case without `meta`.
    let body = match &outcome {
        ExecuteOutcome::Queued { .. } => json!({"data": outcome, "meta": {}}),
        ExecuteOutcome::PendingApproval { .. } => json!({"data": outcome}),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[utoipa::path(post, path = "/v1/workflows/{workflow_uuid}/test", tag = "workflows", params(("workflow_uuid" = Uuid, Path)),
    request_body = WorkflowTestRequest, responses((status = 200, body = WorkflowTestResponse)),
    security(("bearer" = ["workflows:execute"])))]
pub async fn test_workflow(
    auth: Authorized<TestWorkflow>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<WorkflowTestRequest>,
) -> Result<Response> {
    Ok(Data::new(service::test(&state, &auth.principal, uuid, body).await?).into_response())
}
