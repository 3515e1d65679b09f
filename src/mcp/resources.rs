//! The 12 resources of agents-mcp-metrics.md §4.2. Each read calls the service operation the
//! matching REST route calls and reshapes its typed output into Calseta's MCP JSON. A scope
//! failure is a normal text result (`{"error": "Insufficient scope. Required: …"}`); a bad UUID
//! or a missing entity is an MCP error, as in Calseta.

use rmcp::ErrorData;
use rmcp::model::{Resource, ResourceTemplate};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::server::{error_text, error_value};
use crate::auth::Principal;
use crate::error::Error;
use crate::http::query::SortOrder;
use crate::pagination::Pagination;
use crate::state::AppState;
use crate::{alerts, context, rules, workflows};

/// How many items the list resources return (Calseta: 50 alerts, 500 of the rest).
const RECENT_ALERTS: i64 = 50;
const LIST_LIMIT: i64 = 500;
const ACTIVITY_LIMIT: i64 = 100;
const SUMMARY_CHARS: usize = 200;

pub fn fixed() -> Vec<Resource> {
    [
        ("calseta://alerts", "alerts", "The 50 most recent alerts"),
        (
            "calseta://detection-rules",
            "detection-rules",
            "Detection rules with MITRE mappings",
        ),
        (
            "calseta://context-documents",
            "context-documents",
            "Context documents (runbooks, SOPs, playbooks)",
        ),
        (
            "calseta://workflows",
            "workflows",
            "Workflows available for execution",
        ),
        (
            "calseta://metrics/summary",
            "metrics-summary",
            "Headline SOC metrics (the REST summary, without queue statistics)",
        ),
    ]
    .into_iter()
    .map(|(uri, name, description)| {
        Resource::new(uri, name)
            .with_description(description)
            .with_mime_type("application/json")
    })
    .collect()
}

pub fn templates() -> Vec<ResourceTemplate> {
    [
        (
            "calseta://alerts/{uuid}",
            "alert",
            "One alert with indicators, detection rule, context and findings",
        ),
        (
            "calseta://alerts/{uuid}/context",
            "alert-context",
            "Context documents that apply to an alert",
        ),
        (
            "calseta://alerts/{uuid}/activity",
            "alert-activity",
            "An alert's activity log, newest first",
        ),
        (
            "calseta://detection-rules/{uuid}",
            "detection-rule",
            "One detection rule",
        ),
        (
            "calseta://context-documents/{uuid}",
            "context-document",
            "One context document with content",
        ),
        (
            "calseta://workflows/{uuid}",
            "workflow",
            "One workflow with its code",
        ),
        (
            "calseta://enrichments/{type}/{value}",
            "enrichment",
            "On-demand enrichment of an indicator",
        ),
    ]
    .into_iter()
    .map(|(uri, name, description)| {
        ResourceTemplate::new(uri, name)
            .with_description(description)
            .with_mime_type("application/json")
    })
    .collect()
}

/// Reads `uri`. `Ok` carries the JSON to return as text (a scope failure included).
pub async fn read(state: &AppState, who: &Principal, uri: &str) -> Result<Value, ErrorData> {
    let Some(path) = uri.strip_prefix("calseta://") else {
        return Err(ErrorData::resource_not_found(
            format!("Unknown resource: {uri}"),
            None,
        ));
    };
    let segments: Vec<&str> = path.split('/').collect();
    let result = match segments.as_slice() {
        ["alerts"] => recent_alerts(state, who).await,
        ["alerts", id] => alert(state, who, parse_uuid(id)?).await,
        ["alerts", id, "context"] => alert_context(state, who, parse_uuid(id)?).await,
        ["alerts", id, "activity"] => alert_activity(state, who, parse_uuid(id)?).await,
        ["detection-rules"] => detection_rules(state, who).await,
        ["detection-rules", id] => to_value(rules::service::get(state, who, parse_uuid(id)?).await),
        ["context-documents"] => context_documents(state, who).await,
        ["context-documents", id] => {
            to_value(context::service::get(state, who, parse_uuid(id)?).await)
        }
        ["workflows"] => workflow_list(state, who).await,
        ["metrics", "summary"] => metrics_summary(state, who).await,
        ["workflows", id] => to_value(workflows::service::get(state, who, parse_uuid(id)?).await),
        ["enrichments", kind, value] => {
            let value = percent_decode(value);
            super::tools::enrich_indicator(state, who, kind, &value).await
        }
        _ => {
            return Err(ErrorData::resource_not_found(
                format!("Unknown resource: {uri}"),
                None,
            ));
        }
    };
    match result {
        Ok(value) => Ok(value),
        Err(error @ (Error::Forbidden { .. } | Error::Unauthorized | Error::KeyExpired)) => {
            Ok(error_value(&error))
        }
        Err(Error::NotFound(_)) => Err(ErrorData::resource_not_found(
            not_found_text(&segments),
            None,
        )),
        Err(error) => Err(ErrorData::invalid_params(error_text(&error), None)),
    }
}

/// The REST summary's `data`, with `"queue": null` as Calseta's MCP resource has it.
async fn metrics_summary(state: &AppState, who: &Principal) -> Result<Value, Error> {
    let mut summary = crate::metrics::service::summary(state, who).await?;
    summary.queue = None;
    serde_json::to_value(summary).map_err(|e| Error::Internal(e.into()))
}

fn parse_uuid(text: &str) -> Result<Uuid, ErrorData> {
    Uuid::parse_str(text)
        .map_err(|_| ErrorData::invalid_params(format!("Invalid UUID: {text}"), None))
}

/// A URI segment with its `%XX` escapes decoded (a `+` stays a plus).
fn percent_decode(text: &str) -> String {
    let query = format!("v={}", text.replace('+', "%2B"));
    form_urlencoded::parse(query.as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

/// `<Entity> not found: <uuid>` (Calseta's wording).
fn not_found_text(segments: &[&str]) -> String {
    let entity = match segments.first() {
        Some(&"alerts") => "Alert",
        Some(&"detection-rules") => "Detection rule",
        Some(&"context-documents") => "Context document",
        Some(&"workflows") => "Workflow",
        _ => "Resource",
    };
    format!(
        "{entity} not found: {}",
        segments.get(1).copied().unwrap_or_default()
    )
}

fn to_value<T: Serialize>(result: Result<T, Error>) -> Result<Value, Error> {
    result.and_then(|item| serde_json::to_value(item).map_err(|e| Error::Internal(e.into())))
}

/// The named fields of `value` (an object), in that order.
pub fn pick(value: &Value, fields: &[&str]) -> Value {
    let mut out = Map::new();
    for field in fields {
        out.insert(
            (*field).to_owned(),
            value.get(*field).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(out)
}

pub const ALERT_SUMMARY_FIELDS: &[&str] = &[
    "uuid",
    "title",
    "severity",
    "status",
    "enrichment_status",
    "source_name",
    "occurred_at",
    "is_enriched",
    "tags",
    "created_at",
];

async fn recent_alerts(state: &AppState, who: &Principal) -> Result<Value, Error> {
    let query = alerts::query::parse_list_query(Some(&format!("page_size={RECENT_ALERTS}")))?;
    let page = alerts::service::list(state, who, query).await?;
    let items: Vec<Value> = page
        .data
        .iter()
        .map(|a| {
            pick(
                &serde_json::to_value(a).unwrap_or_default(),
                ALERT_SUMMARY_FIELDS,
            )
        })
        .collect();
    Ok(json!({ "count": items.len(), "alerts": items }))
}

async fn alert(state: &AppState, who: &Principal, uuid: Uuid) -> Result<Value, Error> {
    let detail = alerts::service::get(state, who, uuid).await?;
    let full = serde_json::to_value(&detail.alert).map_err(|e| Error::Internal(e.into()))?;
    let mut out = pick(
        &full,
        &[
            "uuid",
            "title",
            "severity",
            "status",
            "enrichment_status",
            "source_name",
            "occurred_at",
            "ingested_at",
            "enriched_at",
            "is_enriched",
            "close_classification",
            "acknowledged_at",
            "triaged_at",
            "closed_at",
            "tags",
        ],
    );
    let indicator_fields = [
        "uuid",
        "type",
        "value",
        "malice",
        "is_enriched",
        "first_seen",
        "last_seen",
        "enrichment_results",
    ];
    let indicators: Vec<Value> = full["indicators"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| pick(i, &indicator_fields))
        .collect();
    let rule_fields = [
        "uuid",
        "name",
        "severity",
        "mitre_tactics",
        "mitre_techniques",
        "mitre_subtechniques",
        "documentation",
    ];
    let detection_rule = if full["detection_rule"].is_null() {
        Value::Null
    } else {
        pick(&full["detection_rule"], &rule_fields)
    };
    let documents: Vec<Value> = full["context_documents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| pick(d, &["uuid", "title", "document_type", "content"]))
        .collect();
    let object = out.as_object_mut().expect("pick returns an object");
    object.insert("indicators".into(), Value::Array(indicators));
    object.insert("detection_rule".into(), detection_rule);
    object.insert("context_documents".into(), Value::Array(documents));
    object.insert("agent_findings".into(), full["agent_findings"].clone());
    Ok(out)
}

async fn alert_context(state: &AppState, who: &Principal, uuid: Uuid) -> Result<Value, Error> {
    let documents = alerts::service::context(state, who, uuid).await?;
    let fields = [
        "uuid",
        "title",
        "document_type",
        "is_global",
        "description",
        "content",
        "tags",
    ];
    let items: Vec<Value> = documents
        .iter()
        .map(|d| pick(&serde_json::to_value(d).unwrap_or_default(), &fields))
        .collect();
    Ok(json!({ "count": items.len(), "context_documents": items }))
}

async fn alert_activity(state: &AppState, who: &Principal, uuid: Uuid) -> Result<Value, Error> {
    let page = alerts::service::list_activity(
        state,
        who,
        uuid,
        Pagination {
            page: 1,
            page_size: ACTIVITY_LIMIT,
        },
    )
    .await?;
    let items: Vec<Value> = page
        .data
        .iter()
        .map(|event| {
            let full = serde_json::to_value(event).unwrap_or_default();
            let mut out = pick(
                &full,
                &["event_type", "actor_type", "actor_key_prefix", "created_at"],
            );
            if let (Some(object), Some(references)) =
                (out.as_object_mut(), full["references"].as_object())
            {
                for (key, value) in references {
                    object.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            out
        })
        .collect();
    Ok(json!({ "count": items.len(), "activity": items }))
}

/// `documentation` cut to 200 characters (right-trimmed) plus `...` when longer.
pub fn documentation_summary(documentation: &Value) -> Value {
    match documentation.as_str() {
        Some(text) if text.chars().count() > SUMMARY_CHARS => {
            let cut: String = text.chars().take(SUMMARY_CHARS).collect();
            Value::String(format!("{}...", cut.trim_end()))
        }
        _ => documentation.clone(),
    }
}

async fn detection_rules(state: &AppState, who: &Principal) -> Result<Value, Error> {
    let pagination = Pagination {
        page: 1,
        page_size: LIST_LIMIT,
    };
    let (rows, _) = rules::service::list(state, who, pagination, Default::default()).await?;
    let fields = [
        "uuid",
        "name",
        "source_name",
        "severity",
        "is_active",
        "mitre_tactics",
        "mitre_techniques",
        "mitre_subtechniques",
        "data_sources",
    ];
    let items: Vec<Value> = rows
        .iter()
        .map(|rule| {
            let full = serde_json::to_value(rule).unwrap_or_default();
            let mut out = pick(&full, &fields);
            let object = out.as_object_mut().expect("pick returns an object");
            object.insert(
                "documentation_summary".into(),
                documentation_summary(&full["documentation"]),
            );
            object.insert("created_at".into(), full["created_at"].clone());
            out
        })
        .collect();
    Ok(json!({ "count": items.len(), "detection_rules": items }))
}

async fn context_documents(state: &AppState, who: &Principal) -> Result<Value, Error> {
    let pagination = Pagination {
        page: 1,
        page_size: LIST_LIMIT,
    };
    let (rows, _) = context::service::list(state, who, pagination, Default::default()).await?;
    let items = serde_json::to_value(&rows).map_err(|e| Error::Internal(e.into()))?;
    Ok(json!({ "count": rows.len(), "context_documents": items }))
}

async fn workflow_list(state: &AppState, who: &Principal) -> Result<Value, Error> {
    let query = workflows::service::ListQuery {
        filter: Default::default(),
        sort_key: "created_at",
        order: SortOrder::Desc,
        pagination: Pagination {
            page: 1,
            page_size: LIST_LIMIT,
        },
    };
    let (rows, _) = workflows::service::list(state, who, query).await?;
    let items = serde_json::to_value(&rows).map_err(|e| Error::Internal(e.into()))?;
    Ok(json!({ "count": rows.len(), "workflows": items }))
}
