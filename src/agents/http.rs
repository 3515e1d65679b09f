//! `/v1/agents` and the two alert routes that hand an alert to agents. Handlers extract, call
//! the service, render.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::model::{AgentCreate, AgentPatch, AgentResponse, AgentTestResult, AgentWithSecret, DispatchResult, TriggerResult};
use super::service::{self, *};
use crate::auth::Authorized;
use crate::error::Result;
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, patch_agent, delete_agent))
        .routes(routes!(test_agent))
        .routes(routes!(rotate_secret))
        .routes(routes!(trigger_agents))
        .routes(routes!(dispatch_agent))
}

#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Agent registrations, newest first", body = [AgentResponse])),
    security(("bearer" = ["agents:read"])))]
pub async fn list_agents(auth: Authorized<ListAgents>, State(state): State<AppState>, ValidQuery(pagination): ValidQuery<Pagination>) -> Result<Response> {
    let pagination = pagination.validate()?;
    let (data, total) = service::list(&state, &auth.principal, pagination).await?;
    Ok(Page::new(data, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentCreate,
    responses((status = 201, body = AgentWithSecret, description = "The registration and its `whsec_` signing secret, shown once"),
        (status = 400, description = "ENCRYPTION_NOT_CONFIGURED"), (status = 422, description = "Invalid field or endpoint_url refused by SSRF vetting")),
    security(("bearer" = ["agents:write"])))]
pub async fn create_agent(auth: Authorized<CreateAgent>, State(state): State<AppState>, JsonBody(body): JsonBody<AgentCreate>) -> Result<Response> {
    let created = service::create(&state, &auth.principal, body).await?;
    Ok(secret_response(StatusCode::CREATED, created))
}

/// A response carrying a secret is never cached.
fn secret_response(status: StatusCode, body: AgentWithSecret) -> Response {
    let mut response = (status, Data::new(body)).into_response();
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

#[utoipa::path(get, path = "/v1/agents/{agent_uuid}", tag = "agents", params(("agent_uuid" = Uuid, Path)),
    responses((status = 200, body = AgentResponse), (status = 404, description = "Agent not found.")),
    security(("bearer" = ["agents:read"])))]
pub async fn get_agent(auth: Authorized<GetAgent>, State(state): State<AppState>, ValidPath(agent_uuid): ValidPath<Uuid>) -> Result<Response> {
    Ok(Data::new(service::get(&state, &auth.principal, agent_uuid).await?).into_response())
}

#[utoipa::path(patch, path = "/v1/agents/{agent_uuid}", tag = "agents", params(("agent_uuid" = Uuid, Path)), request_body = AgentPatch,
    responses((status = 200, body = AgentResponse), (status = 404, description = "Agent not found."),
        (status = 422, description = "Invalid field or endpoint_url refused by SSRF vetting")),
    security(("bearer" = ["agents:write"])))]
pub async fn patch_agent(
    auth: Authorized<PatchAgent>,
    State(state): State<AppState>,
    ValidPath(agent_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<AgentPatch>,
) -> Result<Response> {
    Ok(Data::new(service::patch(&state, &auth.principal, agent_uuid, body).await?).into_response())
}

#[utoipa::path(delete, path = "/v1/agents/{agent_uuid}", tag = "agents", params(("agent_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted (with its agent_runs)"), (status = 404, description = "Agent not found.")),
    security(("bearer" = ["agents:write"])))]
pub async fn delete_agent(auth: Authorized<DeleteAgent>, State(state): State<AppState>, ValidPath(agent_uuid): ValidPath<Uuid>) -> Result<Response> {
    service::delete(&state, &auth.principal, agent_uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/v1/agents/{agent_uuid}/test", tag = "agents", params(("agent_uuid" = Uuid, Path)),
    responses((status = 200, body = AgentTestResult), (status = 404, description = "Agent not found.")),
    security(("bearer" = ["agents:write"])))]
pub async fn test_agent(auth: Authorized<TestAgent>, State(state): State<AppState>, ValidPath(agent_uuid): ValidPath<Uuid>) -> Result<Response> {
    Ok(Data::new(service::test(&state, &auth.principal, agent_uuid).await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateQuery {
    /// How long the previous secret keeps signing (seconds; default 86400, at most 604800).
    pub overlap_seconds: Option<i64>,
}

/// Extension (not in Calseta): a new `whsec_` secret, shown once; until the overlap ends every
/// delivery carries both the new and the previous signature.
#[utoipa::path(post, path = "/v1/agents/{agent_uuid}/rotate-secret", tag = "agents",
    params(("agent_uuid" = Uuid, Path), ("overlap_seconds" = Option<i64>, Query, description = "Previous secret validity (s), default 86400")),
    responses((status = 200, body = AgentWithSecret), (status = 400, description = "ENCRYPTION_NOT_CONFIGURED"),
        (status = 404, description = "Agent not found.")),
    security(("bearer" = ["agents:write"])))]
pub async fn rotate_secret(
    auth: Authorized<RotateAgentSecret>,
    State(state): State<AppState>,
    ValidPath(agent_uuid): ValidPath<Uuid>,
    ValidQuery(query): ValidQuery<RotateQuery>,
) -> Result<Response> {
    let rotated = service::rotate_secret(&state, &auth.principal, agent_uuid, query.overlap_seconds).await?;
    Ok(secret_response(StatusCode::OK, rotated))
}

#[utoipa::path(post, path = "/v1/alerts/{alert_uuid}/trigger-agents", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 202, body = TriggerResult), (status = 404, description = "Alert not found.")),
    security(("bearer" = ["agents:write"])))]
pub async fn trigger_agents(auth: Authorized<TriggerAgents>, State(state): State<AppState>, ValidPath(alert_uuid): ValidPath<Uuid>) -> Result<Response> {
    let result = service::trigger(&state, &auth.principal, alert_uuid).await?;
    Ok((StatusCode::ACCEPTED, Data::new(result)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct DispatchQuery {
    pub agent_uuid: Uuid,
}

#[utoipa::path(post, path = "/v1/alerts/{alert_uuid}/dispatch-agent", tag = "alerts",
    params(("alert_uuid" = Uuid, Path), ("agent_uuid" = Uuid, Query)),
    responses((status = 202, body = DispatchResult), (status = 404, description = "Alert not found. / Agent not found."),
        (status = 422, description = "AGENT_INACTIVE")),
    security(("bearer" = ["agents:write"])))]
pub async fn dispatch_agent(
    auth: Authorized<DispatchAgent>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
    ValidQuery(query): ValidQuery<DispatchQuery>,
) -> Result<Response> {
    let result = service::dispatch_one(&state, &auth.principal, alert_uuid, query.agent_uuid).await?;
    Ok((StatusCode::ACCEPTED, Data::new(result)).into_response())
}
