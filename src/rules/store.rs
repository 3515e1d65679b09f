//! SQL for `detection_rules`: the only place that reads or writes the table.

use uuid::Uuid;

use crate::db::{Json, Tx, now};
use crate::with_tx;

/// The id of the rule `(source_name, source_rule_id)`, creating an active stub named after the
/// reference when none exists. Runs in the ingest transaction.
pub async fn find_or_create_stub(tx: &mut Tx, source_name: &str, rule_ref: &str) -> sqlx::Result<i64> {
    let existing: Option<i64> = with_tx!(tx, c => sqlx::query_scalar(
        "SELECT id FROM detection_rules WHERE source_name = $1 AND source_rule_id = $2 ORDER BY id LIMIT 1")
        .bind(source_name).bind(rule_ref).fetch_optional(c).await)?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let empty: Json<Vec<String>> = Json(Vec::new());
    let at = now();
    with_tx!(tx, c => sqlx::query_scalar(
        "INSERT INTO detection_rules (uuid, name, source_rule_id, source_name, is_active, mitre_tactics, \
         mitre_techniques, mitre_subtechniques, data_sources, is_system, created_at, updated_at) \
         VALUES ($1, $2, $2, $3, TRUE, $4, $4, $4, $4, FALSE, $5, $5) RETURNING id")
        .bind(Uuid::new_v4()).bind(rule_ref).bind(source_name).bind(&empty).bind(at).fetch_one(c).await)
}
