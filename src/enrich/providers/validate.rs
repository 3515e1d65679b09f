//! Save-time checks of a provider: every field, the recipe parsed ([`HttpConfig::parse`]) and
//! every literal URL in it SSRF-vetted by the egress gateway, so a bad provider is a 4xx when it
//! is saved rather than a failed enrichment later.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use super::model::{ProviderCreate, ProviderTestRequest, ProviderUpdate};
use crate::egress::Egress;
use crate::enrich::config::{HttpConfig, MaliceRules};
use crate::enrich::validate::{self, field, is_indicator_type};
use crate::error::{Error, FieldErrors, Result};
use crate::http::extract::{MEDIUM_JSON_BYTES, check_json_size};

const MAX_TTL_SECONDS: i32 = 86_400;
const MAX_DISPLAY_NAME: usize = 200;
/// `auth_type` values with a meaning; Calseta took free text, so a typo silently produced an
/// unconfigured provider.
pub const AUTH_TYPES: &[&str] = &["no_auth", "api_key", "api_token", "bearer", "basic", "oauth2_client_credentials", "custom"];
/// What a PATCH may change on a builtin provider.
pub const BUILTIN_PATCHABLE: &[&str] =
    &["is_active", "auth_config", "description", "malice_rules", "default_cache_ttl_seconds", "cache_ttl_by_type"];

static PROVIDER_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new("^[a-z0-9_]{1,100}$").expect("valid regex"));

/// Every problem of a new provider at once (422).
pub async fn create(body: &ProviderCreate, egress: &Egress) -> Result<()> {
    let mut errors = FieldErrors::default();
    if !PROVIDER_NAME.is_match(&body.provider_name) {
        errors.push(field("provider_name", "string_pattern_mismatch", "provider_name must be 1 to 100 characters of a-z, 0-9 and _"));
    }
    validate::text_length(&mut errors, "display_name", &body.display_name, MAX_DISPLAY_NAME);
    validate::description(&mut errors, "description", body.description.as_deref());
    indicator_types(&mut errors, &body.supported_indicator_types);
    auth_type(&mut errors, &body.auth_type);
    ttls(&mut errors, Some(body.default_cache_ttl_seconds), body.cache_ttl_by_type.as_ref());
    malice_rules(&mut errors, body.malice_rules.as_ref());
    auth_config(&mut errors, body.auth_config.as_ref());
    http_config(&mut errors, &body.http_config, egress).await;
    errors.finish()
}

/// A builtin provider's recipe, name and types are the seed's: a PATCH may change only
/// [`BUILTIN_PATCHABLE`] (400 naming the others).
pub fn builtin_update(body: &ProviderUpdate) -> Result<()> {
    let refused: Vec<&str> = body.present().into_iter().filter(|f| !BUILTIN_PATCHABLE.contains(f)).collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(Error::bad_request(
        "BUILTIN_RESTRICTED",
        format!("Cannot modify fields {refused:?} on builtin providers. Allowed: {BUILTIN_PATCHABLE:?}"),
    ))
}

/// Every problem of a PATCH at once (422); absent fields are not checked.
pub async fn update(body: &ProviderUpdate, egress: &Egress) -> Result<()> {
    let mut errors = FieldErrors::default();
    if let Some(name) = &body.display_name {
        validate::text_length(&mut errors, "display_name", name, MAX_DISPLAY_NAME);
    }
    validate::description(&mut errors, "description", body.description.as_deref());
    // Validated here too (Calseta did not, so a PATCH could register an unusable type).
    if let Some(types) = &body.supported_indicator_types {
        indicator_types(&mut errors, types);
    }
    if let Some(value) = &body.auth_type {
        auth_type(&mut errors, value);
    }
    ttls(&mut errors, body.default_cache_ttl_seconds, body.cache_ttl_by_type.as_ref());
    malice_rules(&mut errors, body.malice_rules.as_ref());
    auth_config(&mut errors, body.auth_config.as_ref());
    if let Some(config) = &body.http_config {
        http_config(&mut errors, config, egress).await;
    }
    errors.finish()
}

pub fn test_request(body: &ProviderTestRequest) -> Result<()> {
    let mut errors = FieldErrors::default();
    validate::indicator_type(&mut errors, "indicator_type", &body.indicator_type);
    validate::indicator_value(&mut errors, "indicator_value", &body.indicator_value);
    errors.finish()
}

fn indicator_types(errors: &mut FieldErrors, types: &[String]) {
    if types.is_empty() {
        errors.push(field("supported_indicator_types", "too_short", "supported_indicator_types must list at least one type"));
    }
    for t in types.iter().filter(|t| !is_indicator_type(t)) {
        errors.push(field("supported_indicator_types", "value_error", format!("Invalid indicator type: '{t}'")));
    }
}

fn auth_type(errors: &mut FieldErrors, value: &str) {
    if !AUTH_TYPES.contains(&value) {
        errors.push(field("auth_type", "enum", format!("Unknown auth_type '{value}'. Allowed: {}", AUTH_TYPES.join(", "))));
    }
}

fn ttls(errors: &mut FieldErrors, default: Option<i32>, by_type: Option<&Map<String, Value>>) {
    if default.is_some_and(|t| !(0..=MAX_TTL_SECONDS).contains(&t)) {
        errors.push(field("default_cache_ttl_seconds", "range", format!("default_cache_ttl_seconds must be 0 to {MAX_TTL_SECONDS}")));
    }
    for (t, ttl) in by_type.into_iter().flatten() {
        if !is_indicator_type(t) {
            errors.push(field("cache_ttl_by_type", "value_error", format!("Invalid indicator type: '{t}'")));
        }
        if !ttl.as_i64().is_some_and(|v| (0..=i64::from(MAX_TTL_SECONDS)).contains(&v)) {
            errors.push(field("cache_ttl_by_type", "range", format!("cache_ttl_by_type.{t} must be an integer 0 to {MAX_TTL_SECONDS}")));
        }
    }
}

/// Parses the recipe and SSRF-vets every literal URL in it; errors point at the offending key.
async fn http_config(errors: &mut FieldErrors, value: &Value, egress: &Egress) {
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
    let step_urls = config.steps.iter().enumerate().map(|(i, s)| (format!("http_config.steps[{i}].url"), &s.url));
    let type_urls = config.url_templates_by_type.iter().map(|(t, u)| (format!("http_config.url_templates_by_type.{t}"), u));
    for (path, url) in step_urls.chain(type_urls) {
        if let Err(e) = egress.vet_for_save(url).await {
            errors.push(field(&path, "unsafe_url", e.to_string()));
        }
    }
}

fn malice_rules(errors: &mut FieldErrors, value: Option<&Value>) {
    let Some(value) = value.filter(|v| !v.is_null()) else { return };
    if let Err(e) = check_json_size("malice_rules", value, MEDIUM_JSON_BYTES) {
        errors.push(e);
        return;
    }
    if let Err(issues) = MaliceRules::parse(value) {
        errors.extend(issues.into_iter().map(|i| field(&i.path, "value_error", i.message)));
    }
}

fn auth_config(errors: &mut FieldErrors, config: Option<&Map<String, Value>>) {
    if let Some(map) = config {
        errors.check(check_json_size("auth_config", map, MEDIUM_JSON_BYTES));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::FieldError;

    fn collected(errors: FieldErrors) -> Vec<FieldError> {
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(Error::Validation(errors)) => errors,
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn builtin_patch_fields() {
        let update = ProviderUpdate { is_active: Some(false), http_config: Some(json!({})), ..Default::default() };
        let Err(Error::Client { code, message, .. }) = builtin_update(&update) else { panic!("refused") };
        assert_eq!(code, "BUILTIN_RESTRICTED");
        assert!(message.contains("[\"http_config\"]"), "{message}");
        let allowed = ProviderUpdate { is_active: Some(false), description: Some("x".into()), ..Default::default() };
        assert!(builtin_update(&allowed).is_ok());
    }

    #[test]
    fn ttl_and_type_checks() {
        let mut errors = FieldErrors::default();
        ttls(&mut errors, Some(-1), None);
        ttls(&mut errors, Some(86_401), None);
        let by_type: Map<String, Value> = serde_json::from_value(json!({"ip": 10, "nope": 5, "domain": "x"})).unwrap();
        ttls(&mut errors, Some(0), Some(&by_type));
        assert_eq!(collected(errors).len(), 4);
        let mut errors = FieldErrors::default();
        indicator_types(&mut errors, &["ip".into(), "ipv9".into()]);
        indicator_types(&mut errors, &[]);
        let errors = collected(errors);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].msg, "Invalid indicator type: 'ipv9'");
        let mut errors = FieldErrors::default();
        auth_type(&mut errors, "api_key");
        auth_type(&mut errors, "apikey");
        assert_eq!(collected(errors).len(), 1);
    }

    #[test]
    fn test_request_checks_type_and_value() {
        let bad = ProviderTestRequest { indicator_type: "ipv9".into(), indicator_value: String::new() };
        let Err(Error::Validation(errors)) = test_request(&bad) else { panic!("refused") };
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[1].msg, "indicator_value must be 1 to 2048 characters");
        let good = ProviderTestRequest { indicator_type: "ip".into(), indicator_value: "1.1.1.1".into() };
        assert!(test_request(&good).is_ok());
    }
}
