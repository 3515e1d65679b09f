//! Alert figures of a window: whole days and hours from the rollups, the rest live from
//! `alerts` (see `super` for the scheme), and the recomputation of one rollup bucket.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::plan::{Grain, Mark, Plan, Rolled, plan};
use crate::db::{Bind, Db, Tx};
use crate::metrics::store::{AlertGroup, AlertTotals, Dialect, RuleCount};
use crate::{bind_all, with_db, with_tx};

/// Counts and duration sums; from the rollups or live, the same shape, added up.
#[derive(Debug, Clone, Default, FromRow)]
struct Sums {
    total: i64,
    enriched: i64,
    closed: i64,
    false_positives: i64,
    enrich_sum: Option<f64>,
    enrich_n: i64,
    detect_sum: Option<f64>,
    detect_n: i64,
    ack_sum: Option<f64>,
    ack_n: i64,
    triage_sum: Option<f64>,
    triage_n: i64,
    conclude_sum: Option<f64>,
    conclude_n: i64,
}

impl Sums {
    fn add(&mut self, other: &Sums) {
        let sum = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        self.total += other.total;
        self.enriched += other.enriched;
        self.closed += other.closed;
        self.false_positives += other.false_positives;
        self.enrich_sum = sum(self.enrich_sum, other.enrich_sum);
        self.enrich_n += other.enrich_n;
        self.detect_sum = sum(self.detect_sum, other.detect_sum);
        self.detect_n += other.detect_n;
        self.ack_sum = sum(self.ack_sum, other.ack_sum);
        self.ack_n += other.ack_n;
        self.triage_sum = sum(self.triage_sum, other.triage_sum);
        self.triage_n += other.triage_n;
        self.conclude_sum = sum(self.conclude_sum, other.conclude_sum);
        self.conclude_n += other.conclude_n;
    }

    fn totals(&self) -> AlertTotals {
        let mean = |sum: Option<f64>, n: i64| if n == 0 { None } else { Some(sum.unwrap_or(0.0) / n as f64) };
        AlertTotals {
            total: self.total,
            enriched: self.enriched,
            closed: self.closed,
            false_positives: self.false_positives,
            enrich_seconds: mean(self.enrich_sum, self.enrich_n),
            detect_seconds: mean(self.detect_sum, self.detect_n),
            acknowledge_seconds: mean(self.ack_sum, self.ack_n),
            triage_seconds: mean(self.triage_sum, self.triage_n),
            conclude_seconds: mean(self.conclude_sum, self.conclude_n),
        }
    }
}

/// The aggregate columns over `alerts`, named as the rollup's (`alerts` … `conclude_n`).
///
/// A duration's count is the count of its later column: the earlier one (`ingested_at`,
/// `occurred_at`, `created_at`) is NOT NULL, so that is the count of non-null durations without
/// computing each duration twice per row (the live scan's main cost after the rows' reads).
fn live_aggregates(d: &Dialect) -> String {
    let enrich = d.seconds("enriched_at", "ingested_at");
    let detect = d.seconds("created_at", "occurred_at");
    let ack = d.seconds("acknowledged_at", "created_at");
    let triage = d.seconds("triaged_at", "created_at");
    let close = d.seconds("closed_at", "created_at");
    format!(
        "COUNT(*) FILTER (WHERE is_enriched) AS enriched, \
         COUNT(*) FILTER (WHERE status = 'Closed' AND close_classification LIKE 'False Positive%') AS false_positives, \
         SUM({enrich}) FILTER (WHERE is_enriched) AS enrich_sum, COUNT(enriched_at) FILTER (WHERE is_enriched) AS enrich_n, \
         SUM({detect}) AS detect_sum, COUNT(*) AS detect_n, SUM({ack}) AS ack_sum, COUNT(acknowledged_at) AS ack_n, \
         SUM({triage}) AS triage_sum, COUNT(triaged_at) AS triage_n, SUM({close}) AS conclude_sum, COUNT(closed_at) AS conclude_n"
    )
}

/// `(created_at >= $a AND created_at < $b) OR …` over the plan's live ranges, bound in `binds`.
fn live_condition(ranges: &[(DateTime<Utc>, DateTime<Utc>)], binds: &mut Vec<Bind>) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|(start, stop)| {
            binds.push(Bind::Time(*start));
            binds.push(Bind::Time(*stop));
            format!("(created_at >= ${} AND created_at < ${})", binds.len() - 1, binds.len())
        })
        .collect();
    format!("({})", parts.join(" OR "))
}

/// `(key >= $a AND key < $b) OR … AND key NOT IN (…)` over one grain's rolled-up buckets.
fn rolled_condition(grain: Grain, rolled: &Rolled, binds: &mut Vec<Bind>) -> String {
    let column = grain.column();
    let ranges: Vec<String> = rolled
        .ranges
        .iter()
        .map(|(first, end)| {
            binds.push(Bind::Text(grain.key(*first)));
            binds.push(Bind::Text(grain.key(*end)));
            format!("({column} >= ${} AND {column} < ${})", binds.len() - 1, binds.len())
        })
        .collect();
    let mut sql = format!("({})", ranges.join(" OR "));
    if !rolled.skip.is_empty() {
        let list: Vec<String> = rolled
            .skip
            .iter()
            .map(|key| {
                binds.push(Bind::Text(key.clone()));
                format!("${}", binds.len())
            })
            .collect();
        sql.push_str(&format!(" AND {column} NOT IN ({})", list.join(", ")));
    }
    sql
}

/// `SELECT <columns> FROM <daily table> WHERE … UNION ALL SELECT … FROM <hourly table> WHERE …`
/// over the plan's rolled-up buckets; None when the plan reads no rollup.
fn rolled_source(plan: &Plan, table: fn(Grain) -> &'static str, columns: impl Fn(Grain) -> String, binds: &mut Vec<Bind>) -> Option<String> {
    let parts: Vec<String> = [(Grain::Day, &plan.days), (Grain::Hour, &plan.hours)]
        .into_iter()
        .filter(|(_, rolled)| !rolled.ranges.is_empty())
        .map(|(grain, rolled)| format!("SELECT {} FROM {} WHERE {}", columns(grain), table(grain), rolled_condition(grain, rolled, binds)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" UNION ALL "))
}

/// The UTC day (`YYYY-MM-DD`) of a rollup row, named `day`.
fn day_of(grain: Grain) -> &'static str {
    match grain {
        Grain::Day => "day",
        Grain::Hour => "substr(hour, 1, 10) AS day",
    }
}

const SUM_COLUMNS: &str = "status, severity, source_name, alerts, enriched, false_positives, enrich_sum, enrich_n, \
                           detect_sum, detect_n, ack_sum, ack_n, triage_sum, triage_n, conclude_sum, conclude_n";

#[derive(FromRow)]
struct RuleTally {
    detection_rule_id: i64,
    alerts: i64,
}

#[derive(FromRow)]
struct RuleInfo {
    id: i64,
    uuid: uuid::Uuid,
    name: String,
}

/// One group of a window's alerts with its sums: a status × severity × source group of the
/// rollups, or a status × severity × source × day × rule group of the live scan.
#[derive(FromRow)]
struct SumsGroup {
    status: String,
    severity: String,
    source_name: String,
    #[sqlx(default)]
    day: Option<String>,
    #[sqlx(default)]
    detection_rule_id: Option<i64>,
    #[sqlx(flatten)]
    sums: Sums,
}

#[derive(FromRow)]
struct DayTally {
    day: String,
    alerts: i64,
}

async fn fetch_groups(db: &Db, sql: Option<String>, binds: Vec<Bind>) -> sqlx::Result<Vec<SumsGroup>> {
    let Some(sql) = sql else { return Ok(Vec::new()) };
    with_db!(db, p => bind_all!(sqlx::query_as::<_, SumsGroup>(sqlx::AssertSqlSafe(sql)), &binds).fetch_all(p).await)
}

async fn fetch_days(db: &Db, sql: Option<String>, binds: Vec<Bind>) -> sqlx::Result<Vec<DayTally>> {
    let Some(sql) = sql else { return Ok(Vec::new()) };
    with_db!(db, p => bind_all!(sqlx::query_as::<_, DayTally>(sqlx::AssertSqlSafe(sql)), &binds).fetch_all(p).await)
}

async fn fetch_rules(db: &Db, sql: Option<String>, binds: Vec<Bind>) -> sqlx::Result<Vec<RuleTally>> {
    let Some(sql) = sql else { return Ok(Vec::new()) };
    with_db!(db, p => bind_all!(sqlx::query_as::<_, RuleTally>(sqlx::AssertSqlSafe(sql)), &binds).fetch_all(p).await)
}

#[derive(FromRow)]
struct StateRow {
    rolled_until: Option<String>,
    hours_rolled_until: Option<String>,
}

#[derive(FromRow)]
struct DirtyRow {
    grain: String,
    bucket: String,
}

/// The rollup state of both grains.
async fn state(db: &Db) -> sqlx::Result<(Mark, Mark)> {
    const STATE: &str = "SELECT rolled_until, hours_rolled_until FROM alert_metrics_rollup_state WHERE id = 1";
    const DIRTY: &str = "SELECT 'day' AS grain, day AS bucket FROM alert_metrics_dirty_days \
                         UNION ALL SELECT 'hour' AS grain, hour AS bucket FROM alert_metrics_dirty_hours";
    let (row, dirty) = tokio::try_join!(
        async { with_db!(db, p => sqlx::query_as::<_, StateRow>(STATE).fetch_optional(p).await) },
        async { with_db!(db, p => sqlx::query_as::<_, DirtyRow>(DIRTY).fetch_all(p).await) },
    )?;
    let (mut days, mut hours) = (Mark::default(), Mark::default());
    if let Some(row) = row {
        days.until = row.rolled_until.as_deref().and_then(|k| Grain::Day.parse(k));
        hours.until = row.hours_rolled_until.as_deref().and_then(|k| Grain::Hour.parse(k));
    }
    for row in dirty {
        let (grain, mark) = if row.grain == "day" { (Grain::Day, &mut days) } else { (Grain::Hour, &mut hours) };
        if let Some(bucket) = grain.parse(&row.bucket) {
            mark.dirty.insert(bucket);
        }
    }
    Ok((days, hours))
}

/// The alert figures of a window, before shaping (`fold`).
pub struct AlertWindow {
    pub totals: AlertTotals,
    /// By status × severity × source (a combination may appear more than once: add them up).
    pub groups: Vec<AlertGroup>,
    /// By UTC day (`YYYY-MM-DD`).
    pub days: BTreeMap<String, i64>,
    /// The ten top rules.
    pub rules: Vec<RuleCount>,
}

/// Totals, groups, days and the ten top rules of `[from, to)`.
///
/// Four statements, run concurrently on separate connections, each returning few rows: the
/// rollups grouped by status × severity × source, by day and by rule (a month of daily rows plus
/// two days of hourly ones), and ONE scan of the live ranges whose groups carry their sums
/// (at most the partial first and last hour and the dirty hours).
pub async fn alert_window(db: &Db, from: DateTime<Utc>, to: DateTime<Utc>) -> sqlx::Result<AlertWindow> {
    let d = Dialect::of(db);
    let (days_mark, hours_mark) = state(db).await?;
    let plan = plan(from, to, &days_mark, &hours_mark);

    let total = |column: &str| format!("CAST(SUM({column}) AS BIGINT) AS {column}");
    let mut group_binds = Vec::new();
    let groups_sql = rolled_source(&plan, Grain::sums_table, |_| SUM_COLUMNS.to_owned(), &mut group_binds).map(|source| {
        format!(
            "SELECT status, severity, source_name, CAST(SUM(alerts) AS BIGINT) AS total, {}, {}, \
               CAST(SUM(CASE WHEN status = 'Closed' THEN alerts ELSE 0 END) AS BIGINT) AS closed, \
               SUM(enrich_sum) AS enrich_sum, {}, SUM(detect_sum) AS detect_sum, {}, SUM(ack_sum) AS ack_sum, {}, \
               SUM(triage_sum) AS triage_sum, {}, SUM(conclude_sum) AS conclude_sum, {} \
             FROM ({source}) AS r GROUP BY status, severity, source_name",
            total("enriched"),
            total("false_positives"),
            total("enrich_n"),
            total("detect_n"),
            total("ack_n"),
            total("triage_n"),
            total("conclude_n"),
        )
    });
    let mut day_binds = Vec::new();
    let days_sql = rolled_source(&plan, Grain::sums_table, |g| format!("{}, alerts", day_of(g)), &mut day_binds)
        .map(|source| format!("SELECT day, CAST(SUM(alerts) AS BIGINT) AS alerts FROM ({source}) AS r GROUP BY day"));
    let mut rule_binds = Vec::new();
    let rules_sql = rolled_source(&plan, Grain::rules_table, |_| "detection_rule_id, alerts".to_owned(), &mut rule_binds).map(|source| {
        format!("SELECT detection_rule_id, CAST(SUM(alerts) AS BIGINT) AS alerts FROM ({source}) AS r GROUP BY detection_rule_id")
    });
    let mut live_binds = Vec::new();
    let live_sql = (!plan.live.is_empty()).then(|| {
        let condition = live_condition(&plan.live, &mut live_binds);
        let (day_key, day) = d.day_grouped("created_at");
        format!(
            "SELECT status, severity, source_name, {day} AS day, detection_rule_id, COUNT(*) AS total, \
               COUNT(*) FILTER (WHERE status = 'Closed') AS closed, {} \
             FROM alerts WHERE {condition} GROUP BY status, severity, source_name, {day_key}, detection_rule_id",
            live_aggregates(&d)
        )
    });

    let (rolled_groups, rolled_days, rolled_rules, live_groups) = tokio::try_join!(
        fetch_groups(db, groups_sql, group_binds),
        fetch_days(db, days_sql, day_binds),
        fetch_rules(db, rules_sql, rule_binds),
        fetch_groups(db, live_sql, live_binds),
    )?;

    let mut sums = Sums::default();
    let mut groups = Vec::new();
    let mut days: BTreeMap<String, i64> = BTreeMap::new();
    let mut rules: BTreeMap<i64, i64> = BTreeMap::new();
    for tally in rolled_days {
        *days.entry(tally.day).or_default() += tally.alerts;
    }
    for tally in rolled_rules {
        *rules.entry(tally.detection_rule_id).or_default() += tally.alerts;
    }
    for g in rolled_groups.into_iter().chain(live_groups) {
        sums.add(&g.sums);
        if let Some(day) = g.day {
            *days.entry(day).or_default() += g.sums.total;
        }
        if let Some(rule) = g.detection_rule_id {
            *rules.entry(rule).or_default() += g.sums.total;
        }
        groups.push(AlertGroup { status: g.status, severity: g.severity, source_name: g.source_name, alerts: g.sums.total });
    }
    Ok(AlertWindow { totals: sums.totals(), groups, days, rules: top_rules(db, rules).await? })
}

/// The ten rules with the most alerts (ties: oldest rule first), among rules that still exist.
async fn top_rules(db: &Db, counts: BTreeMap<i64, i64>) -> sqlx::Result<Vec<RuleCount>> {
    if counts.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = counts.keys().copied().collect();
    let list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT id, uuid, name FROM detection_rules WHERE id IN ({})", list.join(", "));
    let binds: Vec<Bind> = ids.into_iter().map(Bind::Int).collect();
    let rules: Vec<RuleInfo> =
        with_db!(db, p => bind_all!(sqlx::query_as::<_, RuleInfo>(sqlx::AssertSqlSafe(sql)), &binds).fetch_all(p).await)?;
    let mut ranked: Vec<(i64, RuleInfo)> = rules.into_iter().map(|r| (counts[&r.id], r)).collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
    Ok(ranked.into_iter().take(10).map(|(count, r)| RuleCount { uuid: r.uuid, name: r.name, count }).collect())
}

/// Recomputes the rollup rows of the `grain` bucket starting at `start` from `alerts`, in `tx`
/// (whose caller has claimed the bucket's dirty mark).
pub(super) async fn recompute(tx: &mut Tx, d: &Dialect, grain: Grain, start: DateTime<Utc>) -> sqlx::Result<()> {
    let key = grain.key(start);
    let stop = start + grain.step();
    let (column, sums_table, rules_table) = (grain.column(), grain.sums_table(), grain.rules_table());
    let aggregates = live_aggregates(d);
    let sums = format!(
        "INSERT INTO {sums_table} ({column}, status, severity, source_name, alerts, enriched, false_positives, \
           enrich_sum, enrich_n, detect_sum, detect_n, ack_sum, ack_n, triage_sum, triage_n, conclude_sum, conclude_n) \
         SELECT $1, status, severity, source_name, n, enriched, false_positives, COALESCE(enrich_sum, 0), enrich_n, \
           COALESCE(detect_sum, 0), detect_n, COALESCE(ack_sum, 0), ack_n, COALESCE(triage_sum, 0), triage_n, \
           COALESCE(conclude_sum, 0), conclude_n \
         FROM (SELECT status, severity, source_name, COUNT(*) AS n, {aggregates} FROM alerts \
               WHERE created_at >= $2 AND created_at < $3 GROUP BY status, severity, source_name) AS g"
    );
    let rules = format!(
        "INSERT INTO {rules_table} ({column}, detection_rule_id, alerts) \
         SELECT $1, detection_rule_id, COUNT(*) FROM alerts \
         WHERE created_at >= $2 AND created_at < $3 AND detection_rule_id IS NOT NULL GROUP BY detection_rule_id"
    );
    let deletes = [
        format!("DELETE FROM {sums_table} WHERE {column} = $1"),
        format!("DELETE FROM {rules_table} WHERE {column} = $1"),
    ];
    with_tx!(tx, c => {
        for delete in deletes {
            sqlx::query(sqlx::AssertSqlSafe(delete)).bind(&key).execute(&mut *c).await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(sums)).bind(&key).bind(start).bind(stop).execute(&mut *c).await?;
        sqlx::query(sqlx::AssertSqlSafe(rules)).bind(&key).bind(start).bind(stop).execute(&mut *c).await?;
        Ok::<(), sqlx::Error>(())
    })
}
