//! The alert writes other than triage: delete, append a finding, re-enrich, add indicators.

use std::collections::HashMap;

use http::StatusCode;
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AddAlertIndicators, AddFinding, DeleteAlert, ReEnrichAlert, alert_not_found};
use crate::activity::{self, NewEvent, types};
use crate::alerts::model::{self, FINDING_CONFIDENCES, FindingResponse, MAX_EVIDENCE_BYTES, check_enum};
use crate::alerts::store as alerts;
use crate::audit::{self, Record};
use crate::auth::Principal;
use crate::db::{Tx, now};
use crate::domain::IndicatorType;
use crate::error::{Error, FieldError, FieldErrors, Result};
use crate::indicators::IndicatorResponse;
use crate::indicators::store as indicators;
use crate::service::Operation;
use crate::state::AppState;

/// The one call into the job queue from the alert operations (ingest has its own): queues
/// `enrich_alert` for the alert in the caller's transaction. Wake the workers after the commit.
async fn enqueue_enrichment(tx: &mut Tx, alert_id: i64) -> Result<()> {
    crate::ingest::service::enqueue_enrichment(tx, alert_id).await?;
    Ok(())
}

/// Hard delete: links and agent runs cascade, indicators and activity events remain.
pub async fn delete(state: &AppState, who: &Principal, uuid: Uuid) -> Result<()> {
    who.authorize::<DeleteAlert>()?;
    let mut tx = state.db.begin().await?;
    let row = alerts::lock_and_read(&mut tx, uuid).await?.ok_or_else(alert_not_found)?;
    alerts::delete(&mut tx, row.id).await?;
    let details = json!({"source_name": row.source_name, "status": row.status});
    audit::record(&mut tx, who, Record::success(DeleteAlert::NAME, "alert", uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(())
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

fn text_length(field: &str, text: &str, max: usize) -> std::result::Result<(), FieldError> {
    if text.trim().is_empty() || text.chars().count() > max {
        return Err(FieldError::body(field, "string_length", format!("{field} must be 1 to {max} characters and not blank")));
    }
    Ok(())
}

fn validate_finding(body: &FindingCreate) -> Result<()> {
    let mut errors = FieldErrors::default();
    errors.check(text_length("agent_name", &body.agent_name, MAX_AGENT_NAME_CHARS));
    errors.check(text_length("summary", &body.summary, MAX_SUMMARY_CHARS));
    if let Some(confidence) = body.confidence.as_deref() {
        errors.check(check_enum("confidence", confidence, &FINDING_CONFIDENCES));
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
        Some(evidence @ Value::Object(_)) => {
            errors.check(model::check_json_size("evidence", evidence, MAX_EVIDENCE_BYTES));
        }
        Some(_) => {
            errors.push(FieldError::body("evidence", "dict_type", "Input should be a valid dictionary"));
        }
    }
    errors.finish()
}

/// Appends an agent's finding to the alert.
pub async fn add_finding(state: &AppState, who: &Principal, uuid: Uuid, body: FindingCreate) -> Result<FindingResponse> {
    who.authorize::<AddFinding>()?;
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
    let row = alerts::lock_and_read(&mut tx, uuid).await?.ok_or_else(alert_not_found)?;
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
    activity::record(&mut tx, NewEvent::for_alert(types::ALERT_FINDING_ADDED, &who.actor(), row.id, references)).await?;
    let details = json!({"finding_id": finding.id, "agent_name": finding.agent_name});
    audit::record(&mut tx, who, Record::success(AddFinding::NAME, "alert", uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(finding)
}

/// Queues the alert's enrichment again (extraction, enrichment, agent dispatch).
pub async fn enrich(state: &AppState, who: &Principal, uuid: Uuid) -> Result<()> {
    who.authorize::<ReEnrichAlert>()?;
    let mut tx = state.db.begin().await?;
    let id = alerts::id_by_uuid_in(&mut tx, uuid).await?.ok_or_else(alert_not_found)?;
    enqueue_enrichment(&mut tx, id).await?;
    audit::record(&mut tx, who, Record::success(ReEnrichAlert::NAME, "alert", uuid)).await?;
    tx.commit().await?;
    state.wakeup.job_enqueued();
    Ok(())
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
    let mut errors = FieldErrors::default();
    if items.is_empty() || items.len() > MAX_INDICATORS_PER_REQUEST {
        errors.push(FieldError::body(
            "indicators",
            if items.is_empty() { "too_short" } else { "too_long" },
            format!("List should have 1 to {MAX_INDICATORS_PER_REQUEST} items"),
        ));
    }
    let mut valid: Vec<(IndicatorType, String)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let loc = |field: &str| vec![json!("body"), json!("indicators"), json!(i), json!(field)];
        let itype = item.indicator_type.parse::<IndicatorType>();
        if itype.is_err() {
            errors.push(model::enum_error(loc("type"), &IndicatorType::NAMES));
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
    errors.finish()?;
    Ok(valid)
}

/// Upserts each indicator globally, links it to the alert, and (when `enrich`) queues the
/// alert's enrichment, all in one transaction. The indicators come back in request order.
pub async fn add_indicators(
    state: &AppState,
    who: &Principal,
    uuid: Uuid,
    body: IndicatorAddRequest,
    enrich: bool,
) -> Result<IndicatorAddResponse> {
    who.authorize::<AddAlertIndicators>()?;
    let items = validate_indicator_items(&body.indicators)?;
    let mut tx = state.db.begin().await?;
    let row = alerts::lock_and_read(&mut tx, uuid).await?.ok_or_else(alert_not_found)?;
    let mut linked_ids = Vec::with_capacity(items.len());
    for (itype, value) in &items {
        linked_ids.push(indicators::upsert_and_link(&mut tx, row.id, itype.as_str(), value).await?);
    }
    if enrich {
        enqueue_enrichment(&mut tx, row.id).await?;
    }
    let references = json!({
        "indicator_count": items.len(),
        "indicators": items.iter().map(|(t, v)| json!({"type": t, "value": v})).collect::<Vec<_>>(),
        "enrich_requested": enrich,
    });
    activity::record(&mut tx, NewEvent::for_alert(types::ALERT_INDICATORS_ADDED, &who.actor(), row.id, references)).await?;
    let details = json!({"indicator_count": items.len(), "enrich_requested": enrich});
    audit::record(&mut tx, who, Record::success(AddAlertIndicators::NAME, "alert", uuid).with_details(details)).await?;
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
    Ok(IndicatorAddResponse { added_count: views.len(), indicators: views, enrich_requested: enrich })
}
