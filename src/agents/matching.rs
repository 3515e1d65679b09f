//! Trigger matching (agents-mcp-metrics.md §1.1): an active agent matches an alert when its
//! source list is empty or holds the alert's source, its severity list is empty or holds the
//! alert's severity (both exact), and its `trigger_filter` is null or true under the
//! targeting-rule evaluator. Filters are validated on write, so the evaluator never meets the
//! malformed shapes Calseta let through (and then treated as "match").

use serde_json::Value;

use super::store::AgentRow;
use crate::context::targeting;

/// What matching looks at, owned (read from the payload's `alert` object or an alert row).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub source_name: String,
    pub severity: String,
    pub tags: Vec<String>,
}

/// The facts of a payload's `alert` object: matching and payload see the same snapshot.
pub fn facts_of(alert: &Value) -> Facts {
    let text = |key: &str| alert.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let tags = alert
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| tags.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    Facts { source_name: text("source_name"), severity: text("severity"), tags }
}

pub fn matches(agent: &AgentRow, facts: &Facts) -> bool {
    let sources = &agent.trigger_on_sources.0;
    let severities = &agent.trigger_on_severities.0;
    let listed = |list: &Vec<String>, value: &str| list.is_empty() || list.iter().any(|v| v == value);
    if !listed(sources, &facts.source_name) || !listed(severities, &facts.severity) {
        return false;
    }
    match &agent.trigger_filter {
        None => true,
        Some(filter) => {
            let facts = targeting::AlertFacts { source_name: &facts.source_name, severity: &facts.severity, tags: &facts.tags };
            targeting::matches(&filter.0, &facts)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::db::Json;

    fn agent(sources: &[&str], severities: &[&str], filter: Option<Value>) -> AgentRow {
        let now = chrono::Utc::now();
        AgentRow {
            id: 1,
            uuid: uuid::Uuid::nil(),
            name: "a".into(),
            description: None,
            endpoint_url: "https://x".into(),
            auth_header_name: None,
            trigger_on_sources: Json(sources.iter().map(|s| s.to_string()).collect()),
            trigger_on_severities: Json(severities.iter().map(|s| s.to_string()).collect()),
            trigger_filter: filter.map(Json),
            timeout_seconds: 30,
            retry_count: 3,
            is_active: true,
            documentation: None,
            redact_untrusted_fields: false,
            previous_signing_secret_expires_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn source_severity_and_filter() {
        let facts = facts_of(&json!({"source_name": "sentinel", "severity": "High", "tags": ["Exfiltration"]}));
        assert!(matches(&agent(&[], &[], None), &facts));
        assert!(matches(&agent(&["elastic", "sentinel"], &["High"], None), &facts));
        assert!(!matches(&agent(&["Sentinel"], &[], None), &facts), "exact, case-sensitive");
        assert!(!matches(&agent(&[], &["Critical"], None), &facts));
        let tagged = json!({"match_all": [{"field": "tags", "op": "contains", "value": "Exfiltration"}]});
        assert!(matches(&agent(&[], &[], Some(tagged)), &facts));
        let critical = json!({"match_all": [{"field": "severity", "op": "gte", "value": "Critical"}]});
        assert!(!matches(&agent(&[], &[], Some(critical)), &facts));
    }
}
