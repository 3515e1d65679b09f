//! Field extraction (enrichment.md §3.1): pulls values out of a provider's raw response into its
//! `extracted` object, by configured dot paths, coercing each to its declared value type.
//!
//! Fix of the original's quirk: only the rules whose `indicator_type` is the indicator's type run
//! (the original ran every rule of the provider, so e.g. VirusTotal's domain rules ran on IP
//! lookups).
//!
//! Coercions follow Python's `str()`, `int()`, `float()` and truthiness, with one deviation:
//! `string` renders non-string values as JSON text (`true`, `{"a":1}`) rather than Python's repr
//! (`True`, `{'a': 1}`). Integers are limited to the 64-bit range (a larger one is omitted), and
//! only ASCII digits are numeric.

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use super::{dotpath, template};

/// One active field extraction of a provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExtractionRule {
    pub indicator_type: String,
    /// Dot path into the raw response (for multi-step providers it starts with the step name).
    pub source_path: String,
    /// Key of the value in `extracted`.
    pub target_key: String,
    /// One of [`super::config::VALUE_TYPES`]; unknown types return the value unchanged.
    pub value_type: String,
}

/// Applies, in order, the rules for `indicator_type`. A missing or `null` value, or one that
/// fails its coercion, is omitted; a later rule with the same `target_key` overwrites an earlier.
pub fn extract(raw: &Value, rules: &[ExtractionRule], indicator_type: &str) -> Map<String, Value> {
    let mut extracted = Map::new();
    for rule in rules
        .iter()
        .filter(|rule| rule.indicator_type == indicator_type)
    {
        let Some(value) = dotpath::resolve(raw, &rule.source_path) else {
            continue;
        };
        if let Some(coerced) = coerce(value, &rule.value_type) {
            extracted.insert(rule.target_key.clone(), coerced);
        }
    }
    extracted
}

/// `value` coerced to `value_type`, or `None` when the coercion fails.
pub fn coerce(value: &Value, value_type: &str) -> Option<Value> {
    match value_type {
        "string" => Some(Value::String(template::stringify(value))),
        "int" => to_int(value),
        "float" => match value {
            Value::Number(number) => number.as_f64().and_then(float_value),
            Value::Bool(flag) => float_value(if *flag { 1.0 } else { 0.0 }),
            Value::String(text) => python_float(text).and_then(float_value),
            _ => None,
        },
        "bool" => Some(Value::Bool(match value {
            Value::String(text) => matches!(text.to_lowercase().as_str(), "true" | "1" | "yes"),
            other => truthy(other),
        })),
        // list, dict, any, number and anything else: as is (not type-checked, as in the original).
        _ => Some(value.clone()),
    }
}

/// Python truthiness: `null`, `false`, zero, `""`, `[]` and `{}` are false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|number| number != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// Python's `int(value)`: integers as they are, floats truncated toward zero, booleans 1/0,
/// strings of (optionally signed) decimal digits.
fn to_int(value: &Value) -> Option<Value> {
    match value {
        Value::Number(number) if number.is_i64() || number.is_u64() => {
            Some(Value::Number(number.clone()))
        }
        Value::Number(number) => {
            let truncated = number.as_f64()?.trunc();
            // i64::MIN..=i64::MAX as f64 rounds the upper bound up, hence the strict comparison.
            (truncated.is_finite() && truncated >= i64::MIN as f64 && truncated < i64::MAX as f64)
                .then(|| Value::from(truncated as i64))
        }
        Value::Bool(flag) => Some(Value::from(i64::from(*flag))),
        Value::String(text) => integer_value(python_int(text)?),
        _ => None,
    }
}

fn integer_value(number: i128) -> Option<Value> {
    if let Ok(small) = i64::try_from(number) {
        Some(Value::from(small))
    } else {
        u64::try_from(number).ok().map(Value::from)
    }
}

/// JSON can hold only finite floats.
fn float_value(number: f64) -> Option<Value> {
    Number::from_f64(number).map(Value::Number)
}

/// Python's `int(text)` for base 10: surrounding whitespace, an optional sign, ASCII digits with
/// single underscores between them (`1_000`).
pub fn python_int(text: &str) -> Option<i128> {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let digits = without_digit_underscores(digits)?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let magnitude: i128 = digits.parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// Python's `float(text)`: surrounding whitespace, sign, decimals, exponent, `inf`/`nan`, and
/// underscores between digits.
pub fn python_float(text: &str) -> Option<f64> {
    without_digit_underscores(text.trim())?.parse().ok()
}

/// `text` with every underscore removed, if each one sits between two ASCII digits.
fn without_digit_underscores(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    for (index, byte) in bytes.iter().enumerate() {
        if *byte == b'_' {
            let before = index.checked_sub(1).map(|at| bytes[at]);
            let after = bytes.get(index + 1);
            if !before.is_some_and(|byte| byte.is_ascii_digit())
                || !after.is_some_and(|byte| byte.is_ascii_digit())
            {
                return None;
            }
        }
    }
    Some(text.replace('_', ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(itype: &str, source_path: &str, target_key: &str, value_type: &str) -> ExtractionRule {
        ExtractionRule {
            indicator_type: itype.into(),
            source_path: source_path.into(),
            target_key: target_key.into(),
            value_type: value_type.into(),
        }
    }

    fn coerced(value: Value, value_type: &str) -> Option<Value> {
        coerce(&value, value_type)
    }

    #[test]
    fn only_rules_of_the_indicator_type_run() {
        let raw = json!({"data": {"attributes": {"registrar": "MarkMonitor", "country": "US", "asn": 15169}}});
        let rules = vec![
            rule("domain", "data.attributes.registrar", "registrar", "string"),
            rule("ip", "data.attributes.country", "country", "string"),
            rule("ip", "data.attributes.asn", "asn", "int"),
        ];
        assert_eq!(
            extract(&raw, &rules, "ip"),
            *json!({"country": "US", "asn": 15169}).as_object().unwrap()
        );
        assert_eq!(
            extract(&raw, &rules, "domain"),
            *json!({"registrar": "MarkMonitor"}).as_object().unwrap()
        );
        assert!(extract(&raw, &rules, "hash_md5").is_empty());
    }

    #[test]
    fn missing_null_and_failed_values_are_omitted() {
        let raw = json!({"a": null, "b": "3.9", "c": {"d": [1, 2]}});
        let rules = vec![
            rule("ip", "a", "a", "string"),
            rule("ip", "missing.path", "m", "any"),
            rule("ip", "b", "b", "int"),
            rule("ip", "c.d.5", "e", "int"),
            rule("ip", "c.d.1", "f", "int"),
        ];
        assert_eq!(
            extract(&raw, &rules, "ip"),
            *json!({"f": 2}).as_object().unwrap()
        );
        assert!(extract(&json!(null), &rules, "ip").is_empty());
        assert!(extract(&raw, &[], "ip").is_empty());
    }

    #[test]
    fn later_rules_overwrite_earlier_ones() {
        let raw = json!({"a": "first", "b": "second", "c": null});
        let rules = vec![
            rule("ip", "a", "key", "string"),
            rule("ip", "b", "key", "string"),
            // A missing value does not erase what an earlier rule found.
            rule("ip", "c", "key", "string"),
        ];
        assert_eq!(extract(&raw, &rules, "ip")["key"], json!("second"));
    }

    #[test]
    fn multi_step_paths_and_array_indexes() {
        let raw = json!({
            "user_lookup": {"id": "00u1", "profile": {"login": "jane@example.com"}},
            "devices": [{"edr": {"agent": "Falcon"}}],
        });
        let rules = vec![
            rule("account", "user_lookup.profile.login", "login", "string"),
            rule("account", "devices.0.edr.agent", "edr", "string"),
        ];
        assert_eq!(
            extract(&raw, &rules, "account"),
            *json!({"login": "jane@example.com", "edr": "Falcon"})
                .as_object()
                .unwrap()
        );
    }

    #[test]
    fn string_coercion() {
        assert_eq!(coerced(json!("x"), "string"), Some(json!("x")));
        assert_eq!(coerced(json!(""), "string"), Some(json!("")));
        assert_eq!(coerced(json!(12), "string"), Some(json!("12")));
        assert_eq!(coerced(json!(1.5), "string"), Some(json!("1.5")));
        assert_eq!(coerced(json!(true), "string"), Some(json!("true")));
        assert_eq!(
            coerced(json!([1, "a"]), "string"),
            Some(json!(r#"[1,"a"]"#))
        );
        assert_eq!(
            coerced(json!({"a": 1}), "string"),
            Some(json!(r#"{"a":1}"#))
        );
        assert_eq!(coerced(json!("ünï"), "string"), Some(json!("ünï")));
    }

    #[test]
    fn int_coercion() {
        assert_eq!(coerced(json!(12), "int"), Some(json!(12)));
        assert_eq!(coerced(json!(-7), "int"), Some(json!(-7)));
        assert_eq!(coerced(json!(u64::MAX), "int"), Some(json!(u64::MAX)));
        assert_eq!(coerced(json!("12"), "int"), Some(json!(12)));
        assert_eq!(coerced(json!(" -12\n"), "int"), Some(json!(-12)));
        assert_eq!(coerced(json!("+5"), "int"), Some(json!(5)));
        assert_eq!(coerced(json!("1_000"), "int"), Some(json!(1000)));
        assert_eq!(coerced(json!("007"), "int"), Some(json!(7)));
        assert_eq!(coerced(json!(3.9), "int"), Some(json!(3)));
        assert_eq!(coerced(json!(-3.9), "int"), Some(json!(-3)));
        assert_eq!(coerced(json!(true), "int"), Some(json!(1)));
        assert_eq!(coerced(json!(false), "int"), Some(json!(0)));
        for bad in [
            json!("3.9"),
            json!(""),
            json!(" "),
            json!("12a"),
            json!("1__0"),
            json!("_1"),
            json!("1_"),
            json!("0x10"),
            json!("--1"),
            json!("99999999999999999999999"),
            json!(1e300),
            json!([1]),
            json!({"a": 1}),
        ] {
            assert_eq!(coerce(&bad, "int"), None, "{bad}");
        }
    }

    #[test]
    fn float_coercion() {
        assert_eq!(coerced(json!(3), "float"), Some(json!(3.0)));
        assert_eq!(coerced(json!(2.5), "float"), Some(json!(2.5)));
        assert_eq!(coerced(json!("3.9"), "float"), Some(json!(3.9)));
        assert_eq!(coerced(json!(" 1e3 "), "float"), Some(json!(1000.0)));
        assert_eq!(coerced(json!("-.5"), "float"), Some(json!(-0.5)));
        assert_eq!(coerced(json!("1_000.5"), "float"), Some(json!(1000.5)));
        assert_eq!(coerced(json!(true), "float"), Some(json!(1.0)));
        for bad in [
            json!("abc"),
            json!(""),
            json!("nan"),
            json!("inf"),
            json!("1 2"),
            json!("1__0"),
            json!(null),
            json!([]),
        ] {
            assert_eq!(coerce(&bad, "float"), None, "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&coerced(json!(3), "float").unwrap()).unwrap(),
            "3.0"
        );
    }

    #[test]
    fn bool_coercion() {
        for yes in ["true", "TRUE", "True", "1", "yes", "YES"] {
            assert_eq!(coerced(json!(yes), "bool"), Some(json!(true)), "{yes}");
        }
        for no in ["false", "0", "no", "", " true", "y", "on"] {
            assert_eq!(coerced(json!(no), "bool"), Some(json!(false)), "{no}");
        }
        assert_eq!(coerced(json!(true), "bool"), Some(json!(true)));
        assert_eq!(coerced(json!(false), "bool"), Some(json!(false)));
        assert_eq!(coerced(json!(2), "bool"), Some(json!(true)));
        assert_eq!(coerced(json!(0), "bool"), Some(json!(false)));
        assert_eq!(coerced(json!(0.0), "bool"), Some(json!(false)));
        assert_eq!(coerced(json!(-0.1), "bool"), Some(json!(true)));
        assert_eq!(coerced(json!([]), "bool"), Some(json!(false)));
        assert_eq!(coerced(json!([0]), "bool"), Some(json!(true)));
        assert_eq!(coerced(json!({}), "bool"), Some(json!(false)));
        assert_eq!(coerced(json!({"a": null}), "bool"), Some(json!(true)));
    }

    #[test]
    fn pass_through_types() {
        for value_type in ["list", "dict", "any", "number", "something_else"] {
            assert_eq!(coerced(json!("text"), value_type), Some(json!("text")));
            assert_eq!(coerced(json!([1, 2]), value_type), Some(json!([1, 2])));
            assert_eq!(coerced(json!({"a": 1}), value_type), Some(json!({"a": 1})));
        }
    }

    #[test]
    fn truthiness() {
        assert!(!truthy(&json!(null)));
        assert!(!truthy(&json!("")));
        assert!(truthy(&json!("0")));
        assert!(truthy(&json!(u64::MAX)));
    }

    #[test]
    fn python_number_parsing() {
        assert_eq!(python_int("\t42 "), Some(42));
        assert_eq!(python_int("-0"), Some(0));
        assert_eq!(python_int("+"), None);
        assert_eq!(python_int("1 000"), None);
        assert_eq!(python_float("1."), Some(1.0));
        assert_eq!(python_float(".5e1"), Some(5.0));
        assert_eq!(python_float("+1E2"), Some(100.0));
        assert_eq!(python_float("Infinity"), Some(f64::INFINITY));
        assert!(python_float("NaN").unwrap().is_nan());
        assert_eq!(python_float("."), None);
        assert_eq!(python_float("e5"), None);
        assert_eq!(python_float("0x1p3"), None);
    }

    #[test]
    fn rules_deserialize() {
        let rule: ExtractionRule = serde_json::from_value(json!({
            "indicator_type": "ip", "source_path": "a.b", "target_key": "b", "value_type": "int",
            "description": "extra fields are ignored",
        }))
        .unwrap();
        assert_eq!(rule, super::tests::rule("ip", "a.b", "b", "int"));
    }
}
