//! What the provider operations take and return. `auth_config` goes in (sealed before storage)
//! and never comes out; neither do the builtins' `mock_responses`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::ProviderRow;
use crate::config::Settings;
use crate::crypto::Cipher;
use crate::enrich::engine::StepDebug;
use crate::enrich::registry;
use crate::http::query::lenient_bool;

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

impl ProviderResponse {
    /// The row as returned; credentials are opened only to learn whether they exist.
    pub fn new(row: ProviderRow, cipher: Option<&Cipher>, settings: &Settings) -> Self {
        let (has_credentials, is_configured) = registry::readiness(&row, cipher, settings);
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
}

#[derive(Debug, Default, Deserialize)]
pub struct ProviderListQuery {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_builtin: Option<bool>,
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
#[serde(default, deny_unknown_fields)]
pub struct ProviderUpdate {
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub supported_indicator_types: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub http_config: Option<Value>,
    pub auth_type: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub auth_config: Option<Map<String, Value>>,
    pub default_cache_ttl_seconds: Option<i32>,
    #[schema(value_type = Option<Object>)]
    pub cache_ttl_by_type: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub malice_rules: Option<Value>,
}

impl ProviderUpdate {
    /// Names of the fields this PATCH sets (non-null).
    pub fn present(&self) -> Vec<&'static str> {
        [
            (self.display_name.is_some(), "display_name"),
            (self.description.is_some(), "description"),
            (self.is_active.is_some(), "is_active"),
            (self.supported_indicator_types.is_some(), "supported_indicator_types"),
            (self.http_config.is_some(), "http_config"),
            (self.auth_type.is_some(), "auth_type"),
            (self.auth_config.is_some(), "auth_config"),
            (self.default_cache_ttl_seconds.is_some(), "default_cache_ttl_seconds"),
            (self.cache_ttl_by_type.is_some(), "cache_ttl_by_type"),
            (self.malice_rules.is_some(), "malice_rules"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }
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
