//! `/v1/workflow-approvals…` and `/v1/settings/approval-defaults`: extract, call, render
//! (api.md §10.1, §13).

use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::model::{ApprovalDefaults, ApprovalResponse, DecisionBody};
use super::service::{self, *};
use crate::auth::Authorized;
use crate::error::{Error, Result};
use crate::http::extract::{JsonBody, ValidPath, ValidQuery, read_body, unsupported_media_type};
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_approvals))
        .routes(routes!(get_approval))
        .routes(routes!(approve_approval))
        .routes(routes!(reject_approval))
        .routes(routes!(get_approval_defaults))
        .merge(super::decide::routes())
        .merge(super::callback::routes())
}

/// A JSON body the client may omit entirely (Calseta's `Body | None`): no `Content-Type` and no
/// bytes means the default; anything else must be a JSON object.
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default + Send> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if request.headers().contains_key(header::CONTENT_TYPE) {
            return JsonBody::<T>::from_request(request, state).await.map(|JsonBody(body)| OptionalJsonBody(body));
        }
        if read_body(request).await?.is_empty() { Ok(OptionalJsonBody(T::default())) } else { Err(unsupported_media_type()) }
    }
}

#[derive(Debug, Deserialize)]
pub struct ApprovalListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    workflow_uuid: Option<Uuid>,
}

#[utoipa::path(get, path = "/v1/workflow-approvals", tag = "workflow-approvals",
    params(("status" = Option<String>, Query), ("workflow_uuid" = Option<Uuid>, Query), ("page" = Option<i64>, Query),
           ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "One page of WorkflowApprovalRequestResponse, newest first")),
    security(("bearer" = ["approvals:write"])))]
pub async fn list_approvals(
    auth: Authorized<ListApprovals>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<ApprovalListQuery>,
) -> Result<Response> {
    let pagination = pagination.validate()?;
    let status = query.status.filter(|s| !s.is_empty());
    let (items, total) = service::list(&state, &auth.principal, status, query.workflow_uuid, pagination).await?;
    Ok(Page::new(items, total, pagination).into_response())
}

#[utoipa::path(get, path = "/v1/workflow-approvals/{approval_uuid}", tag = "workflow-approvals",
    params(("approval_uuid" = Uuid, Path)),
    responses((status = 200, body = ApprovalResponse), (status = 404, description = "Not found")),
    security(("bearer" = ["approvals:write"])))]
pub async fn get_approval(auth: Authorized<GetApproval>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    Ok(Data::new(service::get(&state, &auth.principal, uuid).await?).into_response())
}

#[utoipa::path(post, path = "/v1/workflow-approvals/{approval_uuid}/approve", tag = "workflow-approvals",
    params(("approval_uuid" = Uuid, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = ApprovalResponse), (status = 403, description = "The requesting key cannot decide"),
              (status = 409, description = "APPROVAL_ALREADY_DECIDED or APPROVAL_EXPIRED")),
    security(("bearer" = ["approvals:write"])))]
pub async fn approve_approval(
    auth: Authorized<ApproveRequest>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    OptionalJsonBody(body): OptionalJsonBody<DecisionBody>,
) -> Result<Response> {
    Ok(Data::new(service::approve(&state, &auth.principal, uuid, body.responder_id).await?).into_response())
}

#[utoipa::path(post, path = "/v1/workflow-approvals/{approval_uuid}/reject", tag = "workflow-approvals",
    params(("approval_uuid" = Uuid, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = ApprovalResponse), (status = 403, description = "The requesting key cannot decide"),
              (status = 409, description = "APPROVAL_ALREADY_DECIDED or APPROVAL_EXPIRED")),
    security(("bearer" = ["approvals:write"])))]
pub async fn reject_approval(
    auth: Authorized<RejectRequest>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    OptionalJsonBody(body): OptionalJsonBody<DecisionBody>,
) -> Result<Response> {
    Ok(Data::new(service::reject(&state, &auth.principal, uuid, body.responder_id).await?).into_response())
}

#[utoipa::path(get, path = "/v1/settings/approval-defaults", tag = "settings",
    responses((status = 200, body = ApprovalDefaults)), security(("bearer" = ["admin"])))]
pub async fn get_approval_defaults(auth: Authorized<GetApprovalDefaults>, State(state): State<AppState>) -> Result<Response> {
    Ok(Data::new(service::defaults(&state, &auth.principal)?).into_response())
}
