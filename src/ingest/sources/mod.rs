//! Source plugins (ingestion.md §4): the `AlertSource` trait, the registry, and the small
//! helpers that reproduce the Python truthiness/`str()` rules the plugins were written with.
//!
//! Adding a source: write `sources/<name>.rs` with a unit struct implementing `AlertSource`,
//! then add one `<module> => <Type>,` line to `register_sources!` below.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::normalized::{
    ExtractedIndicator, IndicatorCandidate, IndicatorType, NormalizeError, NormalizedAlert,
    Severity,
};
use super::signature::SignatureScheme;

/// One documented Pass-1 extraction, listed by `GET /v1/indicator-mappings/source-plugin-fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PluginField {
    pub field_path: &'static str,
    pub indicator_type: IndicatorType,
    pub description: &'static str,
}

impl PluginField {
    pub const fn new(
        field_path: &'static str,
        indicator_type: IndicatorType,
        description: &'static str,
    ) -> Self {
        Self {
            field_path,
            indicator_type,
            description,
        }
    }
}

/// A source plugin. Every method is total: no input makes it panic.
pub trait AlertSource: Send + Sync {
    /// Path segment of `POST /v1/ingest/{source_name}`, e.g. `"sentinel"`.
    fn name(&self) -> &'static str;
    /// Human name, e.g. `"Microsoft Sentinel"`.
    fn display_name(&self) -> &'static str;
    /// Calseta's `validate_payload`: a cheap structure check; false ⇒ 422 `INVALID_PAYLOAD`.
    fn validate(&self, raw: &Map<String, Value>) -> bool;
    /// Normalize with `now` as the fallback event time (injectable for tests).
    fn normalize_at(
        &self,
        raw: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<NormalizedAlert, NormalizeError>;
    /// Pass 1, with the `source_field` label of each indicator.
    fn extract_labeled(&self, raw: &Map<String, Value>) -> Vec<ExtractedIndicator>;
    /// The detection-rule reference (`source_rule_id` and stub name); never blank.
    fn detection_rule_ref(&self, raw: &Map<String, Value>) -> Option<String>;
    /// Documented Pass-1 extractions for the source-plugin-fields endpoint.
    fn documented_fields(&self) -> Vec<PluginField>;
    /// Which headers authenticate this source's webhooks (see `signature.rs`).
    fn signature(&self) -> SignatureScheme;

    /// Normalize with the current time as the fallback event time.
    fn normalize(&self, raw: &Map<String, Value>) -> Result<NormalizedAlert, NormalizeError> {
        self.normalize_at(raw, Utc::now())
    }

    /// Pass 1 without labels.
    fn extract_indicators(&self, raw: &Map<String, Value>) -> Vec<IndicatorCandidate> {
        self.extract_labeled(raw)
            .into_iter()
            .map(IndicatorCandidate::from)
            .collect()
    }
}

macro_rules! register_sources {
    ($($module:ident => $plugin:ident),+ $(,)?) => {
        $(pub mod $module;)+
        static REGISTRY: &[&dyn AlertSource] = &[$(&$module::$plugin),+];
    };
}

register_sources! {
    sentinel => Sentinel,
    elastic => Elastic,
    splunk => Splunk,
    generic => Generic,
}

/// The plugin registered under `name` (exact, case-sensitive match, as the route does).
pub fn get(name: &str) -> Option<&'static dyn AlertSource> {
    REGISTRY
        .iter()
        .copied()
        .find(|source| source.name() == name)
}

/// Every registered plugin, in registration order.
pub fn all() -> &'static [&'static dyn AlertSource] {
    REGISTRY
}

// ---------------------------------------------------------------------------------------------
// Python semantics over JSON values, shared by the plugins.
// ---------------------------------------------------------------------------------------------

/// Python truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
    }
}

/// `a or b or …`: the first truthy candidate.
fn first_truthy<'a>(candidates: impl IntoIterator<Item = Option<&'a Value>>) -> Option<&'a Value> {
    candidates.into_iter().flatten().find(|value| truthy(value))
}

/// `obj.get(a) or obj.get(b) …` over several keys of one object.
fn first_truthy_key<'a>(object: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    first_truthy(keys.iter().map(|key| object.get(*key)))
}

/// A non-empty string value (Pass-1 extractors only accept those).
fn non_empty_str(value: Option<&Value>) -> Option<&str> {
    value
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// Python `str(value)` for a JSON value.
fn py_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => py_repr(other),
    }
}

/// Python `repr(value)` for a JSON value (what `str()` shows for containers).
fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(int), _, _) => int.to_string(),
            (None, Some(uint), _) => uint.to_string(),
            (None, None, Some(float)) => py_float_repr(float),
            _ => number.to_string(),
        },
        Value::String(text) => py_string_repr(text),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|(key, item)| format!("{}: {}", py_string_repr(key), py_repr(item)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python's `repr()` of a string (Calseta's messages and stringified values show names this way).
pub fn py_string_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python `repr(float)`: shortest round-trip digits, fixed notation for decimal exponents in
/// -4..16, scientific (`1e+16`, `1.5e-05`) outside.
fn py_float_repr(float: f64) -> String {
    if float.is_nan() {
        return "nan".to_owned();
    }
    if float.is_infinite() {
        return if float > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let scientific = format!("{float:e}"); // e.g. "-1.5e16", "1e-5", "0e0"
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let point = exponent + 1; // digits are 0.d1d2… × 10^point
    let body = if (-3..=16).contains(&point) {
        if point <= 0 {
            format!("0.{}{}", "0".repeat(point.unsigned_abs() as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{first}{fraction}e{exp_sign}{:02}", exponent.unsigned_abs())
    };
    format!("{sign}{body}")
}

/// A detection-rule reference from a JSON value: strings as they are, numbers stringified
/// (Calseta would hand a number to a TEXT column and lose the association); blank ⇒ none.
fn rule_ref_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(_) => py_str(value),
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// The value of `key` as an object: missing ⇒ empty (Python's `.get(key, {})`), present but
/// not an object ⇒ `NormalizeError` (Python crashes with a 500 there).
fn object_or_empty<'a>(
    source_name: &'static str,
    raw: &'a Map<String, Value>,
    key: &'static str,
) -> Result<std::borrow::Cow<'a, Map<String, Value>>, NormalizeError> {
    match raw.get(key) {
        None => Ok(std::borrow::Cow::Owned(Map::new())),
        Some(Value::Object(object)) => Ok(std::borrow::Cow::Borrowed(object)),
        Some(other) => Err(NormalizeError::new(
            source_name,
            key,
            format!("must be an object, got {}", json_type(other)),
        )),
    }
}

/// "a string", "an object", … for messages that say what was sent instead.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The severity names every lowercase-mapping plugin accepts.
const LOWERCASE_SEVERITIES: &[(&str, Severity)] = &[
    ("critical", Severity::Critical),
    ("high", Severity::High),
    ("medium", Severity::Medium),
    ("low", Severity::Low),
    ("informational", Severity::Informational),
];

/// Severity of `keyword`, case-insensitively, by the shared names plus the plugin's own
/// `aliases`; anything else is Pending.
fn lowercase_severity(keyword: &str, aliases: &[(&str, Severity)]) -> Severity {
    let lowered = keyword.to_lowercase();
    LOWERCASE_SEVERITIES
        .iter()
        .chain(aliases)
        .find(|(name, _)| *name == lowered)
        .map(|(_, severity)| *severity)
        .unwrap_or(Severity::Pending)
}

/// A Pass-1 table row: (field path, indicator type, description for source-plugin-fields).
type Extraction = (&'static str, IndicatorType, &'static str);

/// The documented fields of a Pass-1 table, in table order.
fn documented(table: &[Extraction]) -> impl Iterator<Item = PluginField> + '_ {
    table
        .iter()
        .map(|&(path, itype, description)| PluginField::new(path, itype, description))
}

/// An event time: numbers through the plugin's epoch reading, anything else as the ISO-8601
/// text of its Python `str()`.
fn iso_or_epoch(
    value: &Value,
    from_epoch: fn(f64) -> Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(number) => from_epoch(number.as_f64()?),
        other => super::normalized::parse_iso_timestamp(&py_str(other)),
    }
}

#[cfg(test)]
mod test_support {
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::{Map, Value};

    use crate::ingest::{ExtractedIndicator, IndicatorType};

    /// The fixed "now" of the plugin tests (timestamps missing from a payload fall back to it).
    pub fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 6, 1, 12, 0, 0).unwrap()
    }

    pub fn labeled(itype: IndicatorType, value: &str, label: &str) -> ExtractedIndicator {
        ExtractedIndicator::new(itype, value, label)
    }

    pub fn object(json: &str) -> Map<String, Value> {
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(map)) => map,
            other => panic!("test JSON is not an object: {other:?}"),
        }
    }

    /// Values of every JSON type, to feed into every field a plugin reads.
    pub fn odd_values() -> Vec<Value> {
        serde_json::from_str(
            r#"[null, true, false, 0, -1, 1.5, 1e300, "", " ", "x", "\u0000", [], [null], [1, "a"], {}, {"a": null}, {"Type": 5}]"#,
        )
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registry_lists_the_four_builtins() {
        let names: Vec<&str> = all().iter().map(|source| source.name()).collect();
        assert_eq!(names, ["sentinel", "elastic", "splunk", "generic"]);
        let displays: Vec<&str> = all().iter().map(|source| source.display_name()).collect();
        assert_eq!(
            displays,
            [
                "Microsoft Sentinel",
                "Elastic Security",
                "Splunk",
                "Generic Webhook"
            ]
        );
        assert_eq!(get("splunk").map(|s| s.name()), Some("splunk"));
        assert!(get("Splunk").is_none());
        assert!(get("").is_none());
    }

    #[test]
    fn documented_field_counts() {
        let counts: Vec<usize> = all()
            .iter()
            .map(|source| source.documented_fields().len())
            .collect();
        assert_eq!(counts, [7, 18, 10, 16]);
    }

    #[test]
    fn signature_schemes() {
        let secrets: Vec<Option<&str>> = all()
            .iter()
            .map(|source| source.signature().secret_env_var)
            .collect();
        assert_eq!(
            secrets,
            [
                Some("SENTINEL_WEBHOOK_SECRET"),
                Some("ELASTIC_WEBHOOK_SECRET"),
                Some("SPLUNK_WEBHOOK_SECRET"),
                None
            ]
        );
        assert!(get("generic").is_some_and(|source| source.signature().is_none()));
        assert_eq!(
            get("splunk").map(|source| source.signature().token_headers),
            Some(&["x-splunk-webhook-secret"][..])
        );
    }

    #[test]
    fn python_truthiness_and_str() {
        for (value, expected) in [
            (json!(null), false),
            (json!(0), false),
            (json!(0.0), false),
            (json!(""), false),
            (json!([]), false),
            (json!({}), false),
            (json!(false), false),
            (json!(" "), true),
            (json!(-1), true),
            (json!([0]), true),
            (json!({"a": 1}), true),
        ] {
            assert_eq!(truthy(&value), expected, "{value}");
        }
        for (value, expected) in [
            (json!("plain"), "plain"),
            (json!(null), "None"),
            (json!(true), "True"),
            (json!(42), "42"),
            (json!(18446744073709551615u64), "18446744073709551615"),
            (json!(1.0), "1.0"),
            (json!(-0.5), "-0.5"),
            (json!(1e16), "1e+16"),
            (json!(1234567890123456.0), "1234567890123456.0"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(1.5e-7), "1.5e-07"),
            (json!(2.5e300), "2.5e+300"),
            (json!(["a", 1, null, "it's"]), r#"['a', 1, None, "it's"]"#),
            (json!({"k": {"n": false}}), "{'k': {'n': False}}"),
        ] {
            assert_eq!(py_str(&value), expected, "{value}");
        }
    }
}
