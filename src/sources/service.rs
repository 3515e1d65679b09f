//! Source-integration operations: list, get, create, patch, delete. Reads need `alerts:read`,
//! writes `admin`; writes are audited. `auth_config` is accepted on create/patch, sealed before
//! storage and never returned (nor audited); without `ENCRYPTION_KEY` a request carrying it is
//! refused (400).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{self, NewSource, SourcePatch, SourceRow};
use super::{MEDIUM_JSON_BYTES, check_json_size, seal_auth_config};
use crate::audit::{self, Record};
use crate::auth::Principal;
use crate::crypto::require_cipher;
use crate::error::{Error, FieldError, FieldErrors, Result};
use crate::ingest::sources;
use crate::operation;
use crate::pagination::Pagination;
use crate::service::Operation as _;
use crate::state::AppState;

operation!(ListSources = "sources.list", scopes ["alerts:read"]);
operation!(GetSource = "sources.get", scopes ["alerts:read"]);
operation!(CreateSource = "sources.create", scopes ["admin"]);
operation!(PatchSource = "sources.patch", scopes ["admin"]);
operation!(DeleteSource = "sources.delete", scopes ["admin"]);

const NOT_FOUND: &str = "Source integration";
const MAX_DISPLAY_NAME: usize = 255;
const MAX_AUTH_TYPE: usize = 100;
const MAX_DOCUMENTATION: usize = 100_000;

/// `auth_config` is deliberately absent: it is never returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceResponse {
    pub uuid: Uuid,
    pub source_name: String,
    pub display_name: String,
    pub is_active: bool,
    pub auth_type: Option<String>,
    pub documentation: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<SourceRow> for SourceResponse {
    fn from(row: SourceRow) -> Self {
        SourceResponse {
            uuid: row.uuid,
            source_name: row.source_name,
            display_name: row.display_name,
            is_active: row.is_active,
            auth_type: row.auth_type,
            documentation: row.documentation,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceCreate {
    /// A registered source plugin (`sentinel`, `elastic`, `splunk`, `generic`).
    pub source_name: String,
    pub display_name: String,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub auth_type: Option<String>,
    /// Secret; sealed before storage, never returned. At most 256 KB serialized.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub auth_config: Option<Map<String, Value>>,
    #[serde(default)]
    pub documentation: Option<String>,
}

fn default_true() -> bool {
    true
}

/// `null` for any field means "leave unchanged" (api.md: nulls ignored).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceUpdate {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub auth_type: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub auth_config: Option<Map<String, Value>>,
    #[serde(default)]
    pub documentation: Option<String>,
}

fn check_display_name(value: &str) -> std::result::Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::body("display_name", "string_too_short", "display_name must be 1 to 255 characters"));
    }
    if value.chars().count() > MAX_DISPLAY_NAME {
        return Err(FieldError::body("display_name", "string_too_long", "display_name must be 1 to 255 characters"));
    }
    Ok(())
}

fn check_max(field: &str, value: Option<&str>, max: usize) -> std::result::Result<(), FieldError> {
    match value {
        Some(text) if text.chars().count() > max => {
            Err(FieldError::body(field, "string_too_long", format!("{field} must be at most {max} characters")))
        }
        _ => Ok(()),
    }
}

fn check_auth_config(config: Option<&Map<String, Value>>) -> std::result::Result<(), FieldError> {
    match config {
        Some(map) => check_json_size("auth_config", map, MEDIUM_JSON_BYTES),
        None => Ok(()),
    }
}

/// The field checks create and patch share; `None` means "not supplied".
fn check_fields(
    display_name: Option<&str>,
    auth_type: Option<&str>,
    auth_config: Option<&Map<String, Value>>,
    documentation: Option<&str>,
) -> Result<()> {
    let mut errors = FieldErrors::default();
    errors
        .check(display_name.map_or(Ok(()), check_display_name))
        .check(check_max("auth_type", auth_type, MAX_AUTH_TYPE))
        .check(check_auth_config(auth_config))
        .check(check_max("documentation", documentation, MAX_DOCUMENTATION));
    errors.finish()
}

fn invalid_source(name: &str) -> Error {
    let registered: Vec<String> = sources::all().iter().map(|s| crate::ingest::sources::py_string_repr(s.name())).collect();
    Error::bad_request(
        "INVALID_SOURCE",
        format!("Unknown source plugin: {}. Registered sources: [{}]", crate::ingest::sources::py_string_repr(name), registered.join(", ")),
    )
}


/// Source integrations, newest first.
pub async fn list(state: &AppState, who: &Principal, pagination: Pagination) -> Result<(Vec<SourceResponse>, i64)> {
    who.authorize::<ListSources>()?;
    let pagination = pagination.validate()?;
    let (rows, total) = store::list(&state.db, pagination.limit(), pagination.offset()).await?;
    Ok((rows.into_iter().map(SourceResponse::from).collect(), total))
}

pub async fn get(state: &AppState, who: &Principal, uuid: Uuid) -> Result<SourceResponse> {
    who.authorize::<GetSource>()?;
    let row = store::find_by_uuid(&state.db, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    Ok(row.into())
}

/// The audit details of a change: what was set, with `auth_config` reduced to "changed".
fn audited(row: &SourceRow, auth_config_sent: bool) -> Value {
    json!({
        "source_name": row.source_name,
        "display_name": row.display_name,
        "is_active": row.is_active,
        "auth_config_changed": auth_config_sent,
    })
}

fn seal(state: &AppState, config: Option<&Map<String, Value>>) -> Result<Option<Value>> {
    config.map(|config| Ok(seal_auth_config(require_cipher(state.cipher.as_ref())?, config))).transpose()
}

pub async fn create(state: &AppState, who: &Principal, input: SourceCreate) -> Result<SourceResponse> {
    who.authorize::<CreateSource>()?;
    check_fields(Some(&input.display_name), input.auth_type.as_deref(), input.auth_config.as_ref(), input.documentation.as_deref())?;
    if sources::get(&input.source_name).is_none() {
        return Err(invalid_source(&input.source_name));
    }
    let sealed_auth_config = seal(state, input.auth_config.as_ref())?;
    let mut tx = state.db.begin().await?;
    let row = store::insert(
        &mut tx,
        NewSource {
            source_name: &input.source_name,
            display_name: &input.display_name,
            is_active: input.is_active,
            auth_type: input.auth_type.as_deref(),
            sealed_auth_config,
            documentation: input.documentation.as_deref(),
        },
    )
    .await?;
    let details = audited(&row, input.auth_config.is_some());
    audit::record(&mut tx, who, Record::success(CreateSource::NAME, "source_integration", row.uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn patch(state: &AppState, who: &Principal, uuid: Uuid, input: SourceUpdate) -> Result<SourceResponse> {
    who.authorize::<PatchSource>()?;
    check_fields(input.display_name.as_deref(), input.auth_type.as_deref(), input.auth_config.as_ref(), input.documentation.as_deref())?;
    // A missing source answers 404 before a missing key answers 400, as Calseta orders them.
    store::find_by_uuid(&state.db, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    let patch = SourcePatch {
        display_name: input.display_name.as_deref(),
        is_active: input.is_active,
        auth_type: input.auth_type.as_deref(),
        sealed_auth_config: seal(state, input.auth_config.as_ref())?,
        documentation: input.documentation.as_deref(),
    };
    let mut tx = state.db.begin().await?;
    let row = store::update(&mut tx, uuid, patch).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    let details = audited(&row, input.auth_config.is_some());
    audit::record(&mut tx, who, Record::success(PatchSource::NAME, "source_integration", row.uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn delete(state: &AppState, who: &Principal, uuid: Uuid) -> Result<()> {
    who.authorize::<DeleteSource>()?;
    let mut tx = state.db.begin().await?;
    let source_name = store::delete(&mut tx, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
    let details = json!({ "source_name": source_name });
    audit::record(&mut tx, who, Record::success(DeleteSource::NAME, "source_integration", uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_source_message_matches_calseta() {
        let Error::Client { message, code, status, .. } = invalid_source("okta") else { panic!() };
        assert_eq!(status, http::StatusCode::BAD_REQUEST);
        assert_eq!(code, "INVALID_SOURCE");
        assert_eq!(message, "Unknown source plugin: 'okta'. Registered sources: ['sentinel', 'elastic', 'splunk', 'generic']");
        assert_eq!(crate::ingest::sources::py_string_repr("it's"), "\"it's\"");
        assert_eq!(crate::ingest::sources::py_string_repr("a'\"b"), "'a\\'\"b'");
        assert_eq!(crate::ingest::sources::py_string_repr("x\ny"), "'x\\ny'");
    }

    #[test]
    fn field_checks() {
        assert!(check_display_name("Splunk prod").is_ok());
        assert!(check_display_name(" ").is_err());
        assert!(check_display_name(&"x".repeat(256)).is_err());
        assert!(check_display_name(&"x".repeat(255)).is_ok());
        assert!(check_max("auth_type", Some(&"x".repeat(101)), MAX_AUTH_TYPE).is_err());
        assert!(check_max("auth_type", None, MAX_AUTH_TYPE).is_ok());
    }
}
