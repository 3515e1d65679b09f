//! Detection-rule operations: list, get, create, patch, delete, and per-rule metrics. Reads need
//! `alerts:read`; writes need `admin` (as Calseta's code does, not the `alerts:write` its docs
//! say). Writes are audited; no activity events are written (Calseta declares
//! `detection_rule_created`/`_updated` but never writes them).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::metrics::{self, DetectionRuleMetrics};
use super::store::{self, DetectionRuleRow, NewRule, RuleFilter, RulePatch, RuleSort};
use crate::audit::{self, Record};
use crate::auth::Principal;
use crate::error::{Error, FieldError, FieldErrors, Result};
use crate::http::query::{SortOrder, comma_list, lenient_bool, lenient_datetime, parse_sort};
use crate::operation;
use crate::pagination::Pagination;
use crate::service::Operation as _;
use crate::state::AppState;

operation!(ListDetectionRules = "detection_rules.list", scopes ["alerts:read"]);
operation!(GetDetectionRule = "detection_rules.get", scopes ["alerts:read"]);
operation!(GetDetectionRuleMetrics = "detection_rules.metrics", scopes ["alerts:read"]);
operation!(CreateDetectionRule = "detection_rules.create", scopes ["admin"]);
operation!(PatchDetectionRule = "detection_rules.patch", scopes ["admin"]);
operation!(DeleteDetectionRule = "detection_rules.delete", scopes ["admin"]);

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

fn check_name(name: &str, errors: &mut FieldErrors) {
    if name.trim().is_empty() || name.chars().count() > NAME_MAX {
        errors.push(FieldError::body("name", "string_length", format!("name must be 1 to {NAME_MAX} characters and not blank")));
    }
}

fn check_text(field: &str, value: Option<&str>, errors: &mut FieldErrors) {
    if value.is_some_and(|v| v.chars().count() > TEXT_MAX) {
        errors.push(FieldError::body(field, "string_too_long", format!("{field} must be at most {TEXT_MAX} characters")));
    }
}

fn check_list(field: &str, items: Option<&[String]>, errors: &mut FieldErrors) {
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

/// The list's filters and order, as the query string spells them.
#[derive(Debug, Default, Deserialize)]
pub struct RuleListQuery {
    /// Comma-separated, exact match.
    #[serde(default)]
    pub source_name: Option<String>,
    /// Comma-separated, exact match.
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub sort_by: Option<String>,
    #[serde(default)]
    pub sort_order: Option<String>,
}


#[derive(Debug, Deserialize)]
pub struct MetricsWindowQuery {
    #[serde(rename = "from", default, deserialize_with = "lenient_datetime")]
    pub from_time: Option<DateTime<Utc>>,
    #[serde(rename = "to", default, deserialize_with = "lenient_datetime")]
    pub to_time: Option<DateTime<Utc>>,
}



/// One page of rules matching `query`, and the total number of matches.
pub async fn list(state: &AppState, who: &Principal, pagination: Pagination, query: RuleListQuery) -> Result<(Vec<DetectionRuleResponse>, i64)> {
    who.authorize::<ListDetectionRules>()?;
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
    Ok((rows.into_iter().map(DetectionRuleResponse::from).collect(), total))
}

pub async fn get(state: &AppState, who: &Principal, uuid: Uuid) -> Result<DetectionRuleResponse> {
    who.authorize::<GetDetectionRule>()?;
    let row = store::find_by_uuid(&state.db, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    Ok(row.into())
}

const LIST_FIELDS: [&str; 4] = ["mitre_tactics", "mitre_techniques", "mitre_subtechniques", "data_sources"];

pub async fn create(state: &AppState, who: &Principal, input: DetectionRuleCreate) -> Result<DetectionRuleResponse> {
    who.authorize::<CreateDetectionRule>()?;
    let mut errors = FieldErrors::default();
    check_name(&input.name, &mut errors);
    for (field, value) in [
        ("source_rule_id", &input.source_rule_id),
        ("source_name", &input.source_name),
        ("severity", &input.severity),
        ("run_frequency", &input.run_frequency),
        ("created_by", &input.created_by),
    ] {
        check_text(field, value.as_deref(), &mut errors);
    }
    let lists = [&input.mitre_tactics, &input.mitre_techniques, &input.mitre_subtechniques, &input.data_sources];
    for (field, items) in LIST_FIELDS.into_iter().zip(lists) {
        check_list(field, Some(items), &mut errors);
    }
    errors.finish()?;
    // Defaults to the caller: its key prefix, or "system"/"cli" for callers without a key.
    let caller = who.key_prefix().map(str::to_owned).unwrap_or_else(|| who.actor().actor_type.to_owned());
    let created_by = input.created_by.as_deref().filter(|c| !c.trim().is_empty()).unwrap_or(&caller);
    let mut tx = state.db.begin().await?;
    let row = store::insert(
        &mut tx,
        &NewRule {
            name: &input.name,
            source_rule_id: input.source_rule_id.as_deref(),
            source_name: input.source_name.as_deref(),
            severity: input.severity.as_deref(),
            is_active: input.is_active,
            mitre_tactics: &input.mitre_tactics,
            mitre_techniques: &input.mitre_techniques,
            mitre_subtechniques: &input.mitre_subtechniques,
            data_sources: &input.data_sources,
            run_frequency: input.run_frequency.as_deref(),
            created_by: Some(created_by),
            documentation: input.documentation.as_deref(),
        },
    )
    .await?;
    let details = json!({ "name": row.name, "source_name": row.source_name, "source_rule_id": row.source_rule_id });
    audit::record(&mut tx, who, Record::success(CreateDetectionRule::NAME, "detection_rule", row.uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn patch(state: &AppState, who: &Principal, uuid: Uuid, input: DetectionRuleUpdate) -> Result<DetectionRuleResponse> {
    who.authorize::<PatchDetectionRule>()?;
    let mut errors = FieldErrors::default();
    if let Some(name) = &input.name {
        check_name(name, &mut errors);
    }
    check_text("severity", input.severity.as_ref().and_then(|s| s.as_deref()), &mut errors);
    let lists = [&input.mitre_tactics, &input.mitre_techniques, &input.mitre_subtechniques, &input.data_sources];
    for (field, items) in LIST_FIELDS.into_iter().zip(lists) {
        check_list(field, items.as_deref(), &mut errors);
    }
    errors.finish()?;
    let patch = RulePatch {
        name: input.name.as_deref(),
        severity: input.severity.as_ref().map(|s| s.as_deref()),
        is_active: input.is_active,
        mitre_tactics: input.mitre_tactics.as_deref(),
        mitre_techniques: input.mitre_techniques.as_deref(),
        mitre_subtechniques: input.mitre_subtechniques.as_deref(),
        data_sources: input.data_sources.as_deref(),
        documentation: input.documentation.as_ref().map(|d| d.as_deref()),
    };
    let mut tx = state.db.begin().await?;
    let row = store::update(&mut tx, uuid, &patch).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    // The names of the fields sent (documentation can be long; the row holds the values).
    let fields: Vec<&str> = [
        ("name", input.name.is_some()),
        ("severity", input.severity.is_some()),
        ("is_active", input.is_active.is_some()),
        ("mitre_tactics", input.mitre_tactics.is_some()),
        ("mitre_techniques", input.mitre_techniques.is_some()),
        ("mitre_subtechniques", input.mitre_subtechniques.is_some()),
        ("data_sources", input.data_sources.is_some()),
        ("documentation", input.documentation.is_some()),
    ]
    .into_iter()
    .filter_map(|(field, sent)| sent.then_some(field))
    .collect();
    let details = json!({ "name": row.name, "fields": fields });
    audit::record(&mut tx, who, Record::success(PatchDetectionRule::NAME, "detection_rule", row.uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(row.into())
}

/// Hard delete; the rule's alerts and activity events are detached.
pub async fn delete(state: &AppState, who: &Principal, uuid: Uuid) -> Result<()> {
    who.authorize::<DeleteDetectionRule>()?;
    let mut tx = state.db.begin().await?;
    let name = store::delete(&mut tx, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    audit::record(&mut tx, who, Record::success(DeleteDetectionRule::NAME, "detection_rule", uuid).with_details(json!({ "name": name }))).await?;
    tx.commit().await?;
    Ok(())
}

/// The default window: the last 30 days.
const DEFAULT_WINDOW_DAYS: i64 = 30;

/// The rule's effectiveness over `[from, to)` (default: the 30 days before now).
pub async fn metrics(state: &AppState, who: &Principal, uuid: Uuid, window: MetricsWindowQuery) -> Result<DetectionRuleMetrics> {
    who.authorize::<GetDetectionRuleMetrics>()?;
    let to = window.to_time.unwrap_or_else(crate::db::now);
    let from = window.from_time.unwrap_or(to - Duration::days(DEFAULT_WINDOW_DAYS));
    if from >= to {
        return Err(Error::Validation(vec![FieldError::new(
            "value_error",
            vec![json!("query"), json!("from")],
            "from must be earlier than to",
        )]));
    }
    let rule = store::find_by_uuid(&state.db, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    let buckets = store::alert_buckets(&state.db, rule.id, from, to).await?;
    let indicators = store::top_indicators(&state.db, rule.id, from, to).await?;
    let window = metrics::Window { rule_uuid: rule.uuid, rule_name: rule.name, from, to };
    Ok(metrics::fold(window, &buckets, indicators))
}
