//! The alert operations, one function each, for every caller (REST handlers, MCP tools, jobs):
//! each takes the caller's [`Principal`], checks the scope its operation declares below, and
//! returns typed output. Writes run in one transaction with their activity events and audit
//! record. Reads are here; lifecycle changes in `patch`, the other writes in `writes`.

mod patch;
#[cfg(test)]
mod tests;
mod writes;

use std::collections::HashMap;

use serde_json::json;
use uuid::Uuid;

use super::model::{
    self, AlertMeta, AlertRelationshipGraph, AlertResponse, AlertSummary, ContextDocumentResponse, DetectionRuleResponse,
    GraphAlertNode, GraphIndicatorNode,
};
use super::query::ListQuery;
use super::store::{self as alerts, AlertRow};
use crate::activity::{self, ActivityEventResponse};
use crate::auth::Principal;
use crate::db::now;
use crate::error::{Error, FieldError, Result};
use crate::indicators::IndicatorResponse;
use crate::indicators::store as indicators;
use crate::pagination::{Page, Pagination};
use crate::state::AppState;

pub use patch::{AlertPatch, patch, patch_from};
pub use writes::{
    FindingCreate, IndicatorAddItem, IndicatorAddRequest, IndicatorAddResponse, MAX_FINDINGS_PER_ALERT, MAX_INDICATOR_VALUE_CHARS,
    add_finding, add_indicators, delete, enrich,
};

crate::operation!(ListAlerts = "alerts.list", scopes ["alerts:read"]);
crate::operation!(GetAlert = "alerts.get", scopes ["alerts:read"]);
crate::operation!(PatchAlert = "alerts.patch", scopes ["alerts:write"]);
crate::operation!(DeleteAlert = "alerts.delete", scopes ["alerts:write"]);
crate::operation!(ListFindings = "alerts.findings.list", scopes ["alerts:read"]);
crate::operation!(AddFinding = "alerts.findings.add", scopes ["alerts:write"]);
crate::operation!(
    /// Re-runs extraction and enrichment (and so agent dispatch) for one alert.
    ReEnrichAlert = "alerts.enrich", scopes ["alerts:write"]
);
crate::operation!(GetAlertContext = "alerts.context", scopes ["alerts:read"]);
crate::operation!(ListAlertIndicators = "alerts.indicators.list", scopes ["alerts:read"]);
crate::operation!(AddAlertIndicators = "alerts.indicators.add", scopes ["alerts:write"]);
crate::operation!(ListAlertActivity = "alerts.activity.list", scopes ["alerts:read"]);
crate::operation!(GetRelationshipGraph = "alerts.relationship_graph", scopes ["alerts:read"]);

/// The detail view and its metadata block (the REST envelope's `meta`).
#[derive(Debug)]
pub struct AlertDetail {
    pub alert: AlertResponse,
    pub meta: AlertMeta,
}

fn alert_not_found() -> Error {
    Error::not_found("Alert")
}

async fn find(state: &AppState, uuid: Uuid) -> Result<AlertRow> {
    alerts::find_by_uuid(&state.db, uuid).await?.ok_or_else(alert_not_found)
}

async fn internal_id(state: &AppState, uuid: Uuid) -> Result<i64> {
    alerts::id_by_uuid(&state.db, uuid).await?.ok_or_else(alert_not_found)
}

/// The context documents that apply to `alert`, in the order of agents-mcp-metrics.md §2.3
/// (global documents by `document_type`, then targeted ones whose rules match).
pub async fn applicable_context_documents(db: &crate::db::Db, alert: &AlertRow) -> Result<Vec<ContextDocumentResponse>> {
    let facts = crate::context::targeting::AlertFacts {
        source_name: &alert.source_name,
        severity: &alert.severity,
        tags: &alert.tags.0,
    };
    let documents = crate::context::applicable_documents(db, &facts).await?;
    Ok(documents.into_iter().map(ContextDocumentResponse::from).collect())
}

/// Assembles the detail view of a loaded row.
async fn detail(state: &AppState, row: AlertRow) -> Result<AlertDetail> {
    let indicator_rows = indicators::list_for_alert(&state.db, row.id).await?;
    let indicator_views: Vec<IndicatorResponse> = indicator_rows.into_iter().map(IndicatorResponse::summary).collect();
    let detection_rule = match row.detection_rule_id {
        Some(id) => crate::rules::store::find_by_id(&state.db, id).await?.map(DetectionRuleResponse::from),
        None => None,
    };
    let context_documents = applicable_context_documents(&state.db, &row).await?;
    let (alert, meta) = model::alert_response(row, indicator_views, detection_rule, context_documents, now());
    Ok(AlertDetail { alert, meta })
}

/// One page of alert summaries under the query's filters and sort.
pub async fn list(state: &AppState, who: &Principal, query: ListQuery) -> Result<Page<AlertSummary>> {
    who.authorize::<ListAlerts>()?;
    // Callers other than REST build the query themselves: the page bounds hold for them too.
    let pagination = query.pagination.validate()?;
    let (rows, total) = alerts::list(&state.db, &query.filter, query.sort, pagination.limit(), pagination.offset()).await?;
    Ok(Page::new(rows, total, pagination))
}

pub async fn get(state: &AppState, who: &Principal, uuid: Uuid) -> Result<AlertDetail> {
    who.authorize::<GetAlert>()?;
    detail(state, find(state, uuid).await?).await
}

/// The alert's findings, oldest first.
pub async fn list_findings(state: &AppState, who: &Principal, uuid: Uuid) -> Result<Vec<serde_json::Value>> {
    who.authorize::<ListFindings>()?;
    let row = find(state, uuid).await?;
    Ok(model::sorted_findings(row.agent_findings.as_ref().map(|f| &f.0)))
}

/// The context documents that apply to the alert.
pub async fn context(state: &AppState, who: &Principal, uuid: Uuid) -> Result<Vec<ContextDocumentResponse>> {
    who.authorize::<GetAlertContext>()?;
    let row = find(state, uuid).await?;
    applicable_context_documents(&state.db, &row).await
}

/// The alert's indicators, provider raw responses removed.
pub async fn list_indicators(state: &AppState, who: &Principal, uuid: Uuid) -> Result<Vec<IndicatorResponse>> {
    who.authorize::<ListAlertIndicators>()?;
    let id = internal_id(state, uuid).await?;
    let rows = indicators::list_for_alert(&state.db, id).await?;
    Ok(rows.into_iter().map(IndicatorResponse::summary).collect())
}

/// One page of the alert's activity events, newest first.
pub async fn list_activity(state: &AppState, who: &Principal, uuid: Uuid, pagination: Pagination) -> Result<Page<ActivityEventResponse>> {
    who.authorize::<ListAlertActivity>()?;
    let pagination = pagination.validate()?;
    let id = internal_id(state, uuid).await?;
    let (rows, total) = activity::list_for_alert(&state.db, id, pagination.limit(), pagination.offset()).await?;
    Ok(Page::new(rows, total, pagination))
}

pub const DEFAULT_SIBLING_LIMIT: i64 = 10;
const MAX_SIBLING_LIMIT: i64 = 50;

fn graph_node(
    uuid: Uuid,
    title: String,
    severity: String,
    status: crate::domain::AlertStatus,
    source_name: String,
    occurred_at: chrono::DateTime<chrono::Utc>,
    tags: Vec<String>,
) -> GraphAlertNode {
    GraphAlertNode { uuid, title, severity, status, source_name, occurred_at, tags }
}

/// The alert, its indicators, and for each indicator up to `sibling_limit` (1..50, default 10)
/// other alerts that share it.
pub async fn relationship_graph(
    state: &AppState,
    who: &Principal,
    uuid: Uuid,
    sibling_limit: Option<i64>,
) -> Result<AlertRelationshipGraph> {
    who.authorize::<GetRelationshipGraph>()?;
    let sibling_limit = sibling_limit.unwrap_or(DEFAULT_SIBLING_LIMIT);
    if !(1..=MAX_SIBLING_LIMIT).contains(&sibling_limit) {
        return Err(Error::Validation(vec![FieldError::new(
            "value_error",
            vec![json!("query"), json!("sibling_limit")],
            format!("Input should be between 1 and {MAX_SIBLING_LIMIT}"),
        )]));
    }
    let row = find(state, uuid).await?;
    let indicator_rows = indicators::list_for_alert(&state.db, row.id).await?;
    let mut siblings: HashMap<i64, (i64, Vec<GraphAlertNode>)> = HashMap::new();
    for sibling in indicators::siblings_for_alert(&state.db, row.id, sibling_limit).await? {
        let entry = siblings.entry(sibling.indicator_id).or_insert_with(|| (sibling.total_alert_count, Vec::new()));
        entry.1.push(graph_node(
            sibling.uuid, sibling.title, sibling.severity, sibling.status, sibling.source_name, sibling.occurred_at, sibling.tags.0,
        ));
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
    let alert = graph_node(row.uuid, row.title, row.severity, row.status, row.source_name, row.occurred_at, row.tags.0);
    Ok(AlertRelationshipGraph { alert, indicators: nodes })
}
