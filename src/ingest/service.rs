//! The synchronous half of ingestion, inside the HTTP request: normalize, fingerprint, dedup or
//! persist. A new alert, its detection-rule link, its `enrich_alert` job and its activity event
//! commit in ONE transaction, so a 202 means all of them are durable; nothing is enriched here.

use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::extract::extract_all;
use super::sources::AlertSource;
use crate::activity::{self, Actor, NewEvent, types};
use crate::alerts::store as alerts;
use crate::db::lock_key;
use crate::error::Error;
use crate::jobs::{self, store::NewJob};
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestResponse {
    pub alert_uuid: Uuid,
    /// `queued` (a new alert) or `deduplicated` (absorbed by an existing one).
    pub status: &'static str,
    pub is_duplicate: bool,
    pub duplicate_count: Option<i32>,
}

pub async fn ingest(
    state: &AppState,
    source: &'static dyn AlertSource,
    raw: Map<String, Value>,
    actor: &Actor,
) -> Result<IngestResponse, Error> {
    let normalized = source.normalize(&raw).map_err(|e| {
        Error::client(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "INVALID_PAYLOAD", e.to_string())
    })?;
    // The fingerprint uses Passes 1–2 only (Pass 3 reads raw-payload mappings, which would make
    // dedup depend on mapping edits in flight).
    let mappings = crate::mappings::active_mappings(&state.db, source.name()).await?;
    let candidates = extract_all(source, &raw, Some(&normalized), &mappings, false);
    let fingerprint = super::fingerprint::compute(&normalized.title, source.name(), &candidates);

    let mut tx = state.db.begin().await?;
    lock_key(&mut tx, &fingerprint).await?;
    let window = state.settings.alert_dedup_window_hours;
    if window > 0 {
        let since = Utc::now() - chrono::Duration::hours(window);
        if let Some(existing) = alerts::absorb_duplicate(&mut tx, &fingerprint, since).await? {
            let references = json!({
                "fingerprint": fingerprint, "duplicate_count": existing.duplicate_count,
                "source_name": source.name(), "title": normalized.title,
            });
            activity::record(&mut tx, NewEvent::for_alert(types::ALERT_DEDUPLICATED, actor, existing.id, references)).await?;
            tx.commit().await?;
            return Ok(IngestResponse {
                alert_uuid: existing.uuid,
                status: "deduplicated",
                is_duplicate: true,
                duplicate_count: Some(existing.duplicate_count),
            });
        }
    }

    let detection_rule_id = match source.detection_rule_ref(&raw) {
        Some(rule_ref) => Some(crate::rules::store::find_or_create_stub(&mut tx, source.name(), &rule_ref).await?),
        None => None,
    };
    let (alert_id, alert_uuid) = alerts::insert(
        &mut tx,
        &alerts::NewAlert {
            title: &normalized.title,
            description: normalized.description.as_deref(),
            severity: normalized.severity.as_str(),
            source_name: source.name(),
            occurred_at: normalized.occurred_at,
            raw_payload: &raw,
            tags: &normalized.tags,
            fingerprint: &fingerprint,
            detection_rule_id,
        },
    )
    .await?;
    enqueue_enrichment(state, &mut tx, alert_id).await?;
    let references = json!({"source_name": source.name(), "severity": normalized.severity.as_str(), "title": normalized.title});
    activity::record(&mut tx, NewEvent::for_alert(types::ALERT_INGESTED, actor, alert_id, references)).await?;
    tx.commit().await?;
    state.wakeup.job_enqueued();
    Ok(IngestResponse { alert_uuid, status: "queued", is_duplicate: false, duplicate_count: None })
}

/// Enqueues `enrich_alert` for an alert in the caller's transaction (ingest, re-enrich).
pub async fn enqueue_enrichment(state: &AppState, tx: &mut crate::db::Tx, alert_id: i64) -> sqlx::Result<Uuid> {
    jobs::store::enqueue(
        tx,
        &NewJob {
            queue: "enrichment",
            task: jobs::ENRICH_ALERT,
            payload: json!({"alert_id": alert_id}),
            max_attempts: state.settings.queue_max_retries.max(1),
            backoff_seconds: state.settings.queue_retry_backoff_seconds.max(0),
            run_at: crate::db::now(),
        },
    )
    .await
}
