//! `/v1/alerts` (list; create is the programmatic ingest handler) and `/v1/alerts/{uuid}` with
//! its sub-resources: findings, indicators, activity, relationship graph, re-enrichment and
//! context. Handlers extract, call the operation in `service`, and render; the scope of each
//! operation is checked by `Authorized<Op>` before any path, query or body is read.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::model::{self, AlertRelationshipGraph, FindingResponse};
use super::service::{
    self, AddAlertIndicators, AddFinding, AlertDetail, AlertPatch, DeleteAlert, FindingCreate, GetAlert, GetAlertContext,
    GetRelationshipGraph, IndicatorAddRequest, IndicatorAddResponse, ListAlertActivity, ListAlertIndicators, ListAlerts,
    ListFindings, PatchAlert, ReEnrichAlert,
};
use crate::auth::scoped::Authorized;
use crate::error::{Error, Result};
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::indicators::IndicatorResponse;
use crate::pagination::{Data, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_alerts, crate::ingest::http::ingest_programmatic))
        .routes(routes!(get_alert, patch_alert, delete_alert))
        .routes(routes!(list_findings, add_finding))
        .routes(routes!(list_alert_indicators, add_indicators))
        .routes(routes!(list_alert_activity))
        .routes(routes!(relationship_graph))
        .routes(routes!(enrich_alert))
        .routes(routes!(alert_context))
}

/// The detail view, with its metadata block as the envelope's `meta`.
fn render_detail(detail: AlertDetail) -> Result<Response> {
    let meta = serde_json::to_value(detail.meta).map_err(|e| Error::Internal(e.into()))?;
    Ok(Data { data: detail.alert, meta }.into_response())
}

#[utoipa::path(get, path = "/v1/alerts", tag = "alerts",
    params(("status" = Option<String>, Query, description = "Comma-separated statuses"),
        ("severity" = Option<String>, Query, description = "Comma-separated severities"),
        ("source_name" = Option<String>, Query, description = "Comma-separated source names"),
        ("enrichment_status" = Option<String>, Query, description = "Comma-separated enrichment statuses"),
        ("is_enriched" = Option<bool>, Query), ("detection_rule_uuid" = Option<Uuid>, Query),
        ("from_time" = Option<String>, Query, description = "Inclusive lower bound on occurred_at"),
        ("to_time" = Option<String>, Query, description = "Inclusive upper bound on occurred_at"),
        ("tags" = Option<Vec<String>>, Query, description = "Repeatable; the alert must carry every tag"),
        ("sort_by" = Option<String>, Query), ("sort_order" = Option<String>, Query),
        ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Alert summaries"), (status = 400, description = "Invalid sort_by / sort_order")),
    security(("bearer" = ["alerts:read"])))]
pub async fn list_alerts(auth: Authorized<ListAlerts>, State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Response> {
    let query = super::query::parse_list_query(query.as_deref())?;
    Ok(service::list(&state, &auth.principal, query).await?.into_response())
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 200, body = model::AlertResponse), (status = 404, description = "Alert not found.")),
    security(("bearer" = ["alerts:read"])))]
pub async fn get_alert(auth: Authorized<GetAlert>, State(state): State<AppState>, ValidPath(alert_uuid): ValidPath<Uuid>) -> Result<Response> {
    render_detail(service::get(&state, &auth.principal, alert_uuid).await?)
}

#[utoipa::path(patch, path = "/v1/alerts/{alert_uuid}", tag = "alerts", params(("alert_uuid" = Uuid, Path)), request_body = AlertPatch,
    responses((status = 200, body = model::AlertResponse), (status = 404, description = "Alert not found."),
        (status = 422, description = "Validation error, or Closed without close_classification")),
    security(("bearer" = ["alerts:write"])))]
pub async fn patch_alert(
    auth: Authorized<PatchAlert>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<AlertPatch>,
) -> Result<Response> {
    render_detail(service::patch(&state, &auth.principal, alert_uuid, body).await?)
}

#[utoipa::path(delete, path = "/v1/alerts/{alert_uuid}", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted; links cascade, indicators remain"), (status = 404, description = "Alert not found.")),
    security(("bearer" = ["alerts:write"])))]
pub async fn delete_alert(auth: Authorized<DeleteAlert>, State(state): State<AppState>, ValidPath(alert_uuid): ValidPath<Uuid>) -> Result<Response> {
    service::delete(&state, &auth.principal, alert_uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/v1/alerts/{alert_uuid}/findings", tag = "alerts", params(("alert_uuid" = Uuid, Path)), request_body = FindingCreate,
    responses((status = 201, body = FindingResponse), (status = 404, description = "Alert not found.")),
    security(("bearer" = ["alerts:write"])))]
pub async fn add_finding(
    auth: Authorized<AddFinding>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<FindingCreate>,
) -> Result<Response> {
    let finding = service::add_finding(&state, &auth.principal, alert_uuid, body).await?;
    Ok((StatusCode::CREATED, Data::new(finding)).into_response())
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}/findings", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 200, description = "Findings, oldest first (not paginated)", body = [FindingResponse]), (status = 404, description = "Alert not found.")),
    security(("bearer" = ["alerts:read"])))]
pub async fn list_findings(auth: Authorized<ListFindings>, State(state): State<AppState>, ValidPath(alert_uuid): ValidPath<Uuid>) -> Result<Response> {
    Ok(Data::new(service::list_findings(&state, &auth.principal, alert_uuid).await?).into_response())
}

#[utoipa::path(post, path = "/v1/alerts/{alert_uuid}/enrich", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 202, description = "`{\"message\": \"Enrichment queued\"}`"), (status = 404, description = "Alert not found.")),
    security(("bearer" = ["alerts:write"])))]
pub async fn enrich_alert(auth: Authorized<ReEnrichAlert>, State(state): State<AppState>, ValidPath(alert_uuid): ValidPath<Uuid>) -> Result<Response> {
    service::enrich(&state, &auth.principal, alert_uuid).await?;
    Ok((StatusCode::ACCEPTED, Data::new(json!({"message": "Enrichment queued"}))).into_response())
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}/context", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 200, description = "Applicable context documents", body = [model::ContextDocumentResponse]),
        (status = 404, description = "Alert not found.")),
    security(("bearer" = ["alerts:read"])))]
pub async fn alert_context(auth: Authorized<GetAlertContext>, State(state): State<AppState>, ValidPath(alert_uuid): ValidPath<Uuid>) -> Result<Response> {
    Ok(Data::new(service::context(&state, &auth.principal, alert_uuid).await?).into_response())
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}/indicators", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 200, description = "The alert's indicators (provider raw responses removed)", body = [IndicatorResponse]),
        (status = 404, description = "Alert not found.")),
    security(("bearer" = ["alerts:read"])))]
pub async fn list_alert_indicators(
    auth: Authorized<ListAlertIndicators>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    Ok(Data::new(service::list_indicators(&state, &auth.principal, alert_uuid).await?).into_response())
}

#[derive(Debug, Deserialize)]
pub struct AddIndicatorsQuery {
    #[serde(default)]
    pub enrich: Option<String>,
}

#[utoipa::path(post, path = "/v1/alerts/{alert_uuid}/indicators", tag = "alerts",
    params(("alert_uuid" = Uuid, Path), ("enrich" = Option<bool>, Query, description = "Re-run enrichment (default true)")),
    request_body = IndicatorAddRequest,
    responses((status = 201, body = IndicatorAddResponse), (status = 404, description = "Alert not found.")),
    security(("bearer" = ["alerts:write"])))]
pub async fn add_indicators(
    auth: Authorized<AddAlertIndicators>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
    ValidQuery(query): ValidQuery<AddIndicatorsQuery>,
    JsonBody(body): JsonBody<IndicatorAddRequest>,
) -> Result<Response> {
    let enrich = match query.enrich.as_deref() {
        None => true,
        Some(text) => super::query::parse_bool(text).ok_or_else(|| Error::Validation(vec![super::query::bool_error("enrich")]))?,
    };
    let added = service::add_indicators(&state, &auth.principal, alert_uuid, body, enrich).await?;
    Ok((StatusCode::CREATED, Data::new(added)).into_response())
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}/activity", tag = "alerts",
    params(("alert_uuid" = Uuid, Path), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "The alert's activity events, newest first"), (status = 404, description = "Alert not found.")),
    security(("bearer" = ["alerts:read"])))]
pub async fn list_alert_activity(
    auth: Authorized<ListAlertActivity>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
    ValidQuery(pagination): ValidQuery<Pagination>,
) -> Result<Response> {
    Ok(service::list_activity(&state, &auth.principal, alert_uuid, pagination).await?.into_response())
}

#[derive(Debug, Deserialize)]
pub struct GraphQuery {
    #[serde(default)]
    pub sibling_limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}/relationship-graph", tag = "alerts",
    params(("alert_uuid" = Uuid, Path), ("sibling_limit" = Option<i64>, Query, description = "1..50, default 10")),
    responses((status = 200, body = AlertRelationshipGraph), (status = 404, description = "Alert not found.")),
    security(("bearer" = ["alerts:read"])))]
pub async fn relationship_graph(
    auth: Authorized<GetRelationshipGraph>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
    ValidQuery(query): ValidQuery<GraphQuery>,
) -> Result<Response> {
    let graph = service::relationship_graph(&state, &auth.principal, alert_uuid, query.sibling_limit).await?;
    Ok(Data::new(graph).into_response())
}
