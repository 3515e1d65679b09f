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

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use http::Method;
use regex::Regex;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{dotpath, malice, template};
use crate::ingest::IndicatorType;

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

/// A provider's request recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub steps: Vec<Step>,
    /// Indicator type → URL template replacing the **first** step's URL for that type.
    pub url_templates_by_type: BTreeMap<String, String>,
}

/// One HTTP request of a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `step_<index>` when not given; key of `{{steps.<name>…}}` and of the multi-step raw response.
    pub name: String,
    pub method: Method,
    /// URL template (rendered with [`template::Mode::Url`]).
    pub url: String,
    /// Header name → value template (every value is a string).
    pub headers: Map<String, Value>,
    /// Query parameter → string template, number or boolean (numbers and booleans are sent as
    /// their JSON text).
    pub query_params: Option<Map<String, Value>>,
    /// JSON body; every string inside is a template.
    pub json_body: Option<Value>,
    /// Form fields → string template, number or boolean; never together with `json_body`.
    pub form_body: Option<Map<String, Value>>,
    pub timeout: Duration,
    pub expected_status: Vec<u16>,
    pub not_found_status: Vec<u16>,
    /// A failure of this step does not fail the run.
    pub optional: bool,
}

impl HttpConfig {
    /// Parses and validates an `http_config` value.
    pub fn parse(value: &Value) -> Result<HttpConfig, Vec<ConfigIssue>> {
        let mut issues = Issues::default();
        let config = parse_http_config(value, "http_config", &mut issues);
        match config {
            Some(config) if issues.0.is_empty() => Ok(config),
            _ => Err(issues.0),
        }
    }

    /// The URL template of step `index` for an indicator of `indicator_type`: the type's override
    /// for the first step, else the step's own URL.
    pub fn url_template(&self, index: usize, indicator_type: &str) -> &str {
        if index == 0
            && let Some(url) = self.url_templates_by_type.get(indicator_type)
        {
            return url;
        }
        &self.steps[index].url
    }
}

/// Comparison operators of malice rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaliceOperator {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
    Contains,
    In,
}

impl MaliceOperator {
    pub const ALL: [MaliceOperator; 8] = [
        MaliceOperator::Gt,
        MaliceOperator::Ge,
        MaliceOperator::Lt,
        MaliceOperator::Le,
        MaliceOperator::Eq,
        MaliceOperator::Ne,
        MaliceOperator::Contains,
        MaliceOperator::In,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MaliceOperator::Gt => ">",
            MaliceOperator::Ge => ">=",
            MaliceOperator::Lt => "<",
            MaliceOperator::Le => "<=",
            MaliceOperator::Eq => "==",
            MaliceOperator::Ne => "!=",
            MaliceOperator::Contains => "contains",
            MaliceOperator::In => "in",
        }
    }

    /// Whether both sides are compared as numbers.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            MaliceOperator::Gt | MaliceOperator::Ge | MaliceOperator::Lt | MaliceOperator::Le
        )
    }
}

impl FromStr for MaliceOperator {
    type Err = ();
    fn from_str(text: &str) -> Result<Self, ()> {
        MaliceOperator::ALL
            .into_iter()
            .find(|operator| operator.as_str() == text)
            .ok_or(())
    }
}

/// One malice rule: `field` (a dot path into the raw response) `operator` `value` ⇒ `verdict`.
#[derive(Debug, Clone, PartialEq)]
pub struct MaliceRule {
    pub field: String,
    pub operator: MaliceOperator,
    pub value: Value,
    /// The rule's verdict; the configuration's default verdict when the rule gives none.
    pub verdict: String,
}

/// A provider's verdict rules.
#[derive(Debug, Clone, PartialEq)]
pub struct MaliceRules {
    pub rules: Vec<MaliceRule>,
    pub default_verdict: String,
    pub not_found_verdict: String,
}

impl MaliceRules {
    /// What `malice_rules: null` means: every verdict `Pending`.
    pub fn pending() -> MaliceRules {
        MaliceRules {
            rules: Vec::new(),
            default_verdict: "Pending".to_owned(),
            not_found_verdict: "Pending".to_owned(),
        }
    }

    /// Parses and validates a `malice_rules` value; `null` is [`MaliceRules::pending`].
    pub fn parse(value: &Value) -> Result<MaliceRules, Vec<ConfigIssue>> {
        let mut issues = Issues::default();
        let rules = parse_malice_rules(value, "malice_rules", &mut issues);
        match rules {
            Some(rules) if issues.0.is_empty() => Ok(rules),
            _ => Err(issues.0),
        }
    }
}

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

static STEP_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_]+$").expect("static regex"));

const HTTP_CONFIG_KEYS: &[&str] = &["steps", "url_templates_by_type"];
const STEP_KEYS: &[&str] = &[
    "name",
    "method",
    "url",
    "headers",
    "query_params",
    "json_body",
    "form_body",
    "timeout_seconds",
    "expected_status",
    "not_found_status",
    "optional",
];
const MALICE_KEYS: &[&str] = &["rules", "default_verdict", "not_found_verdict"];
const MALICE_RULE_KEYS: &[&str] = &["field", "operator", "value", "verdict"];

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

use crate::ingest::sources::json_type;

fn parse_http_config(value: &Value, path: &str, issues: &mut Issues) -> Option<HttpConfig> {
    let Some(map) = value.as_object() else {
        issues.push(path, format!("must be an object, not {}", json_type(value)));
        return None;
    };
    reject_unknown_keys(map, HTTP_CONFIG_KEYS, path, issues);

    let steps_path = format!("{path}.steps");
    let raw_steps: &[Value] = match optional(map, "steps") {
        None => {
            issues.push(&steps_path, "is required: a list of 1 to 10 request steps");
            &[]
        }
        Some(Value::Array(items)) if items.is_empty() => {
            issues.push(&steps_path, "must contain at least one step");
            &[]
        }
        Some(Value::Array(items)) if items.len() > MAX_STEPS => {
            issues.push(
                &steps_path,
                format!("has {} steps (at most {MAX_STEPS} allowed)", items.len()),
            );
            &[]
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            issues.push(
                &steps_path,
                format!("must be an array, not {}", json_type(other)),
            );
            &[]
        }
    };

    // Names first: a step's templates may refer to the steps before it.
    let names: Vec<String> = raw_steps
        .iter()
        .enumerate()
        .map(|(index, step)| step_name(step, index, &format!("{steps_path}[{index}]"), issues))
        .collect();
    let mut seen = BTreeSet::new();
    for (index, name) in names.iter().enumerate() {
        if !seen.insert(name.as_str()) {
            issues.push(
                format!("{steps_path}[{index}].name"),
                format!("duplicate step name '{name}'"),
            );
        }
    }

    let steps: Vec<Step> = raw_steps
        .iter()
        .enumerate()
        .filter_map(|(index, step)| {
            parse_step(
                step,
                index,
                &names,
                &format!("{steps_path}[{index}]"),
                issues,
            )
        })
        .collect();

    let mut url_templates_by_type = BTreeMap::new();
    let overrides_path = format!("{path}.url_templates_by_type");
    match optional(map, "url_templates_by_type") {
        None => {}
        Some(Value::Object(overrides)) => {
            for (itype, url) in overrides {
                let entry_path = format!("{overrides_path}.{itype}");
                if IndicatorType::from_str(itype).is_err() {
                    issues.push(
                        &entry_path,
                        format!(
                            "'{itype}' is not an indicator type (known: {})",
                            indicator_type_list()
                        ),
                    );
                }
                match url {
                    Value::String(url) => {
                        // It replaces the first step's URL, so no step precedes it.
                        check_url(url, &entry_path, &[], &names, issues);
                        url_templates_by_type.insert(itype.clone(), url.clone());
                    }
                    other => issues.push(
                        &entry_path,
                        format!("must be a URL template string, not {}", json_type(other)),
                    ),
                }
            }
        }
        Some(other) => issues.push(
            &overrides_path,
            format!(
                "must be an object of indicator type → URL template, not {}",
                json_type(other)
            ),
        ),
    }

    (steps.len() == raw_steps.len() && !steps.is_empty()).then_some(HttpConfig {
        steps,
        url_templates_by_type,
    })
}

fn indicator_type_list() -> String {
    IndicatorType::ALL
        .iter()
        .map(|itype| itype.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The step's name (`step_<index>` by default), reporting a bad one.
fn step_name(step: &Value, index: usize, path: &str, issues: &mut Issues) -> String {
    let default = format!("step_{index}");
    let Some(name) = step.as_object().and_then(|map| optional(map, "name")) else {
        return default;
    };
    let name_path = format!("{path}.name");
    match name {
        Value::String(name) if !STEP_NAME.is_match(name) => {
            issues.push(name_path, "must be letters, digits and underscores only");
            name.clone()
        }
        Value::String(name) if name.chars().count() > MAX_STEP_NAME_CHARS => {
            issues.push(
                name_path,
                format!("must be at most {MAX_STEP_NAME_CHARS} characters"),
            );
            name.clone()
        }
        Value::String(name) => name.clone(),
        other => {
            issues.push(
                name_path,
                format!("must be a string, not {}", json_type(other)),
            );
            default
        }
    }
}

fn parse_step(
    value: &Value,
    index: usize,
    names: &[String],
    path: &str,
    issues: &mut Issues,
) -> Option<Step> {
    let Some(map) = value.as_object() else {
        issues.push(path, format!("must be an object, not {}", json_type(value)));
        return None;
    };
    reject_unknown_keys(map, STEP_KEYS, path, issues);
    let earlier = &names[..index];

    let method = match optional(map, "method") {
        None => Method::GET,
        Some(Value::String(method)) => {
            let upper = method.to_ascii_uppercase();
            if METHODS.contains(&upper.as_str()) {
                Method::from_bytes(upper.as_bytes()).expect("listed methods are valid")
            } else {
                issues.push(
                    format!("{path}.method"),
                    format!(
                        "'{method}' is not allowed (use one of {})",
                        METHODS.join(", ")
                    ),
                );
                Method::GET
            }
        }
        Some(other) => {
            issues.push(
                format!("{path}.method"),
                format!("must be a string, not {}", json_type(other)),
            );
            Method::GET
        }
    };

    let url_path = format!("{path}.url");
    let url = match optional(map, "url") {
        None => {
            issues.push(&url_path, "is required");
            String::new()
        }
        Some(Value::String(url)) => {
            check_url(url, &url_path, earlier, names, issues);
            url.clone()
        }
        Some(other) => {
            issues.push(
                &url_path,
                format!("must be a string, not {}", json_type(other)),
            );
            String::new()
        }
    };

    let headers_path = format!("{path}.headers");
    let headers = match optional(map, "headers") {
        None => Map::new(),
        Some(Value::Object(headers)) => {
            for (name, header_value) in headers {
                let header_path = format!("{headers_path}.{name}");
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    issues.push(&header_path, format!("'{name}' is not a valid header name"));
                }
                match header_value {
                    Value::String(text) => {
                        if text.contains(['\r', '\n', '\0']) {
                            issues.push(
                                &header_path,
                                "header values may not contain line breaks or NUL",
                            );
                        }
                        check_template(text, &header_path, earlier, names, issues);
                    }
                    other => issues.push(
                        &header_path,
                        format!("must be a string template, not {}", json_type(other)),
                    ),
                }
            }
            headers.clone()
        }
        Some(other) => {
            issues.push(
                &headers_path,
                format!("must be an object, not {}", json_type(other)),
            );
            Map::new()
        }
    };

    let query_params = optional(map, "query_params").and_then(|value| {
        scalar_fields(
            value,
            &format!("{path}.query_params"),
            earlier,
            names,
            issues,
        )
    });

    let json_body = optional(map, "json_body").map(|body| {
        check_templates_in(body, &format!("{path}.json_body"), earlier, names, issues);
        body.clone()
    });

    let form_body = optional(map, "form_body").and_then(|value| {
        scalar_fields(value, &format!("{path}.form_body"), earlier, names, issues)
    });
    if json_body.is_some() && optional(map, "form_body").is_some() {
        issues.push(
            format!("{path}.form_body"),
            "json_body and form_body are mutually exclusive (a request has one body)",
        );
    }

    let timeout = match optional(map, "timeout_seconds") {
        None => Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
        Some(Value::Number(seconds))
            if seconds.as_f64().is_some_and(|seconds| {
                (MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(&seconds)
            }) =>
        {
            Duration::from_secs_f64(seconds.as_f64().expect("checked above"))
        }
        Some(other) => {
            issues.push(
                format!("{path}.timeout_seconds"),
                format!("must be a number of seconds from 1 to 60, not {other}"),
            );
            Duration::from_secs(DEFAULT_TIMEOUT_SECONDS)
        }
    };

    let expected_path = format!("{path}.expected_status");
    let expected_status = match optional(map, "expected_status") {
        None => vec![200],
        Some(value) => {
            let statuses = status_list(value, &expected_path, issues);
            if matches!(value, Value::Array(items) if items.is_empty()) {
                issues.push(&expected_path, "must list at least one status");
            }
            statuses
        }
    };
    let not_found_path = format!("{path}.not_found_status");
    let not_found_status = match optional(map, "not_found_status") {
        None => Vec::new(),
        Some(value) => status_list(value, &not_found_path, issues),
    };
    for status in &not_found_status {
        if expected_status.contains(status) {
            issues.push(
                &not_found_path,
                format!(
                    "{status} is also an expected status (a status is either success or not found)"
                ),
            );
        }
    }

    let optional_step = match optional(map, "optional") {
        None => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => {
            issues.push(
                format!("{path}.optional"),
                format!("must be a boolean, not {}", json_type(other)),
            );
            false
        }
    };

    Some(Step {
        name: names[index].clone(),
        method,
        url,
        headers,
        query_params,
        json_body,
        form_body,
        timeout,
        expected_status,
        not_found_status,
        optional: optional_step,
    })
}

/// A URL template: non-empty, a valid template, and an absolute http(s) URL or one that starts
/// with a placeholder (a base URL such as `{{auth.base_url}}`).
fn check_url(url: &str, path: &str, earlier: &[String], names: &[String], issues: &mut Issues) {
    if url.trim().is_empty() {
        issues.push(path, "must not be empty");
        return;
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://") || url.starts_with("{{")) {
        issues.push(
            path,
            "must start with http:// or https:// (or with a placeholder such as {{auth.base_url}})",
        );
    }
    if template::literal_text(url).chars().any(char::is_whitespace) {
        issues.push(path, "must not contain whitespace");
    }
    check_template(url, path, earlier, names, issues);
}

/// A template string: parses, and its step references name earlier steps.
fn check_template(
    text: &str,
    path: &str,
    earlier: &[String],
    names: &[String],
    issues: &mut Issues,
) {
    match template::check(text) {
        Err(problem) => issues.push(path, format!("invalid template: {problem}")),
        Ok(references) => {
            for reference in references {
                let template::Reference::Step { step, .. } = reference else {
                    continue;
                };
                if earlier.contains(&step) {
                    continue;
                }
                let message = if names.contains(&step) {
                    format!(
                        "refers to step '{step}', which is not an earlier step (a step may only use the responses of the steps before it)"
                    )
                } else {
                    format!("refers to unknown step '{step}'")
                };
                issues.push(path, message);
            }
        }
    }
}

/// Checks every string inside a JSON body as a template.
fn check_templates_in(
    value: &Value,
    path: &str,
    earlier: &[String],
    names: &[String],
    issues: &mut Issues,
) {
    match value {
        Value::String(text) => check_template(text, path, earlier, names, issues),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                check_templates_in(item, &format!("{path}[{index}]"), earlier, names, issues);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                check_templates_in(item, &format!("{path}.{key}"), earlier, names, issues);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// An object of string templates, numbers and booleans (query parameters, form fields).
fn scalar_fields(
    value: &Value,
    path: &str,
    earlier: &[String],
    names: &[String],
    issues: &mut Issues,
) -> Option<Map<String, Value>> {
    let Some(map) = value.as_object() else {
        issues.push(path, format!("must be an object, not {}", json_type(value)));
        return None;
    };
    for (key, field) in map {
        let field_path = format!("{path}.{key}");
        match field {
            Value::String(text) => check_template(text, &field_path, earlier, names, issues),
            Value::Number(_) | Value::Bool(_) => {}
            other => issues.push(
                field_path,
                format!(
                    "must be a string template, a number or a boolean, not {}",
                    json_type(other)
                ),
            ),
        }
    }
    Some(map.clone())
}

fn status_list(value: &Value, path: &str, issues: &mut Issues) -> Vec<u16> {
    let Some(items) = value.as_array() else {
        issues.push(
            path,
            format!(
                "must be an array of HTTP statuses, not {}",
                json_type(value)
            ),
        );
        return Vec::new();
    };
    let mut statuses = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match item.as_u64().filter(|status| (100..=599).contains(status)) {
            Some(status) => statuses.push(status as u16),
            None => issues.push(
                format!("{path}[{index}]"),
                format!("must be an HTTP status from 100 to 599, not {item}"),
            ),
        }
    }
    statuses
}

fn parse_malice_rules(value: &Value, path: &str, issues: &mut Issues) -> Option<MaliceRules> {
    let map = match value {
        Value::Null => return Some(MaliceRules::pending()),
        Value::Object(map) => map,
        other => {
            issues.push(
                path,
                format!("must be an object or null, not {}", json_type(other)),
            );
            return None;
        }
    };
    reject_unknown_keys(map, MALICE_KEYS, path, issues);
    let default_verdict =
        verdict(map, "default_verdict", path, issues).unwrap_or_else(|| "Pending".to_owned());
    let not_found_verdict =
        verdict(map, "not_found_verdict", path, issues).unwrap_or_else(|| "Pending".to_owned());

    let rules_path = format!("{path}.rules");
    let raw_rules: &[Value] = match optional(map, "rules") {
        None => &[],
        Some(Value::Array(items)) if items.len() > MAX_MALICE_RULES => {
            issues.push(
                &rules_path,
                format!(
                    "has {} rules (at most {MAX_MALICE_RULES} allowed)",
                    items.len()
                ),
            );
            &[]
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            issues.push(
                &rules_path,
                format!("must be an array, not {}", json_type(other)),
            );
            &[]
        }
    };
    let rules = raw_rules
        .iter()
        .enumerate()
        .filter_map(|(index, rule)| {
            parse_malice_rule(
                rule,
                &format!("{rules_path}[{index}]"),
                &default_verdict,
                issues,
            )
        })
        .collect();
    Some(MaliceRules {
        rules,
        default_verdict,
        not_found_verdict,
    })
}

/// An optional verdict key of `map`, reporting an unknown verdict.
fn verdict(map: &Map<String, Value>, key: &str, path: &str, issues: &mut Issues) -> Option<String> {
    let value = optional(map, key)?;
    let verdict_path = format!("{path}.{key}");
    match value {
        Value::String(verdict) if VERDICTS.contains(&verdict.as_str()) => Some(verdict.clone()),
        other => {
            issues.push(
                verdict_path,
                format!("must be one of {}, not {other}", VERDICTS.join(", ")),
            );
            None
        }
    }
}

fn parse_malice_rule(
    value: &Value,
    path: &str,
    default_verdict: &str,
    issues: &mut Issues,
) -> Option<MaliceRule> {
    let Some(map) = value.as_object() else {
        issues.push(path, format!("must be an object, not {}", json_type(value)));
        return None;
    };
    reject_unknown_keys(map, MALICE_RULE_KEYS, path, issues);

    let field = match optional(map, "field") {
        Some(Value::String(field)) => {
            if let Err(problem) = dotpath::validate(field) {
                issues.push(format!("{path}.field"), problem);
            }
            field.clone()
        }
        Some(other) => {
            issues.push(
                format!("{path}.field"),
                format!("must be a dot path string, not {}", json_type(other)),
            );
            String::new()
        }
        None => {
            issues.push(
                format!("{path}.field"),
                "is required (a dot path into the raw response)",
            );
            String::new()
        }
    };

    let operator = match optional(map, "operator") {
        None => MaliceOperator::Eq,
        Some(Value::String(text)) => MaliceOperator::from_str(text).unwrap_or_else(|()| {
            issues.push(
                format!("{path}.operator"),
                format!(
                    "unknown operator '{text}' (use one of {})",
                    MaliceOperator::ALL.map(MaliceOperator::as_str).join(" ")
                ),
            );
            MaliceOperator::Eq
        }),
        Some(other) => {
            issues.push(
                format!("{path}.operator"),
                format!("must be a string, not {}", json_type(other)),
            );
            MaliceOperator::Eq
        }
    };

    let value_path = format!("{path}.value");
    let compared = match optional(map, "value") {
        // A rule without a value could never match (the actual value is never null).
        None => {
            issues.push(&value_path, "is required");
            Value::Null
        }
        Some(value) => {
            let numeric = !value.is_boolean()
                && malice::to_float(value).is_some_and(|number| !number.is_nan());
            if operator.is_numeric() && !numeric {
                issues.push(
                    &value_path,
                    format!(
                        "must be a number (or numeric string) for '{}', not {value}",
                        operator.as_str()
                    ),
                );
            }
            if operator == MaliceOperator::In && !value.is_array() {
                issues.push(
                    &value_path,
                    format!("must be an array for 'in', not {}", json_type(value)),
                );
            }
            value.clone()
        }
    };

    let verdict =
        verdict(map, "verdict", path, issues).unwrap_or_else(|| default_verdict.to_owned());
    Some(MaliceRule {
        field,
        operator,
        value: compared,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issues_of(result: Result<HttpConfig, Vec<ConfigIssue>>) -> Vec<(String, String)> {
        result
            .unwrap_err()
            .into_iter()
            .map(|issue| (issue.path, issue.message))
            .collect()
    }

    fn has_issue(issues: &[(String, String)], path: &str, fragment: &str) -> bool {
        issues
            .iter()
            .any(|(at, message)| at == path && message.contains(fragment))
    }

    fn assert_issue(config: Value, path: &str, fragment: &str) {
        let issues = issues_of(HttpConfig::parse(&config));
        assert!(
            has_issue(&issues, path, fragment),
            "expected {path}: …{fragment}… in {issues:#?}"
        );
    }

    fn one_step(extra: Value) -> Value {
        let mut step = json!({"url": "https://api.example.net/v1/{{value}}"});
        step.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"steps": [step]})
    }

    #[test]
    fn minimal_step_gets_defaults() {
        let config = HttpConfig::parse(&one_step(json!({}))).unwrap();
        let step = &config.steps[0];
        assert_eq!(step.name, "step_0");
        assert_eq!(step.method, Method::GET);
        assert_eq!(step.url, "https://api.example.net/v1/{{value}}");
        assert!(step.headers.is_empty());
        assert_eq!(step.query_params, None);
        assert_eq!(step.json_body, None);
        assert_eq!(step.form_body, None);
        assert_eq!(step.timeout, Duration::from_secs(30));
        assert_eq!(step.expected_status, vec![200]);
        assert!(step.not_found_status.is_empty());
        assert!(!step.optional);
        assert!(config.url_templates_by_type.is_empty());
    }

    #[test]
    fn full_step_is_parsed() {
        let config = HttpConfig::parse(&json!({
            "steps": [
                {"name": "token", "method": "post", "url": "https://login.example.net/{{auth.tenant}}/token",
                 "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                 "form_body": {"client_id": "{{auth.client_id}}", "n": 3, "flag": true},
                 "timeout_seconds": 2.5, "expected_status": [200, 201]},
                {"name": "lookup", "url": "{{auth.base_url}}/users/{{value | urlencode}}",
                 "headers": {"Authorization": "Bearer {{steps.token.response.access_token}}"},
                 "query_params": {"q": "{{type}}", "limit": 10},
                 "json_body": {"filter": [{"eq": "{{steps.token.response.scope}}"}], "n": 1},
                 "not_found_status": [404, 410], "optional": true, "form_body": null}
            ],
            "url_templates_by_type": {"account": "https://login.example.net/{{value}}"}
        }))
        .unwrap();
        let token = &config.steps[0];
        assert_eq!(token.method, Method::POST);
        assert_eq!(token.timeout, Duration::from_millis(2500));
        assert_eq!(token.expected_status, vec![200, 201]);
        assert_eq!(
            token.form_body.as_ref().unwrap()["client_id"],
            json!("{{auth.client_id}}")
        );
        let lookup = &config.steps[1];
        assert_eq!(lookup.name, "lookup");
        assert!(lookup.optional);
        assert_eq!(lookup.not_found_status, vec![404, 410]);
        assert_eq!(lookup.form_body, None);
        assert_eq!(lookup.query_params.as_ref().unwrap()["limit"], json!(10));
        assert_eq!(
            config.url_template(0, "account"),
            "https://login.example.net/{{value}}"
        );
        assert_eq!(
            config.url_template(0, "ip"),
            "https://login.example.net/{{auth.tenant}}/token"
        );
        assert_eq!(
            config.url_template(1, "account"),
            "{{auth.base_url}}/users/{{value | urlencode}}"
        );
    }

    #[test]
    fn methods() {
        for method in ["get", "POST", "Put", "patch", "DELETE", "head"] {
            let config = HttpConfig::parse(&one_step(json!({"method": method}))).unwrap();
            assert_eq!(config.steps[0].method.as_str(), method.to_ascii_uppercase());
        }
        assert_issue(
            one_step(json!({"method": "TRACE"})),
            "http_config.steps[0].method",
            "'TRACE' is not allowed",
        );
        assert_issue(
            one_step(json!({"method": "CONNECT"})),
            "http_config.steps[0].method",
            "not allowed",
        );
        assert_issue(
            one_step(json!({"method": 1})),
            "http_config.steps[0].method",
            "must be a string",
        );
    }

    #[test]
    fn top_level_shape() {
        assert_issue(json!([]), "http_config", "must be an object");
        assert_issue(json!({}), "http_config.steps", "is required");
        assert_issue(json!({"steps": null}), "http_config.steps", "is required");
        assert_issue(
            json!({"steps": []}),
            "http_config.steps",
            "at least one step",
        );
        assert_issue(
            json!({"steps": {}}),
            "http_config.steps",
            "must be an array",
        );
        let eleven: Vec<Value> = (0..11)
            .map(|index| json!({"name": format!("s{index}"), "url": "https://h.example.net/"}))
            .collect();
        assert_issue(json!({"steps": eleven}), "http_config.steps", "11 steps");
        let ten = &eleven[..10];
        assert!(HttpConfig::parse(&json!({"steps": ten})).is_ok());
        assert_issue(
            json!({"steps": [1]}),
            "http_config.steps[0]",
            "must be an object",
        );
        assert_issue(
            json!({"steps": [{"url": "https://h.example.net/"}], "extra": 1}),
            "http_config.extra",
            "unknown key 'extra'",
        );
    }

    #[test]
    fn unknown_step_keys_are_rejected() {
        assert_issue(
            one_step(json!({"expected_statuses": [200]})),
            "http_config.steps[0].expected_statuses",
            "unknown key",
        );
        assert_issue(
            one_step(json!({"timeout": 5})),
            "http_config.steps[0].timeout",
            "unknown key",
        );
    }

    #[test]
    fn step_names() {
        assert_issue(
            one_step(json!({"name": "bad-name"})),
            "http_config.steps[0].name",
            "letters, digits",
        );
        assert_issue(
            one_step(json!({"name": ""})),
            "http_config.steps[0].name",
            "letters, digits",
        );
        assert_issue(
            one_step(json!({"name": "ünï"})),
            "http_config.steps[0].name",
            "letters, digits",
        );
        assert_issue(
            one_step(json!({"name": 5})),
            "http_config.steps[0].name",
            "must be a string",
        );
        assert_issue(
            one_step(json!({"name": "a".repeat(65)})),
            "http_config.steps[0].name",
            "at most 64",
        );
        assert!(HttpConfig::parse(&one_step(json!({"name": "Step_1"}))).is_ok());
        assert_issue(
            json!({"steps": [{"name": "a", "url": "https://h.example.net/"}, {"name": "a", "url": "https://h.example.net/"}]}),
            "http_config.steps[1].name",
            "duplicate step name 'a'",
        );
        // A default name can collide with an explicit one.
        assert_issue(
            json!({"steps": [{"name": "step_1", "url": "https://h.example.net/"}, {"url": "https://h.example.net/"}]}),
            "http_config.steps[1].name",
            "duplicate step name 'step_1'",
        );
    }

    #[test]
    fn urls() {
        assert_issue(
            json!({"steps": [{}]}),
            "http_config.steps[0].url",
            "is required",
        );
        assert_issue(
            one_step(json!({"url": ""})),
            "http_config.steps[0].url",
            "must not be empty",
        );
        assert_issue(
            one_step(json!({"url": "  "})),
            "http_config.steps[0].url",
            "must not be empty",
        );
        assert_issue(
            one_step(json!({"url": 3})),
            "http_config.steps[0].url",
            "must be a string",
        );
        assert_issue(
            one_step(json!({"url": "ftp://h.example.net/"})),
            "http_config.steps[0].url",
            "http://",
        );
        assert_issue(
            one_step(json!({"url": "h.example.net/x"})),
            "http_config.steps[0].url",
            "http://",
        );
        assert_issue(
            one_step(json!({"url": "https://h.example.net/a b"})),
            "http_config.steps[0].url",
            "whitespace",
        );
        for good in [
            "HTTPS://h.example.net/",
            "http://h.example.net/",
            "{{auth.base_url}}/api/v1/ip/{{value}}",
            "https://{{auth.domain}}/api",
        ] {
            assert!(
                HttpConfig::parse(&one_step(json!({"url": good}))).is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn templates_are_checked_everywhere() {
        assert_issue(
            one_step(json!({"url": "https://h.example.net/{{value"})),
            "http_config.steps[0].url",
            "unterminated",
        );
        assert_issue(
            one_step(json!({"headers": {"X-Key": "{{secret.key}}"}})),
            "http_config.steps[0].headers.X-Key",
            "unknown namespace 'secret'",
        );
        assert_issue(
            one_step(json!({"query_params": {"q": "{{value | lower}}"}})),
            "http_config.steps[0].query_params.q",
            "unknown filter 'lower'",
        );
        assert_issue(
            one_step(json!({"json_body": {"a": [1, {"b": "{{ a}b }}"}]}})),
            "http_config.steps[0].json_body.a[1].b",
            "'}' inside",
        );
        assert_issue(
            one_step(json!({"json_body": "{{}}"})),
            "http_config.steps[0].json_body",
            "empty placeholder",
        );
        assert_issue(
            one_step(json!({"form_body": {"s": "{{auth}}"}})),
            "http_config.steps[0].form_body.s",
            "needs a field",
        );
        assert_issue(
            json!({"steps": [{"url": "https://h.example.net/"}], "url_templates_by_type": {"ip": "https://h.example.net/{{indicator.ip}}"}}),
            "http_config.url_templates_by_type.ip",
            "unknown indicator field",
        );
    }

    #[test]
    fn steps_may_only_reference_earlier_steps() {
        let config = |second_url: &str, first_url: &str| {
            json!({"steps": [
                {"name": "first", "url": first_url},
                {"name": "second", "url": second_url},
            ]})
        };
        assert!(
            HttpConfig::parse(&config(
                "https://h.example.net/{{steps.first.response.id}}",
                "https://h.example.net/"
            ))
            .is_ok()
        );
        assert_issue(
            config(
                "https://h.example.net/{{steps.second.response.id}}",
                "https://h.example.net/",
            ),
            "http_config.steps[1].url",
            "not an earlier step",
        );
        assert_issue(
            config(
                "https://h.example.net/",
                "https://h.example.net/{{steps.second.response.id}}",
            ),
            "http_config.steps[0].url",
            "'second', which is not an earlier step",
        );
        assert_issue(
            config(
                "https://h.example.net/{{steps.third.response.id}}",
                "https://h.example.net/",
            ),
            "http_config.steps[1].url",
            "unknown step 'third'",
        );
        // The per-type URL replaces the first step's: no step precedes it.
        let mut with_override = config("https://h.example.net/", "https://h.example.net/");
        with_override["url_templates_by_type"] =
            json!({"ip": "https://h.example.net/{{steps.first.response.id}}"});
        let issues = issues_of(HttpConfig::parse(&with_override));
        assert!(
            has_issue(
                &issues,
                "http_config.url_templates_by_type.ip",
                "not an earlier step"
            ),
            "{issues:?}"
        );
        // Default names can be referenced too.
        assert!(
            HttpConfig::parse(&json!({"steps": [
                {"url": "https://h.example.net/"},
                {"url": "https://h.example.net/{{steps.step_0.response.id}}"},
            ]}))
            .is_ok()
        );
    }

    #[test]
    fn headers() {
        assert_issue(
            one_step(json!({"headers": []})),
            "http_config.steps[0].headers",
            "must be an object",
        );
        assert_issue(
            one_step(json!({"headers": {"X-N": 5}})),
            "http_config.steps[0].headers.X-N",
            "string template",
        );
        assert_issue(
            one_step(json!({"headers": {"X-N": {"a": "b"}}})),
            "http_config.steps[0].headers.X-N",
            "string template",
        );
        assert_issue(
            one_step(json!({"headers": {"Bad Name": "v"}})),
            "http_config.steps[0].headers.Bad Name",
            "valid header name",
        );
        assert_issue(
            one_step(json!({"headers": {"X-A": "a\r\nX-B: b"}})),
            "http_config.steps[0].headers.X-A",
            "line breaks",
        );
    }

    #[test]
    fn query_and_form_fields_are_scalars() {
        assert_issue(
            one_step(json!({"query_params": "q=1"})),
            "http_config.steps[0].query_params",
            "must be an object",
        );
        assert_issue(
            one_step(json!({"query_params": {"q": [1]}})),
            "http_config.steps[0].query_params.q",
            "number or a boolean",
        );
        assert_issue(
            one_step(json!({"form_body": {"q": {"a": 1}}})),
            "http_config.steps[0].form_body.q",
            "number or a boolean",
        );
        assert_issue(
            one_step(json!({"form_body": {"q": null}})),
            "http_config.steps[0].form_body.q",
            "not null",
        );
    }

    #[test]
    fn one_body_only() {
        assert_issue(
            one_step(json!({"json_body": {"a": 1}, "form_body": {"b": "2"}})),
            "http_config.steps[0].form_body",
            "mutually exclusive",
        );
        let config = HttpConfig::parse(&one_step(json!({"json_body": [1, "x", null]}))).unwrap();
        assert_eq!(config.steps[0].json_body, Some(json!([1, "x", null])));
    }

    #[test]
    fn timeouts() {
        for (seconds, millis) in [(json!(1), 1000), (json!(60), 60_000), (json!(0.5e1), 5000)] {
            let config = HttpConfig::parse(&one_step(json!({"timeout_seconds": seconds}))).unwrap();
            assert_eq!(config.steps[0].timeout, Duration::from_millis(millis));
        }
        for bad in [
            json!(0),
            json!(0.99),
            json!(61),
            json!(-5),
            json!("30"),
            json!(true),
        ] {
            assert_issue(
                one_step(json!({"timeout_seconds": bad})),
                "http_config.steps[0].timeout_seconds",
                "from 1 to 60",
            );
        }
    }

    #[test]
    fn statuses() {
        assert_issue(
            one_step(json!({"expected_status": []})),
            "http_config.steps[0].expected_status",
            "at least one",
        );
        assert_issue(
            one_step(json!({"expected_status": 200})),
            "http_config.steps[0].expected_status",
            "must be an array",
        );
        assert_issue(
            one_step(json!({"expected_status": [99]})),
            "http_config.steps[0].expected_status[0]",
            "100 to 599",
        );
        assert_issue(
            one_step(json!({"expected_status": [200, 600]})),
            "http_config.steps[0].expected_status[1]",
            "100 to 599",
        );
        assert_issue(
            one_step(json!({"expected_status": ["200"]})),
            "http_config.steps[0].expected_status[0]",
            "100 to 599",
        );
        assert_issue(
            one_step(json!({"not_found_status": [200.5]})),
            "http_config.steps[0].not_found_status[0]",
            "100 to 599",
        );
        assert_issue(
            one_step(json!({"expected_status": [200, 404], "not_found_status": [404]})),
            "http_config.steps[0].not_found_status",
            "404 is also an expected status",
        );
        assert_issue(
            one_step(json!({"not_found_status": [200]})),
            "http_config.steps[0].not_found_status",
            "200 is also",
        );
        let config = HttpConfig::parse(&one_step(
            json!({"expected_status": [100, 599], "not_found_status": []}),
        ))
        .unwrap();
        assert_eq!(config.steps[0].expected_status, vec![100, 599]);
    }

    #[test]
    fn optional_flag() {
        assert!(
            HttpConfig::parse(&one_step(json!({"optional": true})))
                .unwrap()
                .steps[0]
                .optional
        );
        assert_issue(
            one_step(json!({"optional": "yes"})),
            "http_config.steps[0].optional",
            "must be a boolean",
        );
    }

    #[test]
    fn url_templates_by_type() {
        let mut config = one_step(json!({}));
        config["url_templates_by_type"] = json!({
            "ip": "https://h.example.net/ip/{{value}}",
            "hash_sha256": "https://h.example.net/files/{{value}}",
        });
        let parsed = HttpConfig::parse(&config).unwrap();
        assert_eq!(parsed.url_templates_by_type.len(), 2);
        assert_eq!(
            parsed.url_template(0, "hash_sha256"),
            "https://h.example.net/files/{{value}}"
        );

        config["url_templates_by_type"] = json!({"ipv4": "https://h.example.net/"});
        assert_issue(
            config.clone(),
            "http_config.url_templates_by_type.ipv4",
            "not an indicator type",
        );
        config["url_templates_by_type"] = json!({"ip": 5});
        assert_issue(
            config.clone(),
            "http_config.url_templates_by_type.ip",
            "URL template string",
        );
        config["url_templates_by_type"] = json!({"ip": ""});
        assert_issue(
            config.clone(),
            "http_config.url_templates_by_type.ip",
            "must not be empty",
        );
        config["url_templates_by_type"] = json!(["ip"]);
        assert_issue(
            config,
            "http_config.url_templates_by_type",
            "must be an object",
        );
    }

    #[test]
    fn every_issue_is_reported_at_once() {
        let issues = issues_of(HttpConfig::parse(&json!({
            "steps": [{"name": "x-y", "method": "TRACE", "url": "", "timeout_seconds": 0, "bogus": 1}],
            "url_templates_by_type": {"nope": "https://h.example.net/"},
        })));
        assert_eq!(issues.len(), 6, "{issues:#?}");
    }

    #[test]
    fn value_types() {
        assert_eq!(VALUE_TYPES.len(), 8);
        for value_type in [
            "string", "int", "float", "bool", "list", "dict", "any", "number",
        ] {
            assert!(VALUE_TYPES.contains(&value_type));
        }
    }

    fn malice_issues(value: Value) -> Vec<(String, String)> {
        MaliceRules::parse(&value)
            .unwrap_err()
            .into_iter()
            .map(|issue| (issue.path, issue.message))
            .collect()
    }

    fn assert_malice_issue(value: Value, path: &str, fragment: &str) {
        let issues = malice_issues(value);
        assert!(
            has_issue(&issues, path, fragment),
            "expected {path}: …{fragment}… in {issues:#?}"
        );
    }

    #[test]
    fn malice_rules_parse() {
        let rules = MaliceRules::parse(&json!({
            "rules": [
                {"field": "data.score", "operator": ">=", "value": 75, "verdict": "Malicious"},
                {"field": "data.score", "operator": ">", "value": "25.5", "verdict": "Suspicious"},
                {"field": "data.tags", "operator": "contains", "value": "tor"},
                {"field": "data.country", "operator": "in", "value": ["KP", "IR"], "verdict": "Suspicious"},
                {"field": "data.flag", "value": true, "verdict": "Malicious"},
            ],
            "default_verdict": "Benign",
        }))
        .unwrap();
        assert_eq!(rules.default_verdict, "Benign");
        assert_eq!(rules.not_found_verdict, "Pending");
        assert_eq!(rules.rules.len(), 5);
        assert_eq!(rules.rules[0].operator, MaliceOperator::Ge);
        assert_eq!(rules.rules[1].value, json!("25.5"));
        // A rule without a verdict yields the default verdict; without an operator it is "==".
        assert_eq!(rules.rules[2].verdict, "Benign");
        assert_eq!(rules.rules[4].operator, MaliceOperator::Eq);
    }

    #[test]
    fn malice_rules_defaults() {
        assert_eq!(
            MaliceRules::parse(&Value::Null).unwrap(),
            MaliceRules::pending()
        );
        assert_eq!(
            MaliceRules::parse(&json!({})).unwrap(),
            MaliceRules::pending()
        );
        assert_eq!(
            MaliceRules::parse(&json!({"rules": null, "default_verdict": null})).unwrap(),
            MaliceRules::pending()
        );
        let pending = MaliceRules::pending();
        assert!(pending.rules.is_empty());
        assert_eq!(pending.default_verdict, "Pending");
        assert_eq!(pending.not_found_verdict, "Pending");
    }

    #[test]
    fn malice_rules_validation() {
        assert_malice_issue(json!([]), "malice_rules", "must be an object");
        assert_malice_issue(
            json!({"rules": [], "extra": 1}),
            "malice_rules.extra",
            "unknown key",
        );
        assert_malice_issue(
            json!({"default_verdict": "malicious"}),
            "malice_rules.default_verdict",
            "must be one of",
        );
        assert_malice_issue(
            json!({"not_found_verdict": "Unknown"}),
            "malice_rules.not_found_verdict",
            "must be one of",
        );
        assert_malice_issue(
            json!({"rules": {}}),
            "malice_rules.rules",
            "must be an array",
        );
        assert_malice_issue(
            json!({"rules": [5]}),
            "malice_rules.rules[0]",
            "must be an object",
        );
        let rule = |extra: Value| {
            let mut rule =
                json!({"field": "a.b", "operator": "==", "value": 1, "verdict": "Malicious"});
            rule.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            json!({"rules": [rule]})
        };
        assert_malice_issue(
            rule(json!({"operator": "=~"})),
            "malice_rules.rules[0].operator",
            "unknown operator '=~'",
        );
        assert_malice_issue(
            rule(json!({"operator": 1})),
            "malice_rules.rules[0].operator",
            "must be a string",
        );
        assert_malice_issue(
            rule(json!({"verdict": "Evil"})),
            "malice_rules.rules[0].verdict",
            "must be one of",
        );
        assert_malice_issue(
            rule(json!({"field": ""})),
            "malice_rules.rules[0].field",
            "empty",
        );
        assert_malice_issue(
            rule(json!({"field": "a..b"})),
            "malice_rules.rules[0].field",
            "empty segment",
        );
        assert_malice_issue(
            rule(json!({"field": null})),
            "malice_rules.rules[0].field",
            "is required",
        );
        assert_malice_issue(
            rule(json!({"field": 3})),
            "malice_rules.rules[0].field",
            "dot path string",
        );
        assert_malice_issue(
            rule(json!({"value": null})),
            "malice_rules.rules[0].value",
            "is required",
        );
        assert_malice_issue(
            rule(json!({"operator": ">", "value": "high"})),
            "malice_rules.rules[0].value",
            "must be a number",
        );
        assert_malice_issue(
            rule(json!({"operator": "<=", "value": [1]})),
            "malice_rules.rules[0].value",
            "must be a number",
        );
        assert_malice_issue(
            rule(json!({"operator": "<", "value": true})),
            "malice_rules.rules[0].value",
            "must be a number",
        );
        assert_malice_issue(
            rule(json!({"operator": ">", "value": "nan"})),
            "malice_rules.rules[0].value",
            "must be a number",
        );
        assert_malice_issue(
            rule(json!({"operator": "in", "value": "KP"})),
            "malice_rules.rules[0].value",
            "must be an array",
        );
        assert_malice_issue(
            rule(json!({"when": 1})),
            "malice_rules.rules[0].when",
            "unknown key",
        );
        let too_many: Vec<Value> = (0..101)
            .map(|_| json!({"field": "a", "value": 1}))
            .collect();
        assert_malice_issue(
            json!({"rules": too_many}),
            "malice_rules.rules",
            "101 rules",
        );
        for operator in MaliceOperator::ALL {
            let value = if operator == MaliceOperator::In {
                json!([1])
            } else {
                json!(1)
            };
            assert!(
                MaliceRules::parse(&rule(
                    json!({"operator": operator.as_str(), "value": value})
                ))
                .is_ok()
            );
        }
    }

    #[test]
    fn issue_display() {
        let issue = ConfigIssue {
            path: "http_config.steps[0].url".into(),
            message: "is required".into(),
        };
        assert_eq!(issue.to_string(), "http_config.steps[0].url: is required");
        assert_eq!(
            serde_json::to_value(&issue).unwrap(),
            json!({"path": "http_config.steps[0].url", "message": "is required"})
        );
    }
}
