//! The synchronous half of ingestion, inside the HTTP request: normalize, fingerprint, dedup or
//! persist. A new alert, its detection-rule link, its `enrich_alert` job and its activity event
//! commit in ONE transaction, so a 202 means all of them are durable; nothing is enriched here.
//!
//! Group commit: the handler does the CPU work (normalization) and hands the prepared alert to
//! this process's ingest writer, which reads the indicator mappings once for every request waiting
//! at that moment (up to `MAX_BATCH`), fingerprints their alerts, persists them in one transaction
//! of multi-row statements and answers each request after the commit. One fsync and a handful of
//! statements then serve a whole batch instead of one alert. A batch that fails is retried one
//! request at a time, so a bad alert fails alone.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::extract::{FieldMapping, extract_all};
use super::normalized::NormalizedAlert;
use super::sources::AlertSource;
use crate::activity::{self, Actor, NewEvent, types};
use crate::alerts::store as alerts;
use crate::db::lock_keys;
use crate::error::Error;
use super::pipeline::EnrichAlert;
use crate::jobs;
use crate::state::AppState;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IngestResponse {
    pub alert_uuid: Uuid,
    /// `queued` (a new alert), `deduplicated` (absorbed by an existing one), or `stored` (a new
    /// alert ingested without enrichment: demo data seeded with `--skip-enrichment`).
    pub status: &'static str,
    pub is_duplicate: bool,
    pub duplicate_count: Option<i32>,
}

/// How an alert arrived, recorded in its `alert_ingested` / `alert_deduplicated` event
/// (`references.submitted_via`, `references.signature_verified`), so an alert of a signed source
/// that came through `POST /v1/alerts` is never mistaken for one its SIEM signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// `POST /v1/ingest/{source}`; `signature_verified` when the source's secret is configured
    /// (so the signature was checked and matched).
    Webhook { signature_verified: bool },
    /// `POST /v1/alerts`: no signature, only the API key.
    Api,
    /// Demo data written by `calseta seed-demo-data`, `seed-sandbox` or sandbox mode.
    Seed,
}

impl Provenance {
    fn references(self) -> (&'static str, bool) {
        match self {
            Provenance::Webhook { signature_verified } => ("webhook", signature_verified),
            Provenance::Api => ("api", false),
            Provenance::Seed => ("seed", false),
        }
    }
}

/// What ingest does besides persisting the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOptions {
    /// Enqueue `enrich_alert` for a new alert (always, except demo data seeded with
    /// `--skip-enrichment`: such an alert stays `Pending` until `POST /v1/alerts/{uuid}/enrich`).
    pub enqueue_enrichment: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions { enqueue_enrichment: true }
    }
}

pub async fn ingest(
    state: &AppState,
    source: &'static dyn AlertSource,
    raw: Map<String, Value>,
    actor: &Actor,
    provenance: Provenance,
) -> Result<IngestResponse, Error> {
    ingest_with(state, source, raw, actor, provenance, IngestOptions::default()).await
}

/// [`ingest`] with explicit options.
pub async fn ingest_with(
    state: &AppState,
    source: &'static dyn AlertSource,
    raw: Map<String, Value>,
    actor: &Actor,
    provenance: Provenance,
    options: IngestOptions,
) -> Result<IngestResponse, Error> {
    let normalized = source.normalize(&raw).map_err(|e| {
        Error::client(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "INVALID_PAYLOAD", e.to_string())
    })?;
    let services = IngestServices::of(state);
    let detection_rule_ref = source.detection_rule_ref(&raw);
    let prepared = PreparedAlert {
        source,
        raw,
        normalized,
        detection_rule_ref,
        actor: actor.clone(),
        provenance,
        enqueue_enrichment: options.enqueue_enrichment,
        traceparent: crate::observability::otel::traceparent(),
    };
    let response = services.persist(prepared).await?;
    crate::observability::ingest(source.name(), if response.is_duplicate { "deduplicated" } else { "accepted" });
    Ok(response)
}

/// Enqueues `enrich_alert` for an alert in the caller's transaction (ingest, re-enrich).
pub async fn enqueue_enrichment(tx: &mut crate::db::Tx, alert_id: i64) -> sqlx::Result<Uuid> {
    jobs::enqueue(tx, &EnrichAlert { alert_id, traceparent: None }).await
}

/// The current active indicator field mappings (all sources), read once for every caller waiting
/// when the read starts (see `mapping_reader`).
pub async fn current_mappings(state: &AppState) -> Result<Arc<Vec<FieldMapping>>, Error> {
    IngestServices::of(state).current_mappings().await
}

/// An alert ready to be written: everything but the database work and the fingerprint is done.
struct PreparedAlert {
    source: &'static dyn AlertSource,
    raw: Map<String, Value>,
    normalized: NormalizedAlert,
    detection_rule_ref: Option<String>,
    actor: Actor,
    provenance: Provenance,
    enqueue_enrichment: bool,
    /// The request's trace context, for the enrich job (None when traces are off).
    traceparent: Option<String>,
}

impl PreparedAlert {
    /// The dedup fingerprint under `mappings`, read by the writer after the alert arrived (so
    /// every mapping change committed before then applies). Passes 1–2 only: Pass 3 reads
    /// raw-payload mappings, which would make dedup depend on mapping edits in flight.
    fn fingerprint(&self, mappings: &[FieldMapping]) -> String {
        let candidates = extract_all(self.source, &self.raw, Some(&self.normalized), mappings, false);
        super::fingerprint::compute(&self.normalized.title, self.source.name(), &candidates)
    }
}

struct WriteRequest {
    alert: PreparedAlert,
    reply: oneshot::Sender<Result<IngestResponse, Error>>,
}

type MappingsReply = oneshot::Sender<Result<Arc<Vec<FieldMapping>>, Arc<sqlx::Error>>>;

/// Requests one ingest transaction persists at most.
pub const MAX_BATCH: usize = 128;

/// Requests waiting for a writer before senders wait too (back-pressure).
const WRITE_QUEUE: usize = 4096;

/// This process's ingest writer and mapping reader, started on first use and held by `AppState`.
#[derive(Clone)]
pub struct IngestServices {
    writes: mpsc::Sender<WriteRequest>,
    mapping_reads: mpsc::UnboundedSender<MappingsReply>,
}

impl IngestServices {
    fn of(state: &AppState) -> Self {
        state.ingest.get_or_init(|| Self::start(state)).clone()
    }

    fn start(state: &AppState) -> Self {
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(writer(state.clone(), queue));
        let (mapping_reads, waiting) = mpsc::unbounded_channel();
        tokio::spawn(mapping_reader(state.clone(), waiting));
        IngestServices { writes, mapping_reads }
    }

    async fn current_mappings(&self) -> Result<Arc<Vec<FieldMapping>>, Error> {
        let (reply, answer) = oneshot::channel();
        self.mapping_reads.send(reply).map_err(|_| Error::Unavailable("mapping reader stopped".into()))?;
        match answer.await {
            Ok(Ok(mappings)) => Ok(mappings),
            Ok(Err(e)) => Err(Error::Internal(anyhow::anyhow!("reading indicator field mappings: {e}"))),
            Err(_) => Err(Error::Unavailable("mapping reader stopped".into())),
        }
    }

    async fn persist(&self, alert: PreparedAlert) -> Result<IngestResponse, Error> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(WriteRequest { alert, reply })
            .await
            .map_err(|_| Error::Unavailable("ingest writer stopped".into()))?;
        answer.await.map_err(|_| Error::Unavailable("ingest writer stopped".into()))?
    }
}

/// Reads the mappings for every request waiting when the read starts. Each of them arrived before
/// the read began, so it sees every mapping change committed before its alert arrived — the same
/// guarantee as a read per alert, at one read per batch.
async fn mapping_reader(state: AppState, mut waiting: mpsc::UnboundedReceiver<MappingsReply>) {
    let mut batch = Vec::new();
    while waiting.recv_many(&mut batch, WRITE_QUEUE).await > 0 {
        let result = crate::mappings::all_active_mappings(&state.db).await.map(Arc::new).map_err(Arc::new);
        for reply in batch.drain(..) {
            let _ = reply.send(result.clone());
        }
    }
}

/// Takes every waiting request (up to `MAX_BATCH`) and persists them together.
///
/// One ingest writer per process, on both backends. SQLite admits one writer anyway. On
/// PostgreSQL, parallel writers split the waiting requests into small batches (four writers:
/// ~2.4 alerts per transaction, one: ~16), and a batch's cost is mostly per statement (executor
/// start-up, the metrics trigger, planning), not per row: one writer took 3,536 alerts/s at
/// 0.20 ms of PostgreSQL CPU each, four took 2,921/s at 0.39 ms (`ROLES=api
/// scripts/load/run.sh postgres 15`). Batches grow by themselves when a round trip costs more
/// (a remote server), up to `MAX_BATCH`.
async fn writer(state: AppState, mut queue: mpsc::Receiver<WriteRequest>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let requests: Vec<WriteRequest> = std::mem::take(&mut batch);
        let alerts: Vec<&PreparedAlert> = requests.iter().map(|r| &r.alert).collect();
        match persist_batch(&state, &alerts).await {
            Ok(responses) => {
                for (request, response) in requests.into_iter().zip(responses) {
                    let _ = request.reply.send(Ok(response));
                }
            }
            Err(e) if requests.len() == 1 => {
                if let Some(request) = requests.into_iter().next() {
                    let _ = request.reply.send(Err(e));
                }
            }
            Err(e) => {
                // One bad alert must not fail the others: retry each on its own.
                tracing::warn!(error = %e, alerts = requests.len(), "ingest batch failed; writing its alerts one by one");
                for request in requests {
                    let result = persist_batch(&state, &[&request.alert]).await.map(|mut one| one.remove(0));
                    let _ = request.reply.send(result);
                }
            }
        }
    }
}

/// Where a request's alert went.
enum Fate {
    /// Inserted as `new[index]`.
    New(usize),
    /// Counted as the `ordinal`-th duplicate of this batch against a stored alert.
    DuplicateOfStored { alert_id: i64, uuid: Uuid, ordinal: i32 },
    /// Counted as the `ordinal`-th duplicate of `new[index]`, inserted by this batch.
    DuplicateOfNew { index: usize, ordinal: i32 },
}

/// Persists `alerts` in one transaction and returns each one's response, in order. Dedup is exact:
/// the fingerprints are locked (PostgreSQL; SQLite has one writer), the most recent stored alert
/// of each is looked up once, and duplicates inside the batch count against the batch's first
/// alert of that fingerprint.
async fn persist_batch(state: &AppState, alerts: &[&PreparedAlert]) -> Result<Vec<IngestResponse>, Error> {
    let window = state.settings.alert_dedup_window_hours;
    // Read after every alert of the batch arrived, so each sees every mapping change committed
    // before it did: one read per batch. A read per request (a reader coalescing the requests
    // waiting) cost SQLite ~0.7 reads per alert, each a round trip to a connection thread;
    // reading inside the transaction instead cost PostgreSQL ~25 % of its ingest (measured).
    let mappings = crate::mappings::all_active_mappings(&state.db).await?;
    let fingerprints: Vec<String> = alerts.iter().map(|alert| alert.fingerprint(&mappings)).collect();
    let mut tx = state.db.begin().await?;
    let mut stored: HashMap<String, (i64, Uuid)> = HashMap::new();
    if window > 0 {
        let mut keys: Vec<&str> = fingerprints.iter().map(String::as_str).collect();
        keys.sort_unstable();
        keys.dedup();
        lock_keys(&mut tx, &keys).await?;
        let since = chrono::Utc::now() - chrono::Duration::hours(window);
        for latest in alerts::latest_by_fingerprints(&mut tx, &keys, since).await? {
            stored.insert(latest.fingerprint, (latest.id, latest.uuid));
        }
    }

    // Decide each request's fate in arrival order.
    let mut fates = Vec::with_capacity(alerts.len());
    let mut new: Vec<(&PreparedAlert, &str)> = Vec::new();
    let mut new_duplicates: Vec<i32> = Vec::new();
    let mut stored_duplicates: HashMap<i64, i32> = HashMap::new();
    let mut first_new_of: HashMap<&str, usize> = HashMap::new();
    for (alert, fingerprint) in alerts.iter().zip(&fingerprints) {
        let fingerprint = fingerprint.as_str();
        let fate = if window <= 0 {
            None
        } else if let Some((alert_id, uuid)) = stored.get(fingerprint) {
            let count = stored_duplicates.entry(*alert_id).or_insert(0);
            *count += 1;
            Some(Fate::DuplicateOfStored { alert_id: *alert_id, uuid: *uuid, ordinal: *count })
        } else if let Some(index) = first_new_of.get(fingerprint) {
            new_duplicates[*index] += 1;
            Some(Fate::DuplicateOfNew { index: *index, ordinal: new_duplicates[*index] })
        } else {
            None
        };
        fates.push(fate.unwrap_or_else(|| {
            first_new_of.insert(fingerprint, new.len());
            new.push((alert, fingerprint));
            new_duplicates.push(0);
            Fate::New(new.len() - 1)
        }));
    }

    // Duplicates of stored alerts: one UPDATE per alert, returning the count after this batch.
    let mut stored_totals: HashMap<i64, i32> = HashMap::new();
    for (alert_id, count) in &stored_duplicates {
        let total = alerts::absorb_duplicates(&mut tx, *alert_id, *count).await?.ok_or_else(|| {
            // Deleted after the lookup (the lock covers ingest, not deletes): the retry of each
            // request on its own looks again and finds no alert to count against.
            Error::Internal(anyhow::anyhow!("alert {alert_id} vanished during dedup"))
        })?;
        stored_totals.insert(*alert_id, total);
    }

    // New alerts, their rules, jobs and events.
    let rule_refs: Vec<(&str, &str)> =
        new.iter().filter_map(|(a, _)| a.detection_rule_ref.as_deref().map(|r| (a.source.name(), r))).collect();
    let rule_ids = crate::rules::store::find_or_create_stubs(&mut tx, &rule_refs).await?;
    let rows: Vec<alerts::NewAlert> = new
        .iter()
        .zip(&new_duplicates)
        .map(|((alert, fingerprint), duplicates)| alerts::NewAlert {
            uuid: crate::db::row_uuid(),
            title: &alert.normalized.title,
            description: alert.normalized.description.as_deref(),
            severity: alert.normalized.severity.as_str(),
            source_name: alert.source.name(),
            occurred_at: alert.normalized.occurred_at,
            raw_payload: &alert.raw,
            tags: &alert.normalized.tags,
            fingerprint,
            detection_rule_id: alert
                .detection_rule_ref
                .as_ref()
                .and_then(|r| rule_ids.get(&(alert.source.name().to_owned(), r.clone())).copied()),
            duplicate_count: *duplicates,
        })
        .collect();
    let new_ids = alerts::insert_many(&mut tx, &rows).await?;
    let jobs: Vec<EnrichAlert> =
        new.iter().zip(&new_ids).filter(|((alert, _), _)| alert.enqueue_enrichment).map(|((alert, _), id)| EnrichAlert { alert_id: *id, traceparent: alert.traceparent.clone() }).collect();
    let enqueued = jobs::enqueue_many_here(&mut tx, &state.wakeup, &jobs).await?;

    let mut events = Vec::with_capacity(alerts.len());
    let mut responses = Vec::with_capacity(alerts.len());
    for ((alert, fate), fingerprint) in alerts.iter().zip(&fates).zip(&fingerprints) {
        let (alert_id, uuid, duplicate_count) = match *fate {
            Fate::New(index) => {
                let (submitted_via, signature_verified) = alert.provenance.references();
                let references = json!({"source_name": alert.source.name(), "severity": alert.normalized.severity.as_str(),
                    "title": alert.normalized.title, "submitted_via": submitted_via, "signature_verified": signature_verified});
                events.push(NewEvent::for_alert(types::ALERT_INGESTED, &alert.actor, new_ids[index], references));
                let status = if alert.enqueue_enrichment { "queued" } else { "stored" };
                responses.push(IngestResponse { alert_uuid: rows[index].uuid, status, is_duplicate: false, duplicate_count: None });
                continue;
            }
            Fate::DuplicateOfStored { alert_id, uuid, ordinal } => {
                (alert_id, uuid, stored_totals[&alert_id] - stored_duplicates[&alert_id] + ordinal)
            }
            Fate::DuplicateOfNew { index, ordinal } => (new_ids[index], rows[index].uuid, ordinal),
        };
        let (submitted_via, signature_verified) = alert.provenance.references();
        let references = json!({
            "fingerprint": fingerprint, "duplicate_count": duplicate_count,
            "source_name": alert.source.name(), "title": alert.normalized.title,
            "submitted_via": submitted_via, "signature_verified": signature_verified,
        });
        events.push(NewEvent::for_alert(types::ALERT_DEDUPLICATED, &alert.actor, alert_id, references));
        responses.push(IngestResponse { alert_uuid: uuid, status: "deduplicated", is_duplicate: true, duplicate_count: Some(duplicate_count) });
    }
    activity::record_all(&mut tx, events).await?;
    tx.commit().await?;
    enqueued.hand_over(&state.db, &state.wakeup).await;
    Ok(responses)
}
