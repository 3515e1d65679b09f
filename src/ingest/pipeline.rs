//! The worker half of ingestion: the `enrich_alert` job. It re-normalizes the stored raw payload,
//! runs all three extraction passes with fresh mappings, upserts the global indicators and their
//! links to the alert, then runs the enrichment step. Idempotent: a retry upserts the same rows.

use serde_json::{Value, json};

use super::extract::extract_all;
use crate::activity::{self, Actor, NewEvent, types};
use crate::alerts::store as alerts;
use crate::indicators::store as indicators;
use crate::jobs::JobError;
use crate::state::AppState;

pub async fn enrich_alert(state: AppState, payload: Value) -> Result<(), JobError> {
    let Some(alert_id) = payload.get("alert_id").and_then(Value::as_i64) else {
        return Err(JobError::Fatal(format!("enrich_alert payload without alert_id: {payload}")));
    };
    let Some(alert) = alerts::load_for_pipeline(&state.db, alert_id).await? else {
        // Deleted since it was queued: nothing to do.
        tracing::info!(alert_id, "enrich_alert: alert no longer exists");
        return Ok(());
    };
    let source = super::sources::get(&alert.source_name);
    // Read before the transaction: a second pool connection wanted while this one holds the
    // SQLite write lock can deadlock against requests that hold the others waiting for it.
    let mappings = match source {
        Some(source) => super::service::active_mappings(&state.db, source.name()).await?,
        None => Vec::new(),
    };
    let mut tx = state.db.begin().await?;
    if let Some(source) = source {
        let raw = &alert.raw_payload.0;
        if !raw.is_empty() {
            let normalized = source.normalize(raw).ok();
            for candidate in extract_all(source, raw, normalized.as_ref(), &mappings, true) {
                indicators::upsert_and_link(&mut tx, alert.id, candidate.itype.as_str(), &candidate.value).await?;
            }
        }
    }
    // Enrichment step. Without configured providers there is nothing to look up: the alert is
    // complete as extracted.
    alerts::set_enrichment_status(&mut tx, alert.id, "Enriched").await?;
    tx.commit().await?;
    let indicator_count = indicators::count_for_alert(&state.db, alert.id).await?;
    let references = json!({
        "indicator_count": indicator_count, "providers_succeeded": [], "providers_failed": [],
        "malice_counts": {}, "enriched_at": crate::db::now(),
    });
    activity::record_detached(&state.db, NewEvent::for_alert(types::ALERT_ENRICHMENT_COMPLETED, &Actor::system(), alert.id, references)).await;
    Ok(())
}
