//! `malice_rules` (enrichment.md §3.2): comparison rules over the raw response, each with a
//! verdict, plus the default and not-found verdicts.

use std::str::FromStr;

use serde_json::{Map, Value};

use crate::enrich::{dotpath, malice};
use super::{ConfigIssue, Issues, MAX_MALICE_RULES, VERDICTS, optional, reject_unknown_keys};
use crate::ingest::sources::json_type;

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

const MALICE_KEYS: &[&str] = &["rules", "default_verdict", "not_found_verdict"];
const MALICE_RULE_KEYS: &[&str] = &["field", "operator", "value", "verdict"];

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
