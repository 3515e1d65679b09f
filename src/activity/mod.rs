//! Activity events: the append-only, alert-scoped audit feed (`GET /v1/alerts/{uuid}/activity`).
//! Writers call `record` inside their own transaction (so an event exists iff its action
//! committed) or `record_detached` for best-effort events outside one. References are scrubbed
//! of secrets before they are stored.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;
use uuid::Uuid;

use crate::db::{Db, Filter, Json, Tx, fetch_page, now};
use crate::with_tx;

pub mod types {
    pub const ALERT_INGESTED: &str = "alert_ingested";
    pub const ALERT_DEDUPLICATED: &str = "alert_deduplicated";
    pub const ALERT_ENRICHMENT_COMPLETED: &str = "alert_enrichment_completed";
    pub const ALERT_STATUS_UPDATED: &str = "alert_status_updated";
    pub const ALERT_SEVERITY_UPDATED: &str = "alert_severity_updated";
    pub const ALERT_CLOSED: &str = "alert_closed";
    pub const ALERT_FINDING_ADDED: &str = "alert_finding_added";
    pub const ALERT_INDICATORS_ADDED: &str = "alert_indicators_added";
    pub const ALERT_MALICE_UPDATED: &str = "alert_malice_updated";
    pub const INDICATOR_MALICE_UPDATED: &str = "indicator_malice_updated";
}

/// Who caused an event: `api` (REST, with the key prefix), `mcp`, or `system` (the worker).
#[derive(Debug, Clone)]
pub struct Actor {
    pub actor_type: &'static str,
    pub key_prefix: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Actor { actor_type: "system", key_prefix: None }
    }
    pub fn api(key_prefix: &str) -> Self {
        Actor { actor_type: "api", key_prefix: Some(key_prefix.to_owned()) }
    }
    pub fn mcp(key_prefix: &str) -> Self {
        Actor { actor_type: "mcp", key_prefix: Some(key_prefix.to_owned()) }
    }
}

#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub event_type: &'a str,
    pub actor: &'a Actor,
    pub alert_id: Option<i64>,
    pub workflow_id: Option<i64>,
    pub detection_rule_id: Option<i64>,
    pub references: Value,
}

impl<'a> NewEvent<'a> {
    pub fn for_alert(event_type: &'a str, actor: &'a Actor, alert_id: i64, references: Value) -> Self {
        NewEvent { event_type, actor, alert_id: Some(alert_id), workflow_id: None, detection_rule_id: None, references }
    }
}

const INSERT: &str = "INSERT INTO activity_events (uuid, event_type, actor_type, actor_key_prefix, alert_id, \
                      workflow_id, detection_rule_id, event_references, created_at) VALUES ";

/// Columns bound per event by `record_all`.
const BINDS_PER_EVENT: usize = 9;

/// Records an event in the caller's transaction.
pub async fn record(tx: &mut Tx, event: NewEvent<'_>) -> sqlx::Result<()> {
    record_all(tx, vec![event]).await
}

/// Records events in the caller's transaction, in order, with one statement per
/// `Tx::rows_per_statement` events (on PostgreSQL a whole group-commit batch in one round trip).
pub async fn record_all(tx: &mut Tx, events: Vec<NewEvent<'_>>) -> sqlx::Result<()> {
    let per_statement = tx.rows_per_statement();
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        insert_events(tx, events.by_ref().take(per_statement).collect()).await?;
    }
    Ok(())
}

async fn insert_events(tx: &mut Tx, events: Vec<NewEvent<'_>>) -> sqlx::Result<()> {
    let mut p = tx.sequential_placeholders();
    let row = format!("({})", vec!["?"; BINDS_PER_EVENT].join(", "));
    let rows: Vec<String> = (0..events.len()).map(|_| p.fill(&row)).collect();
    let sql = format!("{INSERT}{}", rows.join(", "));
    let at = now();
    with_tx!(tx, c => {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for event in events {
            query = query
                .bind(crate::db::row_uuid()).bind(event.event_type).bind(event.actor.actor_type).bind(event.actor.key_prefix.as_deref())
                .bind(event.alert_id).bind(event.workflow_id).bind(event.detection_rule_id).bind(Json(sanitize(event.references)))
                .bind(at);
        }
        query.execute(c).await.map(|_| ())
    })
}

/// Records an event on its own; a failure is logged, never returned (the action already happened).
/// It still takes a transaction: on SQLite that queues it on the process's write gate instead of
/// letting it spin in SQLite's busy handler behind other writers.
pub async fn record_detached(db: &Db, event: NewEvent<'_>) {
    let event_type = event.event_type.to_owned();
    let result = async {
        let mut tx = db.begin().await?;
        record(&mut tx, event).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, event_type, "could not record activity event");
    }
}

const SECRET_KEYS: &[&str] = &[
    "password", "secret", "token", "api_key", "apikey", "api-key", "authorization", "auth_header",
    "credential", "private_key", "access_token", "refresh_token", "client_secret",
];

/// Secret-looking strings. Calseta's `sk-\S+` also matched ordinary words such as `task-123`;
/// ours needs the token shape (`sk-` + 16 or more key characters at a word start).
static SECRET_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)(cai_\S+|\bsk-[A-Za-z0-9_-]{16,}|xoxb-\S+|bearer\s+\S+|api[_-]?key["']?\s*[:=]\s*["']?\S+)"#)
        .expect("valid regex")
});

pub const REDACTED: &str = "[REDACTED]";

/// Replaces secret-named keys and secret-looking strings, recursively.
pub fn sanitize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
                        (k, Value::String(REDACTED.into()))
                    } else {
                        (k, sanitize(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(sanitize).collect()),
        Value::String(s) if SECRET_VALUE.is_match(&s) => Value::String(REDACTED.into()),
        other => other,
    }
}

/// An event as `GET /v1/alerts/{uuid}/activity` returns it. The rows it refers to are named by
/// their UUIDs: Calseta returns the internal sequential ids (`alert_id`, `workflow_id`,
/// `detection_rule_id`), which reveal volumes; no internal id leaves this server (SECURITY.md).
#[derive(Debug, serde::Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ActivityEventResponse {
    pub uuid: Uuid,
    pub event_type: String,
    pub actor_type: String,
    pub actor_key_prefix: Option<String>,
    pub alert_uuid: Option<Uuid>,
    pub workflow_uuid: Option<Uuid>,
    pub detection_rule_uuid: Option<Uuid>,
    /// Event-specific payload (stored in the `event_references` column).
    #[serde(rename = "references")]
    #[sqlx(rename = "event_references")]
    #[schema(value_type = Option<Object>)]
    pub references: Option<Json<Value>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The response columns, with each referenced row's UUID in place of its id.
const EVENT_SELECT: &str = "SELECT activity_events.uuid, activity_events.event_type, activity_events.actor_type, \
    activity_events.actor_key_prefix, alerts.uuid AS alert_uuid, workflows.uuid AS workflow_uuid, \
    detection_rules.uuid AS detection_rule_uuid, activity_events.event_references, activity_events.created_at \
    FROM activity_events \
    LEFT JOIN alerts ON alerts.id = activity_events.alert_id \
    LEFT JOIN workflows ON workflows.id = activity_events.workflow_id \
    LEFT JOIN detection_rules ON detection_rules.id = activity_events.detection_rule_id";

/// One page of an alert's events, newest first, and their total.
pub async fn list_for_alert(db: &Db, alert_id: i64, limit: i64, offset: i64) -> sqlx::Result<(Vec<ActivityEventResponse>, i64)> {
    let mut filter = Filter::new(db);
    filter.eq("activity_events.alert_id", alert_id);
    fetch_page(db, EVENT_SELECT, &filter, "activity_events.created_at DESC, activity_events.id DESC", limit, offset).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scrubs_secret_keys_and_values() {
        let out = sanitize(json!({
            "title": "ok",
            "Authorization": "x",
            "nested": {"client_secret": "y", "list": ["Bearer abc.def", "fine", "cai_abcdefgh"]},
            "note": "api_key=12345",
            "task": "task-123",
            "openai": "sk-abcdefghijklmnopqrstuv",
        }));
        assert_eq!(out["title"], "ok");
        assert_eq!(out["Authorization"], REDACTED);
        assert_eq!(out["nested"]["client_secret"], REDACTED);
        assert_eq!(out["nested"]["list"], json!([REDACTED, "fine", REDACTED]));
        assert_eq!(out["note"], REDACTED);
        assert_eq!(out["task"], "task-123", "ordinary words survive (Calseta QUIRK fixed)");
        assert_eq!(out["openai"], REDACTED);
    }
}
