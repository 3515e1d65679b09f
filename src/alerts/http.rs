//! `/v1/alerts` (list; create is the programmatic ingest handler) and `/v1/alerts/{uuid}` with
//! its sub-resources: findings, indicators, activity, relationship graph, re-enrichment and
//! context. Reads need `alerts:read`, writes `alerts:write`; the scope is checked before any
//! path, query or body validation (`Scoped`).

use utoipa_axum::{router::OpenApiRouter, routes};
use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::model::{
    self, AlertRelationshipGraph, AlertSummary, CLOSE_CLASSIFICATIONS, DetectionRuleResponse, FINDING_CONFIDENCES,
    FindingResponse, GraphAlertNode, GraphIndicatorNode, Lifecycle, MAX_EVIDENCE_BYTES, STATUSES, check_enum,
};
use super::store::{self as alerts, AlertChanges, AlertRow};
use crate::activity::{self, Actor, NewEvent, types};
use crate::auth::scoped::{AlertsRead, AlertsWrite, Scoped};
use crate::db::now;
use crate::error::{Error, FieldError, Result};
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::indicators::store as indicators;
use crate::indicators::{IndicatorResponse, MALICE_LEVELS};
use crate::ingest::normalized::{IndicatorType, Severity};
use crate::pagination::{Data, Page, Pagination};
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

fn alert_not_found() -> Error {
    Error::not_found("Alert")
}

fn collect(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

async fn alert_id(state: &AppState, alert_uuid: Uuid) -> Result<i64> {
    alerts::id_by_uuid(&state.db, alert_uuid).await?.ok_or_else(alert_not_found)
}

/// The detail view with its metadata block as the envelope's `meta`.
async fn render_alert(state: &AppState, row: AlertRow) -> Result<Response> {
    let indicator_rows = indicators::list_for_alert(&state.db, row.id).await?;
    let indicator_views: Vec<IndicatorResponse> = indicator_rows.into_iter().map(IndicatorResponse::summary).collect();
    let detection_rule = match row.detection_rule_id {
        Some(id) => crate::rules::store::find_by_id(&state.db, id).await?.map(DetectionRuleResponse::from),
        None => None,
    };
    let context_documents = super::applicable_context_documents(&state.db, &row).await?;
    let (alert, meta) = model::alert_response(row, indicator_views, detection_rule, context_documents, now());
    let meta = serde_json::to_value(meta).map_err(|e| Error::Internal(e.into()))?;
    Ok(Data { data: alert, meta }.into_response())
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
    security(("bearer" = [])))]
pub async fn list_alerts(_auth: Scoped<AlertsRead>, State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Response> {
    let query = super::query::parse_list_query(query.as_deref())?;
    let (rows, total) =
        alerts::list(&state.db, &query.filter, query.sort, query.pagination.limit(), query.pagination.offset()).await?;
    let data: Vec<AlertSummary> = rows.into_iter().map(AlertSummary::from).collect();
    Ok(Page::new(data, total, query.pagination).into_response())
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 200, body = model::AlertResponse), (status = 404, description = "Alert not found.")),
    security(("bearer" = [])))]
pub async fn get_alert(_auth: Scoped<AlertsRead>, State(state): State<AppState>, ValidPath(alert_uuid): ValidPath<Uuid>) -> Result<Response> {
    let row = alerts::find_by_uuid(&state.db, alert_uuid).await?.ok_or_else(alert_not_found)?;
    render_alert(&state, row).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertPatch {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub close_classification: Option<String>,
    /// Replaces the tag list.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub malice_override: Option<String>,
    /// Clears the override (wins over `malice_override`).
    #[serde(default)]
    pub reset_malice_override: Option<bool>,
}

const MAX_TAGS: usize = 100;
const MAX_TAG_CHARS: usize = 255;

fn validate_patch(body: &AlertPatch) -> Result<()> {
    let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    let mut errors = Vec::new();
    let checks = [
        body.status.as_deref().map(|v| check_enum("status", v, &STATUSES)),
        body.severity.as_deref().map(|v| check_enum("severity", v, &severities)),
        body.close_classification.as_deref().map(|v| check_enum("close_classification", v, &CLOSE_CLASSIFICATIONS)),
        body.malice_override.as_deref().map(|v| check_enum("malice_override", v, &MALICE_LEVELS)),
    ];
    errors.extend(checks.into_iter().flatten().filter_map(|c| c.err()));
    if let Some(tags) = &body.tags {
        if tags.len() > MAX_TAGS {
            errors.push(FieldError::body("tags", "too_long", format!("List should have at most {MAX_TAGS} items")));
        }
        for (i, tag) in tags.iter().enumerate() {
            if tag.trim().is_empty() || tag.chars().count() > MAX_TAG_CHARS {
                errors.push(FieldError::new(
                    "string_length",
                    vec![json!("body"), json!("tags"), json!(i)],
                    format!("Each tag must be 1 to {MAX_TAG_CHARS} characters and not blank"),
                ));
            }
        }
    }
    collect(errors)?;
    if body.status.as_deref() == Some("Closed") && body.close_classification.is_none() {
        let message = "close_classification is required when setting status to Closed.";
        return Err(Error::Client {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "VALIDATION_ERROR",
            message: message.to_owned(),
            details: json!({"errors": [FieldError::body("close_classification", "missing", message)]}),
        });
    }
    Ok(())
}

#[utoipa::path(patch, path = "/v1/alerts/{alert_uuid}", tag = "alerts", params(("alert_uuid" = Uuid, Path)), request_body = AlertPatch,
    responses((status = 200, body = model::AlertResponse), (status = 404, description = "Alert not found."),
        (status = 422, description = "Validation error, or Closed without close_classification")),
    security(("bearer" = [])))]
pub async fn patch_alert(
    auth: Scoped<AlertsWrite>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<AlertPatch>,
) -> Result<Response> {
    validate_patch(&body)?;
    let actor = Actor::api(&auth.key_prefix);
    let mut tx = state.db.begin().await?;
    let row = alerts::lock_and_read(&mut tx, alert_uuid).await?.ok_or_else(alert_not_found)?;
    let at = now();
    let mut events: Vec<(&str, Value)> = Vec::new();

    let status = body.status.as_deref().unwrap_or(&row.status);
    let current = Lifecycle { acknowledged_at: row.acknowledged_at, triaged_at: row.triaged_at, closed_at: row.closed_at };
    let lifecycle = match &body.status {
        Some(new) => model::apply_status(&row.status, new, current, at),
        None => current,
    };
    let close_classification = body.close_classification.as_deref().or(row.close_classification.as_deref());
    if status != row.status {
        if status == "Closed" {
            events.push((types::ALERT_CLOSED, json!({"from_status": row.status, "close_classification": close_classification})));
        } else {
            events.push((types::ALERT_STATUS_UPDATED, json!({"from_status": row.status, "to_status": status})));
        }
    }
    let severity = body.severity.as_deref().unwrap_or(&row.severity);
    if severity != row.severity {
        events.push((types::ALERT_SEVERITY_UPDATED, json!({"from_severity": row.severity, "to_severity": severity})));
    }
    let previous_override = row.malice_override.as_deref();
    let (malice_override, malice_override_source, malice_override_at) = if body.reset_malice_override == Some(true) {
        if previous_override.is_some() {
            events.push((types::ALERT_MALICE_UPDATED, json!({"from_malice": previous_override, "to_malice": null, "malice_source": "reset"})));
        }
        (None, None, None)
    } else if let Some(verdict) = body.malice_override.as_deref() {
        if previous_override != Some(verdict) {
            events.push((types::ALERT_MALICE_UPDATED, json!({"from_malice": previous_override, "to_malice": verdict, "malice_source": "analyst"})));
        }
        (Some(verdict), Some("analyst"), Some(at))
    } else {
        (previous_override, row.malice_override_source.as_deref(), row.malice_override_at)
    };
    let tags = body.tags.as_deref().unwrap_or(&row.tags.0);

    let changes = AlertChanges {
        status,
        severity,
        close_classification,
        tags,
        acknowledged_at: lifecycle.acknowledged_at,
        triaged_at: lifecycle.triaged_at,
        closed_at: lifecycle.closed_at,
        malice_override,
        malice_override_source,
        malice_override_at,
    };
    let supplied = body.status.is_some()
        || body.severity.is_some()
        || body.close_classification.is_some()
        || body.tags.is_some()
        || body.malice_override.is_some()
        || body.reset_malice_override == Some(true);
    if supplied {
        alerts::apply_changes(&mut tx, row.id, &changes).await?;
    }
    for (event_type, references) in events {
        activity::record(&mut tx, NewEvent::for_alert(event_type, &actor, row.id, references)).await?;
    }
    tx.commit().await?;
    let updated = alerts::find_by_uuid(&state.db, alert_uuid).await?.ok_or_else(alert_not_found)?;
    render_alert(&state, updated).await
}

#[utoipa::path(delete, path = "/v1/alerts/{alert_uuid}", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted; links cascade, indicators remain"), (status = 404, description = "Alert not found.")),
    security(("bearer" = [])))]
pub async fn delete_alert(auth: Scoped<AlertsWrite>, State(state): State<AppState>, ValidPath(alert_uuid): ValidPath<Uuid>) -> Result<Response> {
    if !alerts::delete_by_uuid(&state.db, alert_uuid).await? {
        return Err(alert_not_found());
    }
    tracing::info!(target: "calseta::audit", event = "alert_deleted", alert_uuid = %alert_uuid, actor_key_prefix = %auth.key_prefix, "alert deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingCreate {
    pub agent_name: String,
    pub summary: String,
    #[serde(default)]
    pub confidence: Option<String>,
    #[serde(default)]
    pub recommended_action: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<Value>,
}

const MAX_AGENT_NAME_CHARS: usize = 255;
const MAX_SUMMARY_CHARS: usize = 50_000;
const MAX_RECOMMENDED_ACTION_CHARS: usize = 50_000;
/// Findings are append-only and the array is rewritten on each append: a bound keeps one
/// alert's row (and each append) from growing without limit.
pub const MAX_FINDINGS_PER_ALERT: usize = 500;

fn text_length(field: &str, text: &str, max: usize, errors: &mut Vec<FieldError>) {
    if text.trim().is_empty() || text.chars().count() > max {
        errors.push(FieldError::body(field, "string_length", format!("{field} must be 1 to {max} characters and not blank")));
    }
}

fn validate_finding(body: &FindingCreate) -> Result<()> {
    let mut errors = Vec::new();
    text_length("agent_name", &body.agent_name, MAX_AGENT_NAME_CHARS, &mut errors);
    text_length("summary", &body.summary, MAX_SUMMARY_CHARS, &mut errors);
    if let Some(confidence) = body.confidence.as_deref() {
        errors.extend(check_enum("confidence", confidence, &FINDING_CONFIDENCES).err());
    }
    if body.recommended_action.as_deref().is_some_and(|action| action.chars().count() > MAX_RECOMMENDED_ACTION_CHARS) {
        errors.push(FieldError::body(
            "recommended_action",
            "string_too_long",
            format!("recommended_action must be at most {MAX_RECOMMENDED_ACTION_CHARS} characters"),
        ));
    }
    match &body.evidence {
        None | Some(Value::Null) => {}
        Some(evidence @ Value::Object(_)) => errors.extend(model::check_json_size("evidence", evidence, MAX_EVIDENCE_BYTES).err()),
        Some(_) => errors.push(FieldError::body("evidence", "dict_type", "Input should be a valid dictionary")),
    }
    collect(errors)
}

#[utoipa::path(post, path = "/v1/alerts/{alert_uuid}/findings", tag = "alerts", params(("alert_uuid" = Uuid, Path)), request_body = FindingCreate,
    responses((status = 201, body = FindingResponse), (status = 404, description = "Alert not found.")),
    security(("bearer" = [])))]
pub async fn add_finding(
    auth: Scoped<AlertsWrite>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<FindingCreate>,
) -> Result<Response> {
    validate_finding(&body)?;
    let finding = FindingResponse {
        id: Uuid::new_v4().to_string(),
        agent_name: body.agent_name,
        summary: body.summary,
        confidence: body.confidence,
        recommended_action: body.recommended_action,
        evidence: body.evidence.filter(|e| !e.is_null()),
        posted_at: now().to_rfc3339_opts(SecondsFormat::Micros, false),
    };
    let stored = serde_json::to_value(&finding).map_err(|e| Error::Internal(e.into()))?;
    let mut tx = state.db.begin().await?;
    let row = alerts::lock_and_read(&mut tx, alert_uuid).await?.ok_or_else(alert_not_found)?;
    let mut findings = match row.agent_findings.map(|f| f.0) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    if findings.len() >= MAX_FINDINGS_PER_ALERT {
        return Err(Error::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            format!("Alert already has the maximum of {MAX_FINDINGS_PER_ALERT} findings."),
        ));
    }
    findings.push(stored);
    alerts::set_findings(&mut tx, row.id, &Value::Array(findings)).await?;
    let references = json!({
        "finding_id": finding.id, "agent_name": finding.agent_name,
        "summary": model::finding_summary_excerpt(&finding.summary), "confidence": finding.confidence,
    });
    activity::record(&mut tx, NewEvent::for_alert(types::ALERT_FINDING_ADDED, &Actor::api(&auth.key_prefix), row.id, references)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Data::new(finding)).into_response())
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}/findings", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 200, description = "Findings, oldest first (not paginated)", body = [FindingResponse]), (status = 404, description = "Alert not found.")),
    security(("bearer" = [])))]
pub async fn list_findings(_auth: Scoped<AlertsRead>, State(state): State<AppState>, ValidPath(alert_uuid): ValidPath<Uuid>) -> Result<Response> {
    let row = alerts::find_by_uuid(&state.db, alert_uuid).await?.ok_or_else(alert_not_found)?;
    let findings = model::sorted_findings(row.agent_findings.as_ref().map(|f| &f.0));
    Ok(Data::new(findings).into_response())
}

#[utoipa::path(post, path = "/v1/alerts/{alert_uuid}/enrich", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 202, description = "`{\"message\": \"Enrichment queued\"}`"), (status = 404, description = "Alert not found.")),
    security(("bearer" = [])))]
pub async fn enrich_alert(_auth: Scoped<AlertsWrite>, State(state): State<AppState>, ValidPath(alert_uuid): ValidPath<Uuid>) -> Result<Response> {
    let id = alert_id(&state, alert_uuid).await?;
    let mut tx = state.db.begin().await?;
    crate::ingest::service::enqueue_enrichment(&mut tx, id).await?;
    tx.commit().await?;
    state.wakeup.job_enqueued();
    Ok((StatusCode::ACCEPTED, Data::new(json!({"message": "Enrichment queued"}))).into_response())
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}/context", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 200, description = "Applicable context documents", body = [model::ContextDocumentResponse]),
        (status = 404, description = "Alert not found.")),
    security(("bearer" = [])))]
pub async fn alert_context(_auth: Scoped<AlertsRead>, State(state): State<AppState>, ValidPath(alert_uuid): ValidPath<Uuid>) -> Result<Response> {
    let row = alerts::find_by_uuid(&state.db, alert_uuid).await?.ok_or_else(alert_not_found)?;
    let documents = super::applicable_context_documents(&state.db, &row).await?;
    Ok(Data::new(documents).into_response())
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}/indicators", tag = "alerts", params(("alert_uuid" = Uuid, Path)),
    responses((status = 200, description = "The alert's indicators (provider raw responses removed)", body = [IndicatorResponse]),
        (status = 404, description = "Alert not found.")),
    security(("bearer" = [])))]
pub async fn list_alert_indicators(
    _auth: Scoped<AlertsRead>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    let id = alert_id(&state, alert_uuid).await?;
    let rows = indicators::list_for_alert(&state.db, id).await?;
    Ok(Data::new(rows.into_iter().map(IndicatorResponse::summary).collect::<Vec<_>>()).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndicatorAddItem {
    #[serde(rename = "type")]
    pub indicator_type: String,
    pub value: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndicatorAddRequest {
    pub indicators: Vec<IndicatorAddItem>,
}

#[derive(Debug, Deserialize)]
pub struct AddIndicatorsQuery {
    #[serde(default)]
    pub enrich: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatorAddResponse {
    pub added_count: usize,
    pub indicators: Vec<IndicatorResponse>,
    pub enrich_requested: bool,
}

const MAX_INDICATORS_PER_REQUEST: usize = 100;
pub const MAX_INDICATOR_VALUE_CHARS: usize = 2048;

/// Validated `(type, trimmed value)` pairs, duplicates within the request collapsed.
fn validate_indicator_items(items: &[IndicatorAddItem]) -> Result<Vec<(IndicatorType, String)>> {
    let mut errors = Vec::new();
    if items.is_empty() || items.len() > MAX_INDICATORS_PER_REQUEST {
        errors.push(FieldError::body(
            "indicators",
            if items.is_empty() { "too_short" } else { "too_long" },
            format!("List should have 1 to {MAX_INDICATORS_PER_REQUEST} items"),
        ));
    }
    let type_names: Vec<&str> = IndicatorType::ALL.iter().map(|t| t.as_str()).collect();
    let mut valid: Vec<(IndicatorType, String)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let loc = |field: &str| vec![json!("body"), json!("indicators"), json!(i), json!(field)];
        let itype = item.indicator_type.parse::<IndicatorType>();
        if itype.is_err() {
            errors.push(model::enum_error(loc("type"), &type_names));
        }
        let value = item.value.trim();
        let value_error = if value.is_empty() {
            Some("value must not be blank")
        } else if item.value.contains('\0') {
            Some("value must not contain NUL characters")
        } else if item.value.chars().count() > MAX_INDICATOR_VALUE_CHARS {
            Some("value must be at most 2048 characters")
        } else {
            None
        };
        if let Some(msg) = value_error {
            errors.push(FieldError::new("string_length", loc("value"), msg));
        }
        if let (Ok(itype), None) = (itype, value_error)
            && !valid.iter().any(|(t, v)| *t == itype && v == value)
        {
            valid.push((itype, value.to_owned()));
        }
    }
    collect(errors)?;
    Ok(valid)
}

#[utoipa::path(post, path = "/v1/alerts/{alert_uuid}/indicators", tag = "alerts",
    params(("alert_uuid" = Uuid, Path), ("enrich" = Option<bool>, Query, description = "Re-run enrichment (default true)")),
    request_body = IndicatorAddRequest,
    responses((status = 201, body = IndicatorAddResponse), (status = 404, description = "Alert not found.")),
    security(("bearer" = [])))]
pub async fn add_indicators(
    auth: Scoped<AlertsWrite>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
    ValidQuery(query): ValidQuery<AddIndicatorsQuery>,
    JsonBody(body): JsonBody<IndicatorAddRequest>,
) -> Result<Response> {
    let enrich = match query.enrich.as_deref() {
        None => true,
        Some(text) => super::query::parse_bool(text).ok_or_else(|| Error::Validation(vec![super::query::bool_error("enrich")]))?,
    };
    let items = validate_indicator_items(&body.indicators)?;
    let mut tx = state.db.begin().await?;
    let row = alerts::lock_and_read(&mut tx, alert_uuid).await?.ok_or_else(alert_not_found)?;
    let mut linked_ids = Vec::with_capacity(items.len());
    for (itype, value) in &items {
        linked_ids.push(indicators::upsert_and_link(&mut tx, row.id, itype.as_str(), value).await?);
    }
    if enrich {
        crate::ingest::service::enqueue_enrichment(&mut tx, row.id).await?;
    }
    let references = json!({
        "indicator_count": items.len(),
        "indicators": items.iter().map(|(t, v)| json!({"type": t.as_str(), "value": v})).collect::<Vec<_>>(),
        "enrich_requested": enrich,
    });
    activity::record(&mut tx, NewEvent::for_alert(types::ALERT_INDICATORS_ADDED, &Actor::api(&auth.key_prefix), row.id, references)).await?;
    tx.commit().await?;
    if enrich {
        state.wakeup.job_enqueued();
    }
    // Read back in request order (the rows as committed, with their final last_seen).
    let mut by_id: HashMap<i64, IndicatorResponse> = indicators::list_for_alert(&state.db, row.id)
        .await?
        .into_iter()
        .filter(|r| linked_ids.contains(&r.id))
        .map(|r| (r.id, IndicatorResponse::summary(r)))
        .collect();
    let views: Vec<IndicatorResponse> = linked_ids.iter().filter_map(|id| by_id.remove(id)).collect();
    let response = IndicatorAddResponse { added_count: views.len(), indicators: views, enrich_requested: enrich };
    Ok((StatusCode::CREATED, Data::new(response)).into_response())
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}/activity", tag = "alerts",
    params(("alert_uuid" = Uuid, Path), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "The alert's activity events, newest first"), (status = 404, description = "Alert not found.")),
    security(("bearer" = [])))]
pub async fn list_alert_activity(
    _auth: Scoped<AlertsRead>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
    ValidQuery(pagination): ValidQuery<Pagination>,
) -> Result<Response> {
    let pagination = pagination.validate()?;
    let id = alert_id(&state, alert_uuid).await?;
    let (rows, total) = activity::list_for_alert(&state.db, id, pagination.limit(), pagination.offset()).await?;
    Ok(Page::new(rows, total, pagination).into_response())
}

#[derive(Debug, Deserialize)]
pub struct GraphQuery {
    #[serde(default)]
    pub sibling_limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/alerts/{alert_uuid}/relationship-graph", tag = "alerts",
    params(("alert_uuid" = Uuid, Path), ("sibling_limit" = Option<i64>, Query, description = "1..50, default 10")),
    responses((status = 200, body = AlertRelationshipGraph), (status = 404, description = "Alert not found.")),
    security(("bearer" = [])))]
pub async fn relationship_graph(
    _auth: Scoped<AlertsRead>,
    State(state): State<AppState>,
    ValidPath(alert_uuid): ValidPath<Uuid>,
    ValidQuery(query): ValidQuery<GraphQuery>,
) -> Result<Response> {
    let sibling_limit = query.sibling_limit.unwrap_or(10);
    if !(1..=50).contains(&sibling_limit) {
        return Err(Error::Validation(vec![FieldError::new(
            "value_error",
            vec![json!("query"), json!("sibling_limit")],
            "Input should be between 1 and 50",
        )]));
    }
    let row = alerts::find_by_uuid(&state.db, alert_uuid).await?.ok_or_else(alert_not_found)?;
    let indicator_rows = indicators::list_for_alert(&state.db, row.id).await?;
    let mut siblings: HashMap<i64, (i64, Vec<GraphAlertNode>)> = HashMap::new();
    for sibling in indicators::siblings_for_alert(&state.db, row.id, sibling_limit).await? {
        let entry = siblings.entry(sibling.indicator_id).or_insert_with(|| (sibling.total_alert_count, Vec::new()));
        entry.1.push(GraphAlertNode {
            uuid: sibling.uuid,
            title: sibling.title,
            severity: sibling.severity,
            status: sibling.status,
            source_name: sibling.source_name,
            occurred_at: sibling.occurred_at,
            tags: sibling.tags.0,
        });
    }
    let nodes = indicator_rows
        .into_iter()
        .map(|indicator| {
            let (total_alert_count, sibling_alerts) = siblings.remove(&indicator.id).unwrap_or_default();
            GraphIndicatorNode {
                enrichment_summary: model::enrichment_summary(indicator.enrichment_results.as_ref().map(|r| &r.0)),
                uuid: indicator.uuid,
                indicator_type: indicator.indicator_type,
                value: indicator.value,
                malice: indicator.malice,
                first_seen: indicator.first_seen,
                last_seen: indicator.last_seen,
                is_enriched: indicator.is_enriched,
                total_alert_count,
                sibling_alerts,
            }
        })
        .collect();
    let graph = AlertRelationshipGraph {
        alert: GraphAlertNode {
            uuid: row.uuid,
            title: row.title,
            severity: row.severity,
            status: row.status,
            source_name: row.source_name,
            occurred_at: row.occurred_at,
            tags: row.tags.0,
        },
        indicators: nodes,
    };
    Ok(Data::new(graph).into_response())
}
