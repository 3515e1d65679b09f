//! Durable agent dispatch: three jobs on the `dispatch` queue, and the enrichment pipeline's
//! direct path.
//!
//! * After enrichment ([`enqueue_for_alerts`], in the pipeline's transaction): matching (§1.1) on
//!   the alert as that transaction sees it, and one `deliver_agent_webhook` job per matching agent
//!   — the first attempt's body is built when it is sent, so no job sits between enrichment and
//!   delivery (one hop fewer: the 202 → webhook latency target of issue 11);
//! * `dispatch_agent_webhooks {alert_id}` (trigger-agents) — the same matching, on the alert as it
//!   is when the job runs, then the deliveries, enqueued with this job's success in one
//!   transaction;
//! * `dispatch_single_agent_webhook {alert_id, agent_id}` — the same for one agent, no matching;
//! * `deliver_agent_webhook {…, webhook_id, attempt, body}` — ONE attempt of one agent's delivery.
//!   Its `agent_runs` row, and either the outcome (activity `agent_webhook_dispatched`) or the
//!   next attempt (a new job due after exponential backoff with jitter), commit together with
//!   the job's success. No worker ever sleeps between attempts.
//!
//! The `webhook-id` travels in the delivery job from the start, and the body from the first
//! attempt on, so every retry sends the same bytes under the same id. A first attempt whose
//! worker was killed mid-send is re-run (its lease expires and the reaper hands it out again)
//! under the same id with its body built again at the same `generated_at`: the same bytes unless
//! the alert changed in between. Receivers drop duplicates by id.
//!
//! The three are typed `Job`s registered in `app::job_registry`.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt, Shared};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::delivery::{self, Attempt};
use super::store::{self, AgentRow, NewRun};
use super::{matching, payload};
use crate::activity::{self, Actor, NewEvent};
use crate::db::{Tx, now};
use crate::jobs::{Job, JobCtx, JobError};
use crate::state::AppState;

pub const MATCH_TASK: &str = "dispatch_agent_webhooks";
pub const SINGLE_TASK: &str = "dispatch_single_agent_webhook";
pub const DELIVER_TASK: &str = "deliver_agent_webhook";
pub const QUEUE: &str = "dispatch";
pub const EVENT_DISPATCHED: &str = "agent_webhook_dispatched";

/// Job-level attempts cover lost workers and database errors, not HTTP failures (those are
/// the delivery's own attempts, one job each).
const JOB_MAX_ATTEMPTS: i32 = 5;
/// Longest wait between two delivery attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// `dispatch_agent_webhooks`: match the alert against the active agents, then one delivery job
/// per matching agent.
#[derive(Debug, Serialize, Deserialize)]
pub struct MatchJob {
    alert_id: i64,
}

/// `dispatch_single_agent_webhook`: one agent, no matching.
#[derive(Debug, Serialize, Deserialize)]
pub struct SingleJob {
    alert_id: i64,
    agent_id: i64,
}

impl Job for MatchJob {
    const NAME: &'static str = MATCH_TASK;
    const QUEUE: &'static str = QUEUE;
    const MAX_ATTEMPTS: i32 = JOB_MAX_ATTEMPTS;
    type Context = AppState;

    async fn run(self, state: AppState, job: JobCtx) -> Result<(), JobError> {
        run_match(&state, &job, self).await
    }
}

impl Job for SingleJob {
    const NAME: &'static str = SINGLE_TASK;
    const QUEUE: &'static str = QUEUE;
    const MAX_ATTEMPTS: i32 = JOB_MAX_ATTEMPTS;
    type Context = AppState;

    async fn run(self, state: AppState, job: JobCtx) -> Result<(), JobError> {
        run_single(&state, &job, self).await
    }
}

impl Job for DeliveryJob {
    const NAME: &'static str = DELIVER_TASK;
    const QUEUE: &'static str = QUEUE;
    const MAX_ATTEMPTS: i32 = JOB_MAX_ATTEMPTS;
    /// Attempts a worker claims at once: sent concurrently, recorded in one transaction.
    const BATCH_SIZE: usize = 32;
    type Context = AppState;

    async fn run(self, state: AppState, job: JobCtx) -> Result<(), JobError> {
        run_deliveries(&state, vec![(self, job)]).await.pop().unwrap_or(Ok(()))
    }

    async fn run_batch(state: AppState, jobs: Vec<(Self, JobCtx)>) -> Vec<Result<(), JobError>> {
        run_deliveries(&state, jobs).await
    }
}

/// One attempt of one agent's delivery: `deliver_agent_webhook`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryJob {
    alert_id: i64,
    agent_id: i64,
    /// Standard Webhooks message id, the same for every attempt of this delivery.
    webhook_id: String,
    /// 1-based.
    attempt: i32,
    /// Whether an earlier attempt timed out (the outcome is then `timeout`, as Calseta reports).
    any_timeout: bool,
    /// The bytes' source, fixed from the first attempt on; `None` before it (queued by the
    /// pipeline: built at send time, at `generated_at`).
    body: Option<Value>,
    /// The payload's `_metadata.generated_at` when the body is built at send time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generated_at: Option<DateTime<Utc>>,
}

impl DeliveryJob {
    /// Which shared payload a first attempt without a body is sent with (the pipeline always
    /// sets `generated_at` when it leaves the body out).
    fn payload_key(&self) -> (i64, DateTime<Utc>) {
        (self.alert_id, self.generated_at.unwrap_or_default())
    }
}

/// After enrichment, in the pipeline's transaction: matches the alerts against the active agents
/// and queues one delivery per match (nothing when no agent is active).
pub async fn enqueue_for_alerts(tx: &mut Tx, alert_ids: &[i64]) -> sqlx::Result<usize> {
    if alert_ids.is_empty() {
        return Ok(0);
    }
    let agents = store::active_in(tx).await?;
    if agents.is_empty() {
        return Ok(0);
    }
    let generated_at = now();
    let mut deliveries = Vec::new();
    for (alert_id, source_name, severity, tags) in store::match_facts_in(tx, alert_ids).await? {
        let facts = matching::Facts { source_name, severity, tags: tags.0 };
        deliveries.extend(agents.iter().filter(|a| matching::matches(a, &facts)).map(|agent| DeliveryJob {
            alert_id,
            agent_id: agent.id,
            webhook_id: super::signing::new_message_id(),
            attempt: 1,
            any_timeout: false,
            body: None,
            generated_at: Some(generated_at),
        }));
    }
    crate::jobs::enqueue_many(tx, &deliveries).await.map(|_| deliveries.len())
}

/// `trigger-agents`: a matching job, even when nothing matches now (the worker re-evaluates).
pub async fn enqueue_match(tx: &mut Tx, alert_id: i64) -> sqlx::Result<()> {
    crate::jobs::enqueue(tx, &MatchJob { alert_id }).await.map(|_| ())
}

/// `dispatch-agent`: one agent, no matching.
pub async fn enqueue_single(tx: &mut Tx, alert_id: i64, agent_id: i64) -> sqlx::Result<()> {
    crate::jobs::enqueue(tx, &SingleJob { alert_id, agent_id }).await.map(|_| ())
}

/// Enqueues the deliveries and marks the job done, in one transaction.
async fn enqueue_deliveries(state: &AppState, job: &JobCtx, deliveries: Vec<DeliveryJob>) -> Result<(), JobError> {
    let mut tx = state.db.begin().await?;
    crate::jobs::enqueue_many(&mut tx, &deliveries).await?;
    job.complete_in(&mut tx).await?;
    tx.commit().await?;
    if !deliveries.is_empty() {
        state.wakeup.job_enqueued();
    }
    Ok(())
}

fn first_delivery(alert_id: i64, agent: &AgentRow, shared: &Value) -> DeliveryJob {
    DeliveryJob {
        alert_id,
        agent_id: agent.id,
        webhook_id: super::signing::new_message_id(),
        attempt: 1,
        any_timeout: false,
        body: Some(payload::for_agent(shared, agent.redact_untrusted_fields)),
        generated_at: None,
    }
}

async fn run_match(state: &AppState, job: &JobCtx, MatchJob { alert_id }: MatchJob) -> Result<(), JobError> {
    let shared = payload::for_alert(&state.db, alert_id, &state.settings.calseta_api_base_url, now()).await.map_err(retry)?;
    let deliveries = match shared {
        // The alert was deleted since: nothing to send.
        None => Vec::new(),
        Some(shared) => {
            let agents = store::active(&state.db).await?;
            let facts = matching::facts_of(&shared["alert"]);
            agents.iter().filter(|a| matching::matches(a, &facts)).map(|a| first_delivery(alert_id, a, &shared)).collect()
        }
    };
    enqueue_deliveries(state, job, deliveries).await
}

async fn run_single(state: &AppState, job: &JobCtx, SingleJob { alert_id, agent_id }: SingleJob) -> Result<(), JobError> {
    let deliveries = match store::find_by_id(&state.db, agent_id).await? {
        None => {
            tracing::info!(agent_id, alert_id, "dispatch_single_agent_webhook: the agent was deleted");
            Vec::new()
        }
        Some(agent) => match payload::for_alert(&state.db, alert_id, &state.settings.calseta_api_base_url, now()).await.map_err(retry)? {
            None => {
                tracing::info!(agent_id, alert_id, "dispatch_single_agent_webhook: the alert was deleted");
                Vec::new()
            }
            Some(shared) => vec![first_delivery(alert_id, &agent, &shared)],
        },
    };
    enqueue_deliveries(state, job, deliveries).await
}

fn retry(e: crate::error::Error) -> JobError {
    JobError::Retry(e.to_string())
}

/// Exponential (1 s, 2 s, 4 s, … after attempts 1, 2, 3, …) with ±50 % jitter, so receivers
/// recovering from an outage are not hit by every sender at the same instant.
pub fn backoff(attempt: i32) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.clamp(1, 20).saturating_sub(1)).min(MAX_BACKOFF);
    base.mul_f64(0.5 + rand::random::<f64>())
}

/// One attempt made, waiting to be recorded.
struct Sent {
    job: JobCtx,
    agent: AgentRow,
    delivery: DeliveryJob,
    attempt: Attempt,
}

/// A claimed batch of delivery attempts: sent concurrently, then recorded in one transaction
/// (one commit, on SQLite one fsync, per batch rather than per delivery). Should that
/// transaction fail, each is recorded on its own so one bad row only retries its own job.
async fn run_deliveries(state: &AppState, batch: Vec<(DeliveryJob, JobCtx)>) -> Vec<Result<(), JobError>> {
    if batch.is_empty() {
        return Vec::new();
    }
    let count = batch.len();
    let shared = &shared_payloads(state, &batch);
    let sends = futures::future::join_all(batch.into_iter().enumerate().map(|(i, (delivery, job))| async move {
        let id = job.id();
        (i, id, send_delivery(state, delivery, job, shared).await)
    }))
    .await;
    let mut outcomes: Vec<Option<Result<(), JobError>>> = (0..count).map(|_| None).collect();
    let (mut sent, mut nothing_to_send): (Vec<(usize, Sent)>, Vec<(usize, JobCtx)>) = (Vec::new(), Vec::new());
    for (i, _, result) in sends {
        match result {
            Ok(Ok(one)) => sent.push((i, one)),
            Ok(Err(job)) => nothing_to_send.push((i, job)),
            Err(e) => outcomes[i] = Some(Err(e)),
        }
    }
    let all_jobs: Vec<JobCtx> = sent.iter().map(|(_, s)| s.job.clone()).chain(nothing_to_send.iter().map(|(_, j)| j.clone())).collect();
    let sent_only: Vec<&Sent> = sent.iter().map(|(_, s)| s).collect();
    if record(state, &sent_only, &all_jobs).await.is_ok() {
        for i in sent.iter().map(|(i, _)| *i).chain(nothing_to_send.iter().map(|(i, _)| *i)) {
            outcomes[i] = Some(Ok(()));
        }
    } else {
        for (i, one) in &sent {
            outcomes[*i] = Some(record(state, &[one], std::slice::from_ref(&one.job)).await);
        }
        for (i, job) in &nothing_to_send {
            outcomes[*i] = Some(record(state, &[], std::slice::from_ref(job)).await);
        }
    }
    outcomes.into_iter().map(|o| o.unwrap_or(Ok(()))).collect()
}

/// The shared payloads the batch's first attempts need (those queued by the pipeline carry no
/// body yet), one per alert and `generated_at`, each built once by whichever of its deliveries
/// asks first: a delivery goes out as soon as its own payload is ready, not when the whole
/// batch's are. `Ok(None)` when the alert was deleted.
type PayloadFuture = Shared<BoxFuture<'static, Result<Option<Value>, String>>>;
type SharedPayloads = HashMap<(i64, DateTime<Utc>), PayloadFuture>;

fn shared_payloads(state: &AppState, batch: &[(DeliveryJob, JobCtx)]) -> SharedPayloads {
    let keys: BTreeSet<(i64, DateTime<Utc>)> = batch.iter().filter(|(d, _)| d.body.is_none()).map(|(d, _)| d.payload_key()).collect();
    keys.into_iter()
        .map(|(alert_id, at)| {
            let state = state.clone();
            let build = async move {
                payload::for_alert(&state.db, alert_id, &state.settings.calseta_api_base_url, at).await.map_err(|e| e.to_string())
            };
            ((alert_id, at), build.boxed().shared())
        })
        .collect()
}

/// Sends one attempt (outside any transaction); `None` when the agent or the alert was deleted
/// since (their runs and events went with them): nothing left to deliver or to report on.
/// (`Err(job)` hands the job back: there is nothing to send, it only has to be completed.)
async fn send_delivery(
    state: &AppState,
    mut delivery: DeliveryJob,
    job: JobCtx,
    shared: &SharedPayloads,
) -> Result<Result<Sent, JobCtx>, JobError> {
    let agent = store::find_by_id(&state.db, delivery.agent_id).await?;
    let alert_exists = store::alert_uuid(&state.db, delivery.alert_id).await?.is_some();
    let Some(agent) = agent.filter(|_| alert_exists) else { return Ok(Err(job)) };
    let body = match delivery.body.take() {
        Some(body) => body,
        None => {
            let Some(built) = shared.get(&delivery.payload_key()) else {
                return Err(JobError::Retry("the delivery's payload was not built".into()));
            };
            match built.clone().await {
                Ok(Some(shared)) => payload::for_agent(&shared, agent.redact_untrusted_fields),
                Ok(None) => return Ok(Err(job)),
                Err(e) => return Err(JobError::Retry(e)),
            }
        }
    };
    let secrets = delivery::open_secrets(state, &agent).await?;
    let attempt = delivery::send(state, &agent, &secrets, &delivery.webhook_id, &body).await;
    // From here on the body travels with the delivery: every retry sends these bytes.
    delivery.body = Some(body);
    tracing::info!(agent_uuid = %agent.uuid, alert_id = delivery.alert_id, webhook_id = %delivery.webhook_id,
        attempt = delivery.attempt, status = attempt.status, status_code = attempt.status_code, error = attempt.error.as_deref(),
        elapsed_ms = attempt.elapsed.as_millis() as u64, "agent webhook attempt");
    Ok(Ok(Sent { job, agent, delivery, attempt }))
}

/// Records attempts and marks `job_ids` done, in one transaction: each attempt's run row, then
/// its outcome (activity `agent_webhook_dispatched`) or its next attempt (a delayed job).
async fn record(state: &AppState, sent: &[&Sent], jobs: &[JobCtx]) -> Result<(), JobError> {
    let mut tx = state.db.begin().await?;
    for Sent { agent, delivery, attempt, .. } in sent.iter().copied() {
        let any_timeout = delivery.any_timeout || attempt.status == "timeout";
        let final_attempt = attempt.status == "success" || attempt.blocked || delivery.attempt > agent.retry_count.max(0);
        if !attempt.blocked {
            store::insert_run(&mut tx, run_row(agent, delivery, attempt)).await?;
        }
        if final_attempt {
            let status = match attempt.status {
                "success" => "success",
                _ if any_timeout => "timeout",
                _ => "failed",
            };
            let attempt_count = if attempt.blocked { delivery.attempt - 1 } else { delivery.attempt };
            let references = json!({"agent_name": agent.name, "agent_uuid": agent.uuid, "status": status,
                "status_code": attempt.status_code, "attempt_count": attempt_count, "error": attempt.error,
                "webhook_id": delivery.webhook_id});
            activity::record(&mut tx, NewEvent::for_alert(EVENT_DISPATCHED, &Actor::system(), delivery.alert_id, references)).await?;
        } else {
            let next = DeliveryJob { attempt: delivery.attempt + 1, any_timeout, ..delivery.clone() };
            let due = now() + chrono::Duration::from_std(backoff(delivery.attempt)).unwrap_or_default();
            crate::jobs::enqueue_at(&mut tx, &next, due).await?;
        }
    }
    crate::jobs::complete_all_in(&mut tx, jobs).await?;
    tx.commit().await?;
    Ok(())
}

fn run_row<'a>(agent: &'a AgentRow, delivery: &'a DeliveryJob, attempt: &Attempt) -> NewRun<'a> {
    NewRun {
        agent_id: agent.id,
        alert_id: delivery.alert_id,
        endpoint_url: &agent.endpoint_url,
        webhook_id: &delivery.webhook_id,
        status: attempt.status,
        response_status_code: attempt.status_code.map(i32::from),
        response_body: attempt.response_body.clone(),
        attempt: delivery.attempt,
        started_at: attempt.started_at,
        completed_at: attempt.completed_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 1..=4i32 {
            let base = 1u64 << (attempt - 1);
            let wait = backoff(attempt);
            assert!(wait >= Duration::from_millis(base * 500) && wait <= Duration::from_millis(base * 1500), "{attempt}: {wait:?}");
        }
        assert!(backoff(40) <= MAX_BACKOFF.mul_f64(1.5));
    }
}
