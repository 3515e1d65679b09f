//! Seeds the nine builtin workflows (workflows.md §9) at start-up. Keyed on the system name (a
//! partial unique index): an existing row, edited or not, is never touched, and concurrent
//! start-ups write each builtin once. `is_active` follows the integration's credentials at the
//! first seeding only, as Calseta does.

use chrono::Utc;
use uuid::Uuid;

use super::builtins::{self, BUILTINS, Integration};
use super::runtime::Integrations;
use super::store::{self, WorkflowRow};
use crate::db::{Db, Json};

/// Returns how many builtins were written (0 once seeded).
pub async fn seed_builtins(db: &Db, integrations: &Integrations) -> sqlx::Result<usize> {
    let mut tx = db.begin().await?;
    let mut written = 0;
    for builtin in BUILTINS {
        let configured = match builtin.integration {
            Integration::Okta => integrations.okta.is_some(),
            Integration::Entra => integrations.entra.is_some(),
        };
        let row = WorkflowRow {
            id: 0,
            uuid: Uuid::nil(),
            name: builtin.name.to_owned(),
            workflow_type: Some(builtins::WORKFLOW_TYPE.to_owned()),
            indicator_types: Json(builtins::INDICATOR_TYPES.iter().map(|t| (*t).to_owned()).collect()),
            code: builtin.code.to_owned(),
            code_version: 1,
            state: "active".to_owned(),
            timeout_seconds: builtins::TIMEOUT_SECONDS as i32,
            retry_count: 0,
            is_active: configured,
            is_system: true,
            tags: Json(Vec::new()),
            time_saved_minutes: None,
            approval_mode: builtins::APPROVAL_MODE.to_owned(),
            approval_channel: None,
            approval_timeout_seconds: builtins::APPROVAL_TIMEOUT_SECONDS as i32,
            risk_level: builtin.risk_level.to_owned(),
            documentation: Some(builtin.documentation.to_owned()),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        if store::insert_system_if_absent(&mut tx, &row).await? {
            written += 1;
        }
    }
    tx.commit().await?;
    Ok(written)
}

/// A system workflow that is not one of the builtins (the sandbox's demo workflow).
pub struct SystemWorkflow<'a> {
    pub name: &'a str,
    pub code: &'a str,
    pub documentation: &'a str,
    pub indicator_types: &'a [&'a str],
    pub risk_level: &'a str,
    pub approval_mode: &'a str,
}

/// Seeds `workflow` as an active system workflow unless one with its name exists; returns
/// whether it was written.
pub async fn seed_system_workflow(db: &Db, workflow: &SystemWorkflow<'_>) -> sqlx::Result<bool> {
    let row = WorkflowRow {
        id: 0,
        uuid: Uuid::nil(),
        name: workflow.name.to_owned(),
        workflow_type: Some(builtins::WORKFLOW_TYPE.to_owned()),
        indicator_types: Json(workflow.indicator_types.iter().map(|t| (*t).to_owned()).collect()),
        code: workflow.code.to_owned(),
        code_version: 1,
        state: "active".to_owned(),
        timeout_seconds: builtins::TIMEOUT_SECONDS as i32,
        retry_count: 0,
        is_active: true,
        is_system: true,
        tags: Json(vec!["sandbox".to_owned()]),
        time_saved_minutes: None,
        approval_mode: workflow.approval_mode.to_owned(),
        approval_channel: None,
        approval_timeout_seconds: builtins::APPROVAL_TIMEOUT_SECONDS as i32,
        risk_level: workflow.risk_level.to_owned(),
        documentation: Some(workflow.documentation.to_owned()),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let mut tx = db.begin().await?;
    let written = store::insert_system_if_absent(&mut tx, &row).await?;
    tx.commit().await?;
    Ok(written)
}
