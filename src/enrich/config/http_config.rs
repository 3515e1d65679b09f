//! `http_config` (enrichment.md §2.1): the steps as a whole (names, order, count) and the
//! per-type URL overrides; each step's own keys are checked in [`super::step`].

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use serde_json::Value;

use super::step::{Step, check_url, parse_step, step_name};
use super::{ConfigIssue, Issues, MAX_STEPS, optional, reject_unknown_keys};
use crate::domain::IndicatorType;
use crate::ingest::sources::json_type;

/// A provider's request recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    pub steps: Vec<Step>,
    /// Indicator type → URL template replacing the **first** step's URL for that type.
    pub url_templates_by_type: BTreeMap<String, String>,
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


const HTTP_CONFIG_KEYS: &[&str] = &["steps", "url_templates_by_type"];

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

