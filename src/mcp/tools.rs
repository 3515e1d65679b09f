//! The 8 tools of agents-mcp-metrics.md §4.3. Each one parses its arguments, calls the service
//! operation the matching REST route calls (scope check, validation, activity with actor type
//! `mcp`, audit) and reshapes the typed output into Calseta's result JSON. Every failure — bad
//! arguments, scope, validation, missing entity — is a normal `{"error": "…"}` result, as in
//! Calseta; only an unknown tool name is a protocol error.

use rmcp::ErrorData;
use rmcp::handler::server::common::schema_for_type;
use rmcp::model::Tool;
use rmcp::schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::resources::{ALERT_SUMMARY_FIELDS, documentation_summary, pick};
use super::server::error_value;
use crate::auth::Principal;
use crate::error::Error;
use crate::pagination::{MAX_PAGE_SIZE, Pagination};
use crate::ratelimit::{Family, Outcome};
use crate::state::AppState;
use crate::{alerts, enrich, indicators, rules, workflows};

/// Search results are capped at 100 per page (Calseta), below the REST cap.
const MAX_SEARCH_PAGE_SIZE: i64 = 100;
const DEFAULT_SEARCH_PAGE_SIZE: i64 = 20;

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PostAlertFinding {
    /// UUID of the alert.
    pub alert_uuid: String,
    /// The finding.
    pub summary: String,
    /// `low`, `medium` or `high`.
    pub confidence: String,
    /// Name of the reporting agent (default `mcp-agent`).
    #[serde(default)]
    pub agent_name: Option<String>,
    #[serde(default)]
    pub recommended_action: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct UpdateAlertStatus {
    pub alert_uuid: String,
    /// `Open`, `Triaging`, `Escalated` or `Closed`.
    pub status: String,
    /// Required when closing.
    #[serde(default)]
    pub close_classification: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct UpdateAlertMalice {
    pub alert_uuid: String,
    /// `Pending`, `Benign`, `Suspicious` or `Malicious`; null resets the override.
    #[serde(default)]
    pub malice: Option<String>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[schemars(crate = "rmcp::schemars")]
pub struct SearchAlerts {
    /// Comma-separated statuses.
    #[serde(default)]
    pub status: Option<String>,
    /// Comma-separated severities.
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub source_name: Option<String>,
    #[serde(default)]
    pub enrichment_status: Option<String>,
    #[serde(default)]
    pub is_enriched: Option<bool>,
    /// ISO-8601.
    #[serde(default)]
    pub from_time: Option<String>,
    #[serde(default)]
    pub to_time: Option<String>,
    /// Comma-separated; an alert must carry all of them.
    #[serde(default)]
    pub tags: Option<String>,
    #[serde(default)]
    pub sort_by: Option<String>,
    #[serde(default)]
    pub sort_order: Option<String>,
    #[serde(default)]
    pub page: Option<i64>,
    #[serde(default)]
    pub page_size: Option<i64>,
}

#[derive(Deserialize, JsonSchema, Default)]
#[schemars(crate = "rmcp::schemars")]
pub struct SearchDetectionRules {
    /// Case-insensitive substring of the name.
    #[serde(default)]
    pub name: Option<String>,
    /// One MITRE tactic the rule lists.
    #[serde(default)]
    pub mitre_tactic: Option<String>,
    /// One MITRE technique or sub-technique the rule lists.
    #[serde(default)]
    pub mitre_technique: Option<String>,
    /// Comma-separated.
    #[serde(default)]
    pub source_name: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
    /// `name`, `source_name`, `severity` or `created_at`.
    #[serde(default)]
    pub sort_by: Option<String>,
    #[serde(default)]
    pub sort_order: Option<String>,
    #[serde(default)]
    pub page: Option<i64>,
    #[serde(default)]
    pub page_size: Option<i64>,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ExecuteWorkflow {
    pub workflow_uuid: String,
    pub indicator_type: String,
    pub indicator_value: String,
    #[serde(default)]
    pub alert_uuid: Option<String>,
    /// Why the agent runs it (required when the workflow needs approval).
    #[serde(default)]
    pub reason: Option<String>,
    /// 0..1 (required when the workflow needs approval).
    #[serde(default)]
    pub confidence: Option<f64>,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct EnrichIndicator {
    /// Indicator type (ip, domain, hash_sha256, …).
    #[serde(rename = "type")]
    pub indicator_type: String,
    pub value: String,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct UpdateIndicatorMalice {
    pub indicator_uuid: String,
    /// A verdict, or null to return the indicator to what enrichment says.
    #[serde(default)]
    pub malice: Option<String>,
}

fn tool<T: JsonSchema + 'static>(name: &'static str, description: &'static str) -> Tool {
    Tool::new(name, description, schema_for_type::<T>())
}

pub fn definitions() -> Vec<Tool> {
    vec![
        tool::<PostAlertFinding>(
            "post_alert_finding",
            "Post an analysis finding to an alert.",
        ),
        tool::<UpdateAlertStatus>(
            "update_alert_status",
            "Change an alert's status (closing needs a classification).",
        ),
        tool::<UpdateAlertMalice>(
            "update_alert_malice",
            "Set or reset the analyst malice verdict of an alert.",
        ),
        tool::<SearchAlerts>(
            "search_alerts",
            "Search alerts by status, severity, source, time, tags.",
        ),
        tool::<SearchDetectionRules>(
            "search_detection_rules",
            "Search detection rules by name, MITRE tactic/technique, source.",
        ),
        tool::<ExecuteWorkflow>(
            "execute_workflow",
            "Execute a workflow against an indicator (may need approval).",
        ),
        tool::<EnrichIndicator>(
            "enrich_indicator",
            "Enrich an indicator with every configured provider.",
        ),
        tool::<UpdateIndicatorMalice>(
            "update_indicator_malice",
            "Set or reset the analyst malice verdict of an indicator.",
        ),
    ]
}

/// Runs tool `name`. `Ok` is the result JSON, an `{"error"}` result included.
pub async fn call(
    state: &AppState,
    who: &Principal,
    name: &str,
    arguments: Value,
) -> Result<Value, ErrorData> {
    let result = match name {
        "post_alert_finding" => post_alert_finding(state, who, args(arguments)?).await,
        "update_alert_status" => update_alert_status(state, who, args(arguments)?).await,
        "update_alert_malice" => update_alert_malice(state, who, args(arguments)?).await,
        "search_alerts" => search_alerts(state, who, args(arguments)?).await,
        "search_detection_rules" => search_detection_rules(state, who, args(arguments)?).await,
        "execute_workflow" => execute_workflow(state, who, args(arguments)?).await,
        "enrich_indicator" => match args::<EnrichIndicator>(arguments)? {
            Ok(input) => enrich_indicator(state, who, &input.indicator_type, &input.value).await,
            Err(e) => Err(e),
        },
        "update_indicator_malice" => update_indicator_malice(state, who, args(arguments)?).await,
        other => {
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {other}"),
                None,
            ));
        }
    };
    Ok(result.unwrap_or_else(|error| error_value(&error)))
}

/// Arguments that do not fit the tool's parameters are a validation failure (a result), not a
/// protocol error: the outer `Result` never fails.
fn args<T: DeserializeOwned>(arguments: Value) -> Result<Result<T, Error>, ErrorData> {
    Ok(serde_json::from_value(arguments)
        .map_err(|e| Error::invalid_field("arguments", format!("Invalid arguments: {e}"))))
}

fn uuid_arg(text: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(text.trim())
        .map_err(|_| Error::invalid_field("uuid", format!("Invalid UUID: {text}")))
}

fn to_json<T: serde::Serialize>(item: &T) -> Result<Value, Error> {
    serde_json::to_value(item).map_err(|e| Error::Internal(e.into()))
}

/// Tools that have their own REST rate-limit family are charged to it too (the HTTP request
/// carrying the call was charged to the default family by the auth middleware).
async fn charge(state: &AppState, who: &Principal, family: Family) -> Result<(), Error> {
    let Some(key) = who.key() else { return Ok(()) };
    let decision = state
        .limiter
        .check(family, &format!("key:{}", key.key_uuid))
        .await;
    match decision.outcome {
        Outcome::Allowed => Ok(()),
        Outcome::Limited => Err(Error::RateLimited {
            retry_after_secs: decision.retry_after_secs(),
        }),
        Outcome::StoreUnavailable => Err(Error::Unavailable(
            "Rate limiting is temporarily unavailable; retry shortly.".into(),
        )),
    }
}

async fn post_alert_finding(
    state: &AppState,
    who: &Principal,
    input: Result<PostAlertFinding, Error>,
) -> Result<Value, Error> {
    let input = input?;
    let uuid = uuid_arg(&input.alert_uuid)?;
    let finding = alerts::service::FindingCreate {
        agent_name: input.agent_name.unwrap_or_else(|| "mcp-agent".into()),
        summary: input.summary,
        confidence: Some(input.confidence),
        recommended_action: input.recommended_action,
        evidence: None,
    };
    let stored = alerts::service::add_finding(state, who, uuid, finding).await?;
    Ok(json!({ "finding_id": stored.id, "alert_uuid": uuid, "posted_at": stored.posted_at }))
}

async fn update_alert_status(
    state: &AppState,
    who: &Principal,
    input: Result<UpdateAlertStatus, Error>,
) -> Result<Value, Error> {
    let input = input?;
    let uuid = uuid_arg(&input.alert_uuid)?;
    let patch = alerts::service::AlertPatch {
        status: Some(input.status),
        close_classification: input.close_classification,
        ..Default::default()
    };
    let (previous_status, after) = alerts::service::patch_from(state, who, uuid, patch).await?;
    Ok(json!({
        "alert_uuid": uuid,
        "status": after.alert.status,
        "previous_status": previous_status,
        "updated_at": after.alert.updated_at,
    }))
}

async fn update_alert_malice(
    state: &AppState,
    who: &Principal,
    input: Result<UpdateAlertMalice, Error>,
) -> Result<Value, Error> {
    let input = input?;
    let uuid = uuid_arg(&input.alert_uuid)?;
    let patch = match input.malice {
        Some(malice) => alerts::service::AlertPatch {
            malice_override: Some(malice),
            ..Default::default()
        },
        None => alerts::service::AlertPatch {
            reset_malice_override: Some(true),
            ..Default::default()
        },
    };
    let after = alerts::service::patch(state, who, uuid, patch).await?;
    Ok(json!({
        "alert_uuid": uuid,
        "malice_override": after.alert.malice_override,
        "effective_malice": after.alert.malice,
        "updated_at": after.alert.updated_at,
    }))
}

async fn search_alerts(
    state: &AppState,
    who: &Principal,
    input: Result<SearchAlerts, Error>,
) -> Result<Value, Error> {
    let input = input?;
    // The REST query parser is the one definition of these filters: feed it the same spelling.
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("status", &input.status),
            ("severity", &input.severity),
            ("source_name", &input.source_name),
            ("enrichment_status", &input.enrichment_status),
            ("from_time", &input.from_time),
            ("to_time", &input.to_time),
            ("sort_by", &input.sort_by),
            ("sort_order", &input.sort_order),
        ] {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        if let Some(flag) = input.is_enriched {
            query.append_pair("is_enriched", if flag { "true" } else { "false" });
        }
        for tag in input
            .tags
            .iter()
            .flat_map(|t| t.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            query.append_pair("tags", tag);
        }
        let page_size = input
            .page_size
            .unwrap_or(DEFAULT_SEARCH_PAGE_SIZE)
            .min(MAX_SEARCH_PAGE_SIZE);
        query.append_pair("page", &input.page.unwrap_or(1).to_string());
        query.append_pair("page_size", &page_size.to_string());
        query.finish()
    };
    let query = alerts::query::parse_list_query(Some(&query))?;
    let page = alerts::service::list(state, who, query).await?;
    let items: Vec<Value> = page
        .data
        .iter()
        .map(|a| to_json(a).map(|v| pick(&v, ALERT_SUMMARY_FIELDS)))
        .collect::<Result<_, _>>()?;
    Ok(
        json!({ "alerts": items, "total": page.meta.total, "page": page.meta.page, "page_size": page.meta.page_size }),
    )
}

const RULE_SORT_KEYS: [&str; 4] = ["name", "source_name", "severity", "created_at"];

async fn search_detection_rules(
    state: &AppState,
    who: &Principal,
    input: Result<SearchDetectionRules, Error>,
) -> Result<Value, Error> {
    let input = input?;
    let page = Pagination {
        page: input.page.unwrap_or(1),
        page_size: input
            .page_size
            .unwrap_or(DEFAULT_SEARCH_PAGE_SIZE)
            .min(MAX_SEARCH_PAGE_SIZE),
    }
    .validate()?;
    let query = || rules::service::RuleListQuery {
        source_name: input.source_name.clone(),
        severity: None,
        is_active: input.is_active,
        // Calseta ignores an unknown sort key rather than refusing it.
        sort_by: input
            .sort_by
            .clone()
            .filter(|key| RULE_SORT_KEYS.contains(&key.as_str())),
        sort_order: input
            .sort_order
            .clone()
            .filter(|o| o == "asc" || o == "desc"),
    };
    let name = input
        .name
        .as_deref()
        .map(str::to_lowercase)
        .filter(|n| !n.is_empty());
    let (rows, total) =
        if name.is_none() && input.mitre_tactic.is_none() && input.mitre_technique.is_none() {
            rules::service::list(state, who, page, query()).await?
        } else {
            // The list operation has no name or MITRE filters: walk every page and filter here.
            let mut matched = Vec::new();
            let mut walk = Pagination {
                page: 1,
                page_size: MAX_PAGE_SIZE,
            };
            loop {
                let (rows, total) = rules::service::list(state, who, walk, query()).await?;
                let done = rows.is_empty() || walk.page * walk.page_size >= total;
                for rule in rows {
                    let value = to_json(&rule)?;
                    let has = |field: &str, wanted: &str| {
                        value[field].as_array().is_some_and(|list| {
                            list.iter().any(|item| item.as_str() == Some(wanted))
                        })
                    };
                    let name_ok = name.as_ref().is_none_or(|n| {
                        value["name"]
                            .as_str()
                            .unwrap_or("")
                            .to_lowercase()
                            .contains(n)
                    });
                    let tactic_ok = input
                        .mitre_tactic
                        .as_deref()
                        .is_none_or(|t| has("mitre_tactics", t));
                    let technique_ok = input.mitre_technique.as_deref().is_none_or(|t| {
                        has("mitre_techniques", t) || has("mitre_subtechniques", t)
                    });
                    if name_ok && tactic_ok && technique_ok {
                        matched.push(rule);
                    }
                }
                if done {
                    break;
                }
                walk.page += 1;
            }
            let total = matched.len() as i64;
            let rows = matched
                .into_iter()
                .skip(page.offset() as usize)
                .take(page.page_size as usize)
                .collect();
            (rows, total)
        };
    let fields = [
        "uuid",
        "name",
        "source_name",
        "severity",
        "is_active",
        "mitre_tactics",
        "mitre_techniques",
        "mitre_subtechniques",
        "documentation",
        "created_at",
    ];
    let items: Vec<Value> = rows
        .iter()
        .map(|rule| {
            to_json(rule).map(|full| {
                let mut out = pick(&full, &fields);
                out["documentation"] = documentation_summary(&full["documentation"]);
                out
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(
        json!({ "detection_rules": items, "total": total, "page": page.page, "page_size": page.page_size }),
    )
}

async fn execute_workflow(
    state: &AppState,
    who: &Principal,
    input: Result<ExecuteWorkflow, Error>,
) -> Result<Value, Error> {
    let input = input?;
    let workflow_uuid = uuid_arg(&input.workflow_uuid)?;
    let alert_uuid = input.alert_uuid.as_deref().map(uuid_arg).transpose()?;
    charge(state, who, Family::WorkflowExecute).await?;
    let request = workflows::model::WorkflowExecuteRequest {
        indicator_type: input.indicator_type,
        indicator_value: input.indicator_value,
        alert_uuid,
        reason: input.reason,
        confidence: input.confidence,
    };
    Ok(
        match workflows::service::execute(state, who, workflow_uuid, request).await? {
            workflows::model::ExecuteOutcome::Queued { run_uuid, status } => {
                json!({ "status": status, "run_uuid": run_uuid, "workflow_uuid": workflow_uuid })
            }
            workflows::model::ExecuteOutcome::PendingApproval {
                status,
                approval_request_uuid,
                expires_at,
            } => json!({
                "status": status,
                "approval_request_uuid": approval_request_uuid,
                "workflow_uuid": workflow_uuid,
                "expires_at": expires_at,
            }),
        },
    )
}

/// Shared by the tool and the `calseta://enrichments/{type}/{value}` resource. The scope is
/// checked before anything else (Calseta answered "no providers" before its scope check).
pub async fn enrich_indicator(
    state: &AppState,
    who: &Principal,
    indicator_type: &str,
    value: &str,
) -> Result<Value, Error> {
    who.authorize::<enrich::lookups::service::EnrichIndicator>()?;
    // Calseta trims the value and refuses a blank one before looking anything up.
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid_field("value", "value must not be blank."));
    }
    charge(state, who, Family::Enrichment).await?;
    let request = enrich::lookups::service::OnDemandRequest {
        indicator_type_short: Some(indicator_type.to_owned()),
        value: Some(value.to_owned()),
        ..Default::default()
    };
    let response = enrich::lookups::service::enrich(state, who, request).await?;
    let mut out = json!({
        "type": response.indicator_type,
        "value": response.value,
        "results": to_json(&response.results)?,
        "provider_count": response.results.len(),
    });
    if response.results.is_empty() {
        out["message"] = Value::String(format!(
            "No configured providers support indicator type '{}'.",
            response.indicator_type
        ));
    }
    Ok(out)
}

async fn update_indicator_malice(
    state: &AppState,
    who: &Principal,
    input: Result<UpdateIndicatorMalice, Error>,
) -> Result<Value, Error> {
    let input = input?;
    let uuid = uuid_arg(&input.indicator_uuid)?;
    let updated = indicators::service::patch(
        state,
        who,
        uuid,
        indicators::service::IndicatorPatch {
            malice: input.malice,
        },
    )
    .await?;
    Ok(json!({
        "indicator_uuid": uuid,
        "malice": updated.malice,
        "malice_source": updated.malice_source,
        "updated_at": updated.updated_at,
    }))
}
