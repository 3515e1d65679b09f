//! The worker half of ingestion: the `enrich_alert` job (`EnrichAlert`), run on batches of
//! claimed jobs. For each alert it re-normalizes the stored raw payload and runs all three
//! extraction passes with fresh mappings; the alerts whose indicators some configured provider
//! wants (`Enricher::wants`) are enriched — concurrently, before any transaction, since providers
//! wait on the network; then ONE transaction for the whole batch upserts the global indicators
//! with their verdicts and links them, marks the alerts `Enriched`, writes their
//! `alert_enrichment_completed` events, queues their agent dispatch and marks the jobs succeeded.
//! Two transactions per batch (the claim, then this one) whatever the providers do: on SQLite two
//! fsyncs, on PostgreSQL a handful of round trips.
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
use crate::enrich::{AlertOutcome, IndicatorOutcome, IndicatorRef};
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

/// One alert of the batch, extracted (and enriched) and ready to write.
struct AlertWork {
    alert_id: i64,
    /// The batch's jobs for this alert (normally one).
    jobs: Vec<JobCtx>,
    /// Every indicator of the alert, unique: first the `extracted` ones (all three passes), then
    /// those linked earlier (through the API) that extraction did not find.
    indicators: Vec<IndicatorRef>,
    extracted: usize,
    wants_enrichment: bool,
    /// What the providers produced (default: nothing ran).
    outcome: AlertOutcome,
}

/// The batch in three steps, so that no transaction waits on the network or on a second
/// connection: reads (alerts, earlier links, mappings) and extraction; the providers, for every
/// alert that wants them, concurrently; then ONE transaction that upserts the indicators and
/// links, records the verdicts, marks the alerts `Enriched`, writes their events, queues their
/// agent dispatch and marks the jobs succeeded — one commit (one fsync) per batch.
async fn enrich_batch(state: &AppState, batch: &[Claimed]) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
    let mut jobs_of_alert: HashMap<i64, Vec<JobCtx>> = HashMap::new();
    for one in batch {
        jobs_of_alert.entry(one.alert_id).or_default().push(one.job.clone());
    }
    let alert_ids: Vec<i64> = jobs_of_alert.keys().copied().collect();

    let loaded = alerts::load_for_pipeline(&state.db, &alert_ids).await?;
    let mut earlier: HashMap<i64, Vec<IndicatorRef>> = HashMap::new();
    for (alert_id, itype, value) in indicators::linked_pairs(&state.db, &alert_ids).await? {
        earlier.entry(alert_id).or_default().push(IndicatorRef { itype, value });
    }
    let mappings = super::service::current_mappings(state).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut work: Vec<AlertWork> = Vec::with_capacity(loaded.len());
    for alert in loaded {
        let mut indicators: Vec<IndicatorRef> = Vec::new();
        if let Some(source) = super::sources::get(&alert.source_name) {
            let raw = &alert.raw_payload.0;
            if !raw.is_empty() {
                let normalized = source.normalize(raw).ok();
                indicators = extract_all(source, raw, normalized.as_ref(), &mappings, true)
                    .into_iter()
                    .map(|c| IndicatorRef { itype: c.itype.as_str().to_owned(), value: c.value })
                    .collect();
            }
        }
        let extracted = indicators.len();
        let mut seen: HashSet<IndicatorRef> = indicators.iter().cloned().collect();
        for linked in earlier.remove(&alert.id).unwrap_or_default() {
            if seen.insert(linked.clone()) {
                indicators.push(linked);
            }
        }
        let types: Vec<&str> = indicators.iter().map(|i| i.itype.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
        let wants_enrichment = state.enricher.wants(&state.db, &types).await;
        let jobs = jobs_of_alert.remove(&alert.id).unwrap_or_default();
        work.push(AlertWork { alert_id: alert.id, jobs, extracted, indicators, wants_enrichment, outcome: AlertOutcome::default() });
    }
    // Jobs left over belong to alerts deleted since they were queued: nothing to do.
    let mut gone: Vec<JobCtx> = jobs_of_alert.into_values().flatten().collect();

    // The providers, concurrently and outside any transaction (they wait on the network). A
    // panic fails its alert (and its jobs) for good; the rest of the batch goes on.
    let mut ready: Vec<AlertWork> = Vec::with_capacity(work.len());
    for result in futures::future::join_all(work.into_iter().map(|w| run_providers(state, w))).await {
        match result {
            Ok(one) => ready.push(one),
            Err(panicked) => outcomes.extend(panicked),
        }
    }

    let at = now();
    let mut tx = state.db.begin().await?;
    // An alert deleted since the read above (defect m) is dropped here, not written against: its
    // rows would break a foreign key and fail the whole batch. The lock keeps the others from
    // being deleted until this transaction ends.
    let present: HashSet<i64> =
        alerts::lock_existing(&mut tx, &ready.iter().map(|w| w.alert_id).collect::<Vec<_>>()).await?.into_iter().collect();
    let (ready, deleted): (Vec<AlertWork>, Vec<AlertWork>) = ready.into_iter().partition(|w| present.contains(&w.alert_id));
    gone.extend(deleted.into_iter().flat_map(|w| w.jobs));
    let links: Vec<(i64, &str, &str)> =
        ready.iter().flat_map(|w| w.indicators[..w.extracted].iter().map(|i| (w.alert_id, i.itype.as_str(), i.value.as_str()))).collect();
    // The verdicts of extracted indicators are written by their upsert (one row version each);
    // those of indicators linked earlier through the API and not extracted again, by id below.
    let (mut upsert_verdicts, linked_only) = split_verdicts(&ready);
    indicators::upsert_and_link_many(&mut tx, &links, &mut upsert_verdicts).await?;
    // Every link counts, including any added through the API since the read above (those are
    // enriched by the job their own change queued).
    let ids: Vec<i64> = ready.iter().map(|w| w.alert_id).collect();
    let mut linked: HashMap<i64, HashMap<IndicatorRef, i64>> = HashMap::new();
    for (alert_id, id, itype, value) in indicators::linked_to_alerts(&mut tx, &ids).await? {
        linked.entry(alert_id).or_default().insert(IndicatorRef { itype, value }, id);
    }
    let verdicts: Vec<(i64, &IndicatorOutcome)> = linked_only
        .into_iter()
        .filter_map(|(alert_id, verdict)| linked.get(&alert_id)?.get(&verdict.indicator).map(|id| (*id, verdict)))
        .collect();
    crate::enrich::record_verdicts(&mut tx, &verdicts).await?;
    alerts::set_enrichment_status(&mut tx, &ids, "Enriched", at).await?;
    let system = Actor::system();
    let events = ready
        .iter()
        .map(|w| {
            let indicator_count = linked.get(&w.alert_id).map_or(0, |l| l.len() as i64);
            completed_event(&system, w.alert_id, w.outcome.activity_references(indicator_count, at))
        })
        .collect();
    activity::record_all(&mut tx, events).await?;
    let deliveries = crate::agents::enqueue_dispatch_for_alerts(&mut tx, &ids).await?;
    let finished: Vec<JobCtx> = ready.iter().flat_map(|w| w.jobs.iter().cloned()).chain(gone).collect();
    let finished_ids: Vec<i64> = finished.iter().map(JobCtx::id).collect();
    complete(&mut tx, finished).await?;
    tx.commit().await?;
    if deliveries > 0 {
        // The dispatch jobs run now, not at the next poll.
        state.wakeup.job_enqueued();
    }
    outcomes.extend(finished_ids.into_iter().map(|id| (id, Ok(()))));
    Ok(outcomes)
}

/// The batch's verdicts: those of extracted indicators by `(type, value)`, merged in batch order
/// (a later alert's result wins per provider, and its verdict), for the upsert; the others (an
/// indicator linked through the API that extraction did not find) with their alert's id.
fn split_verdicts(ready: &[AlertWork]) -> (HashMap<(&str, &str), indicators::Verdict<'_>>, Vec<(i64, &IndicatorOutcome)>) {
    let mut by_pair: HashMap<(&str, &str), indicators::Verdict<'_>> = HashMap::new();
    let mut linked_only = Vec::new();
    for work in ready {
        let extracted: HashSet<&IndicatorRef> = work.indicators[..work.extracted].iter().collect();
        for verdict in &work.outcome.indicators {
            if !extracted.contains(&verdict.indicator) {
                linked_only.push((work.alert_id, verdict));
                continue;
            }
            let entry = by_pair.entry((verdict.indicator.itype.as_str(), verdict.indicator.value.as_str())).or_default();
            entry.results.extend(verdict.results.iter().map(|(provider, result)| (provider.clone(), result.clone())));
            entry.malice = verdict.malice.as_str();
        }
    }
    (by_pair, linked_only)
}

/// The providers for one alert that wants them (nothing for one that does not). A panic marks
/// the alert `Failed` and fails its jobs for good.
async fn run_providers(state: &AppState, mut work: AlertWork) -> Result<AlertWork, Vec<Outcome>> {
    if !work.wants_enrichment {
        return Ok(work);
    }
    match AssertUnwindSafe(state.enricher.enrich_alert(&state.db, &work.indicators)).catch_unwind().await {
        Ok(outcome) => {
            work.outcome = outcome;
            Ok(work)
        }
        Err(_) => {
            tracing::error!(alert_id = work.alert_id, "enrichment panicked");
            mark_failed(state, work.alert_id).await;
            Err(work.jobs.iter().map(|job| (job.id(), Err(JobError::Fatal("enrichment panicked".into())))).collect())
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
