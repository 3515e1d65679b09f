//! SQL for `indicators` and `alert_indicators`.

use std::collections::HashMap;

use crate::db::{Db, Json, Tx, now, placeholders};
use crate::enrich::ProviderResults;
use crate::{with_db, with_tx};

/// Upserts the global indicator `(type, value)` (a new one starts `Pending`, first_seen = last_seen
/// = now; an existing one gets last_seen = now) and links it to the alert. Returns its id.
pub async fn upsert_and_link(tx: &mut Tx, alert_id: i64, indicator_type: &str, value: &str) -> sqlx::Result<i64> {
    let at = now();
    let indicator_id: i64 = with_tx!(tx, c => sqlx::query_scalar(
        "INSERT INTO indicators (uuid, type, value, first_seen, last_seen, is_enriched, malice, malice_source, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4, FALSE, 'Pending', 'enrichment', $4, $4) \
         ON CONFLICT (type, value) DO UPDATE SET last_seen = excluded.last_seen, updated_at = excluded.updated_at RETURNING id")
        .bind(crate::db::row_uuid()).bind(indicator_type).bind(value).bind(at).fetch_one(c).await)?;
    with_tx!(tx, c => sqlx::query(
        "INSERT INTO alert_indicators (alert_id, indicator_id, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (alert_id, indicator_id) DO NOTHING")
        .bind(alert_id).bind(indicator_id).bind(at).execute(c).await.map(|_| ()))?;
    Ok(indicator_id)
}

/// What enrichment concluded about an indicator, written by its upsert: the providers' results
/// (merged over the stored ones, provider by provider) and the verdict (unless an analyst owns it).
#[derive(Debug, Default)]
pub struct Verdict<'a> {
    pub results: ProviderResults,
    pub malice: &'a str,
}

/// `upsert_and_link` for the indicators of many alerts (`(alert_id, type, value)`), in one
/// multi-row upsert and one multi-row link per `Tx::rows_per_statement` rows instead of two
/// statements per indicator, and without reading ids back (the link statement joins on
/// `(type, value)`): a batch of enrichment jobs costs a few round trips in all.
///
/// `verdicts` (by `(type, value)`) ride on the upsert: a new indicator is inserted enriched, an
/// existing one gets its results merged and its verdict set in the same row update. Writing them
/// afterwards by id locked and rewrote every row a second time (a worker draining a backlog on
/// PostgreSQL: 1.06–1.14 ms of database CPU per alert then, 0.95 now). PostgreSQL merges with
/// `||` in the statement (under the row lock a concurrent batch waits on); SQLite, whose
/// transaction holds the write lock, reads the stored results first and writes the merge.
pub async fn upsert_and_link_many(
    tx: &mut Tx,
    links: &[(i64, &str, &str)],
    verdicts: &mut HashMap<(&str, &str), Verdict<'_>>,
) -> sqlx::Result<()> {
    let mut unique: Vec<(&str, &str)> = links.iter().map(|(_, t, v)| (*t, *v)).collect();
    unique.sort_unstable();
    // One statement may not upsert the same row twice (PostgreSQL rejects it).
    unique.dedup();
    let at = now();
    if let Tx::Sqlite(_) = tx {
        merge_stored_results(tx, verdicts).await?;
    }
    let results_merge = match tx {
        Tx::Postgres(_) => "COALESCE(indicators.enrichment_results, '{}'::jsonb) || excluded.enrichment_results",
        Tx::Sqlite(_) => "excluded.enrichment_results",
    };
    for chunk in unique.chunks(tx.rows_per_statement()) {
        // Per row, in order: uuid, type, value, first_seen, last_seen, is_enriched, malice,
        // results, created_at, updated_at.
        let mut p = tx.sequential_placeholders();
        let rows: Vec<String> = chunk.iter().map(|_| p.fill("(?, ?, ?, ?, ?, ?, ?, 'enrichment', ?, ?, ?)")).collect();
        let sql = format!(
            "INSERT INTO indicators (uuid, type, value, first_seen, last_seen, is_enriched, malice, malice_source, \
             enrichment_results, created_at, updated_at) VALUES {} ON CONFLICT (type, value) DO UPDATE SET \
             last_seen = excluded.last_seen, updated_at = excluded.updated_at, \
             is_enriched = indicators.is_enriched OR excluded.is_enriched, \
             malice = CASE WHEN excluded.is_enriched AND indicators.malice_source <> 'analyst' THEN excluded.malice ELSE indicators.malice END, \
             enrichment_results = CASE WHEN excluded.is_enriched THEN {results_merge} ELSE indicators.enrichment_results END",
            rows.join(", ")
        );
        with_tx!(tx, c => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for pair in chunk {
                let verdict = verdicts.get(pair);
                query = query
                    .bind(crate::db::row_uuid())
                    .bind(pair.0)
                    .bind(pair.1)
                    .bind(at)
                    .bind(at)
                    .bind(verdict.is_some())
                    .bind(verdict.map_or("Pending", |v| v.malice))
                    .bind(verdict.map(|v| Json(&v.results)))
                    .bind(at)
                    .bind(at);
            }
            query.execute(c).await.map(|_| ())
        })?;
    }
    for chunk in links.chunks(tx.rows_per_statement()) {
        // `VALUES` names its columns column1… on both backends. SQLite needs the WHERE to parse
        // an INSERT … SELECT … JOIN followed by ON CONFLICT.
        // The fourth column keeps the input order, which is the order the links are listed in.
        // Bound in textual order: the two timestamps, then (alert_id, type, value, position) per row.
        let mut p = tx.sequential_placeholders();
        let (created_at, updated_at) = (p.next(), p.next());
        let rows: Vec<String> = chunk.iter().map(|_| p.fill("(?, ?, ?, ?)")).collect();
        let sql = format!(
            "INSERT INTO alert_indicators (alert_id, indicator_id, created_at, updated_at) \
             SELECT linked.column1, indicators.id, {created_at}, {updated_at} FROM (VALUES {}) AS linked \
             JOIN indicators ON indicators.type = linked.column2 AND indicators.value = linked.column3 WHERE TRUE \
             ORDER BY linked.column4 ON CONFLICT (alert_id, indicator_id) DO NOTHING",
            rows.join(", ")
        );
        with_tx!(tx, c => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at).bind(at);
            for (position, (alert_id, indicator_type, value)) in chunk.iter().enumerate() {
                query = query.bind(*alert_id).bind(*indicator_type).bind(*value).bind(position as i64);
            }
            query.execute(c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// SQLite: merges each verdict's results over those stored for its indicator (the stored
/// provider keys the verdict does not carry are kept; anything but a JSON object stored there is
/// replaced), so the upsert writes the merge. One read per `Tx::rows_per_statement` indicators.
async fn merge_stored_results(tx: &mut Tx, verdicts: &mut HashMap<(&str, &str), Verdict<'_>>) -> sqlx::Result<()> {
    let pairs: Vec<(&str, &str)> = verdicts.keys().copied().collect();
    for chunk in pairs.chunks(tx.rows_per_statement()) {
        // $3n+1, $3n+2: the pair; $3n+3: its position in the chunk, which names it in the answer.
        let rows: Vec<String> = (0..chunk.len()).map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3)).collect();
        let sql = format!(
            "SELECT wanted.column3, indicators.enrichment_results FROM (VALUES {}) AS wanted \
             JOIN indicators ON indicators.type = wanted.column1 AND indicators.value = wanted.column2 \
             WHERE indicators.enrichment_results IS NOT NULL",
            rows.join(", ")
        );
        let stored: Vec<(i64, String)> = with_tx!(tx, c => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for (position, (indicator_type, value)) in chunk.iter().enumerate() {
                query = query.bind(*indicator_type).bind(*value).bind(position as i64);
            }
            query.fetch_all(c).await
        })?;
        for (position, text) in stored {
            let Some(verdict) = usize::try_from(position).ok().and_then(|p| chunk.get(p)).and_then(|pair| verdicts.get_mut(pair)) else {
                continue;
            };
            let mut merged: ProviderResults = serde_json::from_str(&text).unwrap_or_default();
            merged.append(&mut verdict.results);
            verdict.results = merged;
        }
    }
    Ok(())
}

/// One indicator linked to an alert: `(alert_id, indicator id, type, value)`.
pub type LinkedIndicator = (i64, i64, String, String);

/// Every indicator linked to the alerts `alert_ids`, in link order, inside the caller's transaction.
pub async fn linked_to_alerts(tx: &mut Tx, alert_ids: &[i64]) -> sqlx::Result<Vec<LinkedIndicator>> {
    if alert_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = linked_sql(alert_ids.len());
    let rows: Vec<(i64, i64, i64, String, String)> = with_tx!(tx, c => {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in alert_ids {
            query = query.bind(*id);
        }
        query.fetch_all(c).await
    })?;
    Ok(in_link_order(rows).collect())
}

/// Every indicator already linked to each of `alert_ids`: `(alert_id, type, value)`, read before
/// the pipeline's transaction (links added through the API count for enrichment too).
pub async fn linked_pairs(db: &Db, alert_ids: &[i64]) -> sqlx::Result<Vec<(i64, String, String)>> {
    if alert_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = linked_sql(alert_ids.len());
    let rows: Vec<(i64, i64, i64, String, String)> = with_db!(db, p => {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in alert_ids {
            query = query.bind(*id);
        }
        query.fetch_all(p).await
    })?;
    Ok(in_link_order(rows).map(|(alert_id, _, itype, value)| (alert_id, itype, value)).collect())
}

/// The links of `alerts` alerts (`$1`…) with their indicator's type and value: `(link id,
/// alert_id, indicator id, type, value)`, in no particular order.
///
/// Both parts are chosen so that no statistics can turn the read into a scan of a whole table.
/// Each indicator is read by id in the select list, not joined: PostgreSQL estimated the links
/// per alert from statistics taken while the table was young, and at ~70 per alert (4 real) it
/// hashed all of `indicators` for every enrichment batch. And the link order is restored by the
/// caller, not by `ORDER BY id`: with the same estimate PostgreSQL walked the whole primary key
/// of `alert_indicators` in order, filtering on the alert (30–80 ms a batch, JIT-compiled).
fn linked_sql(alerts: usize) -> String {
    format!(
        "SELECT alert_indicators.id, alert_indicators.alert_id, alert_indicators.indicator_id, \
         (SELECT type FROM indicators WHERE indicators.id = alert_indicators.indicator_id), \
         (SELECT value FROM indicators WHERE indicators.id = alert_indicators.indicator_id) \
         FROM alert_indicators WHERE alert_indicators.alert_id IN ({})",
        placeholders(1, alerts)
    )
}

/// `linked_sql` rows sorted by link id, without it.
fn in_link_order(mut rows: Vec<(i64, i64, i64, String, String)>) -> impl Iterator<Item = (i64, i64, String, String)> {
    rows.sort_unstable_by_key(|row| row.0);
    rows.into_iter().map(|(_, alert_id, id, itype, value)| (alert_id, id, itype, value))
}

pub async fn count_for_alert(db: &Db, alert_id: i64) -> sqlx::Result<i64> {
    with_db!(db, p => sqlx::query_scalar("SELECT COUNT(*) FROM alert_indicators WHERE alert_id = $1").bind(alert_id).fetch_one(p).await)
}

/// An `indicators` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IndicatorRow {
    pub id: i64,
    pub uuid: uuid::Uuid,
    #[sqlx(rename = "type")]
    pub indicator_type: String,
    pub value: String,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    pub is_enriched: bool,
    pub malice: String,
    pub malice_source: String,
    pub malice_overridden_at: Option<chrono::DateTime<chrono::Utc>>,
    pub enrichment_results: Option<crate::db::Json<serde_json::Value>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const INDICATOR_COLUMNS: &str = "indicators.id, indicators.uuid, indicators.type, indicators.value, indicators.first_seen, \
    indicators.last_seen, indicators.is_enriched, indicators.malice, indicators.malice_source, indicators.malice_overridden_at, \
    indicators.enrichment_results, indicators.created_at, indicators.updated_at";

/// The indicators linked to an alert, in the order they were linked.
pub async fn list_for_alert(db: &Db, alert_id: i64) -> sqlx::Result<Vec<IndicatorRow>> {
    let sql = format!(
        "SELECT {INDICATOR_COLUMNS} FROM indicators JOIN alert_indicators ON alert_indicators.indicator_id = indicators.id \
         WHERE alert_indicators.alert_id = $1 ORDER BY alert_indicators.id"
    );
    with_db!(db, p => sqlx::query_as::<_, IndicatorRow>(sqlx::AssertSqlSafe(sql)).bind(alert_id).fetch_all(p).await)
}

pub async fn find_by_uuid(db: &Db, uuid: uuid::Uuid) -> sqlx::Result<Option<IndicatorRow>> {
    let sql = format!("SELECT {INDICATOR_COLUMNS} FROM indicators WHERE uuid = $1");
    with_db!(db, p => sqlx::query_as::<_, IndicatorRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(p).await)
}

/// The row by uuid, read inside a transaction (for read-then-write under the caller's lock).
pub async fn find_by_uuid_in(tx: &mut Tx, uuid: uuid::Uuid) -> sqlx::Result<Option<IndicatorRow>> {
    let sql = format!("SELECT {INDICATOR_COLUMNS} FROM indicators WHERE uuid = $1");
    with_tx!(tx, c => sqlx::query_as::<_, IndicatorRow>(sqlx::AssertSqlSafe(sql)).bind(uuid).fetch_optional(c).await)
}

/// Writes an indicator's verdict and where it came from (`analyst` or `enrichment`).
pub async fn set_malice(
    tx: &mut Tx,
    id: i64,
    malice: &str,
    malice_source: &str,
    overridden_at: Option<chrono::DateTime<chrono::Utc>>,
) -> sqlx::Result<()> {
    let at = now();
    with_tx!(tx, c => sqlx::query(
        "UPDATE indicators SET malice = $1, malice_source = $2, malice_overridden_at = $3, updated_at = $4 WHERE id = $5")
        .bind(malice).bind(malice_source).bind(overridden_at).bind(at).bind(id).execute(c).await.map(|_| ()))
}

/// The first alert the indicator was linked to, if any (the alert an indicator event is filed under).
pub async fn first_linked_alert(tx: &mut Tx, indicator_id: i64) -> sqlx::Result<Option<i64>> {
    with_tx!(tx, c => sqlx::query_scalar(
        "SELECT alert_id FROM alert_indicators WHERE indicator_id = $1 ORDER BY id LIMIT 1")
        .bind(indicator_id).fetch_optional(c).await)
}

/// Another alert linked to one of an alert's indicators, for the relationship graph.
#[derive(Debug, sqlx::FromRow)]
pub struct SiblingRow {
    pub indicator_id: i64,
    pub uuid: uuid::Uuid,
    pub title: String,
    pub severity: String,
    #[sqlx(try_from = "String")]
    pub status: crate::domain::AlertStatus,
    pub source_name: String,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub tags: crate::db::Json<Vec<String>>,
    /// How many other alerts share the indicator (the same on every row of one indicator).
    pub total_alert_count: i64,
}

/// For each indicator of `alert_id`: the other alerts linked to it, newest `occurred_at` first,
/// at most `limit` per indicator, each row carrying the indicator's full count of other alerts.
/// One query (window functions) however many indicators the alert has.
pub async fn siblings_for_alert(db: &Db, alert_id: i64, limit: i64) -> sqlx::Result<Vec<SiblingRow>> {
    const SQL: &str = "SELECT indicator_id, uuid, title, severity, status, source_name, occurred_at, tags, total_alert_count FROM ( \
           SELECT alert_indicators.indicator_id, alerts.uuid, alerts.title, alerts.severity, alerts.status, alerts.source_name, \
                  alerts.occurred_at, alerts.tags, \
                  ROW_NUMBER() OVER (PARTITION BY alert_indicators.indicator_id ORDER BY alerts.occurred_at DESC, alerts.id DESC) AS sibling_rank, \
                  COUNT(*) OVER (PARTITION BY alert_indicators.indicator_id) AS total_alert_count \
           FROM alert_indicators JOIN alerts ON alerts.id = alert_indicators.alert_id \
           WHERE alert_indicators.alert_id <> $1 \
             AND alert_indicators.indicator_id IN (SELECT indicator_id FROM alert_indicators WHERE alert_id = $1) \
         ) ranked WHERE sibling_rank <= $2 ORDER BY indicator_id, sibling_rank";
    with_db!(db, p => sqlx::query_as::<_, SiblingRow>(SQL).bind(alert_id).bind(limit).fetch_all(p).await)
}
