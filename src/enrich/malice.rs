//! Malice verdicts (enrichment.md §3.2, §5.2): evaluating a provider's rules over its raw
//! response, and ranking verdicts to pick an indicator's worst.

use serde_json::{Number, Value};

use super::config::{MaliceOperator, MaliceRule, MaliceRules};
use super::{dotpath, extract, template};

/// The verdict for one raw response: `not_found_verdict` when the indicator was not found, else
/// the verdict of the first matching rule, else `default_verdict`.
pub fn evaluate(raw: &Value, rules: &MaliceRules, not_found: bool) -> String {
    if not_found {
        return rules.not_found_verdict.clone();
    }
    rules
        .rules
        .iter()
        .find(|rule| matches(raw, rule))
        .map_or_else(
            || rules.default_verdict.clone(),
            |rule| rule.verdict.clone(),
        )
}

/// Malicious 3 > Suspicious 2 > Benign 1 > Pending 0; unknown strings 0.
pub fn rank(verdict: &str) -> u8 {
    match verdict {
        "Malicious" => 3,
        "Suspicious" => 2,
        "Benign" => 1,
        _ => 0,
    }
}

/// The most severe of `verdicts`; `Pending` when there are none or none is a known verdict above
/// `Pending` (the original could return an unknown string; verdicts are validated here, and an
/// unknown one never becomes an indicator's malice).
pub fn worst<'a>(verdicts: impl Iterator<Item = &'a str>) -> String {
    verdicts
        .filter(|verdict| rank(verdict) > 0)
        .fold(None::<&str>, |worst, verdict| match worst {
            Some(current) if rank(current) >= rank(verdict) => Some(current),
            _ => Some(verdict),
        })
        .unwrap_or("Pending")
        .to_owned()
}

/// Whether `rule` holds for `raw`. A missing or `null` field never matches.
fn matches(raw: &Value, rule: &MaliceRule) -> bool {
    let Some(actual) = dotpath::resolve(raw, &rule.field) else {
        return false;
    };
    let expected = &rule.value;
    match rule.operator {
        MaliceOperator::Eq => json_eq(actual, expected),
        MaliceOperator::Ne => !json_eq(actual, expected),
        MaliceOperator::Contains => match actual {
            Value::String(text) => text.contains(template::stringify(expected).as_str()),
            Value::Array(items) => items.iter().any(|item| json_eq(item, expected)),
            Value::Object(map) => expected.as_str().is_some_and(|key| map.contains_key(key)),
            _ => false,
        },
        MaliceOperator::In => expected
            .as_array()
            .is_some_and(|items| items.iter().any(|item| json_eq(actual, item))),
        MaliceOperator::Gt | MaliceOperator::Ge | MaliceOperator::Lt | MaliceOperator::Le => {
            let (Some(actual), Some(expected)) = (to_float(actual), to_float(expected)) else {
                return false;
            };
            match rule.operator {
                MaliceOperator::Gt => actual > expected,
                MaliceOperator::Ge => actual >= expected,
                MaliceOperator::Lt => actual < expected,
                _ => actual <= expected,
            }
        }
    }
}

/// Python's `float(value)` for JSON: numbers, booleans (1/0) and numeric strings.
pub fn to_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::Bool(flag) => Some(if *flag { 1.0 } else { 0.0 }),
        Value::String(text) => extract::python_float(text),
        _ => None,
    }
}

/// JSON equality with numbers compared by value (`1 == 1.0`), at any depth. No other coercion:
/// `"1" != 1`, `true != 1`.
pub fn json_eq(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(left), Value::Number(right)) => number_eq(left, right),
        (Value::Array(left), Value::Array(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .zip(right)
                    .all(|(left, right)| json_eq(left, right))
        }
        (Value::Object(left), Value::Object(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .all(|(key, value)| right.get(key).is_some_and(|other| json_eq(value, other)))
        }
        _ => left == right,
    }
}

fn number_eq(left: &Number, right: &Number) -> bool {
    let integer = |number: &Number| {
        number
            .as_i64()
            .map(i128::from)
            .or_else(|| number.as_u64().map(i128::from))
    };
    match (integer(left), integer(right)) {
        (Some(left), Some(right)) => left == right,
        _ => left.as_f64() == right.as_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(value: Value) -> MaliceRules {
        MaliceRules::parse(&value).unwrap()
    }

    fn verdict_for(raw: Value, field: &str, operator: &str, value: Value) -> String {
        let rules = rules(json!({
            "rules": [{"field": field, "operator": operator, "value": value, "verdict": "Malicious"}],
            "default_verdict": "Benign",
        }));
        evaluate(&raw, &rules, false)
    }

    fn holds(raw: Value, operator: &str, value: Value) -> bool {
        verdict_for(json!({"f": raw}), "f", operator, value) == "Malicious"
    }

    fn abuseipdb() -> MaliceRules {
        rules(json!({
            "rules": [
                {"field": "data.abuseConfidenceScore", "operator": ">=", "value": 75, "verdict": "Malicious"},
                {"field": "data.abuseConfidenceScore", "operator": ">=", "value": 25, "verdict": "Suspicious"},
            ],
            "default_verdict": "Benign",
            "not_found_verdict": "Pending",
        }))
    }

    #[test]
    fn first_match_wins() {
        let rules = abuseipdb();
        let score = |score: Value| json!({"data": {"abuseConfidenceScore": score}});
        assert_eq!(evaluate(&score(json!(87)), &rules, false), "Malicious");
        assert_eq!(evaluate(&score(json!(75)), &rules, false), "Malicious");
        assert_eq!(evaluate(&score(json!(74.9)), &rules, false), "Suspicious");
        assert_eq!(evaluate(&score(json!(25)), &rules, false), "Suspicious");
        assert_eq!(evaluate(&score(json!(3)), &rules, false), "Benign");
        assert_eq!(evaluate(&score(json!("80")), &rules, false), "Malicious");
        assert_eq!(evaluate(&score(json!("high")), &rules, false), "Benign");
        assert_eq!(evaluate(&score(json!(null)), &rules, false), "Benign");
        assert_eq!(evaluate(&json!({}), &rules, false), "Benign");
    }

    #[test]
    fn not_found_and_defaults() {
        assert_eq!(evaluate(&json!({}), &abuseipdb(), true), "Pending");
        let pending = MaliceRules::pending();
        assert_eq!(evaluate(&json!({"a": 1}), &pending, false), "Pending");
        assert_eq!(evaluate(&json!({"a": 1}), &pending, true), "Pending");
        let empty = rules(
            json!({"rules": [], "default_verdict": "Benign", "not_found_verdict": "Suspicious"}),
        );
        assert_eq!(evaluate(&json!({"a": 1}), &empty, false), "Benign");
        assert_eq!(evaluate(&json!({"a": 1}), &empty, true), "Suspicious");
    }

    #[test]
    fn rule_without_verdict_yields_default_and_without_operator_is_equality() {
        let rules = rules(json!({
            "rules": [{"field": "a", "value": 1}, {"field": "a", "value": 2, "verdict": "Malicious"}],
            "default_verdict": "Benign",
        }));
        assert_eq!(evaluate(&json!({"a": 1.0}), &rules, false), "Benign");
        assert_eq!(evaluate(&json!({"a": 2}), &rules, false), "Malicious");
        assert_eq!(evaluate(&json!({"a": 3}), &rules, false), "Benign");
    }

    #[test]
    fn numeric_operators() {
        assert!(holds(json!(5), ">", json!(4)));
        assert!(!holds(json!(4), ">", json!(4)));
        assert!(holds(json!(4), ">=", json!(4.0)));
        assert!(holds(json!(3), "<", json!("3.5")));
        assert!(holds(json!(" 3 "), "<=", json!(3)));
        assert!(holds(json!("1_000"), ">", json!(999)));
        assert!(holds(json!(true), ">", json!(0)));
        assert!(!holds(json!("abc"), ">", json!(0)));
        assert!(!holds(json!([5]), ">", json!(0)));
        assert!(!holds(json!({"a": 5}), ">", json!(0)));
        assert!(!holds(json!("nan"), ">", json!(0)));
        assert!(!holds(json!("nan"), "<=", json!(0)));
        assert!(holds(json!("inf"), ">", json!(1e300)));
    }

    #[test]
    fn equality_operators() {
        assert!(holds(json!(1), "==", json!(1.0)));
        assert!(holds(json!("tor"), "==", json!("tor")));
        assert!(!holds(json!("1"), "==", json!(1)));
        assert!(!holds(json!(true), "==", json!(1)));
        assert!(holds(json!([1, {"a": 2.0}]), "==", json!([1.0, {"a": 2}])));
        assert!(!holds(json!([1, 2]), "==", json!([2, 1])));
        assert!(holds(
            json!({"a": 1, "b": [true]}),
            "==",
            json!({"b": [true], "a": 1})
        ));
        assert!(!holds(json!({"a": 1}), "==", json!({"a": 1, "b": 2})));
        assert!(holds(json!("x"), "!=", json!("y")));
        assert!(!holds(json!(2), "!=", json!(2.0)));
        assert!(holds(json!(u64::MAX), "==", json!(u64::MAX)));
        assert!(!holds(json!(u64::MAX), "==", json!(-1)));
    }

    #[test]
    fn missing_field_never_matches_not_even_inequality() {
        assert_eq!(verdict_for(json!({}), "f", "!=", json!(1)), "Benign");
        assert_eq!(
            verdict_for(json!({"f": null}), "f", "!=", json!(1)),
            "Benign"
        );
    }

    #[test]
    fn contains_operator() {
        assert!(holds(json!("known tor exit"), "contains", json!("tor")));
        assert!(!holds(json!("Tor"), "contains", json!("tor")));
        assert!(holds(json!("port 443 open"), "contains", json!(443)));
        assert!(holds(json!("flag=true"), "contains", json!(true)));
        assert!(holds(json!(["a", 1, {"k": 2}]), "contains", json!(1.0)));
        assert!(holds(
            json!(["a", 1, {"k": 2}]),
            "contains",
            json!({"k": 2})
        ));
        assert!(!holds(json!(["a"]), "contains", json!("b")));
        assert!(holds(json!({"malware": 1}), "contains", json!("malware")));
        assert!(!holds(json!({"1": 1}), "contains", json!(1)));
        assert!(!holds(json!(5), "contains", json!(5)));
        assert!(!holds(json!(true), "contains", json!(true)));
        assert!(holds(json!("ünïcødé"), "contains", json!("cød")));
    }

    #[test]
    fn in_operator() {
        assert!(holds(json!("KP"), "in", json!(["IR", "KP"])));
        assert!(holds(json!(2), "in", json!([1.0, 2.0])));
        assert!(holds(json!([1]), "in", json!([[1], [2]])));
        assert!(!holds(json!("US"), "in", json!(["IR", "KP"])));
        assert!(!holds(json!("K"), "in", json!(["KP"])));
    }

    #[test]
    fn fields_with_array_indexes() {
        let raw = json!({"data": {"results": [{"score": 10}, {"score": 90}]}});
        assert_eq!(
            verdict_for(raw.clone(), "data.results.1.score", ">", json!(50)),
            "Malicious"
        );
        assert_eq!(
            verdict_for(raw.clone(), "data.results.0.score", ">", json!(50)),
            "Benign"
        );
        assert_eq!(
            verdict_for(raw, "data.results.2.score", ">", json!(50)),
            "Benign"
        );
    }

    #[test]
    fn ranks() {
        assert_eq!(rank("Malicious"), 3);
        assert_eq!(rank("Suspicious"), 2);
        assert_eq!(rank("Benign"), 1);
        assert_eq!(rank("Pending"), 0);
        assert_eq!(rank("malicious"), 0);
        assert_eq!(rank(""), 0);
    }

    #[test]
    fn worst_verdict() {
        assert_eq!(worst([].into_iter()), "Pending");
        assert_eq!(
            worst(["Benign", "Malicious", "Suspicious"].into_iter()),
            "Malicious"
        );
        assert_eq!(worst(["Benign", "Pending"].into_iter()), "Benign");
        assert_eq!(
            worst(["Pending", "Suspicious", "Benign"].into_iter()),
            "Suspicious"
        );
        assert_eq!(worst(["Pending"].into_iter()), "Pending");
        assert_eq!(worst(["Unknown"].into_iter()), "Pending");
        assert_eq!(worst(["Unknown", "Benign"].into_iter()), "Benign");
        let owned = ["Benign".to_owned(), "Malicious".to_owned()];
        assert_eq!(worst(owned.iter().map(String::as_str)), "Malicious");
    }

    #[test]
    fn float_conversion() {
        assert_eq!(to_float(&json!(3)), Some(3.0));
        assert_eq!(to_float(&json!("2.5")), Some(2.5));
        assert_eq!(to_float(&json!(false)), Some(0.0));
        assert_eq!(to_float(&json!(null)), None);
        assert_eq!(to_float(&json!("")), None);
    }
}
