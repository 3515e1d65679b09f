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

/// A `detection_rules` row as the API shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DetectionRuleRow {
    pub id: i64,
    pub uuid: Uuid,
    pub name: String,
    pub source_rule_id: Option<String>,
    pub source_name: Option<String>,
    pub severity: Option<String>,
    pub is_active: bool,
    pub mitre_tactics: Json<Vec<String>>,
    pub mitre_techniques: Json<Vec<String>>,
    pub mitre_subtechniques: Json<Vec<String>>,
    pub data_sources: Json<Vec<String>>,
    pub run_frequency: Option<String>,
    pub created_by: Option<String>,
    pub documentation: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

pub async fn find_by_id(db: &crate::db::Db, id: i64) -> sqlx::Result<Option<DetectionRuleRow>> {
    crate::with_db!(db, p => sqlx::query_as::<_, DetectionRuleRow>(
        "SELECT id, uuid, name, source_rule_id, source_name, severity, is_active, mitre_tactics, mitre_techniques, \
         mitre_subtechniques, data_sources, run_frequency, created_by, documentation, created_at, updated_at \
         FROM detection_rules WHERE id = $1")
        .bind(id).fetch_optional(p).await)
}
