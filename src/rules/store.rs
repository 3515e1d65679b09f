//! SQL for `detection_rules`: the only place that reads or writes the table (plus the read-only
//! aggregation over a rule's alerts for its metrics).

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use uuid::Uuid;

use crate::db::{Db, Filter, Json, Tx, fetch_page, now};
use crate::http::query::SortOrder;
use crate::{with_db, with_tx};

/// The id of each rule `(source_name, source_rule_id)` in `refs`, creating an active stub named
/// after the reference when none exists (the oldest row wins when several match). Runs in the
/// ingest transaction: one SELECT for the whole batch, one multi-row INSERT for the missing ones.
pub async fn find_or_create_stubs(
    tx: &mut Tx,
    refs: &[(&str, &str)],
) -> sqlx::Result<std::collections::HashMap<(String, String), i64>> {
    let mut wanted: Vec<(&str, &str)> = refs.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut ids = std::collections::HashMap::new();
    if wanted.is_empty() {
        return Ok(ids);
    }
    let conditions: Vec<String> =
        (0..wanted.len()).map(|i| format!("(source_name = ${} AND source_rule_id = ${})", 2 * i + 1, 2 * i + 2)).collect();
    let sql = format!(
        "SELECT id, source_name, source_rule_id FROM detection_rules WHERE {} ORDER BY id",
        conditions.join(" OR ")
    );
    let existing: Vec<(i64, String, String)> = with_tx!(tx, c => {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for (source_name, rule_ref) in &wanted {
            query = query.bind(*source_name).bind(*rule_ref);
        }
        query.fetch_all(c).await
    })?;
    for (id, source_name, rule_ref) in existing {
        ids.entry((source_name, rule_ref)).or_insert(id);
    }
    let missing: Vec<(&str, &str)> =
        wanted.into_iter().filter(|(s, r)| !ids.contains_key(&((*s).to_owned(), (*r).to_owned()))).collect();
    if missing.is_empty() {
        return Ok(ids);
    }
    // $1 = empty JSON list, $2 = timestamp, then (uuid, reference, source) per row.
    let rows: Vec<String> = (0..missing.len())
        .map(|i| {
            let (uuid, reference, source) = (3 * i + 3, 3 * i + 4, 3 * i + 5);
            format!("(${uuid}, ${reference}, ${reference}, ${source}, TRUE, $1, $1, $1, $1, FALSE, $2, $2)")
        })
        .collect();
    let sql = format!(
        "INSERT INTO detection_rules (uuid, name, source_rule_id, source_name, is_active, mitre_tactics, \
         mitre_techniques, mitre_subtechniques, data_sources, is_system, created_at, updated_at) \
         VALUES {} RETURNING id, source_name, source_rule_id",
        rows.join(", ")
    );
    let empty: Json<Vec<String>> = Json(Vec::new());
    let created: Vec<(i64, String, String)> = with_tx!(tx, c => {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(&empty).bind(now());
        for (source_name, rule_ref) in &missing {
            query = query.bind(Uuid::new_v4()).bind(*rule_ref).bind(*source_name);
        }
        query.fetch_all(c).await
    })?;
    for (id, source_name, rule_ref) in created {
        ids.insert((source_name, rule_ref), id);
    }
    Ok(ids)
}

#[derive(Debug, Clone, FromRow)]
pub struct DetectionRuleRow {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub source_rule_id: Option<String>,
    pub source_name: Option<String>,
    pub severity: Option<String>,
    pub is_active: bool,
    pub mitre_tactics: Json<Vec<String>>,
    pub mitre_techniques: Json<Vec<String>>,
    pub mitre_subtechniques: Json<Vec<String>>,
    pub data_sources: Json<Vec<String>>,
    pub run_frequency: Option<String>,
    pub created_by: Option<String>,
    pub documentation: Option<String>,
    pub is_system: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, uuid, name, source_rule_id, source_name, severity, is_active, mitre_tactics, \
                       mitre_techniques, mitre_subtechniques, data_sources, run_frequency, created_by, \
                       documentation, is_system, created_at, updated_at";

pub struct NewRule<'a> {
    pub name: &'a str,
    pub source_rule_id: Option<&'a str>,
    pub source_name: Option<&'a str>,
    pub severity: Option<&'a str>,
    pub is_active: bool,
    pub mitre_tactics: &'a [String],
    pub mitre_techniques: &'a [String],
    pub mitre_subtechniques: &'a [String],
    pub data_sources: &'a [String],
    pub run_frequency: Option<&'a str>,
    pub created_by: Option<&'a str>,
    pub documentation: Option<&'a str>,
}

pub async fn insert(tx: &mut Tx, rule: &NewRule<'_>) -> sqlx::Result<DetectionRuleRow> {
    let sql = format!(
        "INSERT INTO detection_rules (uuid, name, source_rule_id, source_name, severity, is_active, \
         mitre_tactics, mitre_techniques, mitre_subtechniques, data_sources, run_frequency, created_by, \
         documentation, is_system, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, FALSE, $14, $14) RETURNING {COLUMNS}"
    );
    with_tx!(tx, p => sqlx::query_as::<_, DetectionRuleRow>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::new_v4())
        .bind(rule.name)
        .bind(rule.source_rule_id)
        .bind(rule.source_name)
        .bind(rule.severity)
        .bind(rule.is_active)
        .bind(Json(rule.mitre_tactics.to_vec()))
        .bind(Json(rule.mitre_techniques.to_vec()))
        .bind(Json(rule.mitre_subtechniques.to_vec()))
        .bind(Json(rule.data_sources.to_vec()))
        .bind(rule.run_frequency)
        .bind(rule.created_by)
        .bind(rule.documentation)
        .bind(now())
        .fetch_one(p)
        .await)
}

/// Whether a rule with this `(source_name, source_rule_id)` exists (demo data skips those).
pub async fn exists_for_source_rule(db: &Db, source_name: &str, source_rule_id: &str) -> sqlx::Result<bool> {
    with_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM detection_rules WHERE source_name = $1 AND source_rule_id = $2")
        .bind(source_name).bind(source_rule_id).fetch_one(p).await).map(|n| n > 0)
}

/// Marks a rule as system data (the sandbox's rules survive its reset).
pub async fn mark_system(db: &Db, uuid: Uuid) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    with_tx!(&mut tx, c => sqlx::query("UPDATE detection_rules SET is_system = TRUE WHERE uuid = $1").bind(uuid).execute(c).await.map(|_| ()))?;
    tx.commit().await
}

pub async fn find_by_uuid(db: &Db, uuid: Uuid) -> sqlx::Result<Option<DetectionRuleRow>> {
    let sql = format!("SELECT {COLUMNS} FROM detection_rules WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, DetectionRuleRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

/// For the alert detail (`alerts.detection_rule_id` → the linked rule).
pub async fn find_by_id(db: &Db, id: i64) -> sqlx::Result<Option<DetectionRuleRow>> {
    let sql = format!("SELECT {COLUMNS} FROM detection_rules WHERE id = $1");
    with_db!(db, p => sqlx::query_as::<_, DetectionRuleRow>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)
}

#[derive(Debug, Default)]
pub struct RuleFilter {
    /// Exact matches, any of.
    pub source_names: Option<Vec<String>>,
    pub severities: Option<Vec<String>>,
    pub is_active: Option<bool>,
}

/// Sortable columns; the key is the public `sort_by` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSort {
    Name,
    SourceName,
    Severity,
    CreatedAt,
}

impl RuleSort {
    pub const KEYS: [&'static str; 4] = ["name", "source_name", "severity", "created_at"];

    pub fn from_key(key: &str) -> Option<Self> {
        match key {
            "name" => Some(RuleSort::Name),
            "source_name" => Some(RuleSort::SourceName),
            "severity" => Some(RuleSort::Severity),
            "created_at" => Some(RuleSort::CreatedAt),
            _ => None,
        }
    }

    /// ORDER BY text (constants only). Text sorts are case-insensitive and byte-ordered in both
    /// backends (`C` collation on Postgres, whose default collation would otherwise order
    /// differently from SQLite); missing values sort last either way; `id` makes the order total
    /// so pages never overlap.
    fn order_by(self, order: SortOrder, postgres: bool) -> String {
        let dir = order.sql();
        let collate = if postgres { " COLLATE \"C\"" } else { "" };
        match self {
            RuleSort::Name => format!("LOWER(name){collate} {dir}, name{collate} {dir}, id {dir}"),
            RuleSort::SourceName => {
                format!("LOWER(source_name){collate} {dir} NULLS LAST, source_name{collate} {dir}, id {dir}")
            }
            // Calseta's CASE: Critical 5 … Informational 1, Pending and anything else 0.
            RuleSort::Severity => format!(
                "CASE severity WHEN 'Critical' THEN 5 WHEN 'High' THEN 4 WHEN 'Medium' THEN 3 \
                 WHEN 'Low' THEN 2 WHEN 'Informational' THEN 1 ELSE 0 END {dir}, id {dir}"
            ),
            RuleSort::CreatedAt => format!("created_at {dir}, id {dir}"),
        }
    }
}

/// One page of rules matching `filter`, and the total number of matches.
pub async fn list(
    db: &Db,
    filter: &RuleFilter,
    sort: RuleSort,
    order: SortOrder,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<DetectionRuleRow>, i64)> {
    let order_by = sort.order_by(order, matches!(db, Db::Postgres(_)));
    let mut conditions = Filter::new(db);
    conditions
        .any_of("source_name", filter.source_names.as_deref().unwrap_or_default())
        .any_of("severity", filter.severities.as_deref().unwrap_or_default())
        .eq_opt("is_active", filter.is_active);
    fetch_page(db, &format!("SELECT {COLUMNS} FROM detection_rules"), &conditions, &order_by, limit, offset).await
}

/// A PATCH: `None` leaves a column unchanged. `severity` and `documentation` are nullable
/// columns: `Some(None)` clears them.
#[derive(Debug, Default)]
pub struct RulePatch<'a> {
    pub name: Option<&'a str>,
    pub severity: Option<Option<&'a str>>,
    pub is_active: Option<bool>,
    pub mitre_tactics: Option<&'a [String]>,
    pub mitre_techniques: Option<&'a [String]>,
    pub mitre_subtechniques: Option<&'a [String]>,
    pub data_sources: Option<&'a [String]>,
    pub documentation: Option<Option<&'a str>>,
}

pub async fn update(tx: &mut Tx, uuid: Uuid, patch: &RulePatch<'_>) -> sqlx::Result<Option<DetectionRuleRow>> {
    let sql = format!(
        "UPDATE detection_rules SET \
           name = COALESCE($2, name), \
           severity = CASE WHEN $3 THEN $4 ELSE severity END, \
           is_active = COALESCE($5, is_active), \
           mitre_tactics = COALESCE($6, mitre_tactics), \
           mitre_techniques = COALESCE($7, mitre_techniques), \
           mitre_subtechniques = COALESCE($8, mitre_subtechniques), \
           data_sources = COALESCE($9, data_sources), \
           documentation = CASE WHEN $10 THEN $11 ELSE documentation END, \
           updated_at = $12 \
         WHERE uuid = $1 RETURNING {COLUMNS}"
    );
    let list = |v: Option<&[String]>| v.map(|items| Json(items.to_vec()));
    with_tx!(tx, p => sqlx::query_as::<_, DetectionRuleRow>(sqlx::AssertSqlSafe(sql))
        .bind(uuid)
        .bind(patch.name)
        .bind(patch.severity.is_some())
        .bind(patch.severity.flatten())
        .bind(patch.is_active)
        .bind(list(patch.mitre_tactics))
        .bind(list(patch.mitre_techniques))
        .bind(list(patch.mitre_subtechniques))
        .bind(list(patch.data_sources))
        .bind(patch.documentation.is_some())
        .bind(patch.documentation.flatten())
        .bind(now())
        .fetch_optional(p)
        .await)
}

/// Hard delete. The foreign keys detach the rule's alerts and activity events
/// (`ON DELETE SET NULL`); nothing else references the table. Returns the deleted rule's name.
pub async fn delete(tx: &mut Tx, uuid: Uuid) -> sqlx::Result<Option<String>> {
    with_tx!(tx, c => sqlx::query_scalar("DELETE FROM detection_rules WHERE uuid = $1 RETURNING name").bind(uuid).fetch_optional(c).await)
}

/// Alerts of one rule in a window, grouped by every dimension the metrics report, with the
/// sums needed for exact mean times. One query; the grouping is folded in `metrics`.
#[derive(Debug, Clone, FromRow)]
pub struct AlertBucket {
    pub status: String,
    pub severity: String,
    pub source_name: String,
    pub close_classification: Option<String>,
    /// `YYYY-MM-DD` of `created_at` in UTC.
    pub day: String,
    pub alerts: i64,
    pub acknowledge_seconds_sum: Option<f64>,
    pub acknowledged: i64,
    pub close_seconds_sum: Option<f64>,
    pub closed: i64,
}

/// Per-backend expressions: the UTC day of `created_at`, and a timestamp difference in seconds
/// (millisecond resolution on SQLite).
fn bucket_sql(postgres: bool) -> String {
    let (day, ack, close) = if postgres {
        (
            "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            "CAST(EXTRACT(EPOCH FROM (acknowledged_at - created_at)) AS DOUBLE PRECISION)",
            "CAST(EXTRACT(EPOCH FROM (closed_at - created_at)) AS DOUBLE PRECISION)",
        )
    } else {
        (
            "strftime('%Y-%m-%d', created_at)",
            "CAST(unixepoch(acknowledged_at, 'subsec') - unixepoch(created_at, 'subsec') AS REAL)",
            "CAST(unixepoch(closed_at, 'subsec') - unixepoch(created_at, 'subsec') AS REAL)",
        )
    };
    format!(
        "SELECT status, severity, source_name, close_classification, {day} AS day, COUNT(*) AS alerts, \
           SUM({ack}) AS acknowledge_seconds_sum, COUNT(acknowledged_at) AS acknowledged, \
           SUM({close}) AS close_seconds_sum, COUNT(closed_at) AS closed \
         FROM alerts WHERE detection_rule_id = $1 AND created_at >= $2 AND created_at < $3 \
         GROUP BY status, severity, source_name, close_classification, {day}"
    )
}

pub async fn alert_buckets(db: &Db, rule_id: i64, from: DateTime<Utc>, to: DateTime<Utc>) -> sqlx::Result<Vec<AlertBucket>> {
    let sql = bucket_sql(matches!(db, Db::Postgres(_)));
    with_db!(db, p => sqlx::query_as::<_, AlertBucket>(sqlx::AssertSqlSafe(sql))
        .bind(rule_id).bind(from).bind(to).fetch_all(p).await)
}

#[derive(Debug, Clone, FromRow)]
pub struct IndicatorCount {
    #[sqlx(rename = "type")]
    pub indicator_type: String,
    pub value: String,
    pub malice: String,
    pub links: i64,
}

/// The ten indicators linked most often to the rule's alerts in the window (ties: oldest
/// indicator first).
pub async fn top_indicators(db: &Db, rule_id: i64, from: DateTime<Utc>, to: DateTime<Utc>) -> sqlx::Result<Vec<IndicatorCount>> {
    const SQL: &str = "SELECT i.type, i.value, i.malice, COUNT(ai.id) AS links \
                       FROM alert_indicators ai \
                       JOIN indicators i ON i.id = ai.indicator_id \
                       JOIN alerts a ON a.id = ai.alert_id \
                       WHERE a.detection_rule_id = $1 AND a.created_at >= $2 AND a.created_at < $3 \
                       GROUP BY i.id, i.type, i.value, i.malice \
                       ORDER BY links DESC, i.id ASC LIMIT 10";
    with_db!(db, p => sqlx::query_as::<_, IndicatorCount>(SQL).bind(rule_id).bind(from).bind(to).fetch_all(p).await)
}
