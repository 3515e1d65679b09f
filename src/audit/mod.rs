//! The security audit trail: one append-only, hash-chained `audit_log` row per mutating operation
//! (written by the service layer in the operation's own transaction, so a record exists iff its
//! action committed) and per security decision. Each row carries the hash of the previous one:
//! `hash = SHA-256(prev_hash ‖ "\n" ‖ canonical JSON of the row)`, so editing or deleting a
//! stored row breaks the chain at that row. Appends are serialized: on PostgreSQL by a
//! transaction-scoped advisory lock, on SQLite by the process's write gate (one writer).

pub mod verify;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::{Json, Tx, now};
use crate::with_tx;

/// `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The advisory-lock key that serializes appends on PostgreSQL ("calseta:audit").
const PG_APPEND_LOCK: i64 = 0x6361_6c73_6175_6474;

/// How an audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Denied,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }
}

/// One audited action: `action` is the operation name (e.g. `alerts.patch`), the target its
/// type and public id (a UUID or name; never an internal sequential id).
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub outcome: Outcome,
    pub details: Value,
}

impl<'a> Record<'a> {
    pub fn success(action: &'a str, target_type: &'a str, target_id: impl ToString) -> Self {
        Record { action, target_type, target_id: Some(target_id.to_string()), outcome: Outcome::Success, details: json!({}) }
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// The fields the hash covers, in a fixed order.
pub struct Canonical<'a> {
    pub uuid: Uuid,
    pub occurred_at: &'a str,
    pub actor_type: &'a str,
    pub actor_key_prefix: Option<&'a str>,
    pub actor_key_uuid: Option<Uuid>,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub outcome: &'a str,
    pub details: &'a Value,
}

/// The chain step: SHA-256 over the previous hash and the row's canonical JSON (keys in the
/// order above; `details` as serde_json writes it, which sorts object keys).
pub fn chain_hash(prev_hash: &str, row: &Canonical<'_>) -> String {
    let canonical = json!([
        row.uuid.to_string(),
        row.occurred_at,
        row.actor_type,
        row.actor_key_prefix,
        row.actor_key_uuid.map(|u| u.to_string()),
        row.action,
        row.target_type,
        row.target_id,
        row.request_id,
        row.outcome,
        row.details,
    ]);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

/// Appends one record in the caller's transaction.
pub async fn record(tx: &mut Tx, principal: &Principal, record: Record<'_>) -> sqlx::Result<()> {
    let actor = principal.actor();
    let key = principal.key();
    let request_id = principal.request().map(|r| r.request_id.clone()).filter(|r| !r.is_empty());
    let details = crate::activity::sanitize(record.details);
    let occurred_at = now();
    let occurred_text = occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let uuid = Uuid::new_v4();
    if let Tx::Postgres(_) = tx {
        with_tx!(tx, c => sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_APPEND_LOCK).execute(c).await.map(|_| ()))?;
    }
    let prev: Option<String> =
        with_tx!(tx, c => sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetch_optional(c).await)?;
    let prev = prev.unwrap_or_else(|| GENESIS_HASH.to_owned());
    let canonical = Canonical {
        uuid,
        occurred_at: &occurred_text,
        actor_type: actor.actor_type,
        actor_key_prefix: actor.key_prefix.as_deref(),
        actor_key_uuid: key.map(|k| k.key_uuid),
        action: record.action,
        target_type: Some(record.target_type),
        target_id: record.target_id.as_deref(),
        request_id: request_id.as_deref(),
        outcome: record.outcome.as_str(),
        details: &details,
    };
    let hash = chain_hash(&prev, &canonical);
    let sql = "INSERT INTO audit_log (uuid, occurred_at, actor_type, actor_key_prefix, actor_key_uuid, action, target_type, \
               target_id, request_id, outcome, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
    with_tx!(tx, c => sqlx::query(sql)
        .bind(uuid)
        .bind(occurred_at)
        .bind(actor.actor_type)
        .bind(actor.key_prefix.as_deref())
        .bind(key.map(|k| k.key_uuid))
        .bind(record.action)
        .bind(record.target_type)
        .bind(record.target_id.as_deref())
        .bind(request_id.as_deref())
        .bind(record.outcome.as_str())
        .bind(Json(&details))
        .bind(&prev)
        .bind(&hash)
        .execute(c)
        .await
        .map(|_| ()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_field_and_the_previous_hash() {
        let details = json!({"b": 1, "a": 2});
        let row = Canonical {
            uuid: Uuid::nil(),
            occurred_at: "2026-01-01T00:00:00.000000Z",
            actor_type: "api",
            actor_key_prefix: Some("cai_abcd"),
            actor_key_uuid: None,
            action: "alerts.patch",
            target_type: Some("alert"),
            target_id: Some("x"),
            request_id: None,
            outcome: "success",
            details: &details,
        };
        let first = chain_hash(GENESIS_HASH, &row);
        assert_eq!(first.len(), 64);
        assert_eq!(first, chain_hash(GENESIS_HASH, &row), "deterministic");
        assert_ne!(first, chain_hash(&first, &row), "chained");
        let other = Canonical { outcome: "denied", ..row };
        assert_ne!(first, chain_hash(GENESIS_HASH, &other));
    }
}
