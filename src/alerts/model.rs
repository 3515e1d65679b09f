//! The alert API's enumerations, response shapes and the pure rules behind them: lifecycle
//! timestamps, computed malice, the metadata block, relationship-graph summaries and the JSON
//! size limit. Everything here is free of I/O so it is unit-tested directly.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::AlertRow;
use crate::db::Json;
use crate::domain::AlertStatus;
use crate::error::FieldError;
use crate::enrich::truthy;
use crate::indicators::{IndicatorResponse, worst_malice};

pub const FINDING_CONFIDENCES: [&str; 3] = ["low", "medium", "high"];

/// Evidence of a finding, as compact JSON (data-model.md "SMALL").
pub const MAX_EVIDENCE_BYTES: usize = 65_536;

/// A 422 entry for a string outside its enumeration, worded like the reference's validator:
/// `Input should be 'a', 'b' or 'c'`.
pub fn enum_error(loc: Vec<Value>, allowed: &[&str]) -> FieldError {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    let msg = match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("Input should be {} or {last}", rest.join(", ")),
        Some((only, _)) => format!("Input should be {only}"),
        None => "Input should be a valid value".to_owned(),
    };
    FieldError::new("enum", loc, msg)
}

/// `value` is one of `allowed`, or a 422 entry for body field `field`.
pub fn check_enum(field: &str, value: &str, allowed: &[&str]) -> Result<(), FieldError> {
    if allowed.contains(&value) { Ok(()) } else { Err(enum_error(vec![json!("body"), json!(field)], allowed)) }
}

/// Body field `field` parsed into its domain enumeration (`names` are its values, for the
/// 422 message).
pub fn parse_enum<T: std::str::FromStr>(field: &str, value: &str, names: &[&str]) -> Result<T, FieldError> {
    value.parse().map_err(|_| enum_error(vec![json!("body"), json!(field)], names))
}

pub use crate::http::extract::check_json_size;

/// The write-once lifecycle timestamps of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifecycle {
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub triaged_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// Applies a supplied status to the lifecycle timestamps (data-model.md): each is set at most
/// once, on its first qualifying transition, and nothing is ever cleared.
pub fn apply_status(previous: AlertStatus, new: AlertStatus, current: Lifecycle, now: DateTime<Utc>) -> Lifecycle {
    use AlertStatus::{Closed, Escalated, Open, Triaging};
    let mut next = current;
    if matches!(new, Triaging | Escalated) && previous == Open && next.acknowledged_at.is_none() {
        next.acknowledged_at = Some(now);
    }
    if new == Triaging && next.triaged_at.is_none() {
        next.triaged_at = Some(now);
    }
    if new == Closed {
        next.closed_at.get_or_insert(now);
        next.acknowledged_at.get_or_insert(now);
    }
    next
}

/// The alert's verdict: the analyst override when set, else the worst indicator verdict, else
/// `Pending`.
pub fn alert_malice(malice_override: Option<&str>, indicators: &[IndicatorResponse]) -> String {
    if let Some(verdict) = malice_override {
        return verdict.to_owned();
    }
    worst_malice(indicators.iter().map(|i| i.malice.as_str())).unwrap_or("Pending").to_owned()
}

/// Summary of a finding for its activity event: the first 120 characters, `...` when cut.
pub fn finding_summary_excerpt(summary: &str) -> String {
    if summary.chars().count() > 120 {
        format!("{}...", summary.chars().take(120).collect::<String>())
    } else {
        summary.to_owned()
    }
}

/// An alert in the list view; also the list query's row (`alerts::store::list`).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct AlertSummary {
    pub uuid: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub severity: String,
    #[schema(value_type = String)]
    #[sqlx(try_from = "String")]
    pub status: AlertStatus,
    pub enrichment_status: String,
    pub source_name: String,
    pub occurred_at: DateTime<Utc>,
    pub ingested_at: DateTime<Utc>,
    pub is_enriched: bool,
    pub duplicate_count: i32,
    #[schema(value_type = Vec<String>)]
    pub tags: Json<Vec<String>>,
    pub close_classification: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub use crate::context::http::ContextDocumentResponse;
pub use crate::rules::http::DetectionRuleResponse;

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertResponse {
    pub uuid: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub severity: String,
    #[schema(value_type = String)]
    pub status: AlertStatus,
    pub enrichment_status: String,
    pub source_name: String,
    pub occurred_at: DateTime<Utc>,
    pub ingested_at: DateTime<Utc>,
    pub enriched_at: Option<DateTime<Utc>>,
    pub is_enriched: bool,
    pub fingerprint: Option<String>,
    pub duplicate_count: i32,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub close_classification: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub triaged_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    /// The linked rule. Calseta returns its internal sequential id as `detection_rule_id`; only
    /// UUIDs leave this server (SECURITY.md).
    pub detection_rule_uuid: Option<Uuid>,
    #[schema(value_type = Object)]
    pub raw_payload: Value,
    /// Computed: the override, else the worst indicator verdict, else `Pending`.
    pub malice: String,
    pub malice_override: Option<String>,
    pub malice_override_source: Option<String>,
    pub malice_override_at: Option<DateTime<Utc>>,
    pub indicators: Vec<IndicatorResponse>,
    pub detection_rule: Option<DetectionRuleResponse>,
    pub context_documents: Vec<ContextDocumentResponse>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub agent_findings: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrichmentMeta {
    /// Providers with at least one successful result on the alert's indicators, sorted.
    pub succeeded: Vec<String>,
    /// Providers with at least one unsuccessful (failed or skipped) result, sorted.
    pub failed: Vec<String>,
    pub enriched_at: Option<DateTime<Utc>>,
}

/// The `meta` block of `GET /v1/alerts/{uuid}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertMeta {
    pub generated_at: DateTime<Utc>,
    pub alert_source: String,
    pub indicator_count: usize,
    pub enrichment: EnrichmentMeta,
    pub detection_rule_matched: bool,
    pub context_documents_applied: usize,
}

/// Provider keys of the indicators' results whose `success` is `true` / `false`.
pub fn enrichment_outcome(indicators: &[IndicatorResponse]) -> (Vec<String>, Vec<String>) {
    let mut succeeded = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for indicator in indicators {
        let Some(Value::Object(providers)) = &indicator.enrichment_results else { continue };
        for (provider, entry) in providers {
            match entry.get("success") {
                Some(Value::Bool(true)) => succeeded.insert(provider.clone()),
                Some(Value::Bool(false)) => failed.insert(provider.clone()),
                _ => false,
            };
        }
    }
    (succeeded.into_iter().collect(), failed.into_iter().collect())
}

/// Assembles the detail view and its metadata block from the loaded parts.
pub fn alert_response(
    row: AlertRow,
    indicators: Vec<IndicatorResponse>,
    detection_rule: Option<DetectionRuleResponse>,
    context_documents: Vec<ContextDocumentResponse>,
    generated_at: DateTime<Utc>,
) -> (AlertResponse, AlertMeta) {
    let (succeeded, failed) = enrichment_outcome(&indicators);
    let meta = AlertMeta {
        generated_at,
        alert_source: row.source_name.clone(),
        indicator_count: indicators.len(),
        enrichment: EnrichmentMeta { succeeded, failed, enriched_at: row.enriched_at },
        detection_rule_matched: row.detection_rule_id.is_some(),
        context_documents_applied: context_documents.len(),
    };
    let malice = alert_malice(row.malice_override.as_deref(), &indicators);
    let response = AlertResponse {
        uuid: row.uuid,
        title: row.title,
        description: row.description,
        severity: row.severity,
        status: row.status,
        enrichment_status: row.enrichment_status,
        source_name: row.source_name,
        occurred_at: row.occurred_at,
        ingested_at: row.ingested_at,
        enriched_at: row.enriched_at,
        is_enriched: row.is_enriched,
        fingerprint: row.fingerprint,
        duplicate_count: row.duplicate_count,
        last_seen_at: row.last_seen_at,
        close_classification: row.close_classification,
        acknowledged_at: row.acknowledged_at,
        triaged_at: row.triaged_at,
        closed_at: row.closed_at,
        tags: row.tags.0,
        detection_rule_uuid: detection_rule.as_ref().map(|rule| rule.uuid),
        raw_payload: row.raw_payload.0,
        malice,
        malice_override: row.malice_override,
        malice_override_source: row.malice_override_source,
        malice_override_at: row.malice_override_at,
        indicators,
        detection_rule,
        context_documents,
        agent_findings: row.agent_findings.map(|f| f.0),
        created_at: row.created_at,
        updated_at: row.updated_at,
    };
    (response, meta)
}

/// Findings in `posted_at` order (ISO strings of one fixed format, so text order is time order).
pub fn sorted_findings(agent_findings: Option<&Value>) -> Vec<Value> {
    let mut findings: Vec<Value> = match agent_findings {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    findings.sort_by(|a, b| {
        let key = |f: &Value| f.get("posted_at").and_then(Value::as_str).unwrap_or("").to_owned();
        key(a).cmp(&key(b))
    });
    findings
}

/// A stored finding (and the finding endpoints' response item).
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingResponse {
    pub id: String,
    pub agent_name: String,
    pub summary: String,
    pub confidence: Option<String>,
    pub recommended_action: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<Value>,
    /// ISO-8601 with microseconds and `+00:00`, as stored.
    pub posted_at: String,
}

/// Compact alert node of the relationship graph.
#[derive(Debug, Serialize, ToSchema)]
pub struct GraphAlertNode {
    pub uuid: Uuid,
    pub title: String,
    pub severity: String,
    #[schema(value_type = String)]
    pub status: AlertStatus,
    pub source_name: String,
    pub occurred_at: DateTime<Utc>,
    pub tags: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GraphIndicatorNode {
    pub uuid: Uuid,
    #[serde(rename = "type")]
    pub indicator_type: String,
    pub value: String,
    pub malice: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub is_enriched: bool,
    pub enrichment_summary: BTreeMap<String, String>,
    /// Other alerts linked to this indicator (all of them, not only those listed).
    pub total_alert_count: i64,
    pub sibling_alerts: Vec<GraphAlertNode>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertRelationshipGraph {
    pub alert: GraphAlertNode,
    pub indicators: Vec<GraphIndicatorNode>,
}

/// Python `str()` of a scalar verdict (`73`, `73.5`, `True`); containers as compact JSON.
fn verdict_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        other => other.to_string(),
    }
}

/// One line per provider for the graph: the first truthy of `extracted.verdict`,
/// `extracted.malice`, `extracted.risk_score` (as text); else `enriched` / `failed` by
/// `success`; providers with neither are left out.
pub fn enrichment_summary(results: Option<&Value>) -> BTreeMap<String, String> {
    let mut summary = BTreeMap::new();
    let Some(Value::Object(providers)) = results else { return summary };
    for (provider, entry) in providers {
        let extracted = entry.get("extracted");
        let verdict = ["verdict", "malice", "risk_score"]
            .iter()
            .filter_map(|key| extracted.and_then(|e| e.get(*key)))
            .find(|value| truthy(value));
        let line = match (verdict, entry.get("success")) {
            (Some(value), _) => verdict_text(value),
            (None, Some(Value::Bool(true))) => "enriched".to_owned(),
            (None, Some(Value::Bool(false))) => "failed".to_owned(),
            _ => continue,
        };
        summary.insert(provider.clone(), line);
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, minute, 0).unwrap()
    }

    use AlertStatus::{Closed, Escalated, Open, Triaging};

    #[test]
    fn lifecycle_is_write_once() {
        let start = Lifecycle::default();
        let triaging = apply_status(Open, Triaging, start, at(1));
        assert_eq!(triaging, Lifecycle { acknowledged_at: Some(at(1)), triaged_at: Some(at(1)), closed_at: None });
        let escalated = apply_status(Triaging, Escalated, triaging, at(2));
        assert_eq!(escalated, triaging, "Escalated from Triaging sets nothing new");
        let closed = apply_status(Escalated, Closed, escalated, at(3));
        assert_eq!(closed.closed_at, Some(at(3)));
        assert_eq!(closed.acknowledged_at, Some(at(1)));
        let reopened = apply_status(Closed, Open, closed, at(4));
        assert_eq!(reopened, closed, "re-opening clears nothing");
        let closed_again = apply_status(Open, Closed, reopened, at(5));
        assert_eq!(closed_again.closed_at, Some(at(3)));
    }

    #[test]
    fn lifecycle_edges() {
        // Escalated straight from Open acknowledges but does not triage.
        let escalated = apply_status(Open, Escalated, Lifecycle::default(), at(1));
        assert_eq!(escalated, Lifecycle { acknowledged_at: Some(at(1)), triaged_at: None, closed_at: None });
        // Triaging from Escalated triages without acknowledging.
        let triaged = apply_status(Escalated, Triaging, Lifecycle::default(), at(2));
        assert_eq!(triaged, Lifecycle { acknowledged_at: None, triaged_at: Some(at(2)), closed_at: None });
        // Closing straight from Open acknowledges too.
        let closed = apply_status(Open, Closed, Lifecycle::default(), at(3));
        assert_eq!(closed, Lifecycle { acknowledged_at: Some(at(3)), triaged_at: None, closed_at: Some(at(3)) });
        assert_eq!(apply_status(Open, Open, Lifecycle::default(), at(4)), Lifecycle::default());
    }

    #[test]
    fn size_message_and_enum_message() {
        let big = json!({"k": "x".repeat(70_000)});
        let err = check_json_size("evidence", &big, MAX_EVIDENCE_BYTES).unwrap_err();
        assert_eq!(err.msg, "evidence exceeds maximum size of 64 KB (70,008 bytes serialized)");
        assert!(check_json_size("evidence", &json!({"k": 1}), MAX_EVIDENCE_BYTES).is_ok());
        assert_eq!(enum_error(vec![], &["low", "medium", "high"]).msg, "Input should be 'low', 'medium' or 'high'");
    }

    #[test]
    fn summary_excerpt() {
        assert_eq!(finding_summary_excerpt("short"), "short");
        let long = "é".repeat(130);
        assert_eq!(finding_summary_excerpt(&long), format!("{}...", "é".repeat(120)));
        assert_eq!(finding_summary_excerpt(&"a".repeat(120)), "a".repeat(120));
    }

    #[test]
    fn graph_summary_lines() {
        let results = json!({
            "vt": {"success": true, "extracted": {"verdict": "", "malice": "Malicious"}},
            "abuse": {"success": true, "extracted": {"risk_score": 73}},
            "okta": {"success": true, "extracted": {}},
            "down": {"success": false},
            "odd": {"extracted": {"verdict": 0}},
        });
        let summary = enrichment_summary(Some(&results));
        assert_eq!(summary.get("vt").map(String::as_str), Some("Malicious"));
        assert_eq!(summary.get("abuse").map(String::as_str), Some("73"));
        assert_eq!(summary.get("okta").map(String::as_str), Some("enriched"));
        assert_eq!(summary.get("down").map(String::as_str), Some("failed"));
        assert!(!summary.contains_key("odd"));
        assert!(enrichment_summary(None).is_empty());
    }

    #[test]
    fn findings_sorted_by_posted_at() {
        let stored = json!([{"id": "b", "posted_at": "2026-03-01T12:00:01.000000+00:00"}, {"id": "a", "posted_at": "2026-03-01T12:00:00.000000+00:00"}]);
        let sorted = sorted_findings(Some(&stored));
        assert_eq!(sorted[0]["id"], "a");
        assert_eq!(sorted[1]["id"], "b");
        assert!(sorted_findings(None).is_empty());
    }
}
