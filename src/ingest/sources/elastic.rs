//! Elastic Security alert documents (ingestion.md §4.2). Kibana connectors send flat dotted
//! keys (`"kibana.alert.rule.name"`); nested objects are accepted too.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    AlertSource, Extraction, PluginField, documented, first_truthy, iso_or_epoch, lowercase_severity, non_empty_str, py_str,
    truthy,
};
use crate::ingest::normalized::{
    ExtractedIndicator, IndicatorType, NormalizeError, NormalizedAlert, Severity, from_epoch_millis,
};
use crate::ingest::signature::{ELASTIC_SIGNATURE_HEADER, SignatureScheme, WEBHOOK_SIGNATURE_HEADER};

const NAME: &str = "elastic";

/// Pass-1 table. IP paths also accept a list of strings.
const EXTRACTIONS: &[Extraction] = &[
    ("source.ip", IndicatorType::Ip, "Source IP (ECS)"),
    ("destination.ip", IndicatorType::Ip, "Destination IP (ECS)"),
    ("host.ip", IndicatorType::Ip, "Host IP (ECS, array)"),
    ("threat.indicator.ip", IndicatorType::Ip, "Threat indicator IP"),
    ("destination.domain", IndicatorType::Domain, "Destination domain"),
    ("dns.question.name", IndicatorType::Domain, "DNS query name"),
    ("url.domain", IndicatorType::Domain, "URL domain"),
    ("threat.indicator.domain", IndicatorType::Domain, "Threat indicator domain"),
    ("url.full", IndicatorType::Url, "Full URL (ECS)"),
    ("process.hash.sha256", IndicatorType::HashSha256, "Process SHA-256"),
    ("file.hash.sha256", IndicatorType::HashSha256, "File SHA-256"),
    ("threat.indicator.file.hash.sha256", IndicatorType::HashSha256, "Threat indicator file SHA-256"),
    ("process.hash.sha1", IndicatorType::HashSha1, "Process SHA-1"),
    ("file.hash.sha1", IndicatorType::HashSha1, "File SHA-1"),
    ("process.hash.md5", IndicatorType::HashMd5, "Process MD5"),
    ("file.hash.md5", IndicatorType::HashMd5, "File MD5"),
    ("user.email", IndicatorType::Email, "User email (ECS)"),
    ("user.name", IndicatorType::Account, "User name (ECS)"),
];

pub struct Elastic;

/// The literal dotted key if non-null, else the nested traversal of the same path if non-null.
fn lookup<'a>(raw: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = raw.get(path).filter(|value| !value.is_null()) {
        return Some(value);
    }
    let mut parts = path.split('.');
    let mut current = raw.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    (!current.is_null()).then_some(current)
}

fn first_truthy_path<'a>(raw: &'a Map<String, Value>, paths: &[&str]) -> Option<&'a Value> {
    first_truthy(paths.iter().map(|path| lookup(raw, path)))
}

/// Event time: ISO strings as Python parses them; numbers as epoch milliseconds (Elasticsearch's
/// `epoch_millis`; Calseta would fall back to now).
fn parse_event_time(value: &Value) -> Option<DateTime<Utc>> {
    iso_or_epoch(value, from_epoch_millis)
}

impl AlertSource for Elastic {
    fn name(&self) -> &'static str {
        NAME
    }

    fn display_name(&self) -> &'static str {
        "Elastic Security"
    }

    fn validate(&self, raw: &Map<String, Value>) -> bool {
        first_truthy_path(raw, &["kibana.alert.rule.name", "kibana.alert.rule.uuid"]).is_some()
    }

    fn normalize_at(&self, raw: &Map<String, Value>, now: DateTime<Utc>) -> Result<NormalizedAlert, NormalizeError> {
        let title = first_truthy_path(raw, &["kibana.alert.rule.name", "kibana.alert.reason"])
            .map(py_str)
            .unwrap_or_else(|| "Untitled Elastic Alert".to_owned());

        let severity = first_truthy_path(raw, &["kibana.alert.severity", "kibana.alert.rule.severity"])
            .map(|value| lowercase_severity(&py_str(value), &[]))
            .unwrap_or(Severity::Pending);

        let occurred_at = first_truthy_path(raw, &["kibana.alert.start", "@timestamp"])
            .and_then(parse_event_time)
            .unwrap_or(now);

        let reason = first_truthy_path(raw, &["kibana.alert.reason"]);
        let mut description = first_truthy_path(raw, &["kibana.alert.rule.description", "kibana.alert.reason"]);
        // A description that merely repeats the title is replaced by the reason (or nothing).
        if description.and_then(Value::as_str) == Some(title.as_str()) {
            description = reason;
        }

        let tags = match lookup(raw, "kibana.alert.rule.tags") {
            Some(Value::Array(items)) => items.iter().filter(|item| truthy(item)).map(py_str).collect(),
            _ => Vec::new(),
        };

        let mut alert = NormalizedAlert::new(title, severity, occurred_at, NAME);
        alert.description = description.map(py_str);
        alert.tags = tags;
        Ok(alert)
    }

    fn extract_labeled(&self, raw: &Map<String, Value>) -> Vec<ExtractedIndicator> {
        let mut indicators = Vec::new();
        for &(path, itype, _) in EXTRACTIONS {
            let value = lookup(raw, path);
            match (itype, value) {
                (IndicatorType::Ip, Some(Value::Array(items))) => indicators.extend(
                    items
                        .iter()
                        .filter_map(|item| non_empty_str(Some(item)))
                        .map(|address| ExtractedIndicator::new(itype, address, path)),
                ),
                _ => {
                    if let Some(text) = non_empty_str(value) {
                        indicators.push(ExtractedIndicator::new(itype, text, path));
                    }
                }
            }
        }
        indicators
    }

    fn detection_rule_ref(&self, raw: &Map<String, Value>) -> Option<String> {
        let text = py_str(first_truthy_path(raw, &["kibana.alert.rule.uuid"])?);
        (!text.trim().is_empty()).then_some(text)
    }

    fn documented_fields(&self) -> Vec<PluginField> {
        documented(EXTRACTIONS).collect()
    }

    fn signature(&self) -> SignatureScheme {
        SignatureScheme {
            hmac_headers: &[WEBHOOK_SIGNATURE_HEADER, ELASTIC_SIGNATURE_HEADER],
            token_headers: &[],
            secret_env_var: Some("ELASTIC_WEBHOOK_SECRET"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::sources::test_support::{labeled, now, object, odd_values};
    use chrono::TimeZone;
    use serde_json::json;

    const SAMPLE: &str = include_str!("../../../tests/fixtures/payloads/elastic_alert.json");

    #[test]
    fn sample_payload_normalizes_exactly() {
        let raw = object(SAMPLE);
        assert!(Elastic.validate(&raw));
        let mut expected = NormalizedAlert::new(
            "Suspicious PowerShell Execution",
            Severity::High,
            Utc.with_ymd_and_hms(2024, 1, 15, 10, 29, 50).unwrap(),
            "elastic",
        );
        expected.description = Some("Detects PowerShell with encoded arguments".into());
        expected.tags = vec!["PowerShell".into(), "Endpoint".into(), "T1059.001".into()];
        assert_eq!(Elastic.normalize_at(&raw, now()).unwrap(), expected);
        assert_eq!(Elastic.detection_rule_ref(&raw).as_deref(), Some("rule-uuid-elastic-abc"));
    }

    #[test]
    fn sample_payload_pass1() {
        let raw = object(SAMPLE);
        assert_eq!(
            Elastic.extract_labeled(&raw),
            vec![
                labeled(IndicatorType::Ip, "10.0.0.55", "source.ip"),
                labeled(IndicatorType::Ip, "185.220.101.32", "destination.ip"),
                labeled(IndicatorType::Ip, "10.0.0.55", "host.ip"),
                labeled(IndicatorType::Domain, "evil.example.com", "destination.domain"),
                labeled(IndicatorType::Domain, "c2-server.evil.com", "dns.question.name"),
                labeled(IndicatorType::Url, "https://evil.example.com/payload/stage2.ps1", "url.full"),
                labeled(IndicatorType::HashSha256, "a1b2c3d4e5f6789012345678901234567890abcdef1234567890abcdef123456", "process.hash.sha256"),
                labeled(IndicatorType::HashMd5, "d41d8cd98f00b204e9800998ecf8427e", "process.hash.md5"),
                labeled(IndicatorType::Email, "jdoe@corp.com", "user.email"),
                labeled(IndicatorType::Account, "jdoe", "user.name"),
            ]
        );
    }

    #[test]
    fn nested_document_and_fallbacks() {
        // The Kibana "Elastic Security" connector can also emit nested ECS objects.
        let raw = object(
            r#"{"kibana": {"alert": {"rule": {"uuid": "u-1", "severity": "CRITICAL", "tags": ["a", "", null, 3]},
                "reason": "process 🐚 started by root", "start": null}},
                "@timestamp": 1705312200123,
                "source": {"ip": ["10.1.1.1", "", 5, "10.1.1.2"]},
                "threat": {"indicator": {"file": {"hash": {"sha256": "abc"}}, "ip": "203.0.113.5"}},
                "user": {"name": ""}}"#,
        );
        assert!(Elastic.validate(&raw));
        let alert = Elastic.normalize_at(&raw, now()).unwrap();
        assert_eq!(alert.title, "process 🐚 started by root");
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.occurred_at, Utc.with_ymd_and_hms(2024, 1, 15, 9, 50, 0).unwrap() + chrono::TimeDelta::milliseconds(123));
        // rule.description absent ⇒ reason, which equals the title ⇒ reason again.
        assert_eq!(alert.description.as_deref(), Some("process 🐚 started by root"));
        assert_eq!(alert.tags, ["a", "3"]);
        assert_eq!(
            Elastic.extract_labeled(&raw),
            vec![
                labeled(IndicatorType::Ip, "10.1.1.1", "source.ip"),
                labeled(IndicatorType::Ip, "10.1.1.2", "source.ip"),
                labeled(IndicatorType::Ip, "203.0.113.5", "threat.indicator.ip"),
                labeled(IndicatorType::HashSha256, "abc", "threat.indicator.file.hash.sha256"),
            ]
        );
        assert_eq!(Elastic.detection_rule_ref(&raw).as_deref(), Some("u-1"));
    }

    #[test]
    fn flat_key_wins_over_nested_and_null_flat_falls_through() {
        let raw = object(r#"{"user.name": null, "user": {"name": "nested"}, "url.full": "flat", "url": {"full": "nested"}}"#);
        assert_eq!(
            Elastic.extract_labeled(&raw),
            vec![labeled(IndicatorType::Url, "flat", "url.full"), labeled(IndicatorType::Account, "nested", "user.name")]
        );
        // A non-string flat value is not replaced by the nested one (first non-null wins).
        let raw = object(r#"{"user.email": 7, "user": {"email": "x@y.z"}}"#);
        assert!(Elastic.extract_labeled(&raw).is_empty());
    }

    #[test]
    fn severity_timestamps_and_titles() {
        for (severity, expected) in [
            (json!("high"), Severity::High),
            (json!("Medium"), Severity::Medium),
            (json!("LOW"), Severity::Low),
            (json!("informational"), Severity::Informational),
            (json!("info"), Severity::Pending),
            (json!(73), Severity::Pending),
            (json!(""), Severity::Pending),
        ] {
            let raw = object(&json!({"kibana.alert.rule.name": "r", "kibana.alert.severity": severity}).to_string());
            assert_eq!(Elastic.normalize_at(&raw, now()).unwrap().severity, expected, "{severity}");
        }
        // Alert-level severity empty ⇒ rule-level.
        let raw = object(r#"{"kibana.alert.rule.name": "r", "kibana.alert.severity": "", "kibana.alert.rule.severity": "low"}"#);
        assert_eq!(Elastic.normalize_at(&raw, now()).unwrap().severity, Severity::Low);

        let raw = object(r#"{"kibana.alert.rule.uuid": "u", "@timestamp": "2024-02-29T23:59:59.999+01:00"}"#);
        let alert = Elastic.normalize_at(&raw, now()).unwrap();
        assert_eq!(alert.title, "Untitled Elastic Alert");
        assert_eq!(alert.severity, Severity::Pending);
        assert_eq!(alert.occurred_at, Utc.with_ymd_and_hms(2024, 2, 29, 22, 59, 59).unwrap() + chrono::TimeDelta::milliseconds(999));
        assert_eq!(alert.description, None);
        assert!(alert.tags.is_empty());

        let raw = object(r#"{"kibana.alert.rule.name": 12345, "kibana.alert.rule.description": "12345", "kibana.alert.start": "garbage"}"#);
        let alert = Elastic.normalize_at(&raw, now()).unwrap();
        assert_eq!(alert.title, "12345");
        assert_eq!(alert.description, None); // equals the title and there is no reason
        assert_eq!(alert.occurred_at, now());
    }

    #[test]
    fn validation() {
        for (json, expected) in [
            (r#"{"kibana.alert.rule.name": "r"}"#, true),
            (r#"{"kibana.alert.rule.uuid": "u"}"#, true),
            (r#"{"kibana": {"alert": {"rule": {"name": "r"}}}}"#, true),
            (r#"{"kibana.alert.rule.name": ""}"#, false),
            (r#"{"kibana.alert.reason": "x"}"#, false),
            (r#"{}"#, false),
        ] {
            assert_eq!(Elastic.validate(&object(json)), expected, "{json}");
        }
    }

    #[test]
    fn odd_json_types_never_panic() {
        for odd in odd_values() {
            for key in [
                "kibana.alert.rule.name", "kibana.alert.reason", "kibana.alert.severity", "kibana.alert.start",
                "@timestamp", "kibana.alert.rule.description", "kibana.alert.rule.tags", "kibana.alert.rule.uuid",
                "source.ip", "url.full", "kibana",
            ] {
                let raw = object(&json!({key: odd, "source": odd, "user": {"name": odd}}).to_string());
                let _ = (Elastic.validate(&raw), Elastic.normalize_at(&raw, now()), Elastic.extract_labeled(&raw), Elastic.detection_rule_ref(&raw));
            }
        }
    }
}
