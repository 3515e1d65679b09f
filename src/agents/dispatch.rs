//! Durable agent dispatch: three jobs on the `dispatch` queue.
//!
//! * `dispatch_agent_webhooks {alert_id}` — matching (§1.1) on the alert as it is when the job
//!   runs, then one delivery job per matching agent, enqueued with this job's success in one
//!   transaction;
//! * `dispatch_single_agent_webhook {alert_id, agent_id}` — the same for one agent, no matching;
//! * `deliver_agent_webhook {…, webhook_id, attempt, body}` — ONE attempt of one agent's delivery.
//!   Its `agent_runs` row, and either the outcome (activity `agent_webhook_dispatched`) or the
//!   next attempt (a new job due after exponential backoff with jitter), commit together with
//!   the job's success. No worker ever sleeps between attempts.
//!
//! The body and `webhook-id` travel in the delivery job, so every retry — including the re-run
//! of a job whose worker was killed mid-send (its lease expires and the reaper hands it out
//! again) — sends the same bytes under the same id: receivers drop duplicates by id.
//!
//! [`run_claimed`] is the one adapter to the job registry (`jobs::tasks()`); everything else is
//! plain functions of `(state, payload)`.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::delivery::{self, Attempt};
use super::store::{self, AgentRow, NewRun};
use super::{matching, payload};
use crate::activity::{self, Actor, NewEvent};
use crate::db::{Tx, now};
use crate::jobs::store::{self as jobs, JobRow, NewJob};
use crate::jobs::{Claimed, JobError, Outcome};
use crate::state::AppState;

pub const MATCH_TASK: &str = "dispatch_agent_webhooks";
pub const SINGLE_TASK: &str = "dispatch_single_agent_webhook";
pub const DELIVER_TASK: &str = "deliver_agent_webhook";
pub const QUEUE: &str = "dispatch";
pub const EVENT_DISPATCHED: &str = "agent_webhook_dispatched";

/// Job-level attempts cover lost workers and database errors, not HTTP failures (those are
/// the delivery's own attempts, one job each).
const JOB_MAX_ATTEMPTS: i32 = 5;
const JOB_BACKOFF_SECONDS: i32 = 5;
/// Longest wait between two delivery attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Serialize, Deserialize)]
struct MatchJob {
    alert_id: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct SingleJob {
    alert_id: i64,
    agent_id: i64,
}

/// One attempt of one agent's delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeliveryJob {
    alert_id: i64,
    agent_id: i64,
    /// Standard Webhooks message id, the same for every attempt of this delivery.
    webhook_id: String,
    /// 1-based.
    attempt: i32,
    /// Whether an earlier attempt timed out (the outcome is then `timeout`, as Calseta reports).
    any_timeout: bool,
    body: Value,
}

fn new_job(task: &'static str, payload: Value, run_at: chrono::DateTime<chrono::Utc>) -> NewJob<'static> {
    NewJob { queue: QUEUE, task, payload, max_attempts: JOB_MAX_ATTEMPTS, backoff_seconds: JOB_BACKOFF_SECONDS, run_at }
}

fn to_value(payload: &impl Serialize) -> Value {
    serde_json::to_value(payload).expect("job payloads serialize")
}

/// After enrichment: a matching job per alert, in the caller's transaction — unless no agent
/// is active, in which case nothing could match and the queue is spared.
pub async fn enqueue_for_alerts(tx: &mut Tx, alert_ids: &[i64]) -> sqlx::Result<()> {
    if alert_ids.is_empty() || !store::any_active(tx).await? {
        return Ok(());
    }
    let at = now();
    let jobs: Vec<NewJob> = alert_ids.iter().map(|&alert_id| new_job(MATCH_TASK, to_value(&MatchJob { alert_id }), at)).collect();
    jobs::enqueue_many(tx, &jobs).await.map(|_| ())
}

/// `trigger-agents`: a matching job, even when nothing matches now (the worker re-evaluates).
pub async fn enqueue_match(tx: &mut Tx, alert_id: i64) -> sqlx::Result<()> {
    jobs::enqueue(tx, &new_job(MATCH_TASK, to_value(&MatchJob { alert_id }), now())).await.map(|_| ())
}

/// `dispatch-agent`: one agent, no matching.
pub async fn enqueue_single(tx: &mut Tx, alert_id: i64, agent_id: i64) -> sqlx::Result<()> {
    jobs::enqueue(tx, &new_job(SINGLE_TASK, to_value(&SingleJob { alert_id, agent_id }), now())).await.map(|_| ())
}

/// The adapter to today's job registry: runs a claimed batch of the three tasks.
pub fn run_claimed(state: AppState, claimed: Claimed) -> BoxFuture<'static, Vec<Outcome>> {
    Box::pin(async move {
        let Claimed { worker, jobs } = claimed;
        let (deliveries, others): (Vec<&JobRow>, Vec<&JobRow>) = jobs.iter().partition(|job| job.task == DELIVER_TASK);
        let runs = others.into_iter().map(|job| {
            let (state, worker) = (&state, worker.as_str());
            async move {
                let result = match job.task.as_str() {
                    MATCH_TASK => run_match(state, worker, job).await,
                    SINGLE_TASK => run_single(state, worker, job).await,
                    other => Err(JobError::Fatal(format!("not an agent dispatch task: {other}"))),
                };
                (job.id, result)
            }
        });
        let (mut outcomes, delivered) = futures::future::join(futures::future::join_all(runs), run_deliveries(&state, &worker, &deliveries)).await;
        outcomes.extend(delivered);
        outcomes
    })
}

fn parse<T: serde::de::DeserializeOwned>(job: &JobRow) -> Result<T, JobError> {
    serde_json::from_value(job.payload.0.clone()).map_err(|e| JobError::Fatal(format!("{} payload: {e}", job.task)))
}

/// Enqueues the deliveries and marks the job done, in one transaction.
async fn enqueue_deliveries(state: &AppState, worker: &str, job: &JobRow, deliveries: Vec<DeliveryJob>) -> Result<(), JobError> {
    let at = now();
    let new_jobs: Vec<NewJob> = deliveries.iter().map(|d| new_job(DELIVER_TASK, to_value(d), at)).collect();
    let mut tx = state.db.begin().await?;
    jobs::enqueue_many(&mut tx, &new_jobs).await?;
    jobs::succeed_in(&mut tx, &[job.id], worker).await?;
    tx.commit().await?;
    if !new_jobs.is_empty() {
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
        body: payload::for_agent(shared, agent.redact_untrusted_fields),
    }
}

async fn run_match(state: &AppState, worker: &str, job: &JobRow) -> Result<(), JobError> {
    let MatchJob { alert_id } = parse(job)?;
    let shared = payload::for_alert(&state.db, alert_id, &state.settings.calseta_api_base_url).await.map_err(retry)?;
    let deliveries = match shared {
        // The alert was deleted since: nothing to send.
        None => Vec::new(),
        Some(shared) => {
            let agents = store::active(&state.db).await?;
            let facts = matching::facts_of(&shared["alert"]);
            agents.iter().filter(|a| matching::matches(a, &facts)).map(|a| first_delivery(alert_id, a, &shared)).collect()
        }
    };
    enqueue_deliveries(state, worker, job, deliveries).await
}

async fn run_single(state: &AppState, worker: &str, job: &JobRow) -> Result<(), JobError> {
    let SingleJob { alert_id, agent_id } = parse(job)?;
    let deliveries = match store::find_by_id(&state.db, agent_id).await? {
        None => {
            tracing::info!(agent_id, alert_id, "dispatch_single_agent_webhook: the agent was deleted");
            Vec::new()
        }
        Some(agent) => match payload::for_alert(&state.db, alert_id, &state.settings.calseta_api_base_url).await.map_err(retry)? {
            None => {
                tracing::info!(agent_id, alert_id, "dispatch_single_agent_webhook: the alert was deleted");
                Vec::new()
            }
            Some(shared) => vec![first_delivery(alert_id, &agent, &shared)],
        },
    };
    enqueue_deliveries(state, worker, job, deliveries).await
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
    job_id: i64,
    agent: AgentRow,
    delivery: DeliveryJob,
    attempt: Attempt,
}

/// A claimed batch of delivery attempts: sent concurrently, then recorded in one transaction
/// (one commit, on SQLite one fsync, per batch rather than per delivery). Should that
/// transaction fail, each is recorded on its own so one bad row only retries its own job.
async fn run_deliveries(state: &AppState, worker: &str, batch: &[&JobRow]) -> Vec<Outcome> {
    if batch.is_empty() {
        return Vec::new();
    }
    let sends = futures::future::join_all(batch.iter().map(|job| async move { (job.id, send_delivery(state, job).await) })).await;
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
    let (mut sent, mut nothing_to_send) = (Vec::new(), Vec::new());
    for (job_id, result) in sends {
        match result {
            Ok(Some(one)) => sent.push(one),
            Ok(None) => nothing_to_send.push(job_id),
            Err(e) => outcomes.push((job_id, Err(e))),
        }
    }
    let all_ids: Vec<i64> = sent.iter().map(|s| s.job_id).chain(nothing_to_send.iter().copied()).collect();
    if record(state, worker, &sent, &all_ids).await.is_ok() {
        outcomes.extend(all_ids.into_iter().map(|id| (id, Ok(()))));
        return outcomes;
    }
    for one in &sent {
        let result = record(state, worker, std::slice::from_ref(one), &[one.job_id]).await;
        outcomes.push((one.job_id, result.map_err(|e| JobError::Retry(e.to_string()))));
    }
    if !nothing_to_send.is_empty() {
        let result = record(state, worker, &[], &nothing_to_send).await.map_err(|e| e.to_string());
        outcomes.extend(nothing_to_send.iter().map(|id| (*id, result.clone().map_err(JobError::Retry))));
    }
    outcomes
}

/// Sends one attempt (outside any transaction); `None` when the agent or the alert was deleted
/// since (their runs and events went with them): nothing left to deliver or to report on.
async fn send_delivery(state: &AppState, job: &JobRow) -> Result<Option<Sent>, JobError> {
    let delivery: DeliveryJob = parse(job)?;
    let agent = store::find_by_id(&state.db, delivery.agent_id).await?;
    let alert_exists = store::alert_uuid(&state.db, delivery.alert_id).await?.is_some();
    let Some(agent) = agent.filter(|_| alert_exists) else { return Ok(None) };
    let secrets = delivery::open_secrets(state, &agent).await?;
    let attempt = delivery::send(state, &agent, &secrets, &delivery.webhook_id, &delivery.body).await;
    tracing::info!(agent_uuid = %agent.uuid, alert_id = delivery.alert_id, webhook_id = %delivery.webhook_id,
        attempt = delivery.attempt, status = attempt.status, status_code = attempt.status_code, error = attempt.error.as_deref(),
        elapsed_ms = attempt.elapsed.as_millis() as u64, "agent webhook attempt");
    Ok(Some(Sent { job_id: job.id, agent, delivery, attempt }))
}

/// Records attempts and marks `job_ids` done, in one transaction: each attempt's run row, then
/// its outcome (activity `agent_webhook_dispatched`) or its next attempt (a delayed job).
async fn record(state: &AppState, worker: &str, sent: &[Sent], job_ids: &[i64]) -> sqlx::Result<()> {
    let mut tx = state.db.begin().await?;
    for Sent { agent, delivery, attempt, .. } in sent {
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
            jobs::enqueue(&mut tx, &new_job(DELIVER_TASK, to_value(&next), due)).await?;
        }
    }
    jobs::succeed_in(&mut tx, job_ids, worker).await?;
    tx.commit().await
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
