//! `/v1/detection-rules`: list, create, get, patch, delete, and per-rule metrics (operations in
//! `service`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::metrics::DetectionRuleMetrics;
use super::service::{
    self, CreateDetectionRule, DeleteDetectionRule, DetectionRuleCreate, DetectionRuleUpdate, GetDetectionRule,
    GetDetectionRuleMetrics, ListDetectionRules, MetricsWindowQuery, PatchDetectionRule, RuleListQuery,
};
pub use super::service::DetectionRuleResponse;
use crate::auth::Authorized;
use crate::error::Result;
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_detection_rules, create_detection_rule))
        .routes(routes!(get_detection_rule, update_detection_rule, delete_detection_rule))
        .routes(routes!(get_detection_rule_metrics))
}

#[utoipa::path(get, path = "/v1/detection-rules", tag = "detection-rules",
    params(("source_name" = Option<String>, Query, description = "Comma-separated, exact match"),
           ("severity" = Option<String>, Query, description = "Comma-separated, exact match"),
           ("is_active" = Option<bool>, Query),
           ("sort_by" = Option<String>, Query, description = "name, source_name, severity or created_at (default)"),
           ("sort_order" = Option<String>, Query, description = "asc or desc (default)"),
           ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "One page of rules"), (status = 400, description = "Invalid sort_by / sort_order")),
    security(("bearer" = ["alerts:read"])))]
pub async fn list_detection_rules(
    auth: Authorized<ListDetectionRules>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<RuleListQuery>,
) -> Result<Response> {
    let (data, total) = service::list(&state, &auth.principal, pagination, query).await?;
    Ok(Page::new(data, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/detection-rules", tag = "detection-rules", request_body = DetectionRuleCreate,
    responses((status = 201, body = DetectionRuleResponse)), security(("bearer" = ["admin"])))]
pub async fn create_detection_rule(
    auth: Authorized<CreateDetectionRule>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<DetectionRuleCreate>,
) -> Result<Response> {
    let rule = service::create(&state, &auth.principal, body).await?;
    Ok((StatusCode::CREATED, Data::new(rule)).into_response())
}

#[utoipa::path(get, path = "/v1/detection-rules/{rule_uuid}", tag = "detection-rules", params(("rule_uuid" = Uuid, Path)),
    responses((status = 200, body = DetectionRuleResponse), (status = 404, description = "Detection rule not found.")),
    security(("bearer" = ["alerts:read"])))]
pub async fn get_detection_rule(
    auth: Authorized<GetDetectionRule>,
    State(state): State<AppState>,
    ValidPath(rule_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    Ok(Data::new(service::get(&state, &auth.principal, rule_uuid).await?).into_response())
}

#[utoipa::path(patch, path = "/v1/detection-rules/{rule_uuid}", tag = "detection-rules", params(("rule_uuid" = Uuid, Path)),
    request_body = DetectionRuleUpdate,
    responses((status = 200, body = DetectionRuleResponse), (status = 404, description = "Detection rule not found.")),
    security(("bearer" = ["admin"])))]
pub async fn update_detection_rule(
    auth: Authorized<PatchDetectionRule>,
    State(state): State<AppState>,
    ValidPath(rule_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<DetectionRuleUpdate>,
) -> Result<Response> {
    Ok(Data::new(service::patch(&state, &auth.principal, rule_uuid, body).await?).into_response())
}

#[utoipa::path(delete, path = "/v1/detection-rules/{rule_uuid}", tag = "detection-rules", params(("rule_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted; its alerts and activity events are detached"),
              (status = 404, description = "Detection rule not found.")),
    security(("bearer" = ["admin"])))]
pub async fn delete_detection_rule(
    auth: Authorized<DeleteDetectionRule>,
    State(state): State<AppState>,
    ValidPath(rule_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    service::delete(&state, &auth.principal, rule_uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/v1/detection-rules/{rule_uuid}/metrics", tag = "detection-rules",
    params(("rule_uuid" = Uuid, Path),
           ("from" = Option<DateTime<Utc>>, Query, description = "Window start, inclusive (default: to − 30 days)"),
           ("to" = Option<DateTime<Utc>>, Query, description = "Window end, exclusive (default: now)")),
    responses((status = 200, body = DetectionRuleMetrics), (status = 404, description = "Detection rule not found.")),
    security(("bearer" = ["alerts:read"])))]
pub async fn get_detection_rule_metrics(
    auth: Authorized<GetDetectionRuleMetrics>,
    State(state): State<AppState>,
    ValidPath(rule_uuid): ValidPath<Uuid>,
    ValidQuery(window): ValidQuery<MetricsWindowQuery>,
) -> Result<Response> {
    Ok(Data::new(service::metrics(&state, &auth.principal, rule_uuid, window).await?).into_response())
}
