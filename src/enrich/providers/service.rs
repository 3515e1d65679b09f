//! Provider operations (enrichment.md §9, §10): list, get, create, update, delete, activate /
//! deactivate and the live test. Reads need `enrichments:read`, everything else `admin`. Each
//! write runs in one transaction with its audit record, then makes this process's registry
//! re-read the table (other processes notice within `ENRICHMENT_REGISTRY_REFRESH_MS`).

use http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::model::{ProviderCreate, ProviderListQuery, ProviderResponse, ProviderTestRequest, ProviderTestResponse, ProviderUpdate};
use super::store::{self, NewProvider, ProviderFilter, ProviderPatch, ProviderRow};
use super::validate;
use crate::audit::{self, Record};
use crate::crypto::{require_cipher, seal_json};
use crate::enrich::redact;
use crate::error::{Error, Result};
use crate::operation;
use crate::pagination::{Page, Pagination};
use crate::service::{Operation, Principal};
use crate::state::AppState;

operation!(ListProviders = "enrichment_providers.list", scopes ["enrichments:read"]);
operation!(GetProvider = "enrichment_providers.get", scopes ["enrichments:read"]);
operation!(CreateProvider = "enrichment_providers.create", scopes ["admin"]);
operation!(UpdateProvider = "enrichment_providers.update", scopes ["admin"]);
operation!(DeleteProvider = "enrichment_providers.delete", scopes ["admin"]);
operation!(ActivateProvider = "enrichment_providers.activate", scopes ["admin"]);
operation!(DeactivateProvider = "enrichment_providers.deactivate", scopes ["admin"]);
operation!(TestProvider = "enrichment_providers.test", scopes ["admin"]);

const NOT_FOUND: &str = "Enrichment provider";
const TARGET: &str = "enrichment_provider";

fn not_found() -> Error {
    Error::not_found(NOT_FOUND)
}

fn duplicate(name: &str) -> Error {
    Error::client(StatusCode::CONFLICT, "DUPLICATE_PROVIDER", format!("Provider '{name}' already exists."))
}

fn respond(state: &AppState, row: ProviderRow) -> ProviderResponse {
    ProviderResponse::new(row, state.cipher.as_ref(), &state.settings)
}

/// Seals `auth_config`, or the 400 that tells the operator to set ENCRYPTION_KEY.
fn seal(state: &AppState, config: Option<&serde_json::Map<String, Value>>) -> Result<Option<Value>> {
    config.map(|config| Ok(seal_json(require_cipher(state.cipher.as_ref())?, config))).transpose()
}

/// Providers in creation order, one page.
pub async fn list(state: &AppState, who: &Principal, pagination: Pagination, query: ProviderListQuery) -> Result<Page<ProviderResponse>> {
    who.authorize::<ListProviders>()?;
    let pagination = pagination.validate()?;
    let filter = ProviderFilter { is_active: query.is_active, is_builtin: query.is_builtin };
    let (rows, total) = store::list_providers(&state.db, filter, pagination.limit(), pagination.offset()).await?;
    Ok(Page::new(rows.into_iter().map(|row| respond(state, row)).collect(), total, pagination))
}

pub async fn get(state: &AppState, who: &Principal, uuid: Uuid) -> Result<ProviderResponse> {
    who.authorize::<GetProvider>()?;
    let row = store::find_provider(&state.db, uuid).await?.ok_or_else(not_found)?;
    Ok(respond(state, row))
}

/// Registers a provider: validated, its URLs vetted, its credentials sealed.
pub async fn create(state: &AppState, who: &Principal, body: ProviderCreate) -> Result<ProviderResponse> {
    who.authorize::<CreateProvider>()?;
    // Validation resolves host names: it runs before the transaction holds the write lock.
    validate::create(&body, &state.egress).await?;
    let cache_ttl_by_type = body.cache_ttl_by_type.clone().map(Value::Object);
    let mut tx = state.db.begin().await?;
    if store::provider_exists(&mut tx, &body.provider_name).await? {
        return Err(duplicate(&body.provider_name));
    }
    let sealed_auth_config = seal(state, body.auth_config.as_ref())?;
    let new = NewProvider {
        provider_name: &body.provider_name,
        display_name: &body.display_name,
        description: body.description.as_deref(),
        supported_indicator_types: &body.supported_indicator_types,
        http_config: &body.http_config,
        auth_type: &body.auth_type,
        sealed_auth_config,
        default_cache_ttl_seconds: body.default_cache_ttl_seconds,
        cache_ttl_by_type: cache_ttl_by_type.as_ref(),
        malice_rules: body.malice_rules.as_ref().filter(|v| !v.is_null()),
    };
    let row = store::insert_provider(&mut tx, new).await.map_err(|e| match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => duplicate(&body.provider_name),
        other => other.into(),
    })?;
    let details = json!({
        "provider_name": row.provider_name,
        "auth_type": row.auth_type,
        "supported_indicator_types": row.supported_indicator_types.0,
        "auth_config_set": body.auth_config.is_some(),
    });
    audit::record(&mut tx, who, Record::success(CreateProvider::NAME, TARGET, row.uuid).with_details(details)).await?;
    tx.commit().await?;
    state.enricher.invalidate().await;
    Ok(respond(state, row))
}

/// Changes the fields a PATCH sets; builtins only their operator-owned fields.
pub async fn update(state: &AppState, who: &Principal, uuid: Uuid, body: ProviderUpdate) -> Result<ProviderResponse> {
    who.authorize::<UpdateProvider>()?;
    // `is_builtin` never changes through the API, so this read may precede the transaction.
    let existing = store::find_provider(&state.db, uuid).await?.ok_or_else(not_found)?;
    if existing.is_builtin {
        validate::builtin_update(&body)?;
    }
    validate::update(&body, &state.egress).await?;
    let sealed_auth_config = seal(state, body.auth_config.as_ref())?;
    let cache_ttl_by_type = body.cache_ttl_by_type.clone().map(Value::Object);
    let patch = ProviderPatch {
        display_name: body.display_name.as_deref(),
        description: body.description.as_deref(),
        is_active: body.is_active,
        supported_indicator_types: body.supported_indicator_types.as_deref(),
        http_config: body.http_config.as_ref(),
        auth_type: body.auth_type.as_deref(),
        sealed_auth_config,
        default_cache_ttl_seconds: body.default_cache_ttl_seconds,
        cache_ttl_by_type: cache_ttl_by_type.as_ref(),
        malice_rules: body.malice_rules.as_ref().filter(|v| !v.is_null()),
    };
    let mut tx = state.db.begin().await?;
    let row = store::update_provider(&mut tx, uuid, patch).await?.ok_or_else(not_found)?;
    let details = json!({ "provider_name": row.provider_name, "fields": body.present() });
    audit::record(&mut tx, who, Record::success(UpdateProvider::NAME, TARGET, row.uuid).with_details(details)).await?;
    tx.commit().await?;
    state.enricher.invalidate().await;
    Ok(respond(state, row))
}

/// Deletes a provider and its own (non-system) extractions; builtins can only be deactivated.
pub async fn delete(state: &AppState, who: &Principal, uuid: Uuid) -> Result<()> {
    who.authorize::<DeleteProvider>()?;
    let mut tx = state.db.begin().await?;
    let existing = store::find_provider_for_update(&mut tx, uuid).await?.ok_or_else(not_found)?;
    if existing.is_builtin {
        return Err(Error::bad_request("BUILTIN_RESTRICTED", "Builtin providers cannot be deleted; deactivate them instead."));
    }
    if !store::delete_provider(&mut tx, uuid).await? {
        return Err(not_found());
    }
    let details = json!({ "provider_name": existing.provider_name });
    audit::record(&mut tx, who, Record::success(DeleteProvider::NAME, TARGET, uuid).with_details(details)).await?;
    tx.commit().await?;
    state.enricher.invalidate().await;
    Ok(())
}

pub async fn activate(state: &AppState, who: &Principal, uuid: Uuid) -> Result<ProviderResponse> {
    who.authorize::<ActivateProvider>()?;
    set_active(state, who, uuid, true, ActivateProvider::NAME).await
}

pub async fn deactivate(state: &AppState, who: &Principal, uuid: Uuid) -> Result<ProviderResponse> {
    who.authorize::<DeactivateProvider>()?;
    set_active(state, who, uuid, false, DeactivateProvider::NAME).await
}

async fn set_active(state: &AppState, who: &Principal, uuid: Uuid, active: bool, action: &str) -> Result<ProviderResponse> {
    let mut tx = state.db.begin().await?;
    let patch = ProviderPatch { is_active: Some(active), ..Default::default() };
    let row = store::update_provider(&mut tx, uuid, patch).await?.ok_or_else(not_found)?;
    let details = json!({ "provider_name": row.provider_name });
    audit::record(&mut tx, who, Record::success(action, TARGET, row.uuid).with_details(details)).await?;
    tx.commit().await?;
    state.enricher.invalidate().await;
    Ok(respond(state, row))
}

/// Runs the provider as registered, live, with masked debug steps (enrichment.md §10).
/// The provider test endpoint's answer, rendered: its last step scrubs every credential value
/// the run used from the whole output, wherever a vendor echoed it.
pub async fn test(state: &AppState, who: &Principal, uuid: Uuid, body: ProviderTestRequest) -> Result<serde_json::Value> {
    who.authorize::<TestProvider>()?;
    validate::test_request(&body)?;
    store::find_provider(&state.db, uuid).await?.ok_or_else(not_found)?;
    let snapshot = state.enricher.snapshot(&state.db).await;
    let provider = snapshot
        .by_uuid(uuid)
        .ok_or_else(|| Error::bad_request("PROVIDER_NOT_LOADED", "Provider is not loaded in the registry (is it active?)."))?;
    let run = state.enricher.test_provider(&provider, &body.indicator_type, &body.indicator_value).await;
    let result = run.result;
    let response = ProviderTestResponse {
        success: result.success,
        provider_name: result.provider_name,
        indicator_type: body.indicator_type,
        indicator_value: body.indicator_value,
        extracted: result.extracted,
        raw_response: result.raw.map(redact::truncate_body),
        error_message: result.error_message,
        duration_ms: u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX),
        steps: run.steps,
    };
    let rendered = serde_json::to_value(&response).map_err(|e| Error::Internal(e.into()))?;
    Ok(redact::scrub(rendered, &run.secrets))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::{KeyIdentity, KeyType};
    use crate::config::Settings;
    use crate::with_db;

    async fn state(dir: &tempfile::TempDir) -> AppState {
        let settings = Settings { database_url: Some(format!("sqlite://{}/t.db", dir.path().display())), ..Settings::default() };
        let db = crate::app::open_database(&settings).await.unwrap();
        crate::app::build_state(settings, db).await.unwrap()
    }

    fn mcp_key(scopes: &[&str]) -> Principal {
        let key = KeyIdentity {
            key_id: 1,
            key_uuid: Uuid::new_v4(),
            key_prefix: "cai_svc0".into(),
            name: "agent".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            key_type: KeyType::Agent,
            allowed_sources: None,
            allowed_cidrs: None,
            expires_at: None,
        };
        Principal::mcp(Arc::new(key), None)
    }

    async fn audit_rows(state: &AppState) -> Vec<(String, String, Option<String>)> {
        let sql = "SELECT action, actor_type, target_id FROM audit_log ORDER BY id";
        with_db!(&state.db, p => sqlx::query_as(sql).fetch_all(p).await).unwrap()
    }

    /// Callers without an extractor (MCP tools, jobs) are held to the same scopes, and their
    /// writes are audited under their own actor.
    #[tokio::test]
    async fn every_caller_is_held_to_the_operation_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(&dir).await;
        let reader = mcp_key(&["enrichments:read"]);
        let page = list(&state, &reader, Pagination::default(), ProviderListQuery { is_builtin: Some(true), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(page.meta.total, 7);
        let builtin = page.data[0].uuid;

        let denied = deactivate(&state, &reader, builtin).await.unwrap_err();
        assert!(matches!(&denied, Error::Forbidden { required } if required == &["admin"]), "{denied:?}");
        assert!(matches!(delete(&state, &reader, builtin).await, Err(Error::Forbidden { .. })));
        assert!(audit_rows(&state).await.is_empty(), "a refused call writes nothing");

        let off = deactivate(&state, &Principal::System, builtin).await.unwrap();
        assert!(!off.is_active);
        let on = activate(&state, &mcp_key(&["admin"]), builtin).await.unwrap();
        assert!(on.is_active);
        let target = Some(builtin.to_string());
        assert_eq!(audit_rows(&state).await, vec![
            ("enrichment_providers.deactivate".to_owned(), "system".to_owned(), target.clone()),
            ("enrichment_providers.activate".to_owned(), "mcp".to_owned(), target),
        ]);
        assert!(matches!(get(&state, &reader, Uuid::new_v4()).await, Err(Error::NotFound(_))));
    }
}
