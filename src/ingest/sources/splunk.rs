//! Splunk alert-action webhooks `{"result": {…}, "sid", "search_name", …}` (ingestion.md §4.3).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    AlertSource, Extraction, PluginField, first_truthy, lowercase_severity, non_empty_str, object_or_empty, py_str, rule_ref_text,
    truthy,
};
use crate::ingest::normalized::{
    ExtractedIndicator, IndicatorType, NormalizeError, NormalizedAlert, Severity, from_epoch_seconds,
    parse_iso_timestamp,
};
use crate::ingest::signature::{SPLUNK_SIGNATURE_HEADER, SPLUNK_TOKEN_HEADER, SignatureScheme};

const NAME: &str = "splunk";

/// Beyond the shared names.
const SEVERITY_ALIASES: &[(&str, Severity)] = &[("info", Severity::Informational)];

/// Pass-1 table over `result.<field>`, in extraction order. `src`/`dest` only count when
/// `src_ip`/`dest_ip` are falsy.
const EXTRACTIONS: &[Extraction] = &[
    ("src_ip", IndicatorType::Ip, "Source IP"),
    ("dest_ip", IndicatorType::Ip, "Destination IP"),
    ("src", IndicatorType::Ip, "Source (IP fallback)"),
    ("dest", IndicatorType::Ip, "Destination (IP fallback)"),
    ("user", IndicatorType::Account, "User account"),
    ("sha256", IndicatorType::HashSha256, "SHA-256 hash"),
    ("md5", IndicatorType::HashMd5, "MD5 hash"),
    ("sha1", IndicatorType::HashSha1, "SHA-1 hash"),
    ("url", IndicatorType::Url, "URL"),
    ("domain", IndicatorType::Domain, "Domain"),
];

pub struct Splunk;

/// `_time` is epoch seconds (string or number). Deviation: an ISO string (what `| eval
/// _time=strftime(…)` searches send) is parsed too, where Calseta would fall back to now.
fn parse_splunk_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(number) => from_epoch_seconds(number.as_f64()?),
        Value::String(text) => {
            let trimmed = text.trim();
            match trimmed.parse::<f64>() {
                Ok(seconds) => from_epoch_seconds(seconds),
                Err(_) => parse_iso_timestamp(trimmed),
            }
        }
        _ => None,
    }
}

impl AlertSource for Splunk {
    fn name(&self) -> &'static str {
        NAME
    }

    fn display_name(&self) -> &'static str {
        "Splunk"
    }

    fn validate(&self, raw: &Map<String, Value>) -> bool {
        matches!(raw.get("result"), Some(Value::Object(_))) && first_truthy([raw.get("search_name"), raw.get("sid")]).is_some()
    }

    fn normalize_at(&self, raw: &Map<String, Value>, now: DateTime<Utc>) -> Result<NormalizedAlert, NormalizeError> {
        let result = object_or_empty(NAME, raw, "result")?;

        let title = first_truthy([result.get("rule_name"), result.get("signature"), raw.get("search_name")])
            .map(py_str)
            .unwrap_or_else(|| "Untitled Splunk Alert".to_owned());

        // Neither urgency nor severity ⇒ "low" (Calseta quirk, kept for compatibility).
        let severity = match first_truthy([result.get("urgency"), result.get("severity")]) {
            Some(value) => lowercase_severity(&py_str(value), SEVERITY_ALIASES),
            None => Severity::Low,
        };

        let occurred_at = result.get("_time").filter(|time| truthy(time)).and_then(parse_splunk_time).unwrap_or(now);

        let description_value = first_truthy([result.get("signature"), result.get("search_name")]);
        let mut description = description_value.map(py_str);
        // A description that merely repeats the title is replaced by the raw event when present
        // (Python compares the raw value, so only a string can equal the title).
        if description_value.and_then(Value::as_str) == Some(title.as_str())
            && let Some(raw_event) = result.get("_raw").filter(|raw_event| truthy(raw_event))
        {
            description = Some(py_str(raw_event));
        }

        let mut alert = NormalizedAlert::new(title, severity, occurred_at, NAME);
        alert.description = description;
        Ok(alert)
    }

    fn extract_labeled(&self, raw: &Map<String, Value>) -> Vec<ExtractedIndicator> {
        let Some(Value::Object(result)) = raw.get("result") else {
            return Vec::new();
        };
        let is_truthy = |field: &str| result.get(field).is_some_and(truthy);
        EXTRACTIONS
            .iter()
            .filter(|(field, _, _)| match *field {
                "src" => !is_truthy("src_ip"),
                "dest" => !is_truthy("dest_ip"),
                _ => true,
            })
            .filter_map(|&(field, itype, _)| {
                let value = non_empty_str(result.get(field))?;
                Some(ExtractedIndicator::new(itype, value, format!("result.{field}")))
            })
            .collect()
    }

    fn detection_rule_ref(&self, raw: &Map<String, Value>) -> Option<String> {
        let rule_name = raw.get("result").and_then(Value::as_object).and_then(|result| result.get("rule_name"));
        rule_ref_text(first_truthy([rule_name, raw.get("search_name")])?)
    }

    fn documented_fields(&self) -> Vec<PluginField> {
        // Static strings for the response; the labels match `extract_labeled`'s `result.<field>`.
        const PATHS: [&str; 10] = [
            "result.src_ip", "result.dest_ip", "result.src", "result.dest", "result.user",
            "result.sha256", "result.md5", "result.sha1", "result.url", "result.domain",
        ];
        EXTRACTIONS
            .iter()
            .zip(PATHS)
            .map(|(&(_, itype, description), path)| PluginField::new(path, itype, description))
            .collect()
    }

    fn signature(&self) -> SignatureScheme {
        SignatureScheme {
            hmac_headers: &[SPLUNK_SIGNATURE_HEADER],
            token_headers: &[SPLUNK_TOKEN_HEADER],
            secret_env_var: Some("SPLUNK_WEBHOOK_SECRET"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::sources::test_support::{labeled, now, object, odd_values};
    use chrono::TimeZone;
    use serde_json::json;

    const SAMPLE: &str = include_str!("../../../tests/fixtures/payloads/splunk_alert.json");

    #[test]
    fn sample_payload_normalizes_exactly() {
        let raw = object(SAMPLE);
        assert!(Splunk.validate(&raw));
        let mut expected = NormalizedAlert::new(
            "Brute Force Login Attempt",
            Severity::High,
            Utc.with_ymd_and_hms(2024, 1, 15, 9, 50, 0).unwrap(),
            "splunk",
        );
        expected.description = Some("Brute Force Attack Detected".into());
        assert_eq!(Splunk.normalize_at(&raw, now()).unwrap(), expected);
        assert_eq!(Splunk.detection_rule_ref(&raw).as_deref(), Some("Brute Force Login Attempt"));
    }

    #[test]
    fn sample_payload_pass1() {
        let raw = object(SAMPLE);
        assert_eq!(
            Splunk.extract_labeled(&raw),
            vec![
                labeled(IndicatorType::Ip, "10.0.0.99", "result.src_ip"),
                labeled(IndicatorType::Ip, "192.168.1.10", "result.dest_ip"),
                labeled(IndicatorType::Account, "admin", "result.user"),
                labeled(IndicatorType::HashSha256, "b94f6f125c79e3a5ffaa826f584c10d52ada669e6762051b826b55776d05a8a", "result.sha256"),
                labeled(IndicatorType::Domain, "corp.example.com", "result.domain"),
            ]
        );
    }

    #[test]
    fn plain_saved_search_webhook() {
        // Splunk's stock webhook action: only the search's columns in `result`.
        let raw = object(
            r#"{"result": {"src": "10.2.2.2", "dest": "10.3.3.3", "dest_ip": "", "count": "12", "_time": 1705312200.5,
                 "_raw": "raw line"},
                "sid": "rt_scheduler__admin", "search_name": "Excessive Failures ⚠", "app": "search", "owner": "admin",
                "results_link": "http://splunk:8000/app/search/search?q=%7Cloadjob"}"#,
        );
        assert!(Splunk.validate(&raw));
        let alert = Splunk.normalize_at(&raw, now()).unwrap();
        assert_eq!(alert.title, "Excessive Failures ⚠");
        assert_eq!(alert.severity, Severity::Low); // neither urgency nor severity
        assert_eq!(alert.occurred_at, Utc.with_ymd_and_hms(2024, 1, 15, 9, 50, 0).unwrap() + chrono::TimeDelta::milliseconds(500));
        assert_eq!(alert.description, None);
        assert!(alert.tags.is_empty());
        assert_eq!(
            Splunk.extract_labeled(&raw),
            vec![labeled(IndicatorType::Ip, "10.2.2.2", "result.src"), labeled(IndicatorType::Ip, "10.3.3.3", "result.dest")]
        );
        assert_eq!(Splunk.detection_rule_ref(&raw).as_deref(), Some("Excessive Failures ⚠"));
    }

    #[test]
    fn severity_time_and_description_rules() {
        for (urgency, severity, expected) in [
            (json!("critical"), json!(null), Severity::Critical),
            (json!("INFO"), json!(null), Severity::Informational),
            (json!(""), json!("Medium"), Severity::Medium),
            (json!("urgent"), json!("high"), Severity::Pending),
            (json!(5), json!(null), Severity::Pending),
        ] {
            let raw = object(&json!({"result": {"urgency": urgency, "severity": severity}, "sid": "s"}).to_string());
            assert_eq!(Splunk.normalize_at(&raw, now()).unwrap().severity, expected, "{urgency} {severity}");
        }
        for (time, expected) in [
            (json!("1705312200"), Utc.with_ymd_and_hms(2024, 1, 15, 9, 50, 0).unwrap()),
            (json!(" 1705312200.0 "), Utc.with_ymd_and_hms(2024, 1, 15, 9, 50, 0).unwrap()),
            (json!("2024-01-15T10:30:00.000+00:00"), Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap()),
            (json!("nan"), now()),
            (json!("1e20"), now()),
            (json!("yesterday"), now()),
            (json!(0), now()),
            (json!([1]), now()),
        ] {
            let raw = object(&json!({"result": {"_time": time}, "sid": "s"}).to_string());
            assert_eq!(Splunk.normalize_at(&raw, now()).unwrap().occurred_at, expected, "{time}");
        }
        // signature is both title fallback and description ⇒ description becomes _raw.
        let raw = object(r#"{"result": {"signature": "Sig", "_raw": "the event"}, "sid": "s"}"#);
        let alert = Splunk.normalize_at(&raw, now()).unwrap();
        assert_eq!((alert.title.as_str(), alert.description.as_deref()), ("Sig", Some("the event")));
        // …and stays when there is no _raw.
        let raw = object(r#"{"result": {"signature": "Sig"}, "sid": "s"}"#);
        assert_eq!(Splunk.normalize_at(&raw, now()).unwrap().description.as_deref(), Some("Sig"));
        // result.search_name is the second description source.
        let raw = object(r#"{"result": {"rule_name": "R", "search_name": "inner"}, "sid": "s"}"#);
        assert_eq!(Splunk.normalize_at(&raw, now()).unwrap().description.as_deref(), Some("inner"));
        // Empty payload: all defaults.
        let alert = Splunk.normalize_at(&object("{}"), now()).unwrap();
        assert_eq!((alert.title.as_str(), alert.severity, alert.occurred_at), ("Untitled Splunk Alert", Severity::Low, now()));
    }

    #[test]
    fn non_object_result_is_an_error() {
        let raw = object(r#"{"result": null, "sid": "s"}"#);
        assert!(!Splunk.validate(&raw));
        assert_eq!(
            Splunk.normalize_at(&raw, now()).unwrap_err().to_string(),
            "cannot normalize splunk payload: field 'result' must be an object, got null"
        );
        assert!(Splunk.extract_labeled(&raw).is_empty());
    }

    #[test]
    fn validation_and_rule_reference() {
        for (json, expected) in [
            (r#"{"result": {}, "sid": "s"}"#, true),
            (r#"{"result": {}, "search_name": "n"}"#, true),
            (r#"{"result": {}, "sid": ""}"#, false),
            (r#"{"result": [], "sid": "s"}"#, false),
            (r#"{"sid": "s"}"#, false),
        ] {
            assert_eq!(Splunk.validate(&object(json)), expected, "{json}");
        }
        assert_eq!(Splunk.detection_rule_ref(&object(r#"{"result": {"rule_name": ""}, "search_name": "S"}"#)).as_deref(), Some("S"));
        assert_eq!(Splunk.detection_rule_ref(&object(r#"{"result": {"rule_name": 17}}"#)).as_deref(), Some("17"));
        assert_eq!(Splunk.detection_rule_ref(&object(r#"{"result": {}, "search_name": "  "}"#)), None);
        assert_eq!(Splunk.detection_rule_ref(&object(r#"{"result": 3}"#)), None);
    }

    #[test]
    fn odd_json_types_never_panic() {
        for odd in odd_values() {
            for key in ["rule_name", "signature", "urgency", "severity", "_time", "_raw", "src_ip", "src", "user", "search_name"] {
                let raw = object(&json!({"result": {key: odd}, "search_name": odd, "sid": odd}).to_string());
                let _ = (Splunk.validate(&raw), Splunk.normalize_at(&raw, now()), Splunk.extract_labeled(&raw), Splunk.detection_rule_ref(&raw));
            }
            let raw = object(&json!({"result": odd}).to_string());
            let _ = (Splunk.validate(&raw), Splunk.normalize_at(&raw, now()), Splunk.extract_labeled(&raw), Splunk.detection_rule_ref(&raw));
        }
    }
}
