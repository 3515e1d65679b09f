//! Per-rule effectiveness metrics (agents-mcp-metrics.md §5.4), folded from the grouped alert
//! buckets `store::alert_buckets` returns. Pure: no I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{AlertBucket, IndicatorCount};

/// Statuses counted as "active" (not yet closed).
const ACTIVE_STATUSES: [&str; 3] = ["Open", "Triaging", "Escalated"];

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct TopIndicator {
    #[serde(rename = "type")]
    pub indicator_type: String,
    pub value: String,
    pub count: i64,
    pub malice: String,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct DetectionRuleMetrics {
    pub detection_rule_uuid: Uuid,
    pub detection_rule_name: String,
    pub period_from: DateTime<Utc>,
    pub period_to: DateTime<Utc>,
    pub total_alerts: i64,
    /// Open, Triaging or Escalated.
    pub active_alerts: i64,
    pub alerts_by_status: BTreeMap<String, i64>,
    pub alerts_by_severity: BTreeMap<String, i64>,
    /// False-positive closures ÷ closed alerts (0 when none is closed).
    pub false_positive_rate: f64,
    /// True-positive closures ÷ closed alerts (0 when none is closed).
    pub true_positive_rate: f64,
    /// Closed alerts by (non-null) classification.
    pub close_classifications: BTreeMap<String, i64>,
    pub alerts_over_time: Vec<DayCount>,
    /// Closed false positives by the day the alert was created.
    pub fp_over_time: Vec<DayCount>,
    /// Mean acknowledged_at − created_at over acknowledged alerts.
    pub mtta_seconds: Option<f64>,
    /// Mean closed_at − created_at over closed alerts.
    pub mttc_seconds: Option<f64>,
    /// Active alerts by severity.
    pub severity_distribution: BTreeMap<String, i64>,
    pub top_indicators: Vec<TopIndicator>,
    pub alert_sources: BTreeMap<String, i64>,
}

pub struct Window {
    pub rule_uuid: Uuid,
    pub rule_name: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

fn is_closed_with(bucket: &AlertBucket, prefix: &str) -> bool {
    bucket.status == "Closed" && bucket.close_classification.as_deref().is_some_and(|c| c.starts_with(prefix))
}

fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

fn mean(sum: f64, count: i64) -> Option<f64> {
    if count == 0 { None } else { Some(sum / count as f64) }
}

pub fn fold(window: Window, buckets: &[AlertBucket], indicators: Vec<IndicatorCount>) -> DetectionRuleMetrics {
    let mut metrics = DetectionRuleMetrics {
        detection_rule_uuid: window.rule_uuid,
        detection_rule_name: window.rule_name,
        period_from: window.from,
        period_to: window.to,
        total_alerts: 0,
        active_alerts: 0,
        alerts_by_status: BTreeMap::new(),
        alerts_by_severity: BTreeMap::new(),
        false_positive_rate: 0.0,
        true_positive_rate: 0.0,
        close_classifications: BTreeMap::new(),
        alerts_over_time: Vec::new(),
        fp_over_time: Vec::new(),
        mtta_seconds: None,
        mttc_seconds: None,
        severity_distribution: BTreeMap::new(),
        top_indicators: indicators
            .into_iter()
            .map(|i| TopIndicator { indicator_type: i.indicator_type, value: i.value, count: i.links, malice: i.malice })
            .collect(),
        alert_sources: BTreeMap::new(),
    };
    let (mut closed, mut false_positives, mut true_positives) = (0i64, 0i64, 0i64);
    let (mut ack_sum, mut ack_count, mut close_sum, mut close_count) = (0.0f64, 0i64, 0.0f64, 0i64);
    let mut by_day: BTreeMap<&str, i64> = BTreeMap::new();
    let mut fp_by_day: BTreeMap<&str, i64> = BTreeMap::new();
    for bucket in buckets {
        let n = bucket.alerts;
        metrics.total_alerts += n;
        *metrics.alerts_by_status.entry(bucket.status.clone()).or_default() += n;
        *metrics.alerts_by_severity.entry(bucket.severity.clone()).or_default() += n;
        *metrics.alert_sources.entry(bucket.source_name.clone()).or_default() += n;
        *by_day.entry(&bucket.day).or_default() += n;
        if ACTIVE_STATUSES.contains(&bucket.status.as_str()) {
            metrics.active_alerts += n;
            *metrics.severity_distribution.entry(bucket.severity.clone()).or_default() += n;
        }
        if bucket.status == "Closed" {
            closed += n;
            if let Some(classification) = &bucket.close_classification {
                *metrics.close_classifications.entry(classification.clone()).or_default() += n;
            }
        }
        if is_closed_with(bucket, "False Positive") {
            false_positives += n;
            *fp_by_day.entry(&bucket.day).or_default() += n;
        }
        if is_closed_with(bucket, "True Positive") {
            true_positives += n;
        }
        ack_sum += bucket.acknowledge_seconds_sum.unwrap_or(0.0);
        ack_count += bucket.acknowledged;
        close_sum += bucket.close_seconds_sum.unwrap_or(0.0);
        close_count += bucket.closed;
    }
    metrics.false_positive_rate = rate(false_positives, closed);
    metrics.true_positive_rate = rate(true_positives, closed);
    metrics.mtta_seconds = mean(ack_sum, ack_count);
    metrics.mttc_seconds = mean(close_sum, close_count);
    let series = |days: BTreeMap<&str, i64>| days.into_iter().map(|(d, count)| DayCount { date: d.to_owned(), count }).collect();
    metrics.alerts_over_time = series(by_day);
    metrics.fp_over_time = series(fp_by_day);
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(status: &str, severity: &str, classification: Option<&str>, day: &str, alerts: i64) -> AlertBucket {
        AlertBucket {
            status: status.into(),
            severity: severity.into(),
            source_name: "splunk".into(),
            close_classification: classification.map(Into::into),
            day: day.into(),
            alerts,
            acknowledge_seconds_sum: None,
            acknowledged: 0,
            close_seconds_sum: None,
            closed: 0,
        }
    }

    fn window() -> Window {
        Window { rule_uuid: Uuid::nil(), rule_name: "r".into(), from: DateTime::UNIX_EPOCH, to: DateTime::UNIX_EPOCH }
    }

    #[test]
    fn empty_window_is_all_zeros() {
        let m = fold(window(), &[], Vec::new());
        assert_eq!(m.total_alerts, 0);
        assert_eq!(m.false_positive_rate, 0.0);
        assert_eq!(m.mtta_seconds, None);
        assert!(m.alerts_over_time.is_empty() && m.alerts_by_status.is_empty());
    }

    #[test]
    fn folds_rates_series_and_means() {
        let mut open = bucket("Open", "High", None, "2026-01-01", 3);
        open.acknowledge_seconds_sum = Some(30.0);
        open.acknowledged = 2;
        let mut fp = bucket("Closed", "Low", Some("False Positive - Inaccurate Data"), "2026-01-02", 2);
        fp.close_seconds_sum = Some(100.0);
        fp.closed = 2;
        fp.acknowledge_seconds_sum = Some(10.0);
        fp.acknowledged = 2;
        let tp = bucket("Closed", "High", Some("True Positive - Suspicious Activity"), "2026-01-01", 1);
        let unclassified = bucket("Closed", "High", None, "2026-01-02", 1);
        let m = fold(window(), &[open, fp, tp, unclassified], Vec::new());
        assert_eq!(m.total_alerts, 7);
        assert_eq!(m.active_alerts, 3);
        assert_eq!(m.alerts_by_status, BTreeMap::from([("Closed".into(), 4), ("Open".into(), 3)]));
        assert_eq!(m.alerts_by_severity, BTreeMap::from([("High".into(), 5), ("Low".into(), 2)]));
        assert_eq!(m.severity_distribution, BTreeMap::from([("High".into(), 3)]));
        assert_eq!(m.false_positive_rate, 0.5);
        assert_eq!(m.true_positive_rate, 0.25);
        assert_eq!(m.close_classifications.len(), 2);
        assert_eq!(
            m.alerts_over_time,
            vec![DayCount { date: "2026-01-01".into(), count: 4 }, DayCount { date: "2026-01-02".into(), count: 3 }]
        );
        assert_eq!(m.fp_over_time, vec![DayCount { date: "2026-01-02".into(), count: 2 }]);
        assert_eq!(m.mtta_seconds, Some(10.0));
        assert_eq!(m.mttc_seconds, Some(50.0));
        assert_eq!(m.alert_sources, BTreeMap::from([("splunk".into(), 7)]));
    }
}
