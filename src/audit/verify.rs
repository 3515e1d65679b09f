//! `calseta audit verify` (recompute the chain, name the first broken record) and
//! `calseta audit export --since …` (JSON lines for a SIEM). Both stream the table in id order,
//! a page at a time, so a long history costs constant memory.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sqlx::FromRow;
use uuid::Uuid;

use super::{Canonical, GENESIS_HASH, chain_hash};
use crate::db::{Db, Json};
use crate::with_db;

const PAGE: i64 = 1000;

#[derive(Debug, FromRow)]
struct AuditRow {
    id: i64,
    uuid: Uuid,
    occurred_at: DateTime<Utc>,
    actor_type: String,
    actor_key_prefix: Option<String>,
    actor_key_uuid: Option<Uuid>,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    request_id: Option<String>,
    outcome: String,
    details: Json<Value>,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    fn occurred_text(&self) -> String {
        self.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    fn computed_hash(&self) -> String {
        let occurred = self.occurred_text();
        chain_hash(
            &self.prev_hash,
            &Canonical {
                uuid: self.uuid,
                occurred_at: &occurred,
                actor_type: &self.actor_type,
                actor_key_prefix: self.actor_key_prefix.as_deref(),
                actor_key_uuid: self.actor_key_uuid,
                action: &self.action,
                target_type: self.target_type.as_deref(),
                target_id: self.target_id.as_deref(),
                request_id: self.request_id.as_deref(),
                outcome: &self.outcome,
                details: &self.details.0,
            },
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "uuid": self.uuid, "occurred_at": self.occurred_text(), "actor_type": self.actor_type,
            "actor_key_prefix": self.actor_key_prefix, "actor_key_uuid": self.actor_key_uuid,
            "action": self.action, "target_type": self.target_type, "target_id": self.target_id,
            "request_id": self.request_id, "outcome": self.outcome, "details": self.details.0,
            "prev_hash": self.prev_hash, "hash": self.hash,
        })
    }
}

const COLUMNS: &str = "id, uuid, occurred_at, actor_type, actor_key_prefix, actor_key_uuid, action, target_type, target_id, \
                       request_id, outcome, details, prev_hash, hash";

async fn page_after(db: &Db, after_id: i64, since: Option<DateTime<Utc>>) -> sqlx::Result<Vec<AuditRow>> {
    let sql = match since {
        Some(_) => format!("SELECT {COLUMNS} FROM audit_log WHERE id > $1 AND occurred_at >= $3 ORDER BY id LIMIT $2"),
        None => format!("SELECT {COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"),
    };
    with_db!(db, p => {
        let query = sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql)).bind(after_id).bind(PAGE);
        match since {
            Some(since) => query.bind(since).fetch_all(p).await,
            None => query.fetch_all(p).await,
        }
    })
}

/// The result of a verification.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every record links to the one before and hashes to its stored hash.
    Intact { records: u64, anchored_at_genesis: bool },
    /// The first record that does not: its uuid and id, and why.
    Broken { uuid: Uuid, id: i64, reason: String },
}

pub async fn verify(db: &Db) -> sqlx::Result<Verdict> {
    let mut previous: Option<String> = None;
    let mut anchored_at_genesis = true;
    let mut records = 0u64;
    let mut after = 0i64;
    loop {
        let rows = page_after(db, after, None).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for row in &rows {
            match &previous {
                // Retention prunes from the oldest end, so the first remaining record may point to
                // a pruned one: it is the anchor, and the report says so.
                None => anchored_at_genesis = row.prev_hash == GENESIS_HASH,
                Some(expected) if *expected != row.prev_hash => {
                    return Ok(Verdict::Broken {
                        uuid: row.uuid,
                        id: row.id,
                        reason: "its prev_hash is not the hash of the record before it (a record was removed or altered)".into(),
                    });
                }
                Some(_) => {}
            }
            if row.computed_hash() != row.hash {
                return Ok(Verdict::Broken { uuid: row.uuid, id: row.id, reason: "its content does not match its hash (the record was altered)".into() });
            }
            previous = Some(row.hash.clone());
            records += 1;
        }
    }
    Ok(Verdict::Intact { records, anchored_at_genesis })
}

/// Writes every record since `since` as one JSON object per line; returns how many.
pub async fn export(db: &Db, since: Option<DateTime<Utc>>, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut count = 0;
    let mut after = 0i64;
    loop {
        let rows = page_after(db, after, since).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for row in &rows {
            serde_json::to_writer(&mut *out, &row.to_json())?;
            out.write_all(b"\n")?;
            count += 1;
        }
    }
    out.flush()?;
    Ok(count)
}
