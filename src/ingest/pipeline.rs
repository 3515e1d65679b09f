//! The worker half of ingestion: the `enrich_alert` job. It re-normalizes the stored raw payload,
//! runs all three extraction passes with fresh mappings, upserts the global indicators and their
//! links to the alert, then runs the enrichment step. Idempotent: a retry upserts the same rows.

use serde_json::Value;

use super::extract::extract_all;
use crate::activity::{self, Actor, NewEvent, types};
use crate::enrich::{AlertOutcome, IndicatorRef};
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
    // Everything that reads runs before the transaction: a transaction holds its connection (and
    // on SQLite the write lock), so it must never wait for a second one.
    let mut candidates = Vec::new();
    if let Some(source) = super::sources::get(&alert.source_name) {
        let raw = &alert.raw_payload.0;
        if !raw.is_empty() {
            let normalized = source.normalize(raw).ok();
            let mappings = crate::mappings::active_mappings(&state.db, source.name()).await?;
            candidates = extract_all(source, raw, normalized.as_ref(), &mappings, true);
        }
    }
    let mut tx = state.db.begin().await?;
    let pairs: Vec<(&str, &str)> = candidates.iter().map(|c| (c.itype.as_str(), c.value.as_str())).collect();
    indicators::upsert_and_link_all(&mut tx, alert.id, &pairs).await?;
    tx.commit().await?;
    // Every indicator linked to the alert (also ones added through the API) is enriched, outside
    // any transaction: providers are network calls.
    let linked: Vec<IndicatorRef> = indicators::list_for_alert(&state.db, alert.id)
        .await?
        .into_iter()
        .map(|row| IndicatorRef { id: row.id, itype: row.indicator_type, value: row.value })
        .collect();
    let indicator_types: Vec<&str> = linked.iter().map(|i| i.itype.as_str()).collect();
    let outcome = if state.enricher.wants(&state.db, &indicator_types).await {
        state.enricher.enrich_alert(&state.db, &linked).await
    } else {
        AlertOutcome::default()
    };
    let mut tx = state.db.begin().await?;
    crate::enrich::record_outcome(&mut tx, &outcome).await?;
    alerts::set_enrichment_status(&mut tx, alert.id, "Enriched").await?;
    let references = outcome.activity_references(linked.len() as i64, crate::db::now());
    activity::record(&mut tx, NewEvent::for_alert(types::ALERT_ENRICHMENT_COMPLETED, &Actor::system(), alert.id, references)).await?;
    tx.commit().await?;
    Ok(())
}
