//! The seven builtin enrichment providers and their 91 system field extractions
//! (enrichment.md §7, §8), as data for the seed.
//!
//! Each provider is one file, `builtins/<provider_name>.json`, holding the whole row (name,
//! display name, types, auth type, env mapping, TTLs), its `http_config`, `malice_rules`,
//! `mock_responses` and its `field_extractions` beside the recipe they read. Extractions come in
//! groups, each for a list of indicator types (VirusTotal's common fields serve all five types);
//! the seed order is, per supported type in order, every group listing that type.
//!
//! Differences from the original seed:
//! * the three internal providers (`internal_ip_intel`, `hr_insider_risk`, `asset_management`)
//!   map `base_url` to an environment variable, and their `{{auth.base_url}}/api/v1/…` URLs work
//!   because placeholders forming a URL's scheme/authority are no longer percent-encoded
//!   ([`super::template::Mode::Url`]) — in the original they only worked in mock mode;
//! * Entra's optional `user_manager` step keeps `not_found_status: [404]` (a user without a
//!   manager), and the engine treats "not found" on an *optional* step as "skip this step" rather
//!   than turning the whole result into `{"found": false}` as the original did.

use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value};

/// The builtin files, in seeding order.
const FILES: [(&str, &str); 7] = [
    ("virustotal", include_str!("virustotal.json")),
    ("abuseipdb", include_str!("abuseipdb.json")),
    ("okta", include_str!("okta.json")),
    ("entra", include_str!("entra.json")),
    ("internal_ip_intel", include_str!("internal_ip_intel.json")),
    ("hr_insider_risk", include_str!("hr_insider_risk.json")),
    ("asset_management", include_str!("asset_management.json")),
];

/// One builtin provider row.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinProvider {
    pub provider_name: String,
    pub display_name: String,
    pub description: String,
    pub supported_indicator_types: Vec<String>,
    pub auth_type: String,
    /// `{auth_field: ENV_VAR_NAME}`.
    pub env_var_mapping: Value,
    pub default_cache_ttl_seconds: i32,
    /// `{indicator_type: seconds}`.
    pub cache_ttl_by_type: Value,
    pub http_config: Value,
    pub malice_rules: Value,
    /// `{indicator_type | "default": {"raw": …, "extracted": …, "malice": …}}`.
    pub mock_responses: Value,
}

/// One builtin (system) field extraction row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltinExtraction {
    pub provider_name: String,
    pub indicator_type: String,
    pub source_path: String,
    pub target_key: String,
    pub value_type: String,
    pub description: String,
}

/// A builtin file as written: every key required, no other key allowed (a typo in the data
/// fails the unit tests instead of seeding a half-configured provider).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinFile {
    provider_name: String,
    display_name: String,
    description: String,
    supported_indicator_types: Vec<String>,
    auth_type: String,
    env_var_mapping: Map<String, Value>,
    default_cache_ttl_seconds: i32,
    cache_ttl_by_type: Map<String, Value>,
    http_config: Value,
    malice_rules: Value,
    field_extractions: Vec<ExtractionGroup>,
    mock_responses: Value,
}

/// Extractions shared by the listed indicator types.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtractionGroup {
    indicator_types: Vec<String>,
    fields: Vec<ExtractionField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtractionField {
    source_path: String,
    target_key: String,
    value_type: String,
    description: String,
}

struct Builtins {
    providers: Vec<BuiltinProvider>,
    extractions: Vec<BuiltinExtraction>,
}

static BUILTINS: LazyLock<Builtins> = LazyLock::new(|| {
    let mut providers = Vec::with_capacity(FILES.len());
    let mut extractions = Vec::new();
    for (name, text) in FILES {
        let file: BuiltinFile = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("builtins/{name}.json does not match the builtin shape: {e}"));
        assert_eq!(file.provider_name, name, "builtins/{name}.json names another provider");
        for indicator_type in &file.supported_indicator_types {
            for group in file.field_extractions.iter().filter(|g| g.indicator_types.contains(indicator_type)) {
                extractions.extend(group.fields.iter().map(|field| BuiltinExtraction {
                    provider_name: file.provider_name.clone(),
                    indicator_type: indicator_type.clone(),
                    source_path: field.source_path.clone(),
                    target_key: field.target_key.clone(),
                    value_type: field.value_type.clone(),
                    description: field.description.clone(),
                }));
            }
        }
        providers.push(BuiltinProvider {
            provider_name: file.provider_name,
            display_name: file.display_name,
            description: file.description,
            supported_indicator_types: file.supported_indicator_types,
            auth_type: file.auth_type,
            env_var_mapping: Value::Object(file.env_var_mapping),
            default_cache_ttl_seconds: file.default_cache_ttl_seconds,
            cache_ttl_by_type: Value::Object(file.cache_ttl_by_type),
            http_config: file.http_config,
            malice_rules: file.malice_rules,
            mock_responses: file.mock_responses,
        });
    }
    Builtins { providers, extractions }
});

/// The seven builtin providers, in seeding order.
pub fn providers() -> &'static [BuiltinProvider] {
    &BUILTINS.providers
}

/// The 91 builtin field extractions, in seeding order.
pub fn extractions() -> &'static [BuiltinExtraction] {
    &BUILTINS.extractions
}

#[cfg(test)]
mod tests;
