//! Indicator-mapping operations: list, create, get, patch, delete, the synthetic list of
//! source-plugin (Pass 1) fields, and a dry-run of the three extraction passes. Every operation
//! requires `admin`; writes are audited. System mappings cannot be deleted and their
//! `field_path` cannot change; `indicator_type`, `is_active` and `description` of a system
//! mapping can (api.md §5 QUIRK, kept).

use chrono::{DateTime, TimeZone, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{self, Deleted, MappingFilter, MappingPatch, MappingRow, NewMapping};
use crate::audit::{self, Record};
use crate::auth::Principal;
use crate::error::{Error, FieldError, FieldErrors, Result};
use crate::ingest::extract::{TestExtractionReport, test_extraction};
use crate::ingest::sources;
use crate::operation;
use crate::pagination::Pagination;
use crate::service::Operation as _;
use crate::state::AppState;

operation!(ListIndicatorMappings = "indicator_mappings.list", scopes ["admin"]);
operation!(GetIndicatorMapping = "indicator_mappings.get", scopes ["admin"]);
operation!(CreateIndicatorMapping = "indicator_mappings.create", scopes ["admin"]);
operation!(PatchIndicatorMapping = "indicator_mappings.patch", scopes ["admin"]);
operation!(DeleteIndicatorMapping = "indicator_mappings.delete", scopes ["admin"]);
operation!(ListSourcePluginFields = "indicator_mappings.source_plugin_fields", scopes ["admin"]);
operation!(TestExtraction = "indicator_mappings.test_extraction", scopes ["admin"]);

const NOT_FOUND: &str = "Indicator field mapping";
const MAX_FIELD_PATH: usize = 500;
const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 10_000;

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
pub struct MappingListQuery {
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


fn readonly(message: &str) -> Error {
    Error::client(StatusCode::UNPROCESSABLE_ENTITY, "SYSTEM_MAPPING_READONLY", message)
}

/// One page in creation order (oldest first), and the total.
pub async fn list(state: &AppState, who: &Principal, pagination: Pagination, query: MappingListQuery) -> Result<(Vec<IndicatorMappingResponse>, i64)> {
    who.authorize::<ListIndicatorMappings>()?;
    // Every bad parameter is reported at once, as FastAPI does.
    let mut errors = FieldErrors::default();
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
    errors.finish()?;
    let pagination = pagination.expect("no validation error");
    let filter = MappingFilter { source_name: query.source_name, is_system, is_active, extraction_target: query.extraction_target };
    let (rows, total) = store::list(&state.db, &filter, pagination.limit(), pagination.offset()).await?;
    Ok((rows.into_iter().map(IndicatorMappingResponse::from).collect(), total))
}

pub async fn get(state: &AppState, who: &Principal, uuid: Uuid) -> Result<IndicatorMappingResponse> {
    who.authorize::<GetIndicatorMapping>()?;
    let row = store::find_by_uuid(&state.db, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    Ok(row.into())
}

/// Creates an operator mapping (never a system one).
pub async fn create(state: &AppState, who: &Principal, input: IndicatorMappingCreate) -> Result<IndicatorMappingResponse> {
    who.authorize::<CreateIndicatorMapping>()?;
    let mut errors = FieldErrors::default();
    errors
        .check(check_optional_text("source_name", input.source_name.as_deref(), MAX_NAME))
        .check(check_text("field_path", &input.field_path, MAX_FIELD_PATH))
        .check(check_text("indicator_type", &input.indicator_type, MAX_NAME))
        .check(check_text("extraction_target", &input.extraction_target, MAX_NAME))
        .check(check_description(input.description.as_deref()));
    errors.finish()?;
    let mut tx = state.db.begin().await?;
    let row = store::insert(
        &mut tx,
        &NewMapping {
            source_name: input.source_name.as_deref(),
            field_path: &input.field_path,
            indicator_type: &input.indicator_type,
            extraction_target: &input.extraction_target,
            is_active: input.is_active,
            description: input.description.as_deref(),
        },
    )
    .await?;
    audit::record(&mut tx, who, Record::success(CreateIndicatorMapping::NAME, "indicator_mapping", row.uuid).with_details(summary(&row))).await?;
    tx.commit().await?;
    Ok(row.into())
}

fn summary(row: &MappingRow) -> Value {
    json!({
        "source_name": row.source_name,
        "field_path": row.field_path,
        "indicator_type": row.indicator_type,
        "extraction_target": row.extraction_target,
        "is_active": row.is_active,
    })
}

pub async fn patch(state: &AppState, who: &Principal, uuid: Uuid, input: IndicatorMappingPatch) -> Result<IndicatorMappingResponse> {
    who.authorize::<PatchIndicatorMapping>()?;
    let mut errors = FieldErrors::default();
    errors
        .check(check_optional_text("field_path", input.field_path.as_deref(), MAX_FIELD_PATH))
        .check(check_optional_text("indicator_type", input.indicator_type.as_deref(), MAX_NAME))
        .check(check_description(input.description.as_deref()));
    errors.finish()?;
    let patch = MappingPatch {
        field_path: input.field_path.as_deref(),
        indicator_type: input.indicator_type.as_deref(),
        is_active: input.is_active,
        description: input.description.as_deref(),
    };
    let current = store::find_by_uuid(&state.db, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    // `is_system` never changes, so this check cannot be raced by another request.
    if current.is_system && input.field_path.is_some() {
        return Err(readonly("System mappings are read-only. Only is_active can be toggled."));
    }
    let mut tx = state.db.begin().await?;
    let row = store::update(&mut tx, uuid, &patch).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    audit::record(&mut tx, who, Record::success(PatchIndicatorMapping::NAME, "indicator_mapping", row.uuid).with_details(summary(&row))).await?;
    tx.commit().await?;
    Ok(row.into())
}

/// Deletes an operator mapping; system mappings are deactivated instead.
pub async fn delete(state: &AppState, who: &Principal, uuid: Uuid) -> Result<()> {
    who.authorize::<DeleteIndicatorMapping>()?;
    let mut tx = state.db.begin().await?;
    match store::delete(&mut tx, uuid).await? {
        Deleted::Row(row) => {
            audit::record(&mut tx, who, Record::success(DeleteIndicatorMapping::NAME, "indicator_mapping", uuid).with_details(summary(&row))).await?;
            tx.commit().await?;
            Ok(())
        }
        Deleted::NotFound => Err(Error::not_found(NOT_FOUND)),
        Deleted::SystemRow => Err(readonly("System mappings cannot be deleted. Set is_active=false to disable.")),
    }
}

pub fn list_source_plugin_fields(who: &Principal) -> Result<Vec<IndicatorMappingResponse>> {
    who.authorize::<ListSourcePluginFields>()?;
    Ok(source_plugin_fields())
}

/// The three extraction passes over `raw_payload` with the current mappings, without storing.
pub async fn test(state: &AppState, who: &Principal, input: TestExtractionRequest) -> Result<TestExtractionReport> {
    who.authorize::<TestExtraction>()?;
    let source = sources::get(&input.source_name).ok_or_else(|| {
        Error::client(StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_SOURCE", format!("Unknown alert source: {}", input.source_name))
    })?;
    if !source.validate(&input.raw_payload) {
        return Err(Error::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_PAYLOAD",
            "Payload failed source validation. Check the JSON structure matches the selected source format.",
        ));
    }
    let mappings = store::active_mappings(&state.db, source.name()).await?;
    Ok(test_extraction(source, &input.raw_payload, &mappings, Utc::now()))
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
