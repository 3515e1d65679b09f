//! The worker half of ingestion: the `enrich_alert` job (`EnrichAlert`), run on batches of
//! claimed jobs. For each alert it re-normalizes the stored raw payload, runs all three
//! extraction passes with fresh mappings, upserts the global indicators and their links to the
//! alert, then enriches:
//!
//! - no configured provider wants the alert's indicator types (`Enricher::wants`) → the fast
//!   path: the alert is marked `Enriched`, its `alert_enrichment_completed` event written and its
//!   job marked succeeded in the same transaction as the upserts — one transaction for the batch;
//! - otherwise the upserts commit, `Enricher::enrich_alert` runs outside any transaction (it
//!   waits on the network), and a second transaction — one for all such alerts of the batch —
//!   records the outcomes, marks the alerts `Enriched`, writes the events and marks the jobs
//!   succeeded (should it fail, each alert is recorded on its own).
//!
//! Idempotent: a retry upserts the same rows. A batch that fails runs again job by job, so one bad
//! alert only fails its own job. A panic in enrichment, or an error on the job's last attempt,
//! leaves the alert `Failed` (enrichment.md §5.2 step 7), never `Pending` for good. An alert
//! deleted at any point simply finishes its job (nothing to do) without touching the others.
//!
//! Every transaction that writes also marks its jobs succeeded under their claim
//! (`complete_all_in`): a run that lost its lease rolls back instead of committing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::extract_all;
use crate::activity::{self, Actor, NewEvent, types};
use crate::alerts::store as alerts;
use crate::db::now;
use crate::enrich::{AlertOutcome, IndicatorRef};
use crate::indicators::store as indicators;
use crate::jobs::{Job, JobCtx, JobError, complete_all_in};
use crate::state::AppState;

/// Enrich one alert: extract its indicators with the current mappings, enrich them, mark it
/// `Enriched`. Enqueued by ingest and re-enrichment, in the transaction that commits the cause.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrichAlert {
    pub alert_id: i64,
    /// The ingest request's trace context (`crate::observability::otel`): the writer that
    /// enqueues this job runs outside the request, so it travels with the alert. None when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Job for EnrichAlert {
    const NAME: &'static str = "enrich_alert";
    const QUEUE: &'static str = "enrichment";
    /// Jobs a worker claims at once: their writes share transactions (the claim, then the work
    /// and the success marks), which is what lets the queue keep up with group-committed ingest.
    const BATCH_SIZE: usize = 64;
    type Context = AppState;

    async fn run(self, state: AppState, job: JobCtx) -> Result<(), JobError> {
        enrich_one(&state, &Claimed { alert_id: self.alert_id, job }).await.1
    }

    async fn run_batch(state: AppState, jobs: Vec<(Self, JobCtx)>) -> Vec<Result<(), JobError>> {
        let claimed: Vec<Claimed> = jobs.into_iter().map(|(payload, job)| Claimed { alert_id: payload.alert_id, job }).collect();
        let mut outcomes: HashMap<i64, Result<(), JobError>> = HashMap::with_capacity(claimed.len());
        let mut batch_done = false;
        if claimed.len() > 1 {
            match AssertUnwindSafe(enrich_batch(&state, &claimed)).catch_unwind().await {
                Ok(Ok(done)) => {
                    outcomes.extend(done);
                    batch_done = true;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, jobs = claimed.len(), "enrich_alert batch failed; running its jobs one by one"),
                Err(_) => tracing::error!(jobs = claimed.len(), "enrich_alert batch panicked; running its jobs one by one"),
            }
        }
        if !batch_done {
            for one in &claimed {
                let (id, outcome) = enrich_one(&state, one).await;
                outcomes.insert(id, outcome);
            }
        }
        claimed
            .iter()
            .map(|one| outcomes.remove(&one.job.id()).unwrap_or_else(|| Err(JobError::Fatal("enrich_alert recorded no outcome".into()))))
            .collect()
    }
}

/// One claimed `enrich_alert` job.
struct Claimed {
    alert_id: i64,
    job: JobCtx,
}

/// What became of one job of a batch, by job id.
type Outcome = (i64, Result<(), JobError>);

/// One job on its own. Its failure is the job's: retried while attempts remain; a panic, or an
/// error on the last attempt, marks the alert `Failed`.
async fn enrich_one(state: &AppState, one: &Claimed) -> Outcome {
    let error = match AssertUnwindSafe(enrich_batch(state, std::slice::from_ref(one))).catch_unwind().await {
        Ok(Ok(mut outcomes)) => return outcomes.pop().unwrap_or((one.job.id(), Ok(()))),
        Ok(Err(e)) if e.downcast_ref::<LeaseLost>().is_some() => JobError::LeaseLost,
        Ok(Err(e)) => JobError::Retry(e.to_string()),
        Err(_) => JobError::Fatal("enrich_alert panicked".into()),
    };
    if matches!(error, JobError::Fatal(_)) || (matches!(error, JobError::Retry(_)) && one.job.is_last_attempt()) {
        mark_failed(state, one.alert_id).await;
    }
    (one.job.id(), Err(error))
}

/// The batch's claim was lost (its lease expired and another worker took a job): its transaction
/// was rolled back.
#[derive(Debug)]
struct LeaseLost;

impl std::fmt::Display for LeaseLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a job of the batch was handed to another worker")
    }
}

impl std::error::Error for LeaseLost {}

/// `complete_all_in` as an `anyhow` error, so a lost lease aborts (and rolls back) the batch.
async fn complete(tx: &mut crate::db::Tx, jobs: Vec<JobCtx>) -> anyhow::Result<()> {
    match complete_all_in(tx, &jobs).await {
        Ok(()) => Ok(()),
        Err(JobError::LeaseLost) => Err(LeaseLost.into()),
        Err(e) => Err(anyhow::anyhow!(e.message())),
    }
}

/// One alert of the batch, extracted and ready to write.
struct AlertWork {
    alert_id: i64,
    /// The batch's jobs for this alert (normally one).
    jobs: Vec<JobCtx>,
    /// `(type, value)` pairs of all three passes, unique.
    extracted: Vec<(String, String)>,
    wants_enrichment: bool,
}

async fn enrich_batch(state: &AppState, batch: &[Claimed]) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
    let mut jobs_of_alert: HashMap<i64, Vec<JobCtx>> = HashMap::new();
    for one in batch {
        jobs_of_alert.entry(one.alert_id).or_default().push(one.job.clone());
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
        let jobs = jobs_of_alert.remove(&alert.id).unwrap_or_default();
        work.push(AlertWork { alert_id: alert.id, jobs, extracted, wants_enrichment });
    }
    // Jobs left over belong to alerts deleted since they were queued: nothing to do.
    let mut gone: Vec<JobCtx> = jobs_of_alert.into_values().flatten().collect();

    // One transaction: every alert's indicators, and the whole fast path.
    let at = now();
    let mut tx = state.db.begin().await?;
    // An alert deleted since the read above (defect m) is dropped here, not written against: its
    // rows would break a foreign key and fail the whole batch. The lock keeps the others from
    // being deleted until this transaction ends.
    let present: HashSet<i64> =
        alerts::lock_existing(&mut tx, &work.iter().map(|w| w.alert_id).collect::<Vec<_>>()).await?.into_iter().collect();
    let (work, deleted): (Vec<AlertWork>, Vec<AlertWork>) = work.into_iter().partition(|w| present.contains(&w.alert_id));
    gone.extend(deleted.into_iter().flat_map(|w| w.jobs));
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
    let finished: Vec<JobCtx> = fast.iter().flat_map(|w| w.jobs.iter().cloned()).chain(gone).collect();
    let finished_ids: Vec<i64> = finished.iter().map(JobCtx::id).collect();
    complete(&mut tx, finished).await?;
    tx.commit().await?;
    if !fast_ids.is_empty() {
        // Their dispatch jobs (if any agent is active) run now, not at the next poll.
        state.wakeup.job_enqueued();
    }
    outcomes.extend(finished_ids.into_iter().map(|id| (id, Ok(()))));

    // Alerts that providers want: enriched concurrently outside any transaction, then recorded
    // together in one transaction (one commit for the batch: on SQLite one fsync instead of one
    // per alert, which bounded the sustained pipeline), or each on its own should that fail.
    let enriched = slow.into_iter().map(|w| {
        let indicators = linked.remove(&w.alert_id).unwrap_or_default();
        run_providers(state, w, indicators)
    });
    let mut ran: Vec<Enriched> = Vec::new();
    for result in futures::future::join_all(enriched).await {
        match result {
            Ok(one) => ran.push(one),
            Err(panicked) => outcomes.extend(panicked),
        }
    }
    if ran.len() > 1 {
        match record_enriched(state, &ran).await {
            Ok(()) => {
                outcomes.extend(ran.iter().flat_map(|one| one.work.jobs.iter().map(|job| (job.id(), Ok(())))));
                return Ok(outcomes);
            }
            Err(e) => tracing::warn!(error = %e, alerts = ran.len(), "recording enriched alerts together failed; recording each on its own"),
        }
    }
    for one in ran {
        outcomes.extend(record_one(state, one).await);
    }
    Ok(outcomes)
}

/// One alert enriched by its providers, waiting to be recorded.
struct Enriched {
    work: AlertWork,
    indicators: Vec<IndicatorRef>,
    outcome: AlertOutcome,
}

/// The slow path's network half for one alert whose indicators were committed: its providers,
/// outside any transaction. A panic fails the alert and its jobs for good.
async fn run_providers(state: &AppState, work: AlertWork, indicators: Vec<IndicatorRef>) -> Result<Enriched, Vec<Outcome>> {
    match AssertUnwindSafe(state.enricher.enrich_alert(&state.db, &indicators)).catch_unwind().await {
        Ok(outcome) => Ok(Enriched { work, indicators, outcome }),
        Err(_) => {
            tracing::error!(alert_id = work.alert_id, "enrichment panicked");
            mark_failed(state, work.alert_id).await;
            Err(work.jobs.iter().map(|job| (job.id(), Err(JobError::Fatal("enrichment panicked".into())))).collect())
        }
    }
}

/// Records enriched alerts in one transaction: the verdicts, then for each alert still present
/// the `Enriched` mark, its event and its dispatch, and every job's success.
async fn record_enriched(state: &AppState, enriched: &[Enriched]) -> anyhow::Result<()> {
    let at = now();
    let mut tx = state.db.begin().await?;
    // The verdicts are about global indicators and stay useful even if an alert is gone. Taken in
    // ascending indicator order, so concurrent batches sharing indicators (PostgreSQL locks each
    // row) wait for each other instead of deadlocking; the stable sort keeps one indicator's
    // verdicts in alert order.
    let mut indicators: Vec<_> = enriched.iter().flat_map(|one| one.outcome.indicators.iter().cloned()).collect();
    indicators.sort_by_key(|verdict| verdict.indicator_id);
    crate::enrich::record_outcome(&mut tx, &AlertOutcome { indicators, ..AlertOutcome::default() }).await?;
    // Deleted while their providers ran (defect m): nothing left to mark; their jobs are done.
    let ids: Vec<i64> = enriched.iter().map(|one| one.work.alert_id).collect();
    let present: HashSet<i64> = alerts::lock_existing(&mut tx, &ids).await?.into_iter().collect();
    let present_ids: Vec<i64> = ids.into_iter().filter(|id| present.contains(id)).collect();
    alerts::set_enrichment_status(&mut tx, &present_ids, "Enriched", at).await?;
    let system = Actor::system();
    let events = enriched
        .iter()
        .filter(|one| present.contains(&one.work.alert_id))
        .map(|one| completed_event(&system, one.work.alert_id, one.outcome.activity_references(one.indicators.len() as i64, at)))
        .collect();
    activity::record_all(&mut tx, events).await?;
    crate::agents::enqueue_dispatch_for_alerts(&mut tx, &present_ids).await?;
    complete(&mut tx, enriched.iter().flat_map(|one| one.work.jobs.iter().cloned()).collect()).await?;
    tx.commit().await?;
    // Their dispatch jobs (if any agent is active) run now, not at the next poll.
    state.wakeup.job_enqueued();
    Ok(())
}

/// Records one enriched alert on its own: its outcome, the `Enriched` mark, the event and the
/// job's success together.
async fn record_one(state: &AppState, one: Enriched) -> Vec<Outcome> {
    let Enriched { work, indicators, outcome } = one;
    let recorded = async {
        let at = now();
        let mut tx = state.db.begin().await?;
        // The verdicts are about global indicators and stay useful even if the alert is gone.
        crate::enrich::record_outcome(&mut tx, &outcome).await?;
        // Deleted while its providers ran (defect m): nothing left to mark; the job is done.
        if !alerts::lock_existing(&mut tx, &[work.alert_id]).await?.is_empty() {
            alerts::set_enrichment_status(&mut tx, &[work.alert_id], "Enriched", at).await?;
            let references = outcome.activity_references(indicators.len() as i64, at);
            activity::record_all(&mut tx, vec![completed_event(&Actor::system(), work.alert_id, references)]).await?;
            crate::agents::enqueue_dispatch_for_alerts(&mut tx, &[work.alert_id]).await?;
        }
        complete(&mut tx, work.jobs.clone()).await?;
        tx.commit().await?;
        state.wakeup.job_enqueued();
        anyhow::Ok(())
    }
    .await;
    match recorded {
        Ok(()) => work.jobs.iter().map(|job| (job.id(), Ok(()))).collect(),
        Err(e) if e.downcast_ref::<LeaseLost>().is_some() => work.jobs.iter().map(|job| (job.id(), Err(JobError::LeaseLost))).collect(),
        Err(e) => {
            if work.jobs.iter().all(JobCtx::is_last_attempt) {
                mark_failed(state, work.alert_id).await;
            }
            work.jobs.iter().map(|job| (job.id(), Err(JobError::Retry(e.to_string())))).collect()
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
