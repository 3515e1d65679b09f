//! One request step of an `http_config`: method, URL, headers, query, body, timeout, statuses
//! and the optional flag, every template checked and every step reference pointing back.

use std::sync::LazyLock;
use std::time::Duration;

use http::Method;
use regex::Regex;
use serde_json::{Map, Value};

use crate::enrich::template;
use super::{
    DEFAULT_TIMEOUT_SECONDS, Issues, MAX_STEP_NAME_CHARS, MAX_TIMEOUT_SECONDS, METHODS, MIN_TIMEOUT_SECONDS, optional,
    reject_unknown_keys,
};
use crate::ingest::sources::json_type;

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

static STEP_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_]+$").expect("static regex"));

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
/// The step's name (`step_<index>` by default), reporting a bad one.
pub(super) fn step_name(step: &Value, index: usize, path: &str, issues: &mut Issues) -> String {
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

pub(super) fn parse_step(
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
pub(super) fn check_url(url: &str, path: &str, earlier: &[String], names: &[String], issues: &mut Issues) {
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
