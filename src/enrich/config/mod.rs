//! Typed, validated provider configuration: `http_config` (enrichment.md §2.1) and
//! `malice_rules` (§3.2).
//!
//! The original validated neither beyond "is an object", so a typo surfaced as a failed
//! enrichment at run time. Here [`HttpConfig::parse`] and [`MaliceRules::parse`] check everything
//! that can be checked before a request is made and report every problem at once, each with the
//! JSON path of the offending value, so a bad configuration is a 4xx at save time:
//! * unknown keys are rejected (a misspelt `expected_statuses` would otherwise be ignored);
//! * every template string (URLs, header values, query values, body strings at any depth) must
//!   parse ([`template::check`]) and may refer only to known namespaces, known filters and
//!   *earlier* steps;
//! * `json_body` and `form_body` are mutually exclusive (the original silently preferred JSON);
//! * a status may not be both expected and "not found" (not found would always win);
//! * malice operators and verdicts must be known (the original let a typo never match).
//!
//! A `null` optional key is treated as absent.

mod http_config;
mod malice_rules;
mod step;

#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_json::{Map, Value};

pub use http_config::HttpConfig;
pub use malice_rules::{MaliceOperator, MaliceRule, MaliceRules};

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigIssue {
    /// Where, e.g. `http_config.steps[1].url`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Field-extraction value types (`number` is the seed data's spelling of "return as is").
pub const VALUE_TYPES: &[&str] = &[
    "string", "int", "float", "bool", "list", "dict", "any", "number",
];

/// Malice verdicts, from least to most severe.
pub const VERDICTS: &[&str] = &["Pending", "Benign", "Suspicious", "Malicious"];

/// Most steps one provider may chain.
pub const MAX_STEPS: usize = 10;
/// Most malice rules one provider may have.
pub const MAX_MALICE_RULES: usize = 100;
/// Longest step name.
pub const MAX_STEP_NAME_CHARS: usize = 64;
/// Request methods a step may use.
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
/// Per-request timeout bounds and default, in seconds.
pub const MIN_TIMEOUT_SECONDS: f64 = 1.0;
pub const MAX_TIMEOUT_SECONDS: f64 = 60.0;
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;

#[derive(Default)]
struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
        });
    }
}
/// Reports keys of `map` outside `allowed`.
fn reject_unknown_keys(
    map: &Map<String, Value>,
    allowed: &[&str],
    path: &str,
    issues: &mut Issues,
) {
    for key in map.keys() {
        if !allowed.contains(&key.as_str()) {
            issues.push(
                format!("{path}.{key}"),
                format!("unknown key '{key}' (allowed: {})", allowed.join(", ")),
            );
        }
    }
}

/// The value of an optional key; `null` counts as absent.
fn optional<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|value| !value.is_null())
}

