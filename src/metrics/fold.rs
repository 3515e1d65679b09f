//! Response shapes of the metrics (field names and meanings as Calseta's schemas) and the pure
//! folding of the grouped rows `store` returns into them. No I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{AlertGroup, AlertTotals, ApprovalCounts, PlatformCounts, QueueRow, RuleCount, RunDay, WorkflowGroup, WorkflowRunCount};
pub use crate::rules::metrics::DayCount;

/// Statuses counted as "active" (not yet closed).
const ACTIVE_STATUSES: [&str; 3] = ["Open", "Triaging", "Escalated"];

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct TopRule {
    pub uuid: Uuid,
    pub name: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct AlertMetrics {
    pub period_from: DateTime<Utc>,
    pub period_to: DateTime<Utc>,
    pub total_alerts: i64,
    pub alerts_by_status: BTreeMap<String, i64>,
    pub alerts_by_severity: BTreeMap<String, i64>,
    pub alerts_by_source: BTreeMap<String, i64>,
    pub alerts_over_time: Vec<DayCount>,
    /// False-positive closures ÷ closed alerts (0 when none is closed).
    pub false_positive_rate: f64,
    /// Mean enriched_at − ingested_at over enriched alerts, seconds.
    pub mean_time_to_enrich: Option<f64>,
    /// Mean created_at − occurred_at, seconds.
    pub mean_time_to_detect: Option<f64>,
    /// Mean acknowledged_at − created_at over acknowledged alerts, seconds.
    pub mean_time_to_acknowledge: Option<f64>,
    /// Mean triaged_at − created_at over triaged alerts, seconds.
    pub mean_time_to_triage: Option<f64>,
    /// Mean closed_at − created_at over closed alerts, seconds.
    pub mean_time_to_conclusion: Option<f64>,
    pub active_alerts_by_severity: BTreeMap<String, i64>,
    /// The ten rules with the most alerts.
    pub top_detection_rules: Vec<TopRule>,
    /// Enriched alerts ÷ alerts (0 when none).
    pub enrichment_coverage: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct MostExecutedWorkflow {
    pub uuid: Uuid,
    pub name: String,
    pub run_count: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct WorkflowMetrics {
    pub period_from: DateTime<Utc>,
    pub period_to: DateTime<Utc>,
    /// Every workflow, whatever its state.
    pub total_configured: i64,
    /// By `workflow_type` ("unset" when none).
    pub workflows_by_type: BTreeMap<String, i64>,
    pub workflow_run_count: i64,
    /// Successful runs ÷ runs (0 when none).
    pub workflow_success_rate: f64,
    pub workflow_runs_over_time: Vec<DayCount>,
    /// Σ time_saved_minutes of the workflow of each successful run, in hours.
    pub time_saved_hours: f64,
    pub most_executed_workflows: Vec<MostExecutedWorkflow>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct SummaryAlerts {
    pub total: i64,
    pub active: i64,
    /// Active alerts only.
    pub by_severity: BTreeMap<String, i64>,
    pub by_status: BTreeMap<String, i64>,
    pub by_source: BTreeMap<String, i64>,
    pub enrichment_coverage: f64,
    pub mean_time_to_enrich_seconds: Option<f64>,
    pub false_positive_rate: f64,
    pub mttd_seconds: Option<f64>,
    pub mtta_seconds: Option<f64>,
    pub mttt_seconds: Option<f64>,
    pub mttc_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct SummaryWorkflows {
    /// Workflows in state `active` (all time).
    pub total_configured: i64,
    pub executions: i64,
    pub success_rate: f64,
    pub estimated_time_saved_hours: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct SummaryApprovals {
    /// Requests still `pending` (all time; expiry is not materialised).
    pub pending: i64,
    pub approved_last_30_days: i64,
    /// approved ÷ (approved + rejected) among responded requests of the window.
    pub approval_rate: f64,
    pub median_response_time_minutes: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct SummaryPlatform {
    pub context_documents: i64,
    pub detection_rules: i64,
    /// Active providers.
    pub enrichment_providers: i64,
    pub enrichment_providers_by_indicator_type: BTreeMap<String, i64>,
    /// Active agents.
    pub agents: i64,
    pub workflows: i64,
    pub indicator_mappings: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct QueueEntry {
    pub queue: String,
    pub pending: i64,
    pub in_progress: i64,
    pub succeeded_30d: i64,
    pub failed_30d: i64,
    pub avg_duration_seconds: Option<f64>,
    pub oldest_pending_age_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct SummaryQueue {
    pub queues: Vec<QueueEntry>,
    pub total_pending: i64,
    pub total_in_progress: i64,
    pub total_failed_30d: i64,
    pub total_succeeded_30d: i64,
    pub oldest_pending_age_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct MetricsSummary {
    /// Always `last_30_days`.
    pub period: &'static str,
    pub alerts: SummaryAlerts,
    pub workflows: SummaryWorkflows,
    pub approvals: SummaryApprovals,
    pub platform: SummaryPlatform,
    /// Null when the job table cannot be read.
    pub queue: Option<SummaryQueue>,
}

fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// The per-dimension counts of a window's alert groups.
#[derive(Default)]
struct AlertCounts {
    by_status: BTreeMap<String, i64>,
    by_severity: BTreeMap<String, i64>,
    by_source: BTreeMap<String, i64>,
    active_by_severity: BTreeMap<String, i64>,
    active: i64,
}

fn count_alerts(groups: &[AlertGroup]) -> AlertCounts {
    let mut counts = AlertCounts::default();
    for g in groups {
        *counts.by_status.entry(g.status.clone()).or_default() += g.alerts;
        *counts.by_severity.entry(g.severity.clone()).or_default() += g.alerts;
        *counts.by_source.entry(g.source_name.clone()).or_default() += g.alerts;
        if ACTIVE_STATUSES.contains(&g.status.as_str()) {
            counts.active += g.alerts;
            *counts.active_by_severity.entry(g.severity.clone()).or_default() += g.alerts;
        }
    }
    counts
}

fn series(days: BTreeMap<String, i64>) -> Vec<DayCount> {
    days.into_iter().map(|(date, count)| DayCount { date, count }).collect()
}

pub fn alert_metrics(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    totals: &AlertTotals,
    groups: &[AlertGroup],
    days: BTreeMap<String, i64>,
    rules: Vec<RuleCount>,
) -> AlertMetrics {
    let counts = count_alerts(groups);
    AlertMetrics {
        period_from: from,
        period_to: to,
        total_alerts: totals.total,
        alerts_by_status: counts.by_status,
        alerts_by_severity: counts.by_severity,
        alerts_by_source: counts.by_source,
        alerts_over_time: series(days),
        false_positive_rate: rate(totals.false_positives, totals.closed),
        mean_time_to_enrich: totals.enrich_seconds,
        mean_time_to_detect: totals.detect_seconds,
        mean_time_to_acknowledge: totals.acknowledge_seconds,
        mean_time_to_triage: totals.triage_seconds,
        mean_time_to_conclusion: totals.conclude_seconds,
        active_alerts_by_severity: counts.active_by_severity,
        top_detection_rules: rules.into_iter().map(|r| TopRule { uuid: r.uuid, name: r.name, count: r.count }).collect(),
        enrichment_coverage: rate(totals.enriched, totals.total),
    }
}

pub fn summary_alerts(totals: &AlertTotals, groups: &[AlertGroup]) -> SummaryAlerts {
    let counts = count_alerts(groups);
    SummaryAlerts {
        total: totals.total,
        active: counts.active,
        by_severity: counts.active_by_severity,
        by_status: counts.by_status,
        by_source: counts.by_source,
        enrichment_coverage: rate(totals.enriched, totals.total),
        mean_time_to_enrich_seconds: totals.enrich_seconds,
        false_positive_rate: rate(totals.false_positives, totals.closed),
        mttd_seconds: totals.detect_seconds,
        mtta_seconds: totals.acknowledge_seconds,
        mttt_seconds: totals.triage_seconds,
        mttc_seconds: totals.conclude_seconds,
    }
}

/// Runs, successes and hours saved over a window's run days.
fn run_totals(days: &[RunDay]) -> (i64, i64, f64) {
    let runs = days.iter().map(|d| d.runs).sum();
    let successes = days.iter().map(|d| d.successes).sum();
    let minutes: i64 = days.iter().filter_map(|d| d.minutes_saved).sum();
    (runs, successes, minutes as f64 / 60.0)
}

pub fn workflow_metrics(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    workflows: &[WorkflowGroup],
    days: &[RunDay],
    top: Vec<WorkflowRunCount>,
) -> WorkflowMetrics {
    let mut by_type = BTreeMap::new();
    for g in workflows {
        *by_type.entry(g.workflow_type.clone().unwrap_or_else(|| "unset".into())).or_default() += g.workflows;
    }
    let (runs, successes, hours) = run_totals(days);
    WorkflowMetrics {
        period_from: from,
        period_to: to,
        total_configured: workflows.iter().map(|g| g.workflows).sum(),
        workflows_by_type: by_type,
        workflow_run_count: runs,
        workflow_success_rate: rate(successes, runs),
        workflow_runs_over_time: days.iter().map(|d| DayCount { date: d.day.clone(), count: d.runs }).collect(),
        time_saved_hours: hours,
        most_executed_workflows: top
            .into_iter()
            .map(|w| MostExecutedWorkflow { uuid: w.uuid, name: w.name, run_count: w.run_count })
            .collect(),
    }
}

pub fn summary_workflows(workflows: &[WorkflowGroup], days: &[RunDay]) -> SummaryWorkflows {
    let (runs, successes, hours) = run_totals(days);
    SummaryWorkflows {
        total_configured: workflows.iter().filter(|g| g.state == "active").map(|g| g.workflows).sum(),
        executions: runs,
        success_rate: rate(successes, runs),
        estimated_time_saved_hours: hours,
    }
}

/// The median (mean of the middle two for an even count), as Python's `statistics.median`.
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 })
}

pub fn summary_approvals(counts: &ApprovalCounts, response_seconds: Vec<f64>) -> SummaryApprovals {
    SummaryApprovals {
        pending: counts.pending,
        approved_last_30_days: counts.approved,
        approval_rate: rate(counts.approved_responded, counts.approved_responded + counts.rejected_responded),
        median_response_time_minutes: median(response_seconds).map(|s| s / 60.0),
    }
}

/// `supported_types`: each active provider's JSON array; a malformed one counts for nothing.
pub fn summary_platform(counts: &PlatformCounts, supported_types: &[String]) -> SummaryPlatform {
    let mut by_type = BTreeMap::new();
    for types in supported_types {
        for t in serde_json::from_str::<Vec<String>>(types).unwrap_or_default() {
            *by_type.entry(t).or_default() += 1;
        }
    }
    SummaryPlatform {
        context_documents: counts.context_documents,
        detection_rules: counts.detection_rules,
        enrichment_providers: counts.enrichment_providers,
        enrichment_providers_by_indicator_type: by_type,
        agents: counts.agents,
        workflows: counts.workflows,
        indicator_mappings: counts.indicator_mappings,
    }
}

pub fn summary_queue(rows: Vec<QueueRow>) -> SummaryQueue {
    // A job scheduled for later (a retry's backoff) is pending but not yet late: age 0.
    let age = |a: Option<f64>| a.map(|s| s.max(0.0));
    let queues: Vec<QueueEntry> = rows
        .into_iter()
        .map(|r| QueueEntry {
            queue: r.queue,
            pending: r.pending,
            in_progress: r.in_progress,
            succeeded_30d: r.succeeded,
            failed_30d: r.failed,
            avg_duration_seconds: r.avg_duration_seconds,
            oldest_pending_age_seconds: age(r.oldest_pending_age_seconds),
        })
        .collect();
    SummaryQueue {
        total_pending: queues.iter().map(|q| q.pending).sum(),
        total_in_progress: queues.iter().map(|q| q.in_progress).sum(),
        total_failed_30d: queues.iter().map(|q| q.failed_30d).sum(),
        total_succeeded_30d: queues.iter().map(|q| q.succeeded_30d).sum(),
        oldest_pending_age_seconds: queues.iter().filter_map(|q| q.oldest_pending_age_seconds).reduce(f64::max),
        queues,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn queue_totals_and_clamped_ages() {
        let row = |queue: &str, pending, age| QueueRow {
            queue: queue.into(),
            pending,
            in_progress: 1,
            succeeded: 2,
            failed: 3,
            avg_duration_seconds: None,
            oldest_pending_age_seconds: age,
        };
        let q = summary_queue(vec![row("a", 2, Some(-5.0)), row("b", 1, Some(7.5)), row("c", 0, None)]);
        assert_eq!((q.total_pending, q.total_in_progress, q.total_succeeded_30d, q.total_failed_30d), (3, 3, 6, 9));
        assert_eq!(q.queues[0].oldest_pending_age_seconds, Some(0.0));
        assert_eq!(q.oldest_pending_age_seconds, Some(7.5));
    }

    #[test]
    fn platform_counts_provider_types() {
        let counts = PlatformCounts { context_documents: 1, detection_rules: 2, enrichment_providers: 2, agents: 0, workflows: 3, indicator_mappings: 14 };
        let p = summary_platform(&counts, &[r#"["ip","domain"]"#.into(), r#"["ip"]"#.into(), "not json".into()]);
        assert_eq!(p.enrichment_providers_by_indicator_type, BTreeMap::from([("domain".into(), 1), ("ip".into(), 2)]));
    }
}
