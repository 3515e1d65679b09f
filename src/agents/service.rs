//! Agent operations for every caller (REST, MCP, CLI, jobs): scope declared once per operation,
//! validation, the store calls and the audit record in one transaction.

use serde_json::json;
use uuid::Uuid;

use super::model::{AgentCreate, AgentPatch, AgentResponse, AgentTestResult, AgentWithSecret, DispatchResult, TriggerResult};
use super::store::{self, AgentChanges, AgentRow, NewAgent};
use super::{delivery, dispatch, matching, payload, signing};
use crate::audit::{self, Record};
use crate::auth::Principal;
use crate::crypto::require_cipher;
use crate::error::{Error, FieldError, Result};
use crate::operation;
use crate::pagination::Pagination;
use crate::service::Operation as _;
use crate::state::AppState;

operation!(ListAgents = "agents.list", scopes ["agents:read"]);
operation!(GetAgent = "agents.get", scopes ["agents:read"]);
operation!(CreateAgent = "agents.create", scopes ["agents:write"]);
operation!(PatchAgent = "agents.patch", scopes ["agents:write"]);
operation!(DeleteAgent = "agents.delete", scopes ["agents:write"]);
operation!(TestAgent = "agents.test", scopes ["agents:write"]);
operation!(RotateAgentSecret = "agents.rotate_secret", scopes ["agents:write"]);
operation!(TriggerAgents = "alerts.trigger_agents", scopes ["agents:write"]);
operation!(DispatchAgent = "alerts.dispatch_agent", scopes ["agents:write"]);

const NOT_FOUND: &str = "Agent";
/// Default and bounds of a rotation's overlap, during which both signatures are sent.
pub const DEFAULT_OVERLAP_SECONDS: i64 = 24 * 3600;
pub const MAX_OVERLAP_SECONDS: i64 = 7 * 24 * 3600;

fn agent_not_found() -> Error {
    Error::not_found(NOT_FOUND)
}

async fn find(state: &AppState, uuid: Uuid) -> Result<AgentRow> {
    store::find_by_uuid(&state.db, uuid).await?.ok_or_else(agent_not_found)
}

/// Save-time vetting of an endpoint URL: a literal `http(s)` URL whose host passes the egress
/// rules, resolved now (failing closed). Answered 422 naming the reason.
async fn vet_endpoint(state: &AppState, url: &str) -> Result<()> {
    let egress = super::egress(state);
    let refused = |e: crate::egress::EgressError| {
        let message = match e {
            crate::egress::EgressError::Blocked(reason) => format!("endpoint_url blocked by SSRF protection: {reason}"),
            other => format!("endpoint_url is not usable: {other}"),
        };
        Error::Validation(vec![FieldError::body("endpoint_url", "unsafe_url", message)])
    };
    // Agent URLs are literal: a `{{…}}` placeholder would make the gateway defer the host
    // checks (and DNS) to send time.
    if url.contains("{{") || url.contains("}}") {
        return Err(Error::Validation(vec![FieldError::body("endpoint_url", "unsafe_url", "endpoint_url must be a literal URL, not a template")]));
    }
    egress.policy().check_url(url).map_err(refused)?;
    egress.vet_for_save(url).await.map_err(refused)
}

fn seal(state: &AppState, plaintext: &str) -> Result<String> {
    Ok(require_cipher(state.cipher.as_ref())?.encrypt(plaintext.as_bytes()))
}

pub async fn list(state: &AppState, who: &Principal, pagination: Pagination) -> Result<(Vec<AgentResponse>, i64)> {
    who.authorize::<ListAgents>()?;
    let (rows, total) = store::list(&state.db, pagination.limit(), pagination.offset()).await?;
    Ok((rows.into_iter().map(AgentResponse::from).collect(), total))
}

pub async fn get(state: &AppState, who: &Principal, uuid: Uuid) -> Result<AgentResponse> {
    who.authorize::<GetAgent>()?;
    Ok(find(state, uuid).await?.into())
}

pub async fn create(state: &AppState, who: &Principal, input: AgentCreate) -> Result<AgentWithSecret> {
    who.authorize::<CreateAgent>()?;
    input.validate()?;
    vet_endpoint(state, &input.endpoint_url).await?;
    let sealed_auth_header_value = input.auth_header_value.as_deref().map(|v| seal(state, v)).transpose()?;
    // Without ENCRYPTION_KEY (development only) there is nowhere safe to keep a secret: the
    // agent gets none and its deliveries carry the id and timestamp but no signature.
    let signing_secret = state.cipher.as_ref().map(|_| signing::generate_secret());
    let sealed_signing_secret = signing_secret.as_deref().map(|s| seal(state, s)).transpose()?;
    let mut tx = state.db.begin().await?;
    let row = store::insert(
        &mut tx,
        NewAgent {
            name: &input.name,
            description: input.description.as_deref(),
            endpoint_url: &input.endpoint_url,
            auth_header_name: input.auth_header_name.as_deref(),
            sealed_auth_header_value,
            sealed_signing_secret,
            trigger_on_sources: &input.trigger_on_sources,
            trigger_on_severities: &input.trigger_on_severities,
            trigger_filter: input.trigger_filter.as_ref().filter(|f| !f.is_null()),
            timeout_seconds: input.timeout_seconds,
            retry_count: input.retry_count,
            is_active: input.is_active,
            documentation: input.documentation.as_deref(),
            redact_untrusted_fields: input.redact_untrusted_fields,
        },
    )
    .await?;
    let details = json!({"name": row.name, "endpoint_url": row.endpoint_url, "is_active": row.is_active,
        "auth_header_name": row.auth_header_name, "signed": signing_secret.is_some()});
    audit::record(&mut tx, who, Record::success(CreateAgent::NAME, "agent", row.uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(AgentWithSecret { agent: row.into(), signing_secret })
}

pub async fn patch(state: &AppState, who: &Principal, uuid: Uuid, input: AgentPatch) -> Result<AgentResponse> {
    who.authorize::<PatchAgent>()?;
    let current = find(state, uuid).await?;
    input.validate(current.auth_header_name.is_some())?;
    if let Some(url) = &input.endpoint_url {
        vet_endpoint(state, url).await?;
    }
    let sealed_auth_header_value = input.auth_header_value.as_deref().map(|v| seal(state, v)).transpose()?;
    let changes = AgentChanges {
        name: input.name.as_deref(),
        description: input.description.as_deref(),
        endpoint_url: input.endpoint_url.as_deref(),
        auth_header_name: input.auth_header_name.as_deref(),
        sealed_auth_header_value,
        trigger_on_sources: input.trigger_on_sources.as_deref(),
        trigger_on_severities: input.trigger_on_severities.as_deref(),
        trigger_filter: input.trigger_filter.as_ref().filter(|f| !f.is_null()),
        timeout_seconds: input.timeout_seconds,
        retry_count: input.retry_count,
        is_active: input.is_active,
        documentation: input.documentation.as_deref(),
        redact_untrusted_fields: input.redact_untrusted_fields,
    };
    // What changed, by field name (values stay out of the audit record: one is a secret).
    let changed: Vec<String> = match serde_json::to_value(&input) {
        Ok(serde_json::Value::Object(fields)) => fields.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect(),
        _ => Vec::new(),
    };
    let mut tx = state.db.begin().await?;
    let row = store::update(&mut tx, uuid, changes).await?.ok_or_else(agent_not_found)?;
    let details = json!({"changed": changed, "endpoint_url": input.endpoint_url, "is_active": input.is_active});
    audit::record(&mut tx, who, Record::success(PatchAgent::NAME, "agent", uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn delete(state: &AppState, who: &Principal, uuid: Uuid) -> Result<()> {
    who.authorize::<DeleteAgent>()?;
    let mut tx = state.db.begin().await?;
    if !store::delete(&mut tx, uuid).await? {
        return Err(agent_not_found());
    }
    audit::record(&mut tx, who, Record::success(DeleteAgent::NAME, "agent", uuid)).await?;
    tx.commit().await?;
    Ok(())
}

/// Replaces the signing secret; the old one keeps signing for `overlap_seconds` (both
/// signatures are sent meanwhile) so receivers can switch without dropping deliveries.
pub async fn rotate_secret(state: &AppState, who: &Principal, uuid: Uuid, overlap_seconds: Option<i64>) -> Result<AgentWithSecret> {
    who.authorize::<RotateAgentSecret>()?;
    let overlap = overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if !(0..=MAX_OVERLAP_SECONDS).contains(&overlap) {
        return Err(Error::Validation(vec![FieldError::new(
            "value_error",
            vec![json!("query"), json!("overlap_seconds")],
            format!("overlap_seconds must be between 0 and {MAX_OVERLAP_SECONDS}"),
        )]));
    }
    find(state, uuid).await?;
    let secret = signing::generate_secret();
    let sealed = seal(state, &secret)?;
    let until = crate::db::now() + chrono::Duration::seconds(overlap);
    let mut tx = state.db.begin().await?;
    let row = store::rotate_secret(&mut tx, uuid, &sealed, until).await?.ok_or_else(agent_not_found)?;
    let details = json!({"overlap_seconds": overlap, "previous_valid_until": row.previous_signing_secret_expires_at});
    audit::record(&mut tx, who, Record::success(RotateAgentSecret::NAME, "agent", uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(AgentWithSecret { agent: row.into(), signing_secret: Some(secret) })
}

/// One synthetic, signed delivery (§1.5): no retries, no activity, no `agent_runs` row.
/// Unlike Calseta, the egress gateway still vets the URL at send time.
pub async fn test(state: &AppState, who: &Principal, uuid: Uuid) -> Result<AgentTestResult> {
    who.authorize::<TestAgent>()?;
    let agent = find(state, uuid).await?;
    let secrets = delivery::open_secrets(state, &agent).await?;
    let body = payload::test_payload(&agent.name, &state.settings.calseta_api_base_url);
    let attempt = delivery::send(state, &agent, &secrets, &signing::new_message_id(), &body).await;
    Ok(AgentTestResult {
        delivered: attempt.status == "success",
        status_code: attempt.status_code,
        duration_ms: attempt.elapsed.as_millis() as u64,
        error: attempt.error,
    })
}

async fn find_alert(state: &AppState, alert_uuid: Uuid) -> Result<crate::alerts::store::AlertRow> {
    crate::alerts::store::find_by_uuid(&state.db, alert_uuid).await?.ok_or_else(|| Error::not_found("Alert"))
}

/// Matches now (reported to the caller) and queues the matching job, which matches again on
/// the alert as it is when it runs.
pub async fn trigger(state: &AppState, who: &Principal, alert_uuid: Uuid) -> Result<TriggerResult> {
    who.authorize::<TriggerAgents>()?;
    let alert = find_alert(state, alert_uuid).await?;
    let facts = matching::Facts { source_name: alert.source_name.clone(), severity: alert.severity.clone(), tags: alert.tags.0.clone() };
    let agent_names: Vec<String> =
        store::active(&state.db).await?.into_iter().filter(|a| matching::matches(a, &facts)).map(|a| a.name).collect();
    let mut tx = state.db.begin().await?;
    dispatch::enqueue_match(&mut tx, alert.id).await?;
    let details = json!({"matched_agents": agent_names});
    audit::record(&mut tx, who, Record::success(TriggerAgents::NAME, "alert", alert_uuid).with_details(details)).await?;
    tx.commit().await?;
    state.wakeup.job_enqueued();
    Ok(TriggerResult { queued_agent_count: agent_names.len(), agent_names })
}

/// One agent, no matching; it must be active now (the worker does not check again).
pub async fn dispatch_one(state: &AppState, who: &Principal, alert_uuid: Uuid, agent_uuid: Uuid) -> Result<DispatchResult> {
    who.authorize::<DispatchAgent>()?;
    let alert = find_alert(state, alert_uuid).await?;
    let agent = find(state, agent_uuid).await?;
    if !agent.is_active {
        return Err(Error::client(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "AGENT_INACTIVE",
            format!("Agent '{}' is inactive.", agent.name),
        ));
    }
    let mut tx = state.db.begin().await?;
    dispatch::enqueue_single(&mut tx, alert.id, agent.id).await?;
    let details = json!({"agent_uuid": agent.uuid, "agent_name": agent.name});
    audit::record(&mut tx, who, Record::success(DispatchAgent::NAME, "alert", alert_uuid).with_details(details)).await?;
    tx.commit().await?;
    state.wakeup.job_enqueued();
    Ok(DispatchResult { agent_uuid: agent.uuid, agent_name: agent.name, alert_uuid })
}
