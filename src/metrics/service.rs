//! Metrics operations (agents-mcp-metrics.md §5): alert metrics and workflow metrics over a
//! window, and the fixed 30-day SOC summary. Read-only: nothing is audited.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use super::fold::{self, AlertMetrics, MetricsSummary, WorkflowMetrics};
use super::{rollup, store};
use crate::auth::Principal;
use crate::error::{Error, FieldError, Result};
use crate::http::query::lenient_datetime;
use crate::operation;
use crate::state::AppState;

operation!(GetAlertMetrics = "metrics.alerts", scopes ["alerts:read"]);
operation!(GetWorkflowMetrics = "metrics.workflows", scopes ["workflows:read"]);
operation!(GetMetricsSummary = "metrics.summary", scopes ["alerts:read"]);

/// Length of the default window and of the summary's fixed window.
const WINDOW_DAYS: i64 = 30;

/// `from_time`/`to_time` of the windowed metrics. As in Calseta, unless both are given the
/// window is the last 30 days.
#[derive(Debug, Default, Deserialize)]
pub struct WindowQuery {
    #[serde(default, deserialize_with = "lenient_datetime")]
    pub from_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_datetime")]
    pub to_time: Option<DateTime<Utc>>,
}

impl WindowQuery {
    fn resolve(&self) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
        let (Some(from), Some(to)) = (self.from_time, self.to_time) else {
            let now = crate::db::now();
            return Ok((now - Duration::days(WINDOW_DAYS), now));
        };
        if from >= to {
            return Err(Error::Validation(vec![FieldError::new(
                "value_error",
                vec![json!("query"), json!("from_time")],
                "from_time must be earlier than to_time",
            )]));
        }
        Ok((from, to))
    }
}

/// Alert volume, outcome and timing over `[from_time, to_time)`.
pub async fn alerts(state: &AppState, who: &Principal, window: WindowQuery) -> Result<AlertMetrics> {
    who.authorize::<GetAlertMetrics>()?;
    let (from, to) = window.resolve()?;
    let db = &state.db;
    let w = rollup::alert_window(db, from, to).await?;
    Ok(fold::alert_metrics(from, to, &w.totals, &w.groups, w.days, w.rules))
}

/// Workflow inventory and the runs created in `[from_time, to_time)`.
pub async fn workflows(state: &AppState, who: &Principal, window: WindowQuery) -> Result<WorkflowMetrics> {
    who.authorize::<GetWorkflowMetrics>()?;
    let (from, to) = window.resolve()?;
    let db = &state.db;
    let workflows = store::workflow_groups(db).await?;
    let days = store::run_days(db, from, to).await?;
    let top = store::most_executed(db, from, to).await?;
    Ok(fold::workflow_metrics(from, to, &workflows, &days, top))
}

/// The SOC health snapshot over the last 30 days (no upper bound), with queue statistics.
pub async fn summary(state: &AppState, who: &Principal) -> Result<MetricsSummary> {
    who.authorize::<GetMetricsSummary>()?;
    let now = crate::db::now();
    let since = now - Duration::days(WINDOW_DAYS);
    // "No upper bound": rows created after `now` (clock skew between replicas) still count.
    let until = now + Duration::days(365 * 100);
    let db = &state.db;
    let w = rollup::alert_window(db, since, until).await?;
    let alerts = fold::summary_alerts(&w.totals, &w.groups);
    let workflows = fold::summary_workflows(&store::workflow_groups(db).await?, &store::run_days(db, since, until).await?);
    let approvals = fold::summary_approvals(
        &store::approval_counts(db, since).await?,
        store::approval_response_seconds(db, since).await?,
    );
    let platform = fold::summary_platform(&store::platform_counts(db).await?, &store::active_provider_types(db).await?);
    // Calseta reports null when the queue backend cannot answer; the page still renders.
    let queue = match rollup::queues(db, since, now).await {
        Ok(rows) => Some(fold::summary_queue(rows)),
        Err(e) => {
            tracing::warn!(error = %e, "queue statistics unavailable");
            None
        }
    };
    Ok(MetricsSummary { period: "last_30_days", alerts, workflows, approvals, platform, queue })
}
