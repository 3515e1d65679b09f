//! The webhook payload of agents-mcp-metrics.md §1.3, built once per matching run and shared by
//! every matching agent, plus the two agent-safety extensions:
//!
//! * `alert._metadata.untrusted_fields` lists the payload paths that carry attacker-controlled
//!   text (what an alert source, a phished user or a vendor API put there), so an LLM agent can
//!   treat them as data and never as instructions. Additive: Calseta clients ignore it.
//! * per agent, `redact_untrusted_fields` masks PII and credential-looking strings in exactly
//!   those paths (`for_agent`). Off by default, which is Calseta's behaviour.
//!
//! Deviation (fixes a [QUIRK]): `_metadata.enrichment.succeeded/failed` are filled with the
//! providers that succeeded / failed on the alert's indicators, as the alert detail view does,
//! where Calseta always sent empty lists.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::redact::redact_value;
use super::store;
use crate::alerts::model::enrichment_outcome;
use crate::db::Db;
use crate::indicators::IndicatorResponse;
use crate::rules::http::DetectionRuleResponse;

/// Payload paths holding attacker-controlled text (`[]` = every element of an array).
pub const UNTRUSTED_FIELDS: [&str; 7] = [
    "alert.title",
    "alert.tags",
    "alert.agent_findings",
    "indicators[].value",
    "indicators[].enrichment_results",
    "detection_rule.name",
    "detection_rule.source_rule_id",
];

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn iso_opt(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |at| Value::String(iso(at)))
}

/// The payload for the alert with internal id `alert_id` as generated at `generated_at`, or
/// `None` if the alert no longer exists.
pub async fn for_alert(db: &Db, alert_id: i64, api_base_url: &str, generated_at: DateTime<Utc>) -> crate::error::Result<Option<Value>> {
    let Some(uuid) = store::alert_uuid(db, alert_id).await? else { return Ok(None) };
    let Some(alert) = crate::alerts::store::find_by_uuid(db, uuid).await? else { return Ok(None) };
    let indicators: Vec<IndicatorResponse> =
        crate::indicators::store::list_for_alert(db, alert.id).await?.into_iter().map(IndicatorResponse::summary).collect();
    let detection_rule = match alert.detection_rule_id {
        Some(id) => crate::rules::store::find_by_id(db, id).await?.map(DetectionRuleResponse::from),
        None => None,
    };
    let context_documents = crate::alerts::service::applicable_context_documents(db, &alert).await?;
    let workflows = store::payload_workflows(db).await?;
    let (succeeded, failed) = enrichment_outcome(&indicators);
    let indicator_views: Vec<Value> = indicators
        .iter()
        .map(|i| {
            json!({"uuid": i.uuid, "type": i.indicator_type, "value": i.value, "malice": i.malice,
                "first_seen": iso(i.first_seen), "last_seen": iso(i.last_seen), "is_enriched": i.is_enriched,
                "enrichment_results": i.enrichment_results})
        })
        .collect();
    let documents: Vec<Value> = context_documents
        .iter()
        .map(|d| {
            json!({"uuid": d.uuid, "title": d.title, "document_type": d.document_type, "description": d.description,
                "is_global": d.is_global, "tags": d.tags, "content": d.content, "version": d.version,
                "created_at": iso(d.created_at), "updated_at": iso(d.updated_at)})
        })
        .collect();
    let workflows: Vec<Value> = workflows
        .iter()
        .map(|w| {
            json!({"uuid": w.uuid, "name": w.name, "workflow_type": w.workflow_type, "documentation": w.documentation,
                "risk_level": w.risk_level, "approval_mode": w.approval_mode, "indicator_types": w.indicator_types.0, "tags": w.tags.0})
        })
        .collect();
    let metadata = json!({
        "generated_at": iso(generated_at),
        "alert_source": alert.source_name,
        "indicator_count": indicators.len(),
        "enrichment": {"succeeded": succeeded, "failed": failed, "enriched_at": iso_opt(alert.enriched_at)},
        "detection_rule_matched": alert.detection_rule_id.is_some(),
        "context_documents_applied": documents.len(),
        "untrusted_fields": UNTRUSTED_FIELDS,
    });
    let alert_view = json!({
        "uuid": alert.uuid, "title": alert.title, "severity": alert.severity, "source_name": alert.source_name,
        "status": alert.status, "occurred_at": iso(alert.occurred_at), "ingested_at": iso(alert.ingested_at),
        "enriched_at": iso_opt(alert.enriched_at), "is_enriched": alert.is_enriched, "tags": alert.tags.0,
        "close_classification": alert.close_classification, "acknowledged_at": iso_opt(alert.acknowledged_at),
        "triaged_at": iso_opt(alert.triaged_at), "closed_at": iso_opt(alert.closed_at),
        "agent_findings": crate::alerts::model::sorted_findings(alert.agent_findings.as_ref().map(|f| &f.0)),
        "created_at": iso(alert.created_at), "updated_at": iso(alert.updated_at),
        "_metadata": metadata,
    });
    Ok(Some(json!({
        "alert": alert_view,
        "indicators": indicator_views,
        "detection_rule": detection_rule.map(|r| rule_view(&r)),
        "context_documents": documents,
        "workflows": workflows,
        "calseta_api_base_url": api_base_url,
    })))
}

fn rule_view(r: &DetectionRuleResponse) -> Value {
    json!({"uuid": r.uuid, "name": r.name, "source_rule_id": r.source_rule_id, "source_name": r.source_name,
        "severity": r.severity, "is_active": r.is_active, "mitre_tactics": r.mitre_tactics, "mitre_techniques": r.mitre_techniques,
        "mitre_subtechniques": r.mitre_subtechniques, "data_sources": r.data_sources, "run_frequency": r.run_frequency,
        "created_by": r.created_by, "documentation": r.documentation, "created_at": iso(r.created_at), "updated_at": iso(r.updated_at)})
}

/// The payload one agent receives: the shared one, with its untrusted fields redacted when the
/// agent asked for that.
pub fn for_agent(shared: &Value, redact: bool) -> Value {
    let mut payload = shared.clone();
    if redact {
        for path in UNTRUSTED_FIELDS {
            redact_path(&mut payload, path);
        }
        if let Some(meta) = payload.pointer_mut("/alert/_metadata") {
            meta["redacted"] = Value::Bool(true);
        }
    }
    payload
}

/// Applies the redactor at a dotted path where `name[]` walks every element of an array.
fn redact_path(value: &mut Value, path: &str) {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let (key, each) = match head.strip_suffix("[]") {
        Some(key) => (key, true),
        None => (head, false),
    };
    let Some(child) = value.get_mut(key) else { return };
    let targets: Vec<&mut Value> = match (each, child) {
        (true, Value::Array(items)) => items.iter_mut().collect(),
        (true, _) => return,
        (false, child) => vec![child],
    };
    for target in targets {
        match rest {
            Some(rest) => redact_path(target, rest),
            None => redact_value(target),
        }
    }
}

/// The synthetic body of `POST /v1/agents/{uuid}/test` (§1.5; `_metadata` top-level there).
pub fn test_payload(agent_name: &str, api_base_url: &str) -> Value {
    let now = iso(crate::db::now());
    json!({
        "test": true,
        "alert": {"uuid": "00000000-0000-0000-0000-000000000000", "title": "Calseta \u{2014} Test Webhook", "severity": "Low",
            "status": "Open", "source_name": agent_name, "occurred_at": now, "ingested_at": now, "is_enriched": false, "tags": ["test"]},
        "indicators": [], "detection_rule": null, "context_documents": [], "workflows": [],
        "calseta_api_base_url": api_base_url,
        "_metadata": {"generated_at": now, "alert_source": agent_name, "indicator_count": 0,
            "enrichment": {"succeeded": [], "failed": [], "enriched_at": null},
            "detection_rule_matched": false, "context_documents_applied": 0, "untrusted_fields": []},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_touches_only_untrusted_paths() {
        let shared = json!({
            "alert": {"title": "login by eve@evil.example", "tags": ["bob@corp.example"], "agent_findings": [],
                "source_name": "ops@corp.example", "_metadata": {}},
            "indicators": [{"value": "eve@evil.example", "type": "email", "enrichment_results": {"p": {"extracted": {"owner": "a@b.example"}}}}],
            "detection_rule": null,
            "calseta_api_base_url": "http://x",
        });
        assert_eq!(for_agent(&shared, false), shared);
        let redacted = for_agent(&shared, true);
        assert_eq!(redacted["alert"]["title"], "login by [REDACTED:email]");
        assert_eq!(redacted["alert"]["tags"][0], "[REDACTED:email]");
        assert_eq!(redacted["indicators"][0]["value"], "[REDACTED:email]");
        assert_eq!(redacted["indicators"][0]["enrichment_results"]["p"]["extracted"]["owner"], "[REDACTED:email]");
        assert_eq!(redacted["alert"]["source_name"], "ops@corp.example", "trusted fields are left alone");
        assert_eq!(redacted["alert"]["_metadata"]["redacted"], true);
    }
}
