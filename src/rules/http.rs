//! `/v1/detection-rules`: list, create, get, patch, delete, and per-rule metrics. Reads need
//! `alerts:read`; writes need `admin` (as Calseta's code does, not the `alerts:write` its docs say).
//! No activity events are written (Calseta declares `detection_rule_created`/`_updated` but never
//! writes them).

use utoipa_axum::{router::OpenApiRouter, routes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::metrics::{self, DetectionRuleMetrics};
use super::store::{self, DetectionRuleRow, NewRule, RuleFilter, RulePatch, RuleSort};
use crate::auth::Auth;
use crate::error::{Error, FieldError, Result};
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::http::query::{SortOrder, comma_list, lenient_bool, lenient_datetime, parse_sort};
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_detection_rules, create_detection_rule))
        .routes(routes!(get_detection_rule, update_detection_rule, delete_detection_rule))
        .routes(routes!(get_detection_rule_metrics))
}

const NOT_FOUND: &str = "Detection rule";
const NAME_MAX: usize = 500;
/// Short free-text fields (ids, names, severity, frequency, author).
const TEXT_MAX: usize = 500;
const LIST_MAX_ITEMS: usize = 200;
const LIST_ITEM_MAX: usize = 200;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DetectionRuleResponse {
    pub uuid: Uuid,
    pub name: String,
    pub source_rule_id: Option<String>,
    pub source_name: Option<String>,
    pub severity: Option<String>,
    pub is_active: bool,
    pub mitre_tactics: Vec<String>,
    pub mitre_techniques: Vec<String>,
    pub mitre_subtechniques: Vec<String>,
    pub data_sources: Vec<String>,
    pub run_frequency: Option<String>,
    pub created_by: Option<String>,
    pub documentation: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<DetectionRuleRow> for DetectionRuleResponse {
    fn from(row: DetectionRuleRow) -> Self {
        DetectionRuleResponse {
            uuid: row.uuid,
            name: row.name,
            source_rule_id: row.source_rule_id,
            source_name: row.source_name,
            severity: row.severity,
            is_active: row.is_active,
            mitre_tactics: row.mitre_tactics.0,
            mitre_techniques: row.mitre_techniques.0,
            mitre_subtechniques: row.mitre_subtechniques.0,
            data_sources: row.data_sources.0,
            run_frequency: row.run_frequency,
            created_by: row.created_by,
            documentation: row.documentation,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectionRuleCreate {
    /// 1 to 500 characters, not blank.
    pub name: String,
    #[serde(default)]
    pub source_rule_id: Option<String>,
    #[serde(default)]
    pub source_name: Option<String>,
    /// Free text (not validated against the alert severities).
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub mitre_tactics: Vec<String>,
    #[serde(default)]
    pub mitre_techniques: Vec<String>,
    #[serde(default)]
    pub mitre_subtechniques: Vec<String>,
    #[serde(default)]
    pub data_sources: Vec<String>,
    #[serde(default)]
    pub run_frequency: Option<String>,
    /// Defaults to the caller's key prefix when omitted, null or blank.
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub documentation: Option<String>,
}

/// PATCH body. `source_rule_id`, `source_name`, `run_frequency` and `created_by` are immutable:
/// sending them is a 422 (unknown field). Null handling per field: `severity` and
/// `documentation` are nullable, so `null` clears them; every other field is NOT NULL in the
/// table, so `null` leaves it unchanged (Calseta's "nulls ignored").
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectionRuleUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub severity: Option<Option<String>>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub mitre_tactics: Option<Vec<String>>,
    #[serde(default)]
    pub mitre_techniques: Option<Vec<String>>,
    #[serde(default)]
    pub mitre_subtechniques: Option<Vec<String>>,
    #[serde(default)]
    pub data_sources: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub documentation: Option<Option<String>>,
}

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.trim().is_empty() || name.chars().count() > NAME_MAX {
        errors.push(FieldError::body("name", "string_length", format!("name must be 1 to {NAME_MAX} characters and not blank")));
    }
}

fn check_text(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) {
    if value.is_some_and(|v| v.chars().count() > TEXT_MAX) {
        errors.push(FieldError::body(field, "string_too_long", format!("{field} must be at most {TEXT_MAX} characters")));
    }
}

fn check_list(field: &str, items: Option<&[String]>, errors: &mut Vec<FieldError>) {
    let Some(items) = items else { return };
    if items.len() > LIST_MAX_ITEMS {
        errors.push(FieldError::body(field, "too_long", format!("{field} must have at most {LIST_MAX_ITEMS} items")));
    } else if let Some(index) = items.iter().position(|i| i.trim().is_empty() || i.chars().count() > LIST_ITEM_MAX) {
        errors.push(FieldError::new(
            "string_length",
            vec![json!("body"), json!(field), json!(index)],
            format!("{field} items must be 1 to {LIST_ITEM_MAX} characters and not blank"),
        ));
    }
}

fn into_result(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

#[derive(Debug, Deserialize)]
pub struct RuleListQuery {
    #[serde(default)]
    source_name: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    is_active: Option<bool>,
    #[serde(default)]
    sort_by: Option<String>,
    #[serde(default)]
    sort_order: Option<String>,
}

#[utoipa::path(get, path = "/v1/detection-rules", tag = "detection-rules",
    params(("source_name" = Option<String>, Query, description = "Comma-separated, exact match"),
           ("severity" = Option<String>, Query, description = "Comma-separated, exact match"),
           ("is_active" = Option<bool>, Query),
           ("sort_by" = Option<String>, Query, description = "name, source_name, severity or created_at (default)"),
           ("sort_order" = Option<String>, Query, description = "asc or desc (default)"),
           ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "One page of rules"), (status = 400, description = "Invalid sort_by / sort_order")),
    security(("bearer" = [])))]
pub async fn list_detection_rules(
    auth: Auth,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<RuleListQuery>,
) -> Result<Response> {
    auth.require(&["alerts:read"])?;
    let pagination = pagination.validate()?;
    let (sort_key, order) =
        parse_sort(query.sort_by.as_deref(), query.sort_order.as_deref(), &RuleSort::KEYS, "created_at", SortOrder::Desc)?;
    let sort = RuleSort::from_key(sort_key).expect("parse_sort returns one of RuleSort::KEYS");
    let filter = RuleFilter {
        source_names: comma_list(query.source_name.as_deref()),
        severities: comma_list(query.severity.as_deref()),
        is_active: query.is_active,
    };
    let (rows, total) = store::list(&state.db, &filter, sort, order, pagination.limit(), pagination.offset()).await?;
    let data = rows.into_iter().map(DetectionRuleResponse::from).collect();
    Ok(Page::new(data, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/detection-rules", tag = "detection-rules", request_body = DetectionRuleCreate,
    responses((status = 201, body = DetectionRuleResponse)), security(("bearer" = [])))]
pub async fn create_detection_rule(
    auth: Auth,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<DetectionRuleCreate>,
) -> Result<Response> {
    auth.require(&["admin"])?;
    let mut errors = Vec::new();
    check_name(&body.name, &mut errors);
    for (field, value) in [
        ("source_rule_id", &body.source_rule_id),
        ("source_name", &body.source_name),
        ("severity", &body.severity),
        ("run_frequency", &body.run_frequency),
        ("created_by", &body.created_by),
    ] {
        check_text(field, value.as_deref(), &mut errors);
    }
    for (field, items) in [
        ("mitre_tactics", &body.mitre_tactics),
        ("mitre_techniques", &body.mitre_techniques),
        ("mitre_subtechniques", &body.mitre_subtechniques),
        ("data_sources", &body.data_sources),
    ] {
        check_list(field, Some(items), &mut errors);
    }
    into_result(errors)?;
    let created_by = body.created_by.as_deref().filter(|c| !c.trim().is_empty()).unwrap_or(&auth.key_prefix);
    let row = store::insert(
        &state.db,
        &NewRule {
            name: &body.name,
            source_rule_id: body.source_rule_id.as_deref(),
            source_name: body.source_name.as_deref(),
            severity: body.severity.as_deref(),
            is_active: body.is_active,
            mitre_tactics: &body.mitre_tactics,
            mitre_techniques: &body.mitre_techniques,
            mitre_subtechniques: &body.mitre_subtechniques,
            data_sources: &body.data_sources,
            run_frequency: body.run_frequency.as_deref(),
            created_by: Some(created_by),
            documentation: body.documentation.as_deref(),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Data::new(DetectionRuleResponse::from(row))).into_response())
}

#[utoipa::path(get, path = "/v1/detection-rules/{rule_uuid}", tag = "detection-rules", params(("rule_uuid" = Uuid, Path)),
    responses((status = 200, body = DetectionRuleResponse), (status = 404, description = "Detection rule not found.")),
    security(("bearer" = [])))]
pub async fn get_detection_rule(auth: Auth, State(state): State<AppState>, ValidPath(rule_uuid): ValidPath<Uuid>) -> Result<Response> {
    auth.require(&["alerts:read"])?;
    let row = store::find_by_uuid(&state.db, rule_uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    Ok(Data::new(DetectionRuleResponse::from(row)).into_response())
}

#[utoipa::path(patch, path = "/v1/detection-rules/{rule_uuid}", tag = "detection-rules", params(("rule_uuid" = Uuid, Path)),
    request_body = DetectionRuleUpdate,
    responses((status = 200, body = DetectionRuleResponse), (status = 404, description = "Detection rule not found.")),
    security(("bearer" = [])))]
pub async fn update_detection_rule(
    auth: Auth,
    State(state): State<AppState>,
    ValidPath(rule_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<DetectionRuleUpdate>,
) -> Result<Response> {
    auth.require(&["admin"])?;
    let mut errors = Vec::new();
    if let Some(name) = &body.name {
        check_name(name, &mut errors);
    }
    check_text("severity", body.severity.as_ref().and_then(|s| s.as_deref()), &mut errors);
    for (field, items) in [
        ("mitre_tactics", &body.mitre_tactics),
        ("mitre_techniques", &body.mitre_techniques),
        ("mitre_subtechniques", &body.mitre_subtechniques),
        ("data_sources", &body.data_sources),
    ] {
        check_list(field, items.as_deref(), &mut errors);
    }
    into_result(errors)?;
    let patch = RulePatch {
        name: body.name.as_deref(),
        severity: body.severity.as_ref().map(|s| s.as_deref()),
        is_active: body.is_active,
        mitre_tactics: body.mitre_tactics.as_deref(),
        mitre_techniques: body.mitre_techniques.as_deref(),
        mitre_subtechniques: body.mitre_subtechniques.as_deref(),
        data_sources: body.data_sources.as_deref(),
        documentation: body.documentation.as_ref().map(|d| d.as_deref()),
    };
    let row = store::update(&state.db, rule_uuid, &patch).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    Ok(Data::new(DetectionRuleResponse::from(row)).into_response())
}

#[utoipa::path(delete, path = "/v1/detection-rules/{rule_uuid}", tag = "detection-rules", params(("rule_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted; its alerts and activity events are detached"),
              (status = 404, description = "Detection rule not found.")),
    security(("bearer" = [])))]
pub async fn delete_detection_rule(auth: Auth, State(state): State<AppState>, ValidPath(rule_uuid): ValidPath<Uuid>) -> Result<Response> {
    auth.require(&["admin"])?;
    if !store::delete(&state.db, rule_uuid).await? {
        return Err(Error::not_found(NOT_FOUND));
    }
    tracing::info!(target: "calseta::audit", event = "detection_rule_deleted", rule_uuid = %rule_uuid, actor_key_prefix = %auth.key_prefix, "detection rule deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
pub struct MetricsWindowQuery {
    #[serde(rename = "from", default, deserialize_with = "lenient_datetime")]
    from_time: Option<DateTime<Utc>>,
    #[serde(rename = "to", default, deserialize_with = "lenient_datetime")]
    to_time: Option<DateTime<Utc>>,
}

/// The default window: the last 30 days.
const DEFAULT_WINDOW_DAYS: i64 = 30;

#[utoipa::path(get, path = "/v1/detection-rules/{rule_uuid}/metrics", tag = "detection-rules",
    params(("rule_uuid" = Uuid, Path),
           ("from" = Option<DateTime<Utc>>, Query, description = "Window start, inclusive (default: to − 30 days)"),
           ("to" = Option<DateTime<Utc>>, Query, description = "Window end, exclusive (default: now)")),
    responses((status = 200, body = DetectionRuleMetrics), (status = 404, description = "Detection rule not found.")),
    security(("bearer" = [])))]
pub async fn get_detection_rule_metrics(
    auth: Auth,
    State(state): State<AppState>,
    ValidPath(rule_uuid): ValidPath<Uuid>,
    ValidQuery(window): ValidQuery<MetricsWindowQuery>,
) -> Result<Response> {
    auth.require(&["alerts:read"])?;
    let now = crate::db::now();
    let to = window.to_time.unwrap_or(now);
    let from = window.from_time.unwrap_or(to - Duration::days(DEFAULT_WINDOW_DAYS));
    if from >= to {
        return Err(Error::Validation(vec![FieldError::new(
            "value_error",
            vec![json!("query"), json!("from")],
            "from must be earlier than to",
        )]));
    }
    let rule = store::find_by_uuid(&state.db, rule_uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    let buckets = store::alert_buckets(&state.db, rule.id, from, to).await?;
    let indicators = store::top_indicators(&state.db, rule.id, from, to).await?;
    let window = metrics::Window { rule_uuid: rule.uuid, rule_name: rule.name, from, to };
    Ok(Data::new(metrics::fold(window, &buckets, indicators)).into_response())
}
