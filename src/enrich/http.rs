//! Enrichment over HTTP: on-demand lookups (`/v1/enrichments`), provider CRUD with activate /
//! deactivate / test (`/v1/enrichment-providers`) and field extractions
//! (`/v1/enrichment-field-extractions`). Reads need `enrichments:read`, writes `admin`. Every
//! provider recipe is validated and its URLs SSRF-vetted when saved; `auth_config` is sealed and
//! never returned.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::config::{HttpConfig, MaliceRules, VALUE_TYPES};
use super::engine::StepDebug;
use super::store::{self, ExtractionFilter, ExtractionPatch, ExtractionRow, NewExtraction, NewProvider, ProviderPatch, ProviderRow};
use super::{dotpath, registry};
use crate::auth::Auth;
use crate::auth::scoped::{Admin, EnrichmentsRead, Scoped};
use crate::error::{Error, FieldError, Result};
use crate::http::extract::{JsonBody, MEDIUM_JSON_BYTES, ValidPath, ValidQuery, check_json_size};
use crate::http::query::lenient_bool;
use crate::pagination::{Data, Page, Pagination};
use crate::sources::seal_auth_config;
use crate::state::AppState;

const PROVIDER_NOT_FOUND: &str = "Enrichment provider";
const EXTRACTION_NOT_FOUND: &str = "Enrichment field extraction";
const MAX_DESCRIPTION: usize = 10_000;
const MAX_TTL_SECONDS: i32 = 86_400;
/// `auth_type` values with a meaning; Calseta took free text, so a typo silently produced an
/// unconfigured provider.
const AUTH_TYPES: &[&str] = &["no_auth", "api_key", "api_token", "bearer", "basic", "oauth2_client_credentials", "custom"];
/// What a PATCH may change on a builtin provider.
const BUILTIN_PATCHABLE: &[&str] =
    &["is_active", "auth_config", "description", "malice_rules", "default_cache_ttl_seconds", "cache_ttl_by_type"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/enrichments", post(enrich_on_demand))
        .route("/v1/enrichments/providers", get(list_registered_providers))
        .route("/v1/enrichment-providers", get(list_providers).post(create_provider))
        .route("/v1/enrichment-providers/{provider_uuid}", get(get_provider).patch(patch_provider).delete(delete_provider))
        .route("/v1/enrichment-providers/{provider_uuid}/test", post(test_provider))
        .route("/v1/enrichment-providers/{provider_uuid}/activate", post(activate_provider))
        .route("/v1/enrichment-providers/{provider_uuid}/deactivate", post(deactivate_provider))
        .route("/v1/enrichment-field-extractions", get(list_extractions).post(create_extraction))
        .route("/v1/enrichment-field-extractions/bulk", post(create_extractions_bulk))
        .route(
            "/v1/enrichment-field-extractions/{extraction_uuid}",
            get(get_extraction).patch(patch_extraction).delete(delete_extraction),
        )
}

fn is_indicator_type(value: &str) -> bool {
    value.parse::<crate::ingest::IndicatorType>().is_ok()
}

fn collect(errors: Vec<FieldError>) -> Result<()> {
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

fn field(loc: &str, kind: &str, msg: impl Into<String>) -> FieldError {
    let mut path = vec![json!("body")];
    path.extend(loc.split('.').map(|p| json!(p)));
    FieldError::new(kind, path, msg)
}

// ---------------------------------------------------------------------------------------------
// On-demand enrichment
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnDemandRequest {
    #[serde(default, rename = "type")]
    pub indicator_type_short: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    /// Accepted when `type` is absent.
    #[serde(default)]
    pub indicator_type: Option<String>,
    /// Accepted when `value` is absent.
    #[serde(default)]
    pub indicator_value: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OnDemandResult {
    pub status: String,
    pub success: bool,
    #[schema(value_type = Option<Object>)]
    pub extracted: Option<Map<String, Value>>,
    pub enriched_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub cache_hit: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OnDemandResponse {
    #[serde(rename = "type")]
    pub indicator_type: String,
    pub value: String,
    pub results: BTreeMap<String, OnDemandResult>,
    pub enriched_at: DateTime<Utc>,
}

/// Values longer than this are refused (no indicator is this long; it bounds what we send out).
const MAX_VALUE_CHARS: usize = 2048;

#[utoipa::path(post, path = "/v1/enrichments", tag = "enrichments", request_body = OnDemandRequest,
    responses((status = 200, body = OnDemandResponse), (status = 422, description = "Invalid type or value")), security(("bearer" = [])))]
pub async fn enrich_on_demand(
    _caller: Scoped<EnrichmentsRead>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<OnDemandRequest>,
) -> Result<Response> {
    let indicator_type = body.indicator_type_short.or(body.indicator_type);
    let value = body.value.or(body.indicator_value);
    let mut errors = Vec::new();
    match &indicator_type {
        None => errors.push(field("type", "missing", "Field required")),
        Some(t) if !is_indicator_type(t) => errors.push(field("type", "enum", format!("Invalid indicator type: '{t}'"))),
        Some(_) => {}
    }
    match &value {
        None => errors.push(field("value", "missing", "Field required")),
        Some(v) if v.is_empty() || v.chars().count() > MAX_VALUE_CHARS => {
            errors.push(field("value", "string_length", format!("value must be 1 to {MAX_VALUE_CHARS} characters")))
        }
        Some(_) => {}
    }
    collect(errors)?;
    let (indicator_type, value) = (indicator_type.unwrap_or_default(), value.unwrap_or_default());
    let lookups = state.enricher.enrich_indicator(&state.db, &indicator_type, &value).await;
    let results = lookups
        .into_iter()
        .map(|(name, lookup)| {
            let r = lookup.result;
            (name, OnDemandResult {
                status: r.status,
                success: r.success,
                extracted: r.extracted,
                enriched_at: r.enriched_at,
                error_message: r.error_message,
                cache_hit: lookup.cache_hit,
            })
        })
        .collect();
    let response = OnDemandResponse { indicator_type, value, results, enriched_at: crate::db::now() };
    Ok(Data::new(response).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderInfo {
    pub provider_name: String,
    pub display_name: String,
    pub supported_types: Vec<String>,
    pub is_configured: bool,
    pub cache_ttl_seconds: i32,
}

#[utoipa::path(get, path = "/v1/enrichments/providers", tag = "enrichments",
    responses((status = 200, description = "Active providers of the registry", body = [ProviderInfo])), security(("bearer" = [])))]
pub async fn list_registered_providers(_caller: Scoped<EnrichmentsRead>, State(state): State<AppState>) -> Result<Response> {
    let snapshot = state.enricher.snapshot(&state.db).await;
    let data: Vec<ProviderInfo> = snapshot
        .providers
        .iter()
        .map(|p| ProviderInfo {
            provider_name: p.row.provider_name.clone(),
            display_name: p.row.display_name.clone(),
            supported_types: p.supported_types.clone(),
            is_configured: p.configured,
            cache_ttl_seconds: p.row.default_cache_ttl_seconds,
        })
        .collect();
    Ok(Data::new(data).into_response())
}

// ---------------------------------------------------------------------------------------------
// Providers
// ---------------------------------------------------------------------------------------------

/// `auth_config` and `mock_responses` are deliberately absent: never returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderResponse {
    pub uuid: Uuid,
    pub provider_name: String,
    pub display_name: String,
    pub description: Option<String>,
    pub is_builtin: bool,
    pub is_active: bool,
    pub supported_indicator_types: Vec<String>,
    #[schema(value_type = Object)]
    pub http_config: Value,
    pub auth_type: String,
    pub has_credentials: bool,
    pub is_configured: bool,
    #[schema(value_type = Option<Object>)]
    pub env_var_mapping: Option<Value>,
    pub default_cache_ttl_seconds: i32,
    #[schema(value_type = Option<Object>)]
    pub cache_ttl_by_type: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub malice_rules: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn provider_response(state: &AppState, row: ProviderRow) -> ProviderResponse {
    let (has_credentials, is_configured) = registry::readiness(&row, state.cipher.as_ref(), &state.settings);
    ProviderResponse {
        uuid: row.uuid,
        provider_name: row.provider_name,
        display_name: row.display_name,
        description: row.description,
        is_builtin: row.is_builtin,
        is_active: row.is_active,
        supported_indicator_types: row.supported_indicator_types.0,
        http_config: row.http_config.0,
        auth_type: row.auth_type,
        has_credentials,
        is_configured,
        env_var_mapping: row.env_var_mapping.map(|m| m.0),
        default_cache_ttl_seconds: row.default_cache_ttl_seconds,
        cache_ttl_by_type: row.cache_ttl_by_type.map(|m| m.0),
        malice_rules: row.malice_rules.map(|m| m.0),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

#[derive(Debug, Deserialize)]
pub struct ProviderListQuery {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_builtin: Option<bool>,
}

#[utoipa::path(get, path = "/v1/enrichment-providers", tag = "enrichment-providers",
    params(("is_active" = Option<bool>, Query), ("is_builtin" = Option<bool>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Providers, oldest first", body = [ProviderResponse])), security(("bearer" = [])))]
pub async fn list_providers(
    _caller: Scoped<EnrichmentsRead>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<ProviderListQuery>,
) -> Result<Response> {
    let pagination = pagination.validate()?;
    let (rows, total) = store::list_providers(&state.db, query.is_active, query.is_builtin, pagination.limit(), pagination.offset()).await?;
    let data = rows.into_iter().map(|row| provider_response(&state, row)).collect();
    Ok(Page::new(data, total, pagination).into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderCreate {
    pub provider_name: String,
    pub display_name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub supported_indicator_types: Vec<String>,
    #[schema(value_type = Object)]
    pub http_config: Value,
    #[serde(default = "default_auth_type")]
    pub auth_type: String,
    /// Secret; sealed before storage, never returned.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub auth_config: Option<Map<String, Value>>,
    #[serde(default = "default_ttl")]
    pub default_cache_ttl_seconds: i32,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub cache_ttl_by_type: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub malice_rules: Option<Value>,
}

fn default_auth_type() -> String {
    "no_auth".into()
}

fn default_ttl() -> i32 {
    3600
}

/// `null` leaves a field unchanged (api.md: nulls ignored).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderUpdate {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub supported_indicator_types: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub http_config: Option<Value>,
    #[serde(default)]
    pub auth_type: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub auth_config: Option<Map<String, Value>>,
    #[serde(default)]
    pub default_cache_ttl_seconds: Option<i32>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub cache_ttl_by_type: Option<Map<String, Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub malice_rules: Option<Value>,
}

impl ProviderUpdate {
    /// Names of the fields this PATCH sets (non-null).
    fn present(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                names.push(name)
            }
        };
        add(self.display_name.is_some(), "display_name");
        add(self.description.is_some(), "description");
        add(self.is_active.is_some(), "is_active");
        add(self.supported_indicator_types.is_some(), "supported_indicator_types");
        add(self.http_config.is_some(), "http_config");
        add(self.auth_type.is_some(), "auth_type");
        add(self.auth_config.is_some(), "auth_config");
        add(self.default_cache_ttl_seconds.is_some(), "default_cache_ttl_seconds");
        add(self.cache_ttl_by_type.is_some(), "cache_ttl_by_type");
        add(self.malice_rules.is_some(), "malice_rules");
        names
    }
}

fn check_display_name(value: &str, errors: &mut Vec<FieldError>) {
    let n = value.chars().count();
    if value.trim().is_empty() || n > 200 {
        errors.push(field("display_name", "string_length", "display_name must be 1 to 200 characters"));
    }
}

fn check_description(value: Option<&str>, errors: &mut Vec<FieldError>) {
    if value.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        errors.push(field("description", "string_too_long", format!("description must be at most {MAX_DESCRIPTION} characters")));
    }
}

fn check_types(types: &[String], errors: &mut Vec<FieldError>) {
    if types.is_empty() {
        errors.push(field("supported_indicator_types", "too_short", "supported_indicator_types must list at least one type"));
    }
    for t in types {
        if !is_indicator_type(t) {
            errors.push(field("supported_indicator_types", "value_error", format!("Invalid indicator type: '{t}'")));
        }
    }
}

fn check_auth_type(value: &str, errors: &mut Vec<FieldError>) {
    if !AUTH_TYPES.contains(&value) {
        errors.push(field("auth_type", "enum", format!("Unknown auth_type '{value}'. Allowed: {}", AUTH_TYPES.join(", "))));
    }
}

fn check_ttls(default: Option<i32>, by_type: Option<&Map<String, Value>>, errors: &mut Vec<FieldError>) {
    if default.is_some_and(|t| !(0..=MAX_TTL_SECONDS).contains(&t)) {
        errors.push(field("default_cache_ttl_seconds", "range", format!("default_cache_ttl_seconds must be 0 to {MAX_TTL_SECONDS}")));
    }
    for (t, ttl) in by_type.into_iter().flatten() {
        if !is_indicator_type(t) {
            errors.push(field("cache_ttl_by_type", "value_error", format!("Invalid indicator type: '{t}'")));
        }
        if !ttl.as_i64().is_some_and(|v| (0..=MAX_TTL_SECONDS as i64).contains(&v)) {
            errors.push(field("cache_ttl_by_type", "range", format!("cache_ttl_by_type.{t} must be an integer 0 to {MAX_TTL_SECONDS}")));
        }
    }
}

/// Validates a recipe and SSRF-vets every literal URL in it; errors point at the offending key.
async fn check_http_config(state: &AppState, value: &Value, errors: &mut Vec<FieldError>) {
    if !value.is_object() {
        errors.push(field("http_config", "dict_type", "http_config must be an object"));
        return;
    }
    if let Err(e) = check_json_size("http_config", value, MEDIUM_JSON_BYTES) {
        errors.push(e);
        return;
    }
    let config = match HttpConfig::parse(value) {
        Ok(config) => config,
        Err(issues) => {
            errors.extend(issues.into_iter().map(|i| field(&i.path, "value_error", i.message)));
            return;
        }
    };
    let urls = config
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("http_config.steps[{i}].url"), s.url.clone()))
        .chain(config.url_templates_by_type.iter().map(|(t, u)| (format!("http_config.url_templates_by_type.{t}"), u.clone())));
    for (path, url) in urls {
        if let Err(e) = state.enricher.egress().vet_for_save(&url).await {
            errors.push(field(&path, "unsafe_url", e.to_string()));
        }
    }
}

fn check_malice_rules(value: Option<&Value>, errors: &mut Vec<FieldError>) {
    let Some(value) = value.filter(|v| !v.is_null()) else { return };
    if let Err(e) = check_json_size("malice_rules", value, MEDIUM_JSON_BYTES) {
        errors.push(e);
        return;
    }
    if let Err(issues) = MaliceRules::parse(value) {
        errors.extend(issues.into_iter().map(|i| field(&i.path, "value_error", i.message)));
    }
}

fn check_auth_config(config: Option<&Map<String, Value>>, errors: &mut Vec<FieldError>) {
    if let Some(map) = config
        && let Err(e) = check_json_size("auth_config", map, MEDIUM_JSON_BYTES) {
            errors.push(e);
        }
}

/// Seals `auth_config`, or the 400 that tells the operator to set the key.
fn seal(state: &AppState, config: Option<&Map<String, Value>>) -> Result<Option<Value>> {
    let Some(config) = config else { return Ok(None) };
    Ok(Some(seal_auth_config(crate::crypto::require_cipher(state.cipher.as_ref())?, config)))
}

#[utoipa::path(post, path = "/v1/enrichment-providers", tag = "enrichment-providers", request_body = ProviderCreate,
    responses((status = 201, body = ProviderResponse), (status = 409, description = "DUPLICATE_PROVIDER"),
              (status = 422, description = "Invalid recipe, type, auth type, TTL or unsafe URL")), security(("bearer" = [])))]
pub async fn create_provider(caller: Scoped<Admin>, State(state): State<AppState>, JsonBody(body): JsonBody<ProviderCreate>) -> Result<Response> {
    let mut errors = Vec::new();
    static NAME: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| Regex::new("^[a-z0-9_]{1,100}$").expect("valid regex"));
    if !NAME.is_match(&body.provider_name) {
        errors.push(field("provider_name", "string_pattern_mismatch", "provider_name must be 1 to 100 characters of a-z, 0-9 and _"));
    }
    check_display_name(&body.display_name, &mut errors);
    check_description(body.description.as_deref(), &mut errors);
    check_types(&body.supported_indicator_types, &mut errors);
    check_auth_type(&body.auth_type, &mut errors);
    check_ttls(Some(body.default_cache_ttl_seconds), body.cache_ttl_by_type.as_ref(), &mut errors);
    check_malice_rules(body.malice_rules.as_ref(), &mut errors);
    check_auth_config(body.auth_config.as_ref(), &mut errors);
    check_http_config(&state, &body.http_config, &mut errors).await;
    collect(errors)?;
    if store::provider_exists(&state.db, &body.provider_name).await? {
        return Err(duplicate_provider(&body.provider_name));
    }
    let sealed_auth_config = seal(&state, body.auth_config.as_ref())?;
    let cache_ttl_by_type = body.cache_ttl_by_type.map(Value::Object);
    let row = store::insert_provider(
        &state.db,
        NewProvider {
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
        },
    )
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => duplicate_provider(&body.provider_name),
        other => other.into(),
    })?;
    state.enricher.invalidate().await;
    tracing::info!(target: "calseta::audit", event = "enrichment_provider_created", provider_uuid = %row.uuid, provider_name = %row.provider_name, actor_key_prefix = %caller.key_prefix, "enrichment provider created");
    Ok((StatusCode::CREATED, Data::new(provider_response(&state, row))).into_response())
}

fn duplicate_provider(name: &str) -> Error {
    Error::client(StatusCode::CONFLICT, "DUPLICATE_PROVIDER", format!("Provider '{name}' already exists."))
}

#[utoipa::path(get, path = "/v1/enrichment-providers/{provider_uuid}", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    responses((status = 200, body = ProviderResponse), (status = 404, description = "Enrichment provider not found.")), security(("bearer" = [])))]
pub async fn get_provider(_caller: Scoped<EnrichmentsRead>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    let row = store::find_provider(&state.db, uuid).await?.ok_or_else(|| Error::not_found(PROVIDER_NOT_FOUND))?;
    Ok(Data::new(provider_response(&state, row)).into_response())
}

#[utoipa::path(patch, path = "/v1/enrichment-providers/{provider_uuid}", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    request_body = ProviderUpdate,
    responses((status = 200, body = ProviderResponse), (status = 400, description = "BUILTIN_RESTRICTED or ENCRYPTION_NOT_CONFIGURED"),
              (status = 404, description = "Enrichment provider not found.")), security(("bearer" = [])))]
pub async fn patch_provider(
    caller: Scoped<Admin>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<ProviderUpdate>,
) -> Result<Response> {
    let existing = store::find_provider(&state.db, uuid).await?.ok_or_else(|| Error::not_found(PROVIDER_NOT_FOUND))?;
    if existing.is_builtin {
        let refused: Vec<&str> = body.present().into_iter().filter(|f| !BUILTIN_PATCHABLE.contains(f)).collect();
        if !refused.is_empty() {
            return Err(Error::bad_request(
                "BUILTIN_RESTRICTED",
                format!("Cannot modify fields {refused:?} on builtin providers. Allowed: {BUILTIN_PATCHABLE:?}"),
            ));
        }
    }
    let mut errors = Vec::new();
    if let Some(name) = &body.display_name {
        check_display_name(name, &mut errors);
    }
    check_description(body.description.as_deref(), &mut errors);
    // Validated here too (Calseta did not, so a PATCH could register an unusable type).
    if let Some(types) = &body.supported_indicator_types {
        check_types(types, &mut errors);
    }
    if let Some(auth_type) = &body.auth_type {
        check_auth_type(auth_type, &mut errors);
    }
    check_ttls(body.default_cache_ttl_seconds, body.cache_ttl_by_type.as_ref(), &mut errors);
    check_malice_rules(body.malice_rules.as_ref(), &mut errors);
    check_auth_config(body.auth_config.as_ref(), &mut errors);
    if let Some(config) = &body.http_config {
        check_http_config(&state, config, &mut errors).await;
    }
    collect(errors)?;
    let sealed_auth_config = seal(&state, body.auth_config.as_ref())?;
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
    let row = store::update_provider(&state.db, uuid, patch).await?.ok_or_else(|| Error::not_found(PROVIDER_NOT_FOUND))?;
    state.enricher.invalidate().await;
    tracing::info!(target: "calseta::audit", event = "enrichment_provider_updated", provider_uuid = %row.uuid, fields = ?body.present(), actor_key_prefix = %caller.key_prefix, "enrichment provider updated");
    Ok(Data::new(provider_response(&state, row)).into_response())
}

#[utoipa::path(delete, path = "/v1/enrichment-providers/{provider_uuid}", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 400, description = "BUILTIN_RESTRICTED"),
              (status = 404, description = "Enrichment provider not found.")), security(("bearer" = [])))]
pub async fn delete_provider(caller: Scoped<Admin>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    let existing = store::find_provider(&state.db, uuid).await?.ok_or_else(|| Error::not_found(PROVIDER_NOT_FOUND))?;
    if existing.is_builtin {
        return Err(Error::bad_request("BUILTIN_RESTRICTED", "Builtin providers cannot be deleted; deactivate them instead."));
    }
    if !store::delete_provider(&state.db, uuid).await? {
        return Err(Error::not_found(PROVIDER_NOT_FOUND));
    }
    state.enricher.invalidate().await;
    tracing::info!(target: "calseta::audit", event = "enrichment_provider_deleted", provider_uuid = %uuid, actor_key_prefix = %caller.key_prefix, "enrichment provider deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn set_active(state: &AppState, caller: &Auth, uuid: Uuid, active: bool) -> Result<Response> {
    let patch = ProviderPatch { is_active: Some(active), ..Default::default() };
    let row = store::update_provider(&state.db, uuid, patch).await?.ok_or_else(|| Error::not_found(PROVIDER_NOT_FOUND))?;
    state.enricher.invalidate().await;
    tracing::info!(target: "calseta::audit", event = if active { "enrichment_provider_activated" } else { "enrichment_provider_deactivated" },
        provider_uuid = %row.uuid, actor_key_prefix = %caller.key_prefix, "enrichment provider state changed");
    Ok(Data::new(provider_response(state, row)).into_response())
}

#[utoipa::path(post, path = "/v1/enrichment-providers/{provider_uuid}/activate", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    responses((status = 200, body = ProviderResponse), (status = 404, description = "Enrichment provider not found.")), security(("bearer" = [])))]
pub async fn activate_provider(caller: Scoped<Admin>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    set_active(&state, &caller, uuid, true).await
}

#[utoipa::path(post, path = "/v1/enrichment-providers/{provider_uuid}/deactivate", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    responses((status = 200, body = ProviderResponse), (status = 404, description = "Enrichment provider not found.")), security(("bearer" = [])))]
pub async fn deactivate_provider(caller: Scoped<Admin>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    set_active(&state, &caller, uuid, false).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderTestRequest {
    pub indicator_type: String,
    pub indicator_value: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderTestResponse {
    pub success: bool,
    pub provider_name: String,
    pub indicator_type: String,
    pub indicator_value: String,
    #[schema(value_type = Option<Object>)]
    pub extracted: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub raw_response: Option<Value>,
    pub error_message: Option<String>,
    pub duration_ms: u64,
    pub steps: Option<Vec<StepDebug>>,
}

#[utoipa::path(post, path = "/v1/enrichment-providers/{provider_uuid}/test", tag = "enrichment-providers", params(("provider_uuid" = Uuid, Path)),
    request_body = ProviderTestRequest,
    responses((status = 200, body = ProviderTestResponse), (status = 400, description = "PROVIDER_NOT_LOADED"),
              (status = 404, description = "Enrichment provider not found.")), security(("bearer" = [])))]
pub async fn test_provider(
    _caller: Scoped<Admin>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<ProviderTestRequest>,
) -> Result<Response> {
    let mut errors = Vec::new();
    if !is_indicator_type(&body.indicator_type) {
        errors.push(field("indicator_type", "enum", format!("Invalid indicator type: '{}'", body.indicator_type)));
    }
    if body.indicator_value.is_empty() || body.indicator_value.chars().count() > MAX_VALUE_CHARS {
        errors.push(field("indicator_value", "string_length", format!("indicator_value must be 1 to {MAX_VALUE_CHARS} characters")));
    }
    collect(errors)?;
    store::find_provider(&state.db, uuid).await?.ok_or_else(|| Error::not_found(PROVIDER_NOT_FOUND))?;
    let snapshot = state.enricher.snapshot(&state.db).await;
    let provider = snapshot.by_uuid(uuid).ok_or_else(|| {
        Error::bad_request("PROVIDER_NOT_LOADED", "Provider is not loaded in the registry (is it active?).")
    })?;
    let run = state.enricher.test_provider(&provider, &body.indicator_type, &body.indicator_value).await;
    let result = run.result;
    let response = ProviderTestResponse {
        success: result.success,
        provider_name: result.provider_name,
        indicator_type: body.indicator_type,
        indicator_value: body.indicator_value,
        extracted: result.extracted,
        raw_response: result.raw.map(super::redact::truncate_body),
        error_message: result.error_message,
        duration_ms: run.duration.as_millis() as u64,
        steps: run.steps,
    };
    // The last word on the debug output: no credential value survives anywhere in it.
    let rendered = serde_json::to_value(&response).map_err(|e| Error::Internal(e.into()))?;
    Ok(Data::new(super::redact::scrub(rendered, &run.secrets)).into_response())
}

// ---------------------------------------------------------------------------------------------
// Field extractions
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct ExtractionResponse {
    pub uuid: Uuid,
    pub provider_name: String,
    pub indicator_type: String,
    pub source_path: String,
    pub target_key: String,
    pub value_type: String,
    pub is_system: bool,
    pub is_active: bool,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ExtractionRow> for ExtractionResponse {
    fn from(row: ExtractionRow) -> Self {
        ExtractionResponse {
            uuid: row.uuid,
            provider_name: row.provider_name,
            indicator_type: row.indicator_type,
            source_path: row.source_path,
            target_key: row.target_key,
            value_type: row.value_type,
            is_system: row.is_system,
            is_active: row.is_active,
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ExtractionListQuery {
    #[serde(default)]
    pub provider_name: Option<String>,
    #[serde(default)]
    pub indicator_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_system: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_active: Option<bool>,
}

#[utoipa::path(get, path = "/v1/enrichment-field-extractions", tag = "enrichment-field-extractions",
    params(("provider_name" = Option<String>, Query), ("indicator_type" = Option<String>, Query), ("is_system" = Option<bool>, Query),
           ("is_active" = Option<bool>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Field extractions, oldest first", body = [ExtractionResponse])), security(("bearer" = [])))]
pub async fn list_extractions(
    _caller: Scoped<EnrichmentsRead>,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<ExtractionListQuery>,
) -> Result<Response> {
    let pagination = pagination.validate()?;
    let filter = ExtractionFilter {
        provider_name: query.provider_name,
        indicator_type: query.indicator_type,
        is_system: query.is_system,
        is_active: query.is_active,
    };
    let (rows, total) = store::list_extractions(&state.db, &filter, pagination.limit(), pagination.offset()).await?;
    Ok(Page::new(rows.into_iter().map(ExtractionResponse::from).collect(), total, pagination).into_response())
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractionCreate {
    pub provider_name: String,
    pub indicator_type: String,
    pub source_path: String,
    pub target_key: String,
    #[serde(default = "default_value_type")]
    pub value_type: String,
    #[serde(default)]
    pub description: Option<String>,
}

fn default_value_type() -> String {
    "string".into()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractionBulkCreate {
    pub extractions: Vec<ExtractionCreate>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractionUpdate {
    #[serde(default)]
    pub source_path: Option<String>,
    #[serde(default)]
    pub target_key: Option<String>,
    #[serde(default)]
    pub value_type: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Field checks of one extraction; `prefix` locates it inside a bulk body.
fn check_extraction_fields(
    prefix: &str,
    source_path: Option<&str>,
    target_key: Option<&str>,
    value_type: Option<&str>,
    description: Option<&str>,
    errors: &mut Vec<FieldError>,
) {
    if let Some(path) = source_path
        && let Err(reason) = dotpath::validate(path) {
            errors.push(field(&format!("{prefix}source_path"), "value_error", format!("Invalid source_path: {reason}")));
        }
    if let Some(key) = target_key
        && (key.trim().is_empty() || key.chars().count() > 100) {
            errors.push(field(&format!("{prefix}target_key"), "string_length", "target_key must be 1 to 100 characters"));
        }
    if let Some(value_type) = value_type
        && !VALUE_TYPES.contains(&value_type) {
            errors.push(field(&format!("{prefix}value_type"), "enum", format!("Invalid value_type '{value_type}'. Allowed: {}", VALUE_TYPES.join(", "))));
        }
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        errors.push(field(&format!("{prefix}description"), "string_too_long", format!("description must be at most {MAX_DESCRIPTION} characters")));
    }
}

fn check_create(prefix: &str, body: &ExtractionCreate, errors: &mut Vec<FieldError>) {
    if body.provider_name.is_empty() || body.provider_name.chars().count() > 100 {
        errors.push(field(&format!("{prefix}provider_name"), "string_length", "provider_name must be 1 to 100 characters"));
    }
    if !is_indicator_type(&body.indicator_type) {
        errors.push(field(&format!("{prefix}indicator_type"), "enum", format!("Invalid indicator type: '{}'", body.indicator_type)));
    }
    check_extraction_fields(prefix, Some(&body.source_path), Some(&body.target_key), Some(&body.value_type), body.description.as_deref(), errors);
}

/// A unique violation on (provider, type, path) is the client's duplicate: 409, never a 500.
fn duplicate_extraction(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::client(
            StatusCode::CONFLICT,
            "DUPLICATE_EXTRACTION",
            "An extraction with the same provider_name, indicator_type and source_path already exists.",
        ),
        other => other.into(),
    }
}

async fn create_all(state: &AppState, bodies: &[ExtractionCreate]) -> Result<Vec<ExtractionRow>> {
    for body in bodies {
        if !store::provider_exists(&state.db, &body.provider_name).await? {
            return Err(Error::client(
                StatusCode::UNPROCESSABLE_ENTITY,
                "PROVIDER_NOT_FOUND",
                format!("Enrichment provider '{}' does not exist.", body.provider_name),
            ));
        }
    }
    let rows: Vec<NewExtraction> = bodies
        .iter()
        .map(|b| NewExtraction {
            provider_name: &b.provider_name,
            indicator_type: &b.indicator_type,
            source_path: &b.source_path,
            target_key: &b.target_key,
            value_type: &b.value_type,
            description: b.description.as_deref(),
            is_system: false,
        })
        .collect();
    let created = store::insert_extractions(&state.db, &rows).await.map_err(duplicate_extraction)?;
    state.enricher.invalidate().await;
    Ok(created)
}

#[utoipa::path(post, path = "/v1/enrichment-field-extractions", tag = "enrichment-field-extractions", request_body = ExtractionCreate,
    responses((status = 201, body = ExtractionResponse), (status = 409, description = "DUPLICATE_EXTRACTION"),
              (status = 422, description = "PROVIDER_NOT_FOUND or invalid fields")), security(("bearer" = [])))]
pub async fn create_extraction(caller: Scoped<Admin>, State(state): State<AppState>, JsonBody(body): JsonBody<ExtractionCreate>) -> Result<Response> {
    let mut errors = Vec::new();
    check_create("", &body, &mut errors);
    collect(errors)?;
    let row = create_all(&state, std::slice::from_ref(&body)).await?.remove(0);
    tracing::info!(target: "calseta::audit", event = "enrichment_field_extraction_created", extraction_uuid = %row.uuid, actor_key_prefix = %caller.key_prefix, "field extraction created");
    Ok((StatusCode::CREATED, Data::new(ExtractionResponse::from(row))).into_response())
}

#[utoipa::path(post, path = "/v1/enrichment-field-extractions/bulk", tag = "enrichment-field-extractions", request_body = ExtractionBulkCreate,
    responses((status = 201, body = [ExtractionResponse]), (status = 409, description = "DUPLICATE_EXTRACTION; nothing created")), security(("bearer" = [])))]
pub async fn create_extractions_bulk(
    caller: Scoped<Admin>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ExtractionBulkCreate>,
) -> Result<Response> {
    let mut errors = Vec::new();
    if body.extractions.is_empty() || body.extractions.len() > 100 {
        errors.push(field("extractions", "length", "extractions must hold 1 to 100 items"));
    }
    for (i, extraction) in body.extractions.iter().enumerate() {
        check_create(&format!("extractions.{i}."), extraction, &mut errors);
    }
    collect(errors)?;
    let rows = create_all(&state, &body.extractions).await?;
    tracing::info!(target: "calseta::audit", event = "enrichment_field_extractions_created", count = rows.len(), actor_key_prefix = %caller.key_prefix, "field extractions created");
    let data: Vec<ExtractionResponse> = rows.into_iter().map(ExtractionResponse::from).collect();
    Ok((StatusCode::CREATED, Data::new(data)).into_response())
}

#[utoipa::path(get, path = "/v1/enrichment-field-extractions/{extraction_uuid}", tag = "enrichment-field-extractions", params(("extraction_uuid" = Uuid, Path)),
    responses((status = 200, body = ExtractionResponse), (status = 404, description = "Enrichment field extraction not found.")), security(("bearer" = [])))]
pub async fn get_extraction(_caller: Scoped<EnrichmentsRead>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    let row = store::find_extraction(&state.db, uuid).await?.ok_or_else(|| Error::not_found(EXTRACTION_NOT_FOUND))?;
    Ok(Data::new(ExtractionResponse::from(row)).into_response())
}

fn system_restricted() -> Error {
    Error::Denied { code: "SYSTEM_EXTRACTION_RESTRICTED", message: "System field extractions may only be activated or deactivated.".into() }
}

#[utoipa::path(patch, path = "/v1/enrichment-field-extractions/{extraction_uuid}", tag = "enrichment-field-extractions", params(("extraction_uuid" = Uuid, Path)),
    request_body = ExtractionUpdate,
    responses((status = 200, body = ExtractionResponse), (status = 403, description = "SYSTEM_EXTRACTION_RESTRICTED"),
              (status = 409, description = "DUPLICATE_EXTRACTION"), (status = 404, description = "Enrichment field extraction not found.")),
    security(("bearer" = [])))]
pub async fn patch_extraction(
    caller: Scoped<Admin>,
    State(state): State<AppState>,
    ValidPath(uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<ExtractionUpdate>,
) -> Result<Response> {
    let mut errors = Vec::new();
    check_extraction_fields("", body.source_path.as_deref(), body.target_key.as_deref(), body.value_type.as_deref(), body.description.as_deref(), &mut errors);
    collect(errors)?;
    let existing = store::find_extraction(&state.db, uuid).await?.ok_or_else(|| Error::not_found(EXTRACTION_NOT_FOUND))?;
    if existing.is_system && (body.source_path.is_some() || body.target_key.is_some() || body.value_type.is_some() || body.description.is_some()) {
        return Err(system_restricted());
    }
    let patch = ExtractionPatch {
        source_path: body.source_path.as_deref(),
        target_key: body.target_key.as_deref(),
        value_type: body.value_type.as_deref(),
        is_active: body.is_active,
        description: body.description.as_deref(),
    };
    // A duplicate triple after the change is a 409 (Calseta answered 500).
    let row = store::update_extraction(&state.db, uuid, patch)
        .await
        .map_err(duplicate_extraction)?
        .ok_or_else(|| Error::not_found(EXTRACTION_NOT_FOUND))?;
    state.enricher.invalidate().await;
    tracing::info!(target: "calseta::audit", event = "enrichment_field_extraction_updated", extraction_uuid = %row.uuid, actor_key_prefix = %caller.key_prefix, "field extraction updated");
    Ok(Data::new(ExtractionResponse::from(row)).into_response())
}

#[utoipa::path(delete, path = "/v1/enrichment-field-extractions/{extraction_uuid}", tag = "enrichment-field-extractions", params(("extraction_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, description = "SYSTEM_EXTRACTION_RESTRICTED"),
              (status = 404, description = "Enrichment field extraction not found.")), security(("bearer" = [])))]
pub async fn delete_extraction(caller: Scoped<Admin>, State(state): State<AppState>, ValidPath(uuid): ValidPath<Uuid>) -> Result<Response> {
    let existing = store::find_extraction(&state.db, uuid).await?.ok_or_else(|| Error::not_found(EXTRACTION_NOT_FOUND))?;
    if existing.is_system {
        return Err(system_restricted());
    }
    if !store::delete_extraction(&state.db, uuid).await? {
        return Err(Error::not_found(EXTRACTION_NOT_FOUND));
    }
    state.enricher.invalidate().await;
    tracing::info!(target: "calseta::audit", event = "enrichment_field_extraction_deleted", extraction_uuid = %uuid, actor_key_prefix = %caller.key_prefix, "field extraction deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_patch_fields() {
        let update = ProviderUpdate { is_active: Some(false), http_config: Some(json!({})), ..Default::default() };
        let refused: Vec<&str> = update.present().into_iter().filter(|f| !BUILTIN_PATCHABLE.contains(f)).collect();
        assert_eq!(refused, vec!["http_config"]);
    }

    #[test]
    fn ttl_and_type_checks() {
        let mut errors = Vec::new();
        check_ttls(Some(-1), None, &mut errors);
        check_ttls(Some(86_401), None, &mut errors);
        let by_type: Map<String, Value> = serde_json::from_value(json!({"ip": 10, "nope": 5, "domain": "x"})).unwrap();
        check_ttls(Some(0), Some(&by_type), &mut errors);
        assert_eq!(errors.len(), 4);
        let mut errors = Vec::new();
        check_types(&["ip".into(), "ipv9".into()], &mut errors);
        check_types(&[], &mut errors);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].msg, "Invalid indicator type: 'ipv9'");
        let mut errors = Vec::new();
        check_auth_type("api_key", &mut errors);
        check_auth_type("apikey", &mut errors);
        assert_eq!(errors.len(), 1);
    }
}
