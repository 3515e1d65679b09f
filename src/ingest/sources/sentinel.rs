//! Microsoft Sentinel incidents as delivered by a Logic App (ingestion.md §4.1).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{AlertSource, PluginField, first_truthy_key, json_type, object_or_empty, py_str, truthy};
use crate::ingest::normalized::{
    ExtractedIndicator, IndicatorType, NormalizeError, NormalizedAlert, Severity, parse_iso_timestamp,
};
use crate::ingest::signature::{SENTINEL_SIGNATURE_HEADER, SignatureScheme, WEBHOOK_SIGNATURE_HEADER};

const NAME: &str = "sentinel";

pub struct Sentinel;

/// Case-sensitive, as Sentinel spells them; anything else (including "Critical") is Pending.
fn map_severity(value: Option<&Value>) -> Severity {
    match value {
        None => Severity::Informational, // absent ⇒ "None" ⇒ Informational
        Some(Value::String(text)) => match text.as_str() {
            "High" => Severity::High,
            "Medium" => Severity::Medium,
            "Low" => Severity::Low,
            "Informational" | "None" => Severity::Informational,
            _ => Severity::Pending,
        },
        Some(_) => Severity::Pending, // Calseta crashes on list/dict severities; Pending instead
    }
}

impl AlertSource for Sentinel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn display_name(&self) -> &'static str {
        "Microsoft Sentinel"
    }

    fn validate(&self, raw: &Map<String, Value>) -> bool {
        match raw.get("properties") {
            Some(Value::Object(properties)) => first_truthy_key(properties, &["title", "severity"]).is_some(),
            _ => false,
        }
    }

    fn normalize_at(&self, raw: &Map<String, Value>, now: DateTime<Utc>) -> Result<NormalizedAlert, NormalizeError> {
        let properties = object_or_empty(NAME, raw, "properties")?;

        let title = match properties.get("title") {
            None => "Untitled Sentinel Incident".to_owned(),
            Some(Value::String(text)) => text.clone(),
            // Calseta fails with 500 here (pydantic rejects a non-string title).
            Some(other) => {
                return Err(NormalizeError::new(NAME, "properties.title", format!("must be a string, got {}", json_type(other))));
            }
        };

        // Only strings parse; Calseta crashes on a truthy non-string, we fall back to now.
        let occurred_at = first_truthy_key(&properties, &["firstActivityTimeUtc", "createdTimeUtc"])
            .and_then(Value::as_str)
            .and_then(parse_iso_timestamp)
            .unwrap_or(now);

        // A non-string description is dropped (Calseta: 500).
        let description = properties.get("description").and_then(Value::as_str).map(str::to_owned);

        // Calseta crashes on a non-list `labels` and on non-string label names; we skip the
        // former and stringify the latter.
        let tags = match properties.get("labels") {
            Some(Value::Array(labels)) => labels
                .iter()
                .filter_map(Value::as_object)
                .filter_map(|label| label.get("labelName").filter(|name| truthy(name)))
                .map(py_str)
                .collect(),
            _ => Vec::new(),
        };

        let mut alert = NormalizedAlert::new(title, map_severity(properties.get("severity")), occurred_at, NAME);
        alert.description = description;
        alert.tags = tags;
        Ok(alert)
    }

    fn extract_labeled(&self, raw: &Map<String, Value>) -> Vec<ExtractedIndicator> {
        let Some(Value::Array(entities)) = raw.get("Entities") else {
            return Vec::new();
        };
        // Calseta aborts the whole pass on one malformed entity; we skip just that entity.
        entities.iter().filter_map(Value::as_object).filter_map(entity_indicator).collect()
    }

    fn detection_rule_ref(&self, raw: &Map<String, Value>) -> Option<String> {
        // Only a list is considered (Calseta would take the first character of a string).
        let first = raw.get("properties")?.get("relatedAnalyticRuleIds")?.as_array()?.first()?.as_str()?;
        let segment = first.trim_end_matches('/').rsplit('/').next()?;
        (!segment.trim().is_empty()).then(|| segment.to_owned())
    }

    fn documented_fields(&self) -> Vec<PluginField> {
        vec![
            PluginField::new("Entities[type=ip].Address", IndicatorType::Ip, "IP entity"),
            PluginField::new("Entities[type=account].Name@UPNSuffix", IndicatorType::Account, "Account entity"),
            PluginField::new("Entities[type=host].HostName.DnsDomain", IndicatorType::Domain, "FQDN host entity"),
            PluginField::new("Entities[type=url].Url", IndicatorType::Url, "URL entity"),
            PluginField::new("Entities[type=filehash].Value", IndicatorType::HashSha256, "SHA-256 hash entity"),
            PluginField::new("Entities[type=filehash].Value", IndicatorType::HashSha1, "SHA-1 hash entity"),
            PluginField::new("Entities[type=filehash].Value", IndicatorType::HashMd5, "MD5 hash entity"),
        ]
    }

    fn signature(&self) -> SignatureScheme {
        SignatureScheme {
            hmac_headers: &[WEBHOOK_SIGNATURE_HEADER, SENTINEL_SIGNATURE_HEADER],
            token_headers: &[],
            secret_env_var: Some("SENTINEL_WEBHOOK_SECRET"),
        }
    }
}

/// `name` alone, or `name{joiner}{suffix}` when the suffix is truthy (Python f-string, so
/// non-string parts are `str()`-ed; a bare non-string name is rejected as Calseta would).
fn joined_entity_value(name: &Value, suffix: Option<&Value>, joiner: char) -> Option<String> {
    match suffix {
        Some(suffix) => Some(format!("{}{joiner}{}", py_str(name), py_str(suffix))),
        None => name.as_str().map(str::to_owned),
    }
}

fn entity_indicator(entity: &Map<String, Value>) -> Option<ExtractedIndicator> {
    let entity_type = match first_truthy_key(entity, &["Type", "type"]) {
        None => String::new(),
        Some(value) => value.as_str()?.to_lowercase(),
    };
    let (itype, value, label) = match entity_type.as_str() {
        "ip" => (IndicatorType::Ip, first_truthy_key(entity, &["Address", "address"])?.as_str()?.to_owned(), "Entities.ip"),
        "account" => {
            let name = first_truthy_key(entity, &["Name", "name"])?;
            let upn_suffix = first_truthy_key(entity, &["UPNSuffix", "upnSuffix"]);
            (IndicatorType::Account, joined_entity_value(name, upn_suffix, '@')?, "Entities.account")
        }
        "host" => {
            let host_name = first_truthy_key(entity, &["HostName", "hostName"])?;
            let dns_domain = first_truthy_key(entity, &["DnsDomain", "dnsDomain"]);
            (IndicatorType::Domain, joined_entity_value(host_name, dns_domain, '.')?, "Entities.host")
        }
        "url" => (IndicatorType::Url, first_truthy_key(entity, &["Url", "url"])?.as_str()?.to_owned(), "Entities.url"),
        "filehash" => {
            let algorithm = match first_truthy_key(entity, &["Algorithm", "algorithm"]) {
                None => String::new(),
                Some(value) => value.as_str()?.to_uppercase(),
            };
            let hash = first_truthy_key(entity, &["Value", "value"])?.as_str()?.to_owned();
            let itype = match algorithm.as_str() {
                "SHA256" => IndicatorType::HashSha256,
                "SHA1" => IndicatorType::HashSha1,
                "MD5" => IndicatorType::HashMd5,
                _ => return None,
            };
            (itype, hash, "Entities.filehash")
        }
        _ => return None,
    };
    Some(ExtractedIndicator::new(itype, value, label))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::sources::test_support::{labeled, now, object, odd_values};
    use chrono::TimeZone;
    use serde_json::json;

    const SAMPLE: &str = include_str!("../../../tests/fixtures/payloads/sentinel_alert.json");

    #[test]
    fn sample_payload_normalizes_exactly() {
        let raw = object(SAMPLE);
        assert!(Sentinel.validate(&raw));
        let alert = Sentinel.normalize_at(&raw, now()).unwrap();
        let mut expected = NormalizedAlert::new(
            "Suspicious PowerShell Execution on WORKSTATION-01",
            Severity::High,
            Utc.with_ymd_and_hms(2024, 1, 15, 10, 29, 50).unwrap(),
            "sentinel",
        );
        expected.description = Some("Multiple suspicious PowerShell commands were executed with encoded arguments.".into());
        expected.tags = vec!["powershell".into(), "endpoint".into()];
        assert_eq!(alert, expected);
        assert_eq!(Sentinel.detection_rule_ref(&raw).as_deref(), Some("rule-uuid-abc123"));
    }

    #[test]
    fn sample_payload_pass1() {
        let raw = object(SAMPLE);
        assert_eq!(
            Sentinel.extract_labeled(&raw),
            vec![
                labeled(IndicatorType::Ip, "10.0.0.55", "Entities.ip"),
                labeled(IndicatorType::Ip, "185.220.101.32", "Entities.ip"),
                labeled(IndicatorType::Account, "jdoe@corp.com", "Entities.account"),
                labeled(IndicatorType::Domain, "WORKSTATION-01.corp.com", "Entities.host"),
                labeled(IndicatorType::HashSha256, "a1b2c3d4e5f6789012345678901234567890abcdef1234567890abcdef123456", "Entities.filehash"),
                labeled(IndicatorType::HashMd5, "d41d8cd98f00b204e9800998ecf8427e", "Entities.filehash"),
            ]
        );
    }

    #[test]
    fn severity_mapping_is_case_sensitive() {
        for (severity, expected) in [
            (json!("High"), Severity::High),
            (json!("Medium"), Severity::Medium),
            (json!("Low"), Severity::Low),
            (json!("Informational"), Severity::Informational),
            (json!("None"), Severity::Informational),
            (json!("high"), Severity::Pending),
            (json!("Critical"), Severity::Pending),
            (json!(null), Severity::Pending),
            (json!(["High"]), Severity::Pending),
        ] {
            let raw = object(&json!({"properties": {"title": "t", "severity": severity}}).to_string());
            assert_eq!(Sentinel.normalize_at(&raw, now()).unwrap().severity, expected, "{severity}");
        }
        let absent = object(r#"{"properties": {"title": "t"}}"#);
        assert_eq!(Sentinel.normalize_at(&absent, now()).unwrap().severity, Severity::Informational);
    }

    #[test]
    fn minimal_and_fallback_fields() {
        // Real Logic App deliveries often lack firstActivityTimeUtc and labels.
        let raw = object(
            r#"{"properties": {"title": "Sign-in from TOR ✈ 🚨 Überwachung", "severity": "Medium",
                "createdTimeUtc": "2024-03-01T08:00:00.1234567Z", "labels": [{"labelName": ""}, {"labelType": "User"}, "x", {"labelName": 7}]}}"#,
        );
        let alert = Sentinel.normalize_at(&raw, now()).unwrap();
        assert_eq!(alert.title, "Sign-in from TOR ✈ 🚨 Überwachung");
        assert_eq!(alert.occurred_at, Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0).unwrap() + chrono::TimeDelta::microseconds(123_456));
        assert_eq!(alert.description, None);
        assert_eq!(alert.tags, vec!["7".to_owned()]);

        let untitled = object(r#"{"properties": {"severity": "Low", "firstActivityTimeUtc": "not a date"}}"#);
        let alert = Sentinel.normalize_at(&untitled, now()).unwrap();
        assert_eq!(alert.title, "Untitled Sentinel Incident");
        assert_eq!(alert.occurred_at, now());
        assert!(Sentinel.validate(&untitled));

        // Naive timestamps are UTC; an empty first-activity falls through to createdTimeUtc.
        let naive = object(r#"{"properties": {"title": "t", "firstActivityTimeUtc": "", "createdTimeUtc": "2024-03-01T08:00:00"}}"#);
        assert_eq!(Sentinel.normalize_at(&naive, now()).unwrap().occurred_at, Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0).unwrap());

        let empty = object("{}");
        assert!(!Sentinel.validate(&empty));
        let alert = Sentinel.normalize_at(&empty, now()).unwrap();
        assert_eq!((alert.title.as_str(), alert.severity, alert.occurred_at), ("Untitled Sentinel Incident", Severity::Informational, now()));
    }

    #[test]
    fn null_or_non_string_title_is_an_error() {
        let raw = object(r#"{"properties": {"title": null, "severity": "High"}}"#);
        assert!(Sentinel.validate(&raw));
        let error = Sentinel.normalize_at(&raw, now()).unwrap_err();
        assert_eq!(error.to_string(), "cannot normalize sentinel payload: field 'properties.title' must be a string, got null");
        assert!(Sentinel.normalize_at(&object(r#"{"properties": {"title": 12}}"#), now()).is_err());
        let error = Sentinel.normalize_at(&object(r#"{"properties": "x"}"#), now()).unwrap_err();
        assert_eq!(error.field, "properties");
    }

    #[test]
    fn validation() {
        for (json, expected) in [
            (r#"{"properties": {"title": "t"}}"#, true),
            (r#"{"properties": {"severity": "Low"}}"#, true),
            (r#"{"properties": {"title": "", "severity": ""}}"#, false),
            (r#"{"properties": {}}"#, false),
            (r#"{"properties": ["title"]}"#, false),
            (r#"{"title": "t"}"#, false),
        ] {
            assert_eq!(Sentinel.validate(&object(json)), expected, "{json}");
        }
    }

    #[test]
    fn entity_variants() {
        let raw = object(
            r#"{"Entities": [
                {"type": "IP", "address": "203.0.113.9"},
                {"Type": "account", "Name": "svc_backup"},
                {"type": "account", "name": "alice", "upnSuffix": "contoso.com"},
                {"Type": "host", "HostName": "web01"},
                {"type": "host", "hostName": "db01", "dnsDomain": "corp.local"},
                {"Type": "url", "Url": "https://evil.example/x?y=1"},
                {"type": "filehash", "algorithm": "sha1", "value": "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
                {"Type": "filehash", "Algorithm": "SHA512", "Value": "ffff"},
                {"Type": "filehash", "Algorithm": "MD5", "Value": ""},
                {"Type": "process", "ProcessId": "4"},
                {"Type": "ip", "Address": 12345},
                {"Type": 5, "Address": "198.51.100.1"},
                {"Type": "account", "Name": 42, "UPNSuffix": "corp.com"},
                "not-an-object",
                {"Type": "ip", "Address": "198.51.100.2"}
            ]}"#,
        );
        assert_eq!(
            Sentinel.extract_labeled(&raw),
            vec![
                labeled(IndicatorType::Ip, "203.0.113.9", "Entities.ip"),
                labeled(IndicatorType::Account, "svc_backup", "Entities.account"),
                labeled(IndicatorType::Account, "alice@contoso.com", "Entities.account"),
                labeled(IndicatorType::Domain, "web01", "Entities.host"),
                labeled(IndicatorType::Domain, "db01.corp.local", "Entities.host"),
                labeled(IndicatorType::Url, "https://evil.example/x?y=1", "Entities.url"),
                labeled(IndicatorType::HashSha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709", "Entities.filehash"),
                labeled(IndicatorType::Account, "42@corp.com", "Entities.account"),
                labeled(IndicatorType::Ip, "198.51.100.2", "Entities.ip"),
            ]
        );
        assert!(Sentinel.extract_labeled(&object(r#"{"Entities": {"Type": "ip"}}"#)).is_empty());
        assert!(Sentinel.extract_labeled(&object(r#"{"entities": [{"Type": "ip", "Address": "1.1.1.1"}]}"#)).is_empty());
    }

    #[test]
    fn rule_reference() {
        for (ids, expected) in [
            (json!(["/subscriptions/s/alertRules/abc-123/"]), Some("abc-123")),
            (json!(["plain-guid", "second"]), Some("plain-guid")),
            (json!(["/"]), None),
            (json!([]), None),
            (json!("abc"), None),
            (json!([5]), None),
            (json!(null), None),
        ] {
            let raw = object(&json!({"properties": {"relatedAnalyticRuleIds": ids}}).to_string());
            assert_eq!(Sentinel.detection_rule_ref(&raw).as_deref(), expected, "{ids}");
        }
        assert_eq!(Sentinel.detection_rule_ref(&object(r#"{"properties": 1}"#)), None);
    }

    #[test]
    fn odd_json_types_never_panic() {
        for odd in odd_values() {
            for key in ["title", "severity", "firstActivityTimeUtc", "createdTimeUtc", "description", "labels", "relatedAnalyticRuleIds"] {
                let raw = object(&json!({"properties": {key: odd}, "Entities": [odd, {"Type": odd, "Address": odd, "Name": odd, "UPNSuffix": odd}]}).to_string());
                let _ = Sentinel.validate(&raw);
                let _ = Sentinel.normalize_at(&raw, now());
                let _ = Sentinel.extract_labeled(&raw);
                let _ = Sentinel.detection_rule_ref(&raw);
            }
            let raw = object(&json!({"properties": odd, "Entities": odd}).to_string());
            let _ = (Sentinel.validate(&raw), Sentinel.normalize_at(&raw, now()), Sentinel.extract_labeled(&raw), Sentinel.detection_rule_ref(&raw));
        }
    }
}
