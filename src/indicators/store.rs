//! SQL for `indicators` and `alert_indicators`.

use crate::db::{Db, Tx, now};
use crate::{with_db, with_tx};

/// Upserts the global indicator `(type, value)` (a new one starts `Pending`, first_seen = last_seen
/// = now; an existing one gets last_seen = now) and links it to the alert. Returns its id.
pub async fn upsert_and_link(tx: &mut Tx, alert_id: i64, indicator_type: &str, value: &str) -> sqlx::Result<i64> {
    let at = now();
    let indicator_id: i64 = with_tx!(tx, c => sqlx::query_scalar(
        "INSERT INTO indicators (uuid, type, value, first_seen, last_seen, is_enriched, malice, malice_source, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4, FALSE, 'Pending', 'enrichment', $4, $4) \
         ON CONFLICT (type, value) DO UPDATE SET last_seen = excluded.last_seen, updated_at = excluded.updated_at RETURNING id")
        .bind(uuid::Uuid::new_v4()).bind(indicator_type).bind(value).bind(at).fetch_one(c).await)?;
    with_tx!(tx, c => sqlx::query(
        "INSERT INTO alert_indicators (alert_id, indicator_id, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (alert_id, indicator_id) DO NOTHING")
        .bind(alert_id).bind(indicator_id).bind(at).execute(c).await.map(|_| ()))?;
    Ok(indicator_id)
}

pub async fn count_for_alert(db: &Db, alert_id: i64) -> sqlx::Result<i64> {
    with_db!(db, p => sqlx::query_scalar("SELECT COUNT(*) FROM alert_indicators WHERE alert_id = $1").bind(alert_id).fetch_one(p).await)
}
