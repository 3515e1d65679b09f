//! Targeting rules (agents-mcp-metrics.md §2): which alerts a context document applies to. Pure
//! logic: `validate` checks a rules document at save time, `matches` evaluates one against an
//! alert's facts and never fails.
//!
//! ```json
//! {"match_any": [{"field": "source_name", "op": "eq", "value": "splunk"},
//!                {"field": "tags", "op": "contains", "value": "Exfiltration"}],
//!  "match_all": [{"field": "severity", "op": "gte", "value": "High"}]}
//! ```
//! A non-empty `match_any` needs one true rule, a non-empty `match_all` needs every rule true,
//! both present must both hold.
//!
//! Supported combinations (anything else is refused at save time and false when evaluated):
//!
//! | field         | ops                      | value                                     |
//! |---------------|--------------------------|-------------------------------------------|
//! | `source_name` | `eq`, `in`               | string / array of strings                 |
//! | `severity`    | `eq`, `in`, `gte`, `lte` | severity name(s) (exact case)             |
//! | `tags`        | `contains`               | string (one tag of the alert equals it)   |
//!
//! Deviations from Calseta, whose evaluator accepted any field/op pair and then answered false
//! for most of them: combinations that can never be true (`eq` on `tags`, `contains` on a
//! string field, `gte`/`lte` on text) are refused when saved instead of silently never matching;
//! `gte`/`lte` on `severity` compare by rank (Pending 0 < Informational 1 < Low 2 < Medium 3 <
//! High 4 < Critical 5) where Calseta's float conversion made them always false; a rules
//! document must hold at least one rule (an empty one would match every alert).

use std::str::FromStr;

use serde_json::{Value, json};

use crate::error::FieldError;
use crate::ingest::Severity;

pub const FIELDS: [&str; 3] = ["source_name", "severity", "tags"];
pub const OPS: [&str; 5] = ["eq", "in", "contains", "gte", "lte"];
const GROUPS: [&str; 2] = ["match_any", "match_all"];
const RULE_KEYS: [&str; 3] = ["field", "op", "value"];

/// Size bound of a rules document: data-model.md's SMALL JSON limit, measured on the compact
/// serialization.
pub const MAX_BYTES: usize = 65_536;
/// Longest string a rule may compare against.
const MAX_VALUE_CHARS: usize = 500;

/// What the rules look at on an alert.
#[derive(Debug, Clone, Copy)]
pub struct AlertFacts<'a> {
    pub source_name: &'a str,
    pub severity: &'a str,
    pub tags: &'a [String],
}

/// True when the alert satisfies `rules`. `null` (no rules) and a document without any rule
/// impose no restriction, as the spec's evaluator defines it; deciding that a non-global
/// *document* without rules attaches to nothing is `applicable_documents`'s job. Malformed
/// input (only possible for rows written before validation) evaluates false, never panics.
pub fn matches(rules: &Value, facts: &AlertFacts) -> bool {
    let map = match rules {
        Value::Null => return true,
        Value::Object(map) => map,
        _ => return false,
    };
    let group = |key: &str| match map.get(key) {
        None | Some(Value::Null) => Some(&[][..]),
        Some(Value::Array(items)) => Some(items.as_slice()),
        Some(_) => None,
    };
    let (Some(any), Some(all)) = (group("match_any"), group("match_all")) else { return false };
    let any_ok = any.is_empty() || any.iter().any(|rule| rule_matches(rule, facts));
    let all_ok = all.iter().all(|rule| rule_matches(rule, facts));
    any_ok && all_ok
}

/// Number of rules in a (valid) document; 0 for `null`.
pub fn rule_count(rules: &Value) -> usize {
    GROUPS.iter().filter_map(|g| rules.get(g).and_then(Value::as_array)).map(Vec::len).sum()
}

fn severity_rank(name: &str) -> Option<u8> {
    Severity::from_str(name).ok().map(Severity::rank)
}

fn rule_matches(rule: &Value, facts: &AlertFacts) -> bool {
    let (Some(field), Some(op)) = (rule.get("field").and_then(Value::as_str), rule.get("op").and_then(Value::as_str)) else {
        return false;
    };
    let value = rule.get("value").unwrap_or(&Value::Null);
    let scalar = match field {
        "source_name" => facts.source_name,
        "severity" => facts.severity,
        "tags" => {
            return op == "contains" && value.as_str().is_some_and(|wanted| facts.tags.iter().any(|t| t == wanted));
        }
        _ => return false,
    };
    match op {
        "eq" => value.as_str() == Some(scalar),
        "in" => value.as_array().is_some_and(|options| options.iter().any(|o| o.as_str() == Some(scalar))),
        "gte" | "lte" if field == "severity" => {
            let (Some(alert), Some(bound)) = (severity_rank(scalar), value.as_str().and_then(severity_rank)) else {
                return false;
            };
            if op == "gte" { alert >= bound } else { alert <= bound }
        }
        _ => false,
    }
}

/// The size check shared by every size-limited JSON field: `None` when `value` fits.
pub fn json_size_error(field: &str, value: &Value, limit: usize) -> Option<FieldError> {
    crate::http::extract::check_json_size(field, value, limit).err()
}

/// Collects every problem of a rules document, each located at `["body", field, group, index,
/// key]` and named in its message. `field` is the body field holding the document
/// (`targeting_rules`, or an agent's `trigger_filter`). `null` is valid (no rules).
pub fn validate(rules: &Value, field: &str) -> Result<(), Vec<FieldError>> {
    if rules.is_null() {
        return Ok(());
    }
    if let Some(too_big) = json_size_error(field, rules, MAX_BYTES) {
        return Err(vec![too_big]);
    }
    let mut errors = Vec::new();
    let at = |path: &[Value], msg: String| {
        let mut loc = vec![json!("body"), json!(field)];
        loc.extend_from_slice(path);
        FieldError::new("value_error", loc, msg)
    };
    let Some(map) = rules.as_object() else {
        return Err(vec![at(&[], format!("{field} must be an object"))]);
    };
    let mut unknown: Vec<&str> = map.keys().map(String::as_str).filter(|k| !GROUPS.contains(k)).collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        errors.push(at(&[], format!("{field} has unknown keys: {unknown:?}; allowed: [\"match_all\", \"match_any\"]")));
    }
    if !GROUPS.iter().any(|g| map.contains_key(*g)) {
        errors.push(at(&[], format!("{field} must contain at least one of: match_any, match_all")));
    }
    let mut total = 0;
    for group in GROUPS {
        let Some(list) = map.get(group) else { continue };
        let Some(list) = list.as_array() else {
            errors.push(at(&[json!(group)], format!("{field}.{group} must be an array")));
            continue;
        };
        total += list.len();
        for (index, rule) in list.iter().enumerate() {
            let path = [json!(group), json!(index)];
            let name = format!("{group}[{index}]");
            for (key, msg) in check_rule(rule, &name) {
                let mut loc = path.to_vec();
                if let Some(key) = key {
                    loc.push(json!(key));
                }
                errors.push(at(&loc, msg));
            }
        }
    }
    if total == 0 && errors.is_empty() {
        errors.push(at(&[], format!("{field} must contain at least one rule; send null for no targeting")));
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// The problems of one rule: (offending key, message).
fn check_rule(rule: &Value, name: &str) -> Vec<(Option<&'static str>, String)> {
    let Some(map) = rule.as_object() else {
        return vec![(None, format!("{name}: rule must be an object with keys field, op, value"))];
    };
    let mut problems = Vec::new();
    let mut unknown: Vec<&str> = map.keys().map(String::as_str).filter(|k| !RULE_KEYS.contains(k)).collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        problems.push((None, format!("{name}: unknown keys {unknown:?}; a rule has exactly field, op, value")));
    }
    for key in RULE_KEYS {
        if !map.contains_key(key) {
            problems.push((Some(key), format!("{name}: missing required key '{key}'")));
        }
    }
    let field = map.get("field").map(|f| (f, f.as_str().filter(|f| FIELDS.contains(f))));
    if let Some((raw, None)) = field {
        problems.push((Some("field"), format!("{name}.field: {raw} is not one of {FIELDS:?}")));
    }
    let op = map.get("op").map(|o| (o, o.as_str().filter(|o| OPS.contains(o))));
    if let Some((raw, None)) = op {
        problems.push((Some("op"), format!("{name}.op: {raw} is not one of {OPS:?}")));
    }
    let (Some((_, Some(field))), Some((_, Some(op))), Some(value)) = (field, op, map.get("value")) else {
        return problems;
    };
    let allowed: &[&str] = match field {
        "source_name" => &["eq", "in"],
        "severity" => &["eq", "in", "gte", "lte"],
        _ => &["contains"],
    };
    if !allowed.contains(&op) {
        problems.push((Some("op"), format!("{name}: op '{op}' cannot be used with field '{field}'; use one of {allowed:?}")));
        return problems;
    }
    if let Some(msg) = check_value(field, op, value) {
        problems.push((Some("value"), format!("{name}.value: {msg}")));
    }
    problems
}

fn check_value(field: &str, op: &str, value: &Value) -> Option<String> {
    let check_one = |item: &Value| -> Option<String> {
        let Some(text) = item.as_str() else { return Some(format!("{item} must be a string")) };
        if text.is_empty() || text.chars().count() > MAX_VALUE_CHARS {
            return Some(format!("strings must be 1 to {MAX_VALUE_CHARS} characters"));
        }
        if field == "severity" && Severity::from_str(text).is_err() {
            let names: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
            return Some(format!("'{text}' is not a severity; use one of {names:?}"));
        }
        None
    };
    if op == "in" {
        let Some(items) = value.as_array() else { return Some("op 'in' needs an array of strings".into()) };
        if items.is_empty() {
            return Some("op 'in' needs at least one value".into());
        }
        return items.iter().find_map(check_one);
    }
    check_one(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(source: &'a str, severity: &'a str, tags: &'a [String]) -> AlertFacts<'a> {
        AlertFacts { source_name: source, severity, tags }
    }

    fn rule(field: &str, op: &str, value: Value) -> Value {
        json!({"field": field, "op": op, "value": value})
    }

    fn all(rules: Vec<Value>) -> Value {
        json!({"match_all": rules})
    }

    #[test]
    fn eq_compares_exact_strings() {
        let tags = vec![];
        let alert = facts("splunk", "High", &tags);
        assert!(matches(&all(vec![rule("source_name", "eq", json!("splunk"))]), &alert));
        assert!(!matches(&all(vec![rule("source_name", "eq", json!("Splunk"))]), &alert), "case-sensitive");
        assert!(matches(&all(vec![rule("severity", "eq", json!("High"))]), &alert));
        assert!(!matches(&all(vec![rule("severity", "eq", json!("Low"))]), &alert));
        assert!(!matches(&all(vec![rule("source_name", "eq", json!(5))]), &alert), "non-string value");
    }

    #[test]
    fn in_needs_membership() {
        let tags = vec![];
        let alert = facts("elastic", "Medium", &tags);
        assert!(matches(&all(vec![rule("source_name", "in", json!(["splunk", "elastic"]))]), &alert));
        assert!(!matches(&all(vec![rule("source_name", "in", json!(["splunk"]))]), &alert));
        assert!(matches(&all(vec![rule("severity", "in", json!(["High", "Medium"]))]), &alert));
        assert!(!matches(&all(vec![rule("source_name", "in", json!("elastic"))]), &alert), "not an array");
    }

    #[test]
    fn contains_looks_at_tags() {
        let tags = vec!["Exfiltration".to_owned(), "T1048".to_owned()];
        let alert = facts("splunk", "Low", &tags);
        assert!(matches(&all(vec![rule("tags", "contains", json!("T1048"))]), &alert));
        assert!(!matches(&all(vec![rule("tags", "contains", json!("t1048"))]), &alert));
        assert!(!matches(&all(vec![rule("source_name", "contains", json!("spl"))]), &alert), "not a tag field");
        assert!(!matches(&all(vec![rule("tags", "eq", json!("T1048"))]), &alert), "eq never applies to tags");
        let none: Vec<String> = vec![];
        assert!(!matches(&all(vec![rule("tags", "contains", json!("T1048"))]), &facts("splunk", "Low", &none)));
    }

    #[test]
    fn gte_and_lte_use_the_severity_rank() {
        let tags = vec![];
        let gte_high = all(vec![rule("severity", "gte", json!("High"))]);
        let lte_low = all(vec![rule("severity", "lte", json!("Low"))]);
        assert!(matches(&gte_high, &facts("s", "Critical", &tags)));
        assert!(matches(&gte_high, &facts("s", "High", &tags)));
        assert!(!matches(&gte_high, &facts("s", "Medium", &tags)));
        assert!(matches(&lte_low, &facts("s", "Low", &tags)));
        assert!(matches(&lte_low, &facts("s", "Informational", &tags)));
        assert!(matches(&lte_low, &facts("s", "Pending", &tags)));
        assert!(!matches(&lte_low, &facts("s", "Medium", &tags)));
        assert!(!matches(&gte_high, &facts("s", "Severe", &tags)), "unknown alert severity");
        assert!(!matches(&all(vec![rule("severity", "gte", json!("Huge"))]), &facts("s", "Critical", &tags)));
        assert!(!matches(&all(vec![rule("source_name", "gte", json!("a"))]), &facts("b", "Low", &tags)), "text fields");
    }

    #[test]
    fn match_any_match_all_and_both() {
        let tags = vec!["phishing".to_owned()];
        let alert = facts("splunk", "High", &tags);
        let yes = rule("source_name", "eq", json!("splunk"));
        let no = rule("source_name", "eq", json!("elastic"));
        assert!(matches(&json!({"match_any": [no.clone(), yes.clone()]}), &alert));
        assert!(!matches(&json!({"match_any": [no.clone(), no.clone()]}), &alert));
        assert!(matches(&json!({"match_all": [yes.clone(), rule("tags", "contains", json!("phishing"))]}), &alert));
        assert!(!matches(&json!({"match_all": [yes.clone(), no.clone()]}), &alert));
        assert!(matches(&json!({"match_any": [no.clone(), yes.clone()], "match_all": [yes.clone()]}), &alert));
        assert!(!matches(&json!({"match_any": [yes.clone()], "match_all": [no.clone()]}), &alert));
        assert!(!matches(&json!({"match_any": [no.clone()], "match_all": [yes.clone()]}), &alert));
        // An empty group imposes nothing; the other decides.
        assert!(matches(&json!({"match_any": [], "match_all": [yes]}), &alert));
    }

    #[test]
    fn null_empty_unknown_and_malformed() {
        let tags = vec![];
        let alert = facts("splunk", "High", &tags);
        assert!(matches(&Value::Null, &alert), "null = no restriction (evaluator semantics)");
        assert!(matches(&json!({}), &alert));
        assert!(matches(&json!({"match_any": [], "match_all": []}), &alert));
        assert!(!matches(&all(vec![rule("hostname", "eq", json!("x"))]), &alert), "unknown field");
        assert!(!matches(&all(vec![rule("source_name", "neq", json!("x"))]), &alert), "unknown op");
        assert!(!matches(&all(vec![json!({"op": "eq", "value": "splunk"})]), &alert), "missing field");
        assert!(!matches(&all(vec![json!("splunk")]), &alert), "rule not an object");
        assert!(!matches(&json!({"match_all": "x"}), &alert), "group not an array");
        assert!(!matches(&json!([1]), &alert), "not an object");
        assert_eq!(rule_count(&Value::Null), 0);
        assert_eq!(rule_count(&json!({"match_any": [1, 2], "match_all": [3]})), 3);
    }

    fn problems(rules: Value) -> Vec<(Vec<Value>, String)> {
        validate(&rules, "targeting_rules").unwrap_err().into_iter().map(|e| (e.loc, e.msg)).collect()
    }

    #[test]
    fn valid_documents_pass() {
        assert!(validate(&Value::Null, "targeting_rules").is_ok());
        let ok = json!({
            "match_any": [{"field": "source_name", "op": "eq", "value": "splunk"},
                          {"field": "tags", "op": "contains", "value": "Exfiltration"}],
            "match_all": [{"field": "severity", "op": "in", "value": ["High", "Critical"]},
                          {"field": "severity", "op": "gte", "value": "Medium"},
                          {"field": "source_name", "op": "in", "value": ["a"]},
                          {"field": "severity", "op": "lte", "value": "Critical"}]
        });
        assert!(validate(&ok, "targeting_rules").is_ok());
    }

    #[test]
    fn document_shape_errors() {
        assert_eq!(problems(json!([])), vec![(vec![json!("body"), json!("targeting_rules")], "targeting_rules must be an object".into())]);
        let p = problems(json!({"match": []}));
        assert_eq!(p.len(), 2);
        assert!(p[0].1.contains("unknown keys: [\"match\"]"), "{p:?}");
        assert_eq!(p[1].1, "targeting_rules must contain at least one of: match_any, match_all");
        let p = problems(json!({"match_any": {"field": "tags"}}));
        assert_eq!(p[0].0, vec![json!("body"), json!("targeting_rules"), json!("match_any")]);
        assert_eq!(p[0].1, "targeting_rules.match_any must be an array");
        let p = problems(json!({"match_any": [], "match_all": []}));
        assert!(p[0].1.contains("at least one rule"), "{p:?}");
        let p = problems(json!({"match_all": ["x"]}));
        assert_eq!(p[0].0, vec![json!("body"), json!("targeting_rules"), json!("match_all"), json!(0)]);
        assert!(p[0].1.starts_with("match_all[0]: rule must be an object"));
    }

    #[test]
    fn rule_errors_name_the_problem() {
        let loc = |group: &str, index: usize, key: &str| {
            vec![json!("body"), json!("targeting_rules"), json!(group), json!(index), json!(key)]
        };
        let p = problems(json!({"match_any": [{"field": "hostname", "op": "eq", "value": "x"}]}));
        assert_eq!(p, vec![(loc("match_any", 0, "field"), "match_any[0].field: \"hostname\" is not one of [\"source_name\", \"severity\", \"tags\"]".into())]);
        let p = problems(json!({"match_any": [{"field": "tags", "op": "neq", "value": "x"}]}));
        assert_eq!(p[0].0, loc("match_any", 0, "op"));
        assert!(p[0].1.contains("\"neq\" is not one of"));
        let p = problems(json!({"match_all": [{"field": "tags", "op": "contains"}]}));
        assert_eq!(p, vec![(loc("match_all", 0, "value"), "match_all[0]: missing required key 'value'".into())]);
        let p = problems(json!({"match_all": [{"field": "tags", "op": "contains", "value": "x", "values": []}]}));
        assert!(p[0].1.contains("unknown keys [\"values\"]"));
        let p = problems(json!({"match_all": [{"field": "tags", "op": "eq", "value": "x"}]}));
        assert_eq!(p[0].0, loc("match_all", 0, "op"));
        assert!(p[0].1.contains("op 'eq' cannot be used with field 'tags'"));
        let p = problems(json!({"match_all": [{"field": "source_name", "op": "gte", "value": "x"}]}));
        assert!(p[0].1.contains("op 'gte' cannot be used with field 'source_name'"));
        let p = problems(json!({"match_all": [{"field": "severity", "op": "gte", "value": "high"}]}));
        assert_eq!(p[0].0, loc("match_all", 0, "value"));
        assert!(p[0].1.contains("'high' is not a severity"));
        let p = problems(json!({"match_all": [{"field": "source_name", "op": "in", "value": "splunk"}]}));
        assert!(p[0].1.contains("needs an array"));
        let p = problems(json!({"match_all": [{"field": "source_name", "op": "in", "value": []}]}));
        assert!(p[0].1.contains("at least one value"));
        let p = problems(json!({"match_all": [{"field": "source_name", "op": "eq", "value": 3}]}));
        assert!(p[0].1.contains("3 must be a string"));
        let p = problems(json!({"match_all": [{"field": "source_name", "op": "eq", "value": ""}]}));
        assert!(p[0].1.contains("1 to 500 characters"));
        // Every problem is reported, not just the first.
        let p = problems(json!({"match_any": [{"field": "x", "op": "y", "value": 1}], "match_all": [1]}));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn size_limit() {
        let big = json!({"match_any": [{"field": "source_name", "op": "in", "value": vec!["x".repeat(400); 200]}]});
        let p = problems(big.clone());
        let size = serde_json::to_vec(&big).unwrap().len();
        assert_eq!(p.len(), 1);
        assert!(p[0].1.starts_with("targeting_rules exceeds maximum size of 64 KB ("), "{}", p[0].1);
        assert!(size > 65_536);
    }
}
