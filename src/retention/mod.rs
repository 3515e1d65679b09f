//! Retention (issue 14): `purge_expired_rows`, a periodic job that deletes rows older than the
//! configured `RETENTION_*_DAYS` (0 = keep, the default): alerts (with their indicator links and
//! agent runs, and the indicators no alert links any more), workflow runs, agent runs, activity
//! events and finished jobs.
//!
//! Each batch (`RETENTION_BATCH_SIZE` rows) is its own short transaction, so ingest's writes
//! interleave with a large purge instead of waiting for it (SQLite admits one writer); a run stops
//! after [`RUN_BUDGET`] and the next period carries on. Deletions are idempotent, so a run that
//! lost its lease and is repeated does no harm.
//!
//! The audit log is never purged: it is a hash chain, and deleting its head would make
//! `calseta audit verify` fail (SECURITY.md). Export it (`calseta audit export`) to archive it.

mod store;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::db::{Db, now};
use crate::jobs::{Job, JobCtx, JobError};
use crate::state::AppState;
use store::Table;

/// A run stops starting new batches after this long; the rest waits for the next period.
pub const RUN_BUDGET: Duration = Duration::from_secs(60);

/// What one run deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub alerts: u64,
    pub indicators: u64,
    pub workflow_runs: u64,
    pub agent_runs: u64,
    pub activity_events: u64,
    pub finished_jobs: u64,
}

/// The cutoff of a `RETENTION_*_DAYS` setting at `at`, or `None` when it keeps everything.
fn cutoff(days: u32, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (days > 0).then(|| at - chrono::Duration::days(i64::from(days)))
}

/// Purges what the settings say is expired, as of `at`.
pub async fn purge(db: &Db, settings: &Settings, at: DateTime<Utc>, budget: Duration) -> sqlx::Result<Purged> {
    let deadline = Instant::now() + budget;
    let batch = i64::from(settings.retention_batch_size.max(1));
    let mut purged = Purged::default();
    if let Some(before) = cutoff(settings.retention_alerts_days, at) {
        while Instant::now() < deadline {
            let mut tx = db.begin().await?;
            let (alerts, indicators) = store::purge_alert_batch(&mut tx, before, batch).await?;
            tx.commit().await?;
            purged.alerts += alerts;
            purged.indicators += indicators;
            if alerts < batch as u64 {
                break;
            }
            // Let queued writers (ingest) take the database between batches.
            tokio::task::yield_now().await;
        }
    }
    for (days, table, slot) in [
        (settings.retention_workflow_runs_days, Table::WorkflowRuns, &mut purged.workflow_runs),
        (settings.retention_agent_runs_days, Table::AgentRuns, &mut purged.agent_runs),
        (settings.retention_activity_events_days, Table::ActivityEvents, &mut purged.activity_events),
    ] {
        let Some(before) = cutoff(days, at) else { continue };
        while Instant::now() < deadline {
            let mut tx = db.begin().await?;
            let deleted = store::purge_batch(&mut tx, table, before, batch).await?;
            tx.commit().await?;
            *slot += deleted;
            if deleted < batch as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    if let Some(before) = cutoff(settings.retention_finished_jobs_days, at) {
        let mut tx = db.begin().await?;
        purged.finished_jobs = crate::jobs::store::delete_finished_before(&mut tx, before).await?;
        tx.commit().await?;
    }
    Ok(purged)
}

/// `purge_expired_rows`: the periodic retention sweep.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PurgeExpiredRows {}

impl Job for PurgeExpiredRows {
    const NAME: &'static str = "purge_expired_rows";
    type Context = AppState;

    async fn run(self, state: AppState, job: JobCtx) -> Result<(), JobError> {
        let purged = purge(&state.db, &state.settings, now(), RUN_BUDGET).await?;
        let mut tx = state.db.begin().await?;
        job.complete_in(&mut tx).await?;
        tx.commit().await?;
        if purged != Purged::default() {
            tracing::info!(?purged, "expired rows purged");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn zero_days_keeps_everything() {
        let at = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
        assert_eq!(cutoff(0, at), None);
        assert_eq!(cutoff(7, at), Some(Utc.with_ymd_and_hms(2026, 3, 3, 12, 0, 0).unwrap()));
    }
}
