//! The operations without HTTP, as MCP tools and jobs will call them: the scope is enforced by
//! the service itself (no extractor in front), and the actor of activity and audit records is
//! whoever the principal is.

use std::sync::Arc;

use serde_json::{Map, json};
use uuid::Uuid;

use super::*;
use crate::auth::{KeyIdentity, KeyType};
use crate::config::Settings;
use crate::db::Db;
use crate::domain::AlertStatus;
use crate::error::Error;
use crate::{with_db, with_tx};

async fn state() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite:{}", dir.path().join("calseta.db").display()), 2).await.unwrap();
    db.migrate().await.unwrap();
    (crate::app::build_state(Settings::default(), db).await.unwrap(), dir)
}

/// An MCP caller holding exactly `scopes`.
fn mcp_key(scopes: &[&str]) -> Principal {
    Principal::mcp(
        Arc::new(KeyIdentity {
            key_id: 1,
            key_uuid: Uuid::new_v4(),
            key_prefix: "cai_mcp1".into(),
            name: "mcp".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            key_type: KeyType::Agent,
            allowed_sources: None,
            allowed_cidrs: None,
            expires_at: None,
        }),
        None,
    )
}

async fn seed_alert(state: &AppState) -> Uuid {
    let uuid = Uuid::new_v4();
    let raw = Map::new();
    let alert = alerts::NewAlert {
        uuid,
        title: "seeded",
        description: None,
        severity: "Low",
        source_name: "generic",
        occurred_at: now(),
        raw_payload: &raw,
        tags: &[],
        fingerprint: "f",
        detection_rule_id: None,
        duplicate_count: 0,
    };
    let mut tx = state.db.begin().await.unwrap();
    alerts::insert_many(&mut tx, &[alert]).await.unwrap();
    tx.commit().await.unwrap();
    uuid
}

async fn audit_actors(state: &AppState) -> Vec<(String, String, Option<String>)> {
    with_db!(&state.db, p => sqlx::query_as("SELECT action, actor_type, actor_key_prefix FROM audit_log ORDER BY id").fetch_all(p).await)
        .unwrap()
}

fn is_forbidden<T: std::fmt::Debug>(result: Result<T>) -> bool {
    matches!(result, Err(Error::Forbidden { .. }))
}

#[tokio::test]
async fn each_operation_checks_its_scope_without_an_extractor() {
    let (state, _dir) = state().await;
    let uuid = seed_alert(&state).await;
    let none = mcp_key(&["workflows:read"]);
    let reader = mcp_key(&["alerts:read"]);
    let patch_body = || AlertPatch { status: Some("Closed".into()), close_classification: Some("Duplicate".into()), ..AlertPatch::default() };
    let finding = || FindingCreate { agent_name: "a".into(), summary: "s".into(), confidence: None, recommended_action: None, evidence: None };
    let indicators = || IndicatorAddRequest { indicators: vec![IndicatorAddItem { indicator_type: "ip".into(), value: "203.0.113.1".into() }] };
    for who in [&none, &reader] {
        assert!(is_forbidden(patch(&state, who, uuid, patch_body()).await));
        assert!(is_forbidden(delete(&state, who, uuid).await));
        assert!(is_forbidden(add_finding(&state, who, uuid, finding()).await));
        assert!(is_forbidden(enrich(&state, who, uuid).await));
        assert!(is_forbidden(add_indicators(&state, who, uuid, indicators(), true).await));
    }
    // Forbidden, not "not found": the scope is checked before anything is looked up.
    let missing = Uuid::new_v4();
    assert!(is_forbidden(get(&state, &none, missing).await));
    assert!(is_forbidden(list(&state, &none, super::super::query::parse_list_query(None).unwrap()).await));
    assert!(is_forbidden(list_activity(&state, &none, missing, Pagination::default()).await));
    assert!(is_forbidden(relationship_graph(&state, &none, missing, None).await));
    assert!(matches!(get(&state, &reader, missing).await, Err(Error::NotFound(_))));
    let mut unbounded = super::super::query::parse_list_query(None).unwrap();
    unbounded.pagination.page_size = 100_000;
    assert!(matches!(list(&state, &reader, unbounded).await, Err(Error::Validation(_))), "page bounds hold without REST");

    // Nothing the refused calls asked for happened.
    let detail = get(&state, &reader, uuid).await.unwrap();
    assert_eq!(detail.alert.status, AlertStatus::Open);
    assert!(detail.alert.agent_findings.is_none() && detail.alert.indicators.is_empty());
    assert!(audit_actors(&state).await.is_empty());
}

#[tokio::test]
async fn jobs_and_mcp_callers_are_the_recorded_actors() {
    let (state, _dir) = state().await;
    let uuid = seed_alert(&state).await;
    let patched = patch(&state, &Principal::System, uuid, AlertPatch { status: Some("Triaging".into()), ..AlertPatch::default() })
        .await
        .unwrap();
    assert_eq!(patched.alert.status, AlertStatus::Triaging);
    assert!(patched.alert.acknowledged_at.is_some() && patched.alert.triaged_at.is_some());
    let writer = mcp_key(&["alerts:write"]);
    let finding = FindingCreate { agent_name: "bot".into(), summary: "s".into(), confidence: Some("high".into()), recommended_action: None, evidence: None };
    add_finding(&state, &writer, uuid, finding).await.unwrap();

    let events = list_activity(&state, &Principal::System, uuid, Pagination::default()).await.unwrap();
    let events = serde_json::to_value(events.data).unwrap();
    assert_eq!(events[0]["event_type"], "alert_finding_added");
    assert_eq!((&events[0]["actor_type"], &events[0]["actor_key_prefix"]), (&json!("mcp"), &json!("cai_mcp1")));
    assert_eq!(events[1]["event_type"], "alert_status_updated");
    assert_eq!((&events[1]["actor_type"], &events[1]["actor_key_prefix"]), (&json!("system"), &json!(null)));
    assert_eq!(
        audit_actors(&state).await,
        [
            ("alerts.patch".to_owned(), "system".to_owned(), None),
            ("alerts.findings.add".to_owned(), "mcp".to_owned(), Some("cai_mcp1".to_owned())),
        ]
    );
    // A job deleting the alert: gone, audited, and its events keep no alert.
    delete(&state, &Principal::System, uuid).await.unwrap();
    assert!(matches!(get(&state, &Principal::System, uuid).await, Err(Error::NotFound(_))));
    let mut tx = state.db.begin().await.unwrap();
    let orphaned: i64 =
        with_tx!(&mut tx, c => sqlx::query_scalar("SELECT COUNT(*) FROM activity_events WHERE alert_id IS NULL").fetch_one(c).await).unwrap();
    tx.commit().await.unwrap();
    assert_eq!(orphaned, 2);
}
