//! Context documents: runbooks, SOPs, IR plans and the like, attached to alerts either always
//! (`is_global`) or by targeting rules evaluated against the alert (`targeting`).
//!
//! For other modules: `service` (the operations, for REST, MCP and jobs), `applicable_documents`
//! (the alert detail, its `/context` route, agent webhooks, MCP), `ContextDocumentResponse` /
//! `ContextDocumentSummary` (with `From` for the store rows), and `targeting::{validate,
//! matches}` for any other targeting-rule field (an agent's `trigger_filter`).

mod convert;
pub mod http;
pub mod service;
pub mod store;
pub mod targeting;
mod upload;

pub use service::{ContextDocumentResponse, ContextDocumentSummary};
pub use store::ContextDocumentRow;
pub use targeting::AlertFacts;

use crate::db::Db;

/// The exact document types (data-model.md).
pub const DOCUMENT_TYPES: [&str; 6] = ["runbook", "ir_plan", "sop", "playbook", "detection_guide", "other"];

/// The documents that apply to an alert, in the spec's order: global documents by
/// `document_type`, then targeted documents whose rules match, by `document_type` (ties: oldest
/// first).
///
/// Deviation (fixes Calseta's QUIRK "non-global documents with `targeting_rules = null` attach
/// to every alert"): a non-global document attaches only through rules, so one without rules
/// (null, or a rules object holding no rule) attaches to no alert. Making a document apply
/// everywhere is what `is_global` is for.
pub async fn applicable_documents(db: &Db, facts: &AlertFacts<'_>) -> sqlx::Result<Vec<ContextDocumentRow>> {
    let candidates = store::attachable(db).await?;
    Ok(candidates.into_iter().filter(|doc| attaches(doc, facts)).collect())
}

fn attaches(doc: &ContextDocumentRow, facts: &AlertFacts<'_>) -> bool {
    if doc.is_global {
        return true;
    }
    match &doc.targeting_rules {
        Some(rules) => targeting::rule_count(&rules.0) > 0 && targeting::matches(&rules.0, facts),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Json;
    use serde_json::{Value, json};

    fn doc(is_global: bool, rules: Option<Value>) -> ContextDocumentRow {
        ContextDocumentRow {
            id: 1,
            uuid: uuid::Uuid::nil(),
            title: "t".into(),
            document_type: "runbook".into(),
            is_global,
            targeting_rules: rules.map(Json),
            description: None,
            content: "c".into(),
            tags: Json(vec![]),
            version: 1,
            is_system: false,
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn attachment_rules() {
        let tags = vec![];
        let facts = AlertFacts { source_name: "splunk", severity: "High", tags: &tags };
        let splunk = json!({"match_all": [{"field": "source_name", "op": "eq", "value": "splunk"}]});
        let elastic = json!({"match_all": [{"field": "source_name", "op": "eq", "value": "elastic"}]});
        assert!(attaches(&doc(true, None), &facts), "global, no rules");
        assert!(attaches(&doc(true, Some(elastic.clone())), &facts), "global ignores its rules");
        assert!(attaches(&doc(false, Some(splunk)), &facts));
        assert!(!attaches(&doc(false, Some(elastic)), &facts));
        assert!(!attaches(&doc(false, None), &facts), "QUIRK fixed: no rules, not global → attaches to nothing");
        assert!(!attaches(&doc(false, Some(json!({"match_any": []}))), &facts), "rules without a rule → nothing");
    }
}
