//! The worker half of ingestion: the `enrich_alert` job, run on batches of claimed jobs. For each
//! alert it re-normalizes the stored raw payload, runs all three extraction passes with fresh
//! mappings, upserts the global indicators and their links to the alert, then enriches:
//!
//! - no configured provider wants the alert's indicator types (`Enricher::wants`) → the fast
//!   path: the alert is marked `Enriched`, its `alert_enrichment_completed` event written and its
//!   job marked succeeded in the same transaction as the upserts — one transaction for the batch;
//! - otherwise the upserts commit, `Enricher::enrich_alert` runs outside any transaction (it
//!   waits on the network), and a second transaction records the outcome, marks the alert
//!   `Enriched`, writes the event and marks the job succeeded.
//!
//! Idempotent: a retry upserts the same rows. A batch that fails runs again job by job, so one bad
//! alert only fails its own job. A panic in enrichment, or an error on the job's last attempt,
//! leaves the alert `Failed` (enrichment.md §5.2 step 7), never `Pending` for good.

use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use serde_json::Value;

use super::extract::extract_all;
use crate::activity::{self, Actor, NewEvent, types};
use crate::alerts::store as alerts;
use crate::db::now;
use crate::enrich::{AlertOutcome, IndicatorRef};
use crate::indicators::store as indicators;
use crate::jobs::store::{self as jobs, JobRow};
use crate::jobs::{Claimed, JobError, Outcome};
use crate::state::AppState;

pub async fn enrich_alerts(state: AppState, claimed: Claimed) -> Vec<Outcome> {
    let Claimed { worker, jobs } = claimed;
    if jobs.len() > 1 {
        match AssertUnwindSafe(enrich_batch(&state, &worker, &jobs)).catch_unwind().await {
            Ok(Ok(outcomes)) => return outcomes,
            Ok(Err(e)) => tracing::warn!(error = %e, jobs = jobs.len(), "enrich_alert batch failed; running its jobs one by one"),
            Err(_) => tracing::error!(jobs = jobs.len(), "enrich_alert batch panicked; running its jobs one by one"),
        }
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in &jobs {
        outcomes.extend(enrich_one(&state, &worker, job).await);
    }
    outcomes
}

/// One job on its own. Its failure is the job's: retried while attempts remain; a panic, or an
/// error on the last attempt, marks the alert `Failed`.
async fn enrich_one(state: &AppState, worker: &str, job: &JobRow) -> Vec<Outcome> {
    let error = match AssertUnwindSafe(enrich_batch(state, worker, std::slice::from_ref(job))).catch_unwind().await {
        Ok(Ok(outcomes)) => return outcomes,
        Ok(Err(e)) => JobError::Retry(e.to_string()),
        Err(_) => JobError::Fatal("enrich_alert panicked".into()),
    };
    if let Some(alert_id) = alert_id_of(job)
        && (matches!(error, JobError::Fatal(_)) || job.attempts >= job.max_attempts)
    {
        mark_failed(state, alert_id).await;
    }
    vec![(job.id, Err(error))]
}

fn alert_id_of(job: &JobRow) -> Option<i64> {
    job.payload.0.get("alert_id").and_then(Value::as_i64)
}

/// One alert of the batch, extracted and ready to write.
struct AlertWork {
    alert_id: i64,
    /// The batch's jobs for this alert (normally one).
    job_ids: Vec<i64>,
    /// `(type, value)` pairs of all three passes, unique.
    extracted: Vec<(String, String)>,
    wants_enrichment: bool,
}

async fn enrich_batch(state: &AppState, worker: &str, batch: &[JobRow]) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
    let mut jobs_of_alert: HashMap<i64, Vec<i64>> = HashMap::new();
    for job in batch {
        match alert_id_of(job) {
            Some(alert_id) => jobs_of_alert.entry(alert_id).or_default().push(job.id),
            None => outcomes.push((job.id, Err(JobError::Fatal(format!("enrich_alert payload without alert_id: {}", job.payload.0))))),
        }
    }
    let alert_ids: Vec<i64> = jobs_of_alert.keys().copied().collect();

    // Everything that reads runs before the transaction: a transaction holds its connection (and
    // on SQLite the write lock), so it must never wait for a second one.
    let loaded = alerts::load_for_pipeline(&state.db, &alert_ids).await?;
    let linked_types = indicators::linked_types(&state.db, &alert_ids).await?;
    let mappings = super::service::current_mappings(state).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut work: Vec<AlertWork> = Vec::with_capacity(loaded.len());
    for alert in loaded {
        let mut extracted: Vec<(String, String)> = Vec::new();
        if let Some(source) = super::sources::get(&alert.source_name) {
            let raw = &alert.raw_payload.0;
            if !raw.is_empty() {
                let normalized = source.normalize(raw).ok();
                extracted = extract_all(source, raw, normalized.as_ref(), &mappings, true)
                    .into_iter()
                    .map(|c| (c.itype.as_str().to_owned(), c.value))
                    .collect();
            }
        }
        let mut indicator_types: BTreeSet<&str> = extracted.iter().map(|(t, _)| t.as_str()).collect();
        indicator_types.extend(linked_types.iter().filter(|(id, _)| *id == alert.id).map(|(_, t)| t.as_str()));
        let indicator_types: Vec<&str> = indicator_types.into_iter().collect();
        let wants_enrichment = state.enricher.wants(&state.db, &indicator_types).await;
        let job_ids = jobs_of_alert.remove(&alert.id).unwrap_or_default();
        work.push(AlertWork { alert_id: alert.id, job_ids, extracted, wants_enrichment });
    }
    // Jobs left over belong to alerts deleted since they were queued: nothing to do.
    let gone: Vec<i64> = jobs_of_alert.into_values().flatten().collect();

    // One transaction: every alert's indicators, and the whole fast path.
    let at = now();
    let mut tx = state.db.begin().await?;
    let links: Vec<(i64, &str, &str)> =
        work.iter().flat_map(|w| w.extracted.iter().map(|(t, v)| (w.alert_id, t.as_str(), v.as_str()))).collect();
    indicators::upsert_and_link_many(&mut tx, &links).await?;
    let (slow, fast): (Vec<AlertWork>, Vec<AlertWork>) = work.into_iter().partition(|w| w.wants_enrichment);
    // Every link counts, including those added earlier through the API.
    let slow_ids: Vec<i64> = slow.iter().map(|w| w.alert_id).collect();
    let mut linked: HashMap<i64, Vec<IndicatorRef>> = HashMap::new();
    for (alert_id, id, itype, value) in indicators::linked_to_alerts(&mut tx, &slow_ids).await? {
        linked.entry(alert_id).or_default().push(IndicatorRef { id, itype, value });
    }
    let fast_ids: Vec<i64> = fast.iter().map(|w| w.alert_id).collect();
    let link_counts: HashMap<i64, i64> = indicators::link_counts(&mut tx, &fast_ids).await?.into_iter().collect();
    alerts::set_enrichment_status(&mut tx, &fast_ids, "Enriched", at).await?;
    let system = Actor::system();
    let events = fast
        .iter()
        .map(|w| {
            let indicator_count = link_counts.get(&w.alert_id).copied().unwrap_or(0);
            completed_event(&system, w.alert_id, AlertOutcome::default().activity_references(indicator_count, at))
        })
        .collect();
    activity::record_all(&mut tx, events).await?;
    crate::agents::enqueue_dispatch_for_alerts(&mut tx, &fast_ids).await?;
    let finished: Vec<i64> = fast.iter().flat_map(|w| w.job_ids.iter().copied()).chain(gone).collect();
    jobs::succeed_in(&mut tx, &finished, worker).await?;
    tx.commit().await?;
    outcomes.extend(finished.into_iter().map(|id| (id, Ok(()))));

    // Alerts that providers want: enriched concurrently, each recorded on its own.
    let enriched = slow.into_iter().map(|w| {
        let indicators = linked.remove(&w.alert_id).unwrap_or_default();
        enrich_with_providers(state, worker, w, indicators, batch)
    });
    outcomes.extend(futures::future::join_all(enriched).await.into_iter().flatten());
    Ok(outcomes)
}

/// The slow path for one alert whose indicators were committed: enrichment outside any
/// transaction, then its outcome, the `Enriched` mark, the event and the job's success together.
async fn enrich_with_providers(
    state: &AppState,
    worker: &str,
    work: AlertWork,
    indicators: Vec<IndicatorRef>,
    batch: &[JobRow],
) -> Vec<Outcome> {
    let outcome = match AssertUnwindSafe(state.enricher.enrich_alert(&state.db, &indicators)).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::error!(alert_id = work.alert_id, "enrichment panicked");
            mark_failed(state, work.alert_id).await;
            return work.job_ids.iter().map(|id| (*id, Err(JobError::Fatal("enrichment panicked".into())))).collect();
        }
    };
    let recorded = async {
        let at = now();
        let mut tx = state.db.begin().await?;
        crate::enrich::record_outcome(&mut tx, &outcome).await?;
        alerts::set_enrichment_status(&mut tx, &[work.alert_id], "Enriched", at).await?;
        let references = outcome.activity_references(indicators.len() as i64, at);
        activity::record_all(&mut tx, vec![completed_event(&Actor::system(), work.alert_id, references)]).await?;
        crate::agents::enqueue_dispatch_for_alerts(&mut tx, &[work.alert_id]).await?;
        jobs::succeed_in(&mut tx, &work.job_ids, worker).await?;
        tx.commit().await
    }
    .await;
    match recorded {
        Ok(()) => work.job_ids.iter().map(|id| (*id, Ok(()))).collect(),
        Err(e) => {
            let last_attempt = batch.iter().filter(|job| work.job_ids.contains(&job.id)).all(|job| job.attempts >= job.max_attempts);
            if last_attempt {
                mark_failed(state, work.alert_id).await;
            }
            work.job_ids.iter().map(|id| (*id, Err(JobError::Retry(e.to_string())))).collect()
        }
    }
}

fn completed_event(system: &Actor, alert_id: i64, references: Value) -> NewEvent<'_> {
    NewEvent::for_alert(types::ALERT_ENRICHMENT_COMPLETED, system, alert_id, references)
}

/// `enrichment_status = Failed`, best effort (the job's failure is recorded either way).
async fn mark_failed(state: &AppState, alert_id: i64) {
    let result = async {
        let mut tx = state.db.begin().await?;
        alerts::set_enrichment_status(&mut tx, &[alert_id], "Failed", now()).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, alert_id, "could not mark the alert's enrichment failed");
    }
}
