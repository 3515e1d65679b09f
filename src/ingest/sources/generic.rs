//! Generic JSON webhook: any object with a `title` (ingestion.md §4.4).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    AlertSource, Extraction, PluginField, documented, first_truthy, iso_or_epoch, lowercase_severity, non_empty_str, py_str,
    rule_ref_text, truthy,
};
use crate::ingest::normalized::{
    ExtractedIndicator, IndicatorType, NormalizeError, NormalizedAlert, Severity, from_epoch_auto,
};
use crate::ingest::signature::SignatureScheme;

const NAME: &str = "generic";

/// Beyond the shared names ("pending" needs no entry: unknown names are Pending anyway).
const SEVERITY_ALIASES: &[(&str, Severity)] = &[("info", Severity::Informational)];

/// Top-level string fields read by Pass 1, in extraction order.
const FIELD_EXTRACTIONS: &[Extraction] = &[
    ("src_ip", IndicatorType::Ip, "Source IP"),
    ("dest_ip", IndicatorType::Ip, "Destination IP"),
    ("source_ip", IndicatorType::Ip, "Source IP (alt)"),
    ("destination_ip", IndicatorType::Ip, "Destination IP (alt)"),
    ("ip", IndicatorType::Ip, "IP address"),
    ("domain", IndicatorType::Domain, "Domain name"),
    ("hostname", IndicatorType::Domain, "Hostname"),
    ("url", IndicatorType::Url, "URL"),
    ("user", IndicatorType::Account, "User account"),
    ("username", IndicatorType::Account, "Username"),
    ("email", IndicatorType::Email, "Email address"),
    ("md5", IndicatorType::HashMd5, "MD5 hash"),
    ("sha1", IndicatorType::HashSha1, "SHA-1 hash"),
    ("sha256", IndicatorType::HashSha256, "SHA-256 hash"),
    ("hash", IndicatorType::HashSha256, "Hash (assumed SHA-256)"),
];

pub struct Generic;

/// ISO-8601 strings as Python parses them; deviation: numbers are taken as epoch seconds or
/// milliseconds (Calseta would fall back to now).
fn parse_occurred_at(value: &Value) -> Option<DateTime<Utc>> {
    iso_or_epoch(value, from_epoch_auto)
}

impl AlertSource for Generic {
    fn name(&self) -> &'static str {
        NAME
    }

    fn display_name(&self) -> &'static str {
        "Generic Webhook"
    }

    fn validate(&self, raw: &Map<String, Value>) -> bool {
        raw.get("title").is_some_and(truthy)
    }

    fn normalize_at(&self, raw: &Map<String, Value>, now: DateTime<Utc>) -> Result<NormalizedAlert, NormalizeError> {
        let title = match raw.get("title") {
            None => "Untitled Alert".to_owned(),
            // Calseta would store the title "None" (validation normally stops it first).
            Some(Value::Null) => return Err(NormalizeError::new(NAME, "title", "must not be null")),
            Some(value) => py_str(value),
        };

        let severity = match raw.get("severity") {
            Some(value) => lowercase_severity(&py_str(value), SEVERITY_ALIASES),
            None => Severity::Pending,
        };

        let occurred_at = raw.get("occurred_at").filter(|time| truthy(time)).and_then(parse_occurred_at).unwrap_or(now);

        // Items are stringified without filtering (a null tag becomes "None"), as in Calseta.
        let tags = match raw.get("tags") {
            Some(Value::Array(items)) => items.iter().map(py_str).collect(),
            _ => Vec::new(),
        };

        // `description` stays null even when the payload has one (Calseta quirk, kept).
        let mut alert = NormalizedAlert::new(title, severity, occurred_at, NAME);
        alert.tags = tags;
        Ok(alert)
    }

    fn extract_labeled(&self, raw: &Map<String, Value>) -> Vec<ExtractedIndicator> {
        let mut indicators = Vec::new();
        if let Some(Value::Array(items)) = raw.get("indicators") {
            for item in items.iter().filter_map(Value::as_object) {
                let type_name = item.get("type").map(py_str).unwrap_or_default().to_lowercase();
                let (Ok(itype), Some(value)) = (type_name.parse::<IndicatorType>(), non_empty_str(item.get("value"))) else {
                    continue;
                };
                indicators.push(ExtractedIndicator::new(itype, value, "indicators[]"));
            }
        }
        for &(field, itype, _) in FIELD_EXTRACTIONS {
            if let Some(value) = non_empty_str(raw.get(field)) {
                indicators.push(ExtractedIndicator::new(itype, value, field));
            }
        }
        indicators
    }

    fn detection_rule_ref(&self, raw: &Map<String, Value>) -> Option<String> {
        rule_ref_text(first_truthy([raw.get("rule_id"), raw.get("rule_name")])?)
    }

    fn documented_fields(&self) -> Vec<PluginField> {
        std::iter::once(PluginField::new("indicators[].type+value", IndicatorType::Ip, "Explicit array (all types)"))
            .chain(documented(FIELD_EXTRACTIONS))
            .collect()
    }

    fn signature(&self) -> SignatureScheme {
        SignatureScheme::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::sources::test_support::{labeled, now, object, odd_values};
    use chrono::TimeZone;
    use serde_json::json;

    /// The example payload of ingestion.md §4.4.
    const SPEC_EXAMPLE: &str = r#"{"title": "Suspicious login", "severity": "high", "occurred_at": "2026-03-01T10:00:00Z",
        "tags": ["identity"], "src_ip": "198.51.100.7", "username": "j.doe@example.org",
        "indicators": [{"type": "domain", "value": "bad.example.net"}], "rule_id": "R-42"}"#;

    #[test]
    fn spec_example_normalizes_exactly() {
        let raw = object(SPEC_EXAMPLE);
        assert!(Generic.validate(&raw));
        let mut expected =
            NormalizedAlert::new("Suspicious login", Severity::High, Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap(), "generic");
        expected.tags = vec!["identity".into()];
        assert_eq!(Generic.normalize_at(&raw, now()).unwrap(), expected);
        assert_eq!(
            Generic.extract_labeled(&raw),
            vec![
                labeled(IndicatorType::Domain, "bad.example.net", "indicators[]"),
                labeled(IndicatorType::Ip, "198.51.100.7", "src_ip"),
                labeled(IndicatorType::Account, "j.doe@example.org", "username"),
            ]
        );
        assert_eq!(Generic.detection_rule_ref(&raw).as_deref(), Some("R-42"));
    }

    #[test]
    fn every_field_and_indicator_form() {
        let raw = object(
            r#"{"title": "Ransomware note dropped — 勒索软件", "severity": "INFO", "occurred_at": "2024-05-05 12:00:00+05:30",
                "description": "ignored", "tags": ["a", 1, null, true],
                "indicators": [{"type": "IP", "value": "203.0.113.1"}, {"type": "hash_sha1", "value": ""},
                               {"type": "mac", "value": "00:11"}, {"value": "x"}, {"type": "url", "value": 5}, "ip",
                               {"type": "email", "value": "a@b.c"}],
                "src_ip": "10.0.0.1", "dest_ip": "10.0.0.2", "source_ip": "10.0.0.3", "destination_ip": "10.0.0.4", "ip": "10.0.0.5",
                "domain": "d.example", "hostname": "h.example", "url": "http://u.example", "user": "u1", "username": "u2",
                "email": "e@example.org", "md5": "m", "sha1": "s1", "sha256": "s256", "hash": "h", "rule_name": "RN"}"#,
        );
        let alert = Generic.normalize_at(&raw, now()).unwrap();
        assert_eq!(alert.title, "Ransomware note dropped — 勒索软件");
        assert_eq!(alert.severity, Severity::Informational);
        assert_eq!(alert.occurred_at, Utc.with_ymd_and_hms(2024, 5, 5, 6, 30, 0).unwrap());
        assert_eq!(alert.description, None);
        assert_eq!(alert.tags, ["a", "1", "None", "True"]);
        assert_eq!(
            Generic.extract_labeled(&raw),
            vec![
                labeled(IndicatorType::Ip, "203.0.113.1", "indicators[]"),
                labeled(IndicatorType::Email, "a@b.c", "indicators[]"),
                labeled(IndicatorType::Ip, "10.0.0.1", "src_ip"),
                labeled(IndicatorType::Ip, "10.0.0.2", "dest_ip"),
                labeled(IndicatorType::Ip, "10.0.0.3", "source_ip"),
                labeled(IndicatorType::Ip, "10.0.0.4", "destination_ip"),
                labeled(IndicatorType::Ip, "10.0.0.5", "ip"),
                labeled(IndicatorType::Domain, "d.example", "domain"),
                labeled(IndicatorType::Domain, "h.example", "hostname"),
                labeled(IndicatorType::Url, "http://u.example", "url"),
                labeled(IndicatorType::Account, "u1", "user"),
                labeled(IndicatorType::Account, "u2", "username"),
                labeled(IndicatorType::Email, "e@example.org", "email"),
                labeled(IndicatorType::HashMd5, "m", "md5"),
                labeled(IndicatorType::HashSha1, "s1", "sha1"),
                labeled(IndicatorType::HashSha256, "s256", "sha256"),
                labeled(IndicatorType::HashSha256, "h", "hash"),
            ]
        );
        assert_eq!(Generic.detection_rule_ref(&raw).as_deref(), Some("RN"));
    }

    #[test]
    fn severities_titles_and_times() {
        for (severity, expected) in [
            (json!("Critical"), Severity::Critical),
            (json!("medium"), Severity::Medium),
            (json!("LOW"), Severity::Low),
            (json!("informational"), Severity::Informational),
            (json!("pending"), Severity::Pending),
            (json!("sev1"), Severity::Pending),
            (json!(null), Severity::Pending),
            (json!(4), Severity::Pending),
        ] {
            let raw = object(&json!({"title": "t", "severity": severity}).to_string());
            assert_eq!(Generic.normalize_at(&raw, now()).unwrap().severity, expected, "{severity}");
        }
        for (time, expected) in [
            (json!("2024-01-15T10:30:00"), Utc.with_ymd_and_hms(2024, 1, 15, 10, 30, 0).unwrap()),
            (json!(1705312200), Utc.with_ymd_and_hms(2024, 1, 15, 9, 50, 0).unwrap()),
            (json!(1705312200000u64), Utc.with_ymd_and_hms(2024, 1, 15, 9, 50, 0).unwrap()),
            (json!("1705312200"), now()),
            (json!("15/01/2024"), now()),
            (json!(""), now()),
            (json!(0), now()),
        ] {
            let raw = object(&json!({"title": "t", "occurred_at": time}).to_string());
            assert_eq!(Generic.normalize_at(&raw, now()).unwrap().occurred_at, expected, "{time}");
        }
        assert_eq!(Generic.normalize_at(&object(r#"{"title": 404}"#), now()).unwrap().title, "404");
        assert_eq!(Generic.normalize_at(&object(r#"{"title": ["a"]}"#), now()).unwrap().title, "['a']");
        assert_eq!(Generic.normalize_at(&object("{}"), now()).unwrap().title, "Untitled Alert");
        assert_eq!(Generic.normalize_at(&object(r#"{"title": "t", "tags": "x"}"#), now()).unwrap().tags, Vec::<String>::new());
    }

    #[test]
    fn null_title_is_an_error_and_fails_validation() {
        let raw = object(r#"{"title": null, "severity": "high"}"#);
        assert!(!Generic.validate(&raw));
        assert_eq!(
            Generic.normalize_at(&raw, now()).unwrap_err().to_string(),
            "cannot normalize generic payload: field 'title' must not be null"
        );
        assert!(!Generic.validate(&object(r#"{"title": ""}"#)));
        assert!(!Generic.validate(&object(r#"{"title": 0}"#)));
        assert!(Generic.validate(&object(r#"{"title": 1}"#)));
    }

    #[test]
    fn rule_reference_forms() {
        for (json, expected) in [
            (r#"{"rule_id": "R-1", "rule_name": "N"}"#, Some("R-1")),
            (r#"{"rule_id": "", "rule_name": "N"}"#, Some("N")),
            (r#"{"rule_id": 42}"#, Some("42")),
            (r#"{"rule_id": 0, "rule_name": "N"}"#, Some("N")),
            (r#"{"rule_id": {"x": 1}}"#, None),
            (r#"{"rule_name": "   "}"#, None),
            (r#"{}"#, None),
        ] {
            assert_eq!(Generic.detection_rule_ref(&object(json)).as_deref(), expected, "{json}");
        }
    }

    #[test]
    fn odd_json_types_never_panic() {
        for odd in odd_values() {
            for key in ["title", "severity", "occurred_at", "tags", "indicators", "src_ip", "rule_id", "rule_name"] {
                let raw = object(&json!({key: odd, "indicators": [odd, {"type": odd, "value": odd}]}).to_string());
                let _ = (Generic.validate(&raw), Generic.normalize_at(&raw, now()), Generic.extract_labeled(&raw), Generic.detection_rule_ref(&raw));
            }
        }
    }
}
