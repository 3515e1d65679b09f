//! `/v1/indicator-mappings`: list, create, get, patch, delete, the synthetic list of source-plugin
//! (Pass 1) fields, and a dry-run of the three extraction passes. Every route requires `admin`.
//! System mappings cannot be deleted and their `field_path` cannot change; `indicator_type`,
//! `is_active` and `description` of a system mapping can (api.md §5 QUIRK, kept).

use utoipa_axum::{router::OpenApiRouter, routes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{self, Deleted, MappingFilter, MappingPatch, MappingRow, NewMapping};
use crate::auth::Auth;
use crate::error::{Error, FieldError, Result};
use crate::http::extract::{JsonBody, ValidPath, ValidQuery};
use crate::ingest::sources;
use crate::ingest::extract::test_extraction;
use crate::pagination::{Data, Page, Pagination};
use crate::state::AppState;

const NOT_FOUND: &str = "Indicator field mapping";
const MAX_FIELD_PATH: usize = 500;
const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 10_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_indicator_mappings, create_indicator_mapping))
        .routes(routes!(list_source_plugin_fields))
        .routes(routes!(test_extraction_endpoint))
        .routes(routes!(get_indicator_mapping, patch_indicator_mapping, delete_indicator_mapping))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndicatorMappingResponse {
    pub uuid: Uuid,
    /// `null`: applies to every source.
    pub source_name: Option<String>,
    pub field_path: String,
    pub indicator_type: String,
    /// `normalized` or `raw_payload` (stored rows); `source_plugin` (synthetic Pass-1 entries).
    pub extraction_target: String,
    pub is_system: bool,
    pub is_active: bool,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<MappingRow> for IndicatorMappingResponse {
    fn from(row: MappingRow) -> Self {
        IndicatorMappingResponse {
            uuid: row.uuid,
            source_name: row.source_name,
            field_path: row.field_path,
            indicator_type: row.indicator_type,
            extraction_target: row.extraction_target,
            is_system: row.is_system,
            is_active: row.is_active,
            description: row.description,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Filters of the list. Booleans are read as text so that the usual spellings are accepted and a
/// bad value names its parameter in the 422.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    pub source_name: Option<String>,
    pub is_system: Option<String>,
    pub is_active: Option<String>,
    pub extraction_target: Option<String>,
}

/// `true/false`, `1/0`, `yes/no`, `on/off`, `t/f`, `y/n` in any case, as FastAPI accepts them.
fn query_bool(name: &str, value: Option<&str>) -> std::result::Result<Option<bool>, FieldError> {
    let Some(text) = value else { return Ok(None) };
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(Some(true)),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(Some(false)),
        _ => Err(FieldError::new(
            "bool_parsing",
            vec![json!("query"), json!(name)],
            "Input should be a valid boolean, unable to interpret input",
        )),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndicatorMappingCreate {
    /// Restrict to one alert source; `null` (default) applies to all sources.
    #[serde(default)]
    pub source_name: Option<String>,
    /// A normalized field name (`src_ip`) or a dot path into the raw payload (`okta.client.ipAddress`).
    pub field_path: String,
    /// Not validated against the indicator types: rows with an unknown type are skipped at extraction.
    pub indicator_type: String,
    /// `normalized` (default) or `raw_payload`; not validated (other values are never used).
    #[serde(default = "default_target")]
    pub extraction_target: String,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub description: Option<String>,
}

fn default_target() -> String {
    "normalized".to_owned()
}

fn default_true() -> bool {
    true
}

/// `null` for any field means "leave unchanged" (api.md: nulls ignored).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndicatorMappingPatch {
    #[serde(default)]
    pub field_path: Option<String>,
    #[serde(default)]
    pub indicator_type: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestExtractionRequest {
    pub source_name: String,
    #[schema(value_type = Object)]
    pub raw_payload: Map<String, Value>,
}

/// A required text: not blank, at most `max` characters.
fn check_text(field: &str, value: &str, max: usize) -> std::result::Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::body(field, "string_too_short", format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(FieldError::body(field, "string_too_long", format!("{field} must be at most {max} characters")));
    }
    Ok(())
}

fn check_optional_text(field: &str, value: Option<&str>, max: usize) -> std::result::Result<(), FieldError> {
    value.map_or(Ok(()), |v| check_text(field, v, max))
}

fn check_description(value: Option<&str>) -> std::result::Result<(), FieldError> {
    match value {
        Some(text) if text.chars().count() > MAX_DESCRIPTION => Err(FieldError::body(
            "description",
            "string_too_long",
            format!("description must be at most {MAX_DESCRIPTION} characters"),
        )),
        _ => Ok(()),
    }
}

fn collect(checks: Vec<std::result::Result<(), FieldError>>) -> Result<()> {
    let errors: Vec<FieldError> = checks.into_iter().filter_map(|c| c.err()).collect();
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

#[utoipa::path(get, path = "/v1/indicator-mappings", tag = "indicator-mappings",
    params(("source_name" = Option<String>, Query), ("is_system" = Option<bool>, Query), ("is_active" = Option<bool>, Query),
           ("extraction_target" = Option<String>, Query), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, description = "Mappings, oldest first", body = [IndicatorMappingResponse])), security(("bearer" = [])))]
pub async fn list_indicator_mappings(
    auth: Auth,
    State(state): State<AppState>,
    ValidQuery(pagination): ValidQuery<Pagination>,
    ValidQuery(query): ValidQuery<ListQuery>,
) -> Result<Response> {
    auth.require(&["admin"])?;
    // Every bad parameter is reported at once, as FastAPI does.
    let mut errors = Vec::new();
    let pagination = match pagination.validate() {
        Ok(valid) => Some(valid),
        Err(Error::Validation(found)) => {
            errors.extend(found);
            None
        }
        Err(other) => return Err(other),
    };
    let is_system = query_bool("is_system", query.is_system.as_deref()).map_err(|e| errors.push(e)).ok().flatten();
    let is_active = query_bool("is_active", query.is_active.as_deref()).map_err(|e| errors.push(e)).ok().flatten();
    let Some(pagination) = pagination.filter(|_| errors.is_empty()) else {
        return Err(Error::Validation(errors));
    };
    let filter = MappingFilter {
        source_name: query.source_name,
        is_system,
        is_active,
        extraction_target: query.extraction_target,
    };
    let (rows, total) = store::list(&state.db, &filter, pagination.limit(), pagination.offset()).await?;
    let data = rows.into_iter().map(IndicatorMappingResponse::from).collect();
    Ok(Page::new(data, total, pagination).into_response())
}

#[utoipa::path(post, path = "/v1/indicator-mappings", tag = "indicator-mappings", request_body = IndicatorMappingCreate,
    responses((status = 201, description = "Created (never a system mapping)", body = IndicatorMappingResponse)), security(("bearer" = [])))]
pub async fn create_indicator_mapping(
    auth: Auth,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<IndicatorMappingCreate>,
) -> Result<Response> {
    auth.require(&["admin"])?;
    collect(vec![
        check_optional_text("source_name", body.source_name.as_deref(), MAX_NAME),
        check_text("field_path", &body.field_path, MAX_FIELD_PATH),
        check_text("indicator_type", &body.indicator_type, MAX_NAME),
        check_text("extraction_target", &body.extraction_target, MAX_NAME),
        check_description(body.description.as_deref()),
    ])?;
    let row = store::insert(
        &state.db,
        &NewMapping {
            source_name: body.source_name.as_deref(),
            field_path: &body.field_path,
            indicator_type: &body.indicator_type,
            extraction_target: &body.extraction_target,
            is_active: body.is_active,
            description: body.description.as_deref(),
        },
    )
    .await?;
    tracing::info!(target: "calseta::audit", event = "indicator_mapping_created", mapping_uuid = %row.uuid, actor_key_prefix = %auth.key_prefix, "indicator mapping created");
    Ok((StatusCode::CREATED, Data::new(IndicatorMappingResponse::from(row))).into_response())
}

/// The fixed timestamp of the synthetic Pass-1 entries (api.md §5).
fn plugin_field_epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or_default()
}

/// One synthetic mapping per documented Pass-1 extraction of every registered plugin.
pub fn source_plugin_fields() -> Vec<IndicatorMappingResponse> {
    let epoch = plugin_field_epoch();
    sources::all()
        .iter()
        .flat_map(|source| {
            source.documented_fields().into_iter().map(move |field| IndicatorMappingResponse {
                uuid: Uuid::nil(),
                source_name: Some(source.name().to_owned()),
                field_path: field.field_path.to_owned(),
                indicator_type: field.indicator_type.as_str().to_owned(),
                extraction_target: "source_plugin".to_owned(),
                is_system: true,
                is_active: true,
                description: Some(field.description.to_owned()),
                created_at: epoch,
                updated_at: epoch,
            })
        })
        .collect()
}

#[utoipa::path(get, path = "/v1/indicator-mappings/source-plugin-fields", tag = "indicator-mappings",
    responses((status = 200, description = "Pass-1 fields of every registered source plugin (not paginated)", body = [IndicatorMappingResponse])),
    security(("bearer" = [])))]
pub async fn list_source_plugin_fields(auth: Auth) -> Result<Response> {
    auth.require(&["admin"])?;
    Ok(Data::new(source_plugin_fields()).into_response())
}

#[utoipa::path(post, path = "/v1/indicator-mappings/test-extraction", tag = "indicator-mappings", request_body = TestExtractionRequest,
    responses((status = 200, description = "The three passes, the deduplicated result and the normalization preview"),
              (status = 422, description = "UNKNOWN_SOURCE, INVALID_PAYLOAD or VALIDATION_ERROR")),
    security(("bearer" = [])))]
pub async fn test_extraction_endpoint(
    auth: Auth,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<TestExtractionRequest>,
) -> Result<Response> {
    auth.require(&["admin"])?;
    let source = sources::get(&body.source_name).ok_or_else(|| {
        Error::client(StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_SOURCE", format!("Unknown alert source: {}", body.source_name))
    })?;
    if !source.validate(&body.raw_payload) {
        return Err(Error::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_PAYLOAD",
            "Payload failed source validation. Check the JSON structure matches the selected source format.",
        ));
    }
    let mappings = store::active_mappings(&state.db, source.name()).await?;
    let report = test_extraction(source, &body.raw_payload, &mappings, Utc::now());
    Ok(Data::new(report).into_response())
}

#[utoipa::path(get, path = "/v1/indicator-mappings/{mapping_uuid}", tag = "indicator-mappings", params(("mapping_uuid" = Uuid, Path)),
    responses((status = 200, body = IndicatorMappingResponse), (status = 404, description = "Indicator field mapping not found.")),
    security(("bearer" = [])))]
pub async fn get_indicator_mapping(
    auth: Auth,
    State(state): State<AppState>,
    ValidPath(mapping_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    auth.require(&["admin"])?;
    let row = store::find_by_uuid(&state.db, mapping_uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    Ok(Data::new(IndicatorMappingResponse::from(row)).into_response())
}

#[utoipa::path(patch, path = "/v1/indicator-mappings/{mapping_uuid}", tag = "indicator-mappings", params(("mapping_uuid" = Uuid, Path)),
    request_body = IndicatorMappingPatch,
    responses((status = 200, body = IndicatorMappingResponse), (status = 404, description = "Indicator field mapping not found."),
              (status = 422, description = "SYSTEM_MAPPING_READONLY when field_path of a system mapping is sent")),
    security(("bearer" = [])))]
pub async fn patch_indicator_mapping(
    auth: Auth,
    State(state): State<AppState>,
    ValidPath(mapping_uuid): ValidPath<Uuid>,
    JsonBody(body): JsonBody<IndicatorMappingPatch>,
) -> Result<Response> {
    auth.require(&["admin"])?;
    collect(vec![
        check_optional_text("field_path", body.field_path.as_deref(), MAX_FIELD_PATH),
        check_optional_text("indicator_type", body.indicator_type.as_deref(), MAX_NAME),
        check_description(body.description.as_deref()),
    ])?;
    let current = store::find_by_uuid(&state.db, mapping_uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    // `is_system` never changes, so this check cannot be raced by another request.
    if current.is_system && body.field_path.is_some() {
        return Err(Error::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "SYSTEM_MAPPING_READONLY",
            "System mappings are read-only. Only is_active can be toggled.",
        ));
    }
    let patch = MappingPatch {
        field_path: body.field_path.as_deref(),
        indicator_type: body.indicator_type.as_deref(),
        is_active: body.is_active,
        description: body.description.as_deref(),
    };
    let row = store::update(&state.db, mapping_uuid, &patch).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    tracing::info!(target: "calseta::audit", event = "indicator_mapping_updated", mapping_uuid = %row.uuid, actor_key_prefix = %auth.key_prefix, "indicator mapping updated");
    Ok(Data::new(IndicatorMappingResponse::from(row)).into_response())
}

#[utoipa::path(delete, path = "/v1/indicator-mappings/{mapping_uuid}", tag = "indicator-mappings", params(("mapping_uuid" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Indicator field mapping not found."),
              (status = 422, description = "SYSTEM_MAPPING_READONLY: system mappings cannot be deleted")),
    security(("bearer" = [])))]
pub async fn delete_indicator_mapping(
    auth: Auth,
    State(state): State<AppState>,
    ValidPath(mapping_uuid): ValidPath<Uuid>,
) -> Result<Response> {
    auth.require(&["admin"])?;
    match store::delete(&state.db, mapping_uuid).await? {
        Deleted::Yes => {
            tracing::info!(target: "calseta::audit", event = "indicator_mapping_deleted", mapping_uuid = %mapping_uuid, actor_key_prefix = %auth.key_prefix, "indicator mapping deleted");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Deleted::NotFound => Err(Error::not_found(NOT_FOUND)),
        Deleted::SystemRow => Err(Error::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "SYSTEM_MAPPING_READONLY",
            "System mappings cannot be deleted. Set is_active=false to disable.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_fields_are_synthetic_system_rows() {
        let fields = source_plugin_fields();
        assert_eq!(fields.len(), 7 + 18 + 10 + 16);
        assert!(fields.iter().all(|f| f.uuid.is_nil() && f.is_system && f.is_active && f.extraction_target == "source_plugin"));
        assert_eq!(serde_json::to_value(&fields[0]).unwrap()["created_at"], "2000-01-01T00:00:00Z");
        assert_eq!(fields[0].source_name.as_deref(), Some("sentinel"));
    }

    #[test]
    fn query_booleans() {
        assert_eq!(query_bool("x", Some("TRUE")).unwrap(), Some(true));
        assert_eq!(query_bool("x", Some("0")).unwrap(), Some(false));
        assert_eq!(query_bool("x", None).unwrap(), None);
        let err = query_bool("is_active", Some("maybe")).unwrap_err();
        assert_eq!(err.loc, vec![json!("query"), json!("is_active")]);
        assert!(query_bool("x", Some("")).is_err());
    }

    #[test]
    fn text_checks() {
        assert!(check_text("f", "src_ip", 10).is_ok());
        assert_eq!(check_text("f", "  ", 10).unwrap_err().kind, "string_too_short");
        assert_eq!(check_text("f", &"é".repeat(11), 10).unwrap_err().kind, "string_too_long");
        assert!(check_text("f", &"é".repeat(10), 10).is_ok());
        assert!(check_description(Some(&"x".repeat(MAX_DESCRIPTION + 1))).is_err());
        assert!(check_description(None).is_ok());
    }
}
