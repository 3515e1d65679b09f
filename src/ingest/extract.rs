//! Three-pass indicator extraction (ingestion.md §5): Pass 1 is the plugin's own code, Pass 2
//! reads normalized fields named by mappings, Pass 3 walks dot paths through the raw payload.
//! Results are merged and deduplicated on (type, trimmed value).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::normalized::{
    ExtractedIndicator, IndicatorCandidate, IndicatorType, NormalizedAlert, UnknownVariant,
};
use super::sources::AlertSource;

/// `indicator_field_mappings.extraction_target`. The column is free text; rows with any other
/// value are never selected by either pass, so the caller drops them (`Target::from_str` fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Normalized,
    RawPayload,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Normalized => "normalized",
            Target::RawPayload => "raw_payload",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Target {
    type Err = UnknownVariant;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "normalized" => Ok(Target::Normalized),
            "raw_payload" => Ok(Target::RawPayload),
            _ => Err(UnknownVariant {
                kind: "extraction target",
                value: text.to_owned(),
            }),
        }
    }
}

/// An active indicator field mapping as the passes need it (the caller filters `is_active`).
/// `indicator_type` is kept as stored: the API does not validate it and unknown types are
/// skipped at extraction time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMapping {
    pub source_name: Option<String>,
    pub field_path: String,
    pub indicator_type: String,
    pub extraction_target: Target,
}

impl FieldMapping {
    /// `source_name IS NULL OR source_name = <alert source>`.
    pub fn applies_to(&self, source_name: &str) -> bool {
        self.source_name
            .as_deref()
            .is_none_or(|own| own == source_name)
    }
}

/// One of the system mappings seeded at startup (data-model.md, seeding step 1): all are
/// `source_name = NULL`, `extraction_target = 'normalized'`, `is_system`, `is_active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemMapping {
    pub field_path: &'static str,
    pub indicator_type: IndicatorType,
    pub description: &'static str,
}

impl SystemMapping {
    pub fn to_field_mapping(&self) -> FieldMapping {
        FieldMapping {
            source_name: None,
            field_path: self.field_path.to_owned(),
            indicator_type: self.indicator_type.as_str().to_owned(),
            extraction_target: Target::Normalized,
        }
    }
}

const fn system(
    field_path: &'static str,
    indicator_type: IndicatorType,
    description: &'static str,
) -> SystemMapping {
    SystemMapping {
        field_path,
        indicator_type,
        description,
    }
}

pub const SYSTEM_MAPPINGS: [SystemMapping; 14] = [
    system("src_ip", IndicatorType::Ip, "Source IP address"),
    system("dst_ip", IndicatorType::Ip, "Destination IP address"),
    system("src_hostname", IndicatorType::Domain, "Source hostname"),
    system(
        "dst_hostname",
        IndicatorType::Domain,
        "Destination hostname",
    ),
    system("file_hash_md5", IndicatorType::HashMd5, "File hash, MD5"),
    system(
        "file_hash_sha256",
        IndicatorType::HashSha256,
        "File hash, SHA-256",
    ),
    system(
        "file_hash_sha1",
        IndicatorType::HashSha1,
        "File hash, SHA-1",
    ),
    system("actor_email", IndicatorType::Email, "Actor email address"),
    system("actor_username", IndicatorType::Account, "Actor username"),
    system("dns_query", IndicatorType::Domain, "DNS query target"),
    system("http_url", IndicatorType::Url, "Full URL string"),
    system("http_hostname", IndicatorType::Domain, "URL hostname"),
    system("email_from", IndicatorType::Email, "Email sender address"),
    system(
        "email_reply_to",
        IndicatorType::Email,
        "Email reply-to address",
    ),
];

/// Pass 2: each `normalized` mapping reads the normalized field named `field_path`; it must be
/// a non-blank string and is used trimmed. Mappings with an unknown type are skipped.
pub fn pass2_normalized(
    normalized: &NormalizedAlert,
    mappings: &[FieldMapping],
) -> Vec<ExtractedIndicator> {
    mappings
        .iter()
        .filter(|mapping| {
            mapping.extraction_target == Target::Normalized
                && mapping.applies_to(&normalized.source_name)
        })
        .filter_map(|mapping| {
            let value = normalized.string_field(&mapping.field_path)?.trim();
            let itype = mapping.indicator_type.parse::<IndicatorType>().ok()?;
            (!value.is_empty()).then(|| {
                ExtractedIndicator::new(itype, value, format!("normalized.{}", mapping.field_path))
            })
        })
        .collect()
}

/// Pass 3: each `raw_payload` mapping splits `field_path` on `.` and walks nested objects only
/// (no array indexing, no flat dotted keys); the final value must be a non-blank string and is
/// used trimmed.
pub fn pass3_raw_payload(
    raw: &Map<String, Value>,
    source_name: &str,
    mappings: &[FieldMapping],
) -> Vec<ExtractedIndicator> {
    mappings
        .iter()
        .filter(|mapping| {
            mapping.extraction_target == Target::RawPayload && mapping.applies_to(source_name)
        })
        .filter_map(|mapping| {
            let value = walk_objects(raw, &mapping.field_path)?.trim();
            let itype = mapping.indicator_type.parse::<IndicatorType>().ok()?;
            (!value.is_empty()).then(|| {
                ExtractedIndicator::new(itype, value, format!("raw_payload.{}", mapping.field_path))
            })
        })
        .collect()
}

fn walk_objects<'a>(raw: &'a Map<String, Value>, field_path: &str) -> Option<&'a str> {
    let mut parts = field_path.split('.');
    let mut current = raw.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    current.as_str()
}

/// Whether an extracted value can become an indicator: non-blank after trimming (§5.5: there
/// is no format validation, case is preserved). Deviation: values containing NUL are dropped,
/// because neither PostgreSQL TEXT nor our API accepts them.
pub fn is_acceptable_value(value: &str) -> bool {
    let trimmed = value.trim();
    !trimmed.is_empty() && !trimmed.contains('\0')
}

/// §5.4: concatenate passes in order, key on (type, trimmed value), drop unacceptable values,
/// keep the first occurrence. Returned values are trimmed (that is what gets stored).
pub fn merge_dedupe(
    indicators: impl IntoIterator<Item = ExtractedIndicator>,
) -> Vec<ExtractedIndicator> {
    let mut seen: HashSet<(IndicatorType, String)> = HashSet::new();
    let mut unique = Vec::new();
    for indicator in indicators {
        if !is_acceptable_value(&indicator.value) {
            continue;
        }
        let trimmed = indicator.value.trim().to_owned();
        if seen.insert((indicator.itype, trimmed.clone())) {
            unique.push(ExtractedIndicator {
                value: trimmed,
                ..indicator
            });
        }
    }
    unique
}

/// All passes for one alert, merged and deduplicated. `normalized = None` (normalization
/// failed) skips Pass 2. The ingest-time fingerprint uses `include_pass3 = false` with the
/// startup mapping cache; the worker uses `true` with fresh mappings.
pub fn extract_all(
    source: &dyn AlertSource,
    raw: &Map<String, Value>,
    normalized: Option<&NormalizedAlert>,
    mappings: &[FieldMapping],
    include_pass3: bool,
) -> Vec<IndicatorCandidate> {
    let pass1 = source.extract_labeled(raw);
    let pass2 = normalized
        .map(|alert| pass2_normalized(alert, mappings))
        .unwrap_or_default();
    let pass3 = if include_pass3 {
        pass3_raw_payload(raw, source.name(), mappings)
    } else {
        Vec::new()
    };
    merge_dedupe(pass1.into_iter().chain(pass2).chain(pass3))
        .into_iter()
        .map(IndicatorCandidate::from)
        .collect()
}

/// One pass in the test-extraction response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassReport {
    pub pass_name: &'static str,
    pub pass_label: &'static str,
    pub indicators: Vec<ExtractedIndicator>,
    pub error: Option<String>,
}

/// `data` of `POST /v1/indicator-mappings/test-extraction` (api.md §5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestExtractionReport {
    pub success: bool,
    pub source_name: String,
    pub passes: Vec<PassReport>,
    pub deduplicated: Vec<ExtractedIndicator>,
    pub deduplicated_count: usize,
    pub normalization_preview: Option<Value>,
    pub error_message: Option<String>,
    pub duration_ms: u64,
}

pub const NORMALIZATION_FAILED_PASS2_ERROR: &str = "Normalization failed — cannot run Pass 2";

/// Dry run of all three passes (no persistence). Source lookup and `validate` are the
/// caller's (they answer 422 before this runs). Pass lists show values as extracted;
/// `deduplicated` shows them trimmed, as they would be stored.
pub fn test_extraction(
    source: &dyn AlertSource,
    raw: &Map<String, Value>,
    mappings: &[FieldMapping],
    now: DateTime<Utc>,
) -> TestExtractionReport {
    let started = Instant::now();
    let normalized = source.normalize_at(raw, now).ok();
    let normalization_preview = normalized
        .as_ref()
        .and_then(|alert| serde_json::to_value(alert).ok());

    let pass1 = source.extract_labeled(raw);
    let (pass2, pass2_error) = match &normalized {
        Some(alert) => (pass2_normalized(alert, mappings), None),
        None => (
            Vec::new(),
            Some(NORMALIZATION_FAILED_PASS2_ERROR.to_owned()),
        ),
    };
    let pass3 = pass3_raw_payload(raw, source.name(), mappings);

    let deduplicated = merge_dedupe(pass1.iter().chain(&pass2).chain(&pass3).cloned());
    let passes = vec![
        PassReport {
            pass_name: "source_plugin",
            pass_label: "Source Plugin",
            indicators: pass1,
            error: None,
        },
        PassReport {
            pass_name: "normalized_mappings",
            pass_label: "Normalized Mappings",
            indicators: pass2,
            error: pass2_error,
        },
        PassReport {
            pass_name: "raw_payload_mappings",
            pass_label: "Raw Payload Mappings",
            indicators: pass3,
            error: None,
        },
    ];
    TestExtractionReport {
        success: true,
        source_name: source.name().to_owned(),
        passes,
        deduplicated_count: deduplicated.len(),
        deduplicated,
        normalization_preview,
        error_message: None,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::normalized::Severity;
    use crate::ingest::sources;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 6, 1, 12, 0, 0).unwrap()
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn mapping(
        source_name: Option<&str>,
        field_path: &str,
        indicator_type: &str,
        target: Target,
    ) -> FieldMapping {
        FieldMapping {
            source_name: source_name.map(str::to_owned),
            field_path: field_path.to_owned(),
            indicator_type: indicator_type.to_owned(),
            extraction_target: target,
        }
    }

    fn system_mappings() -> Vec<FieldMapping> {
        SYSTEM_MAPPINGS
            .iter()
            .map(SystemMapping::to_field_mapping)
            .collect()
    }

    fn candidate(itype: IndicatorType, value: &str) -> IndicatorCandidate {
        IndicatorCandidate::new(itype, value)
    }

    #[test]
    fn system_mappings_match_the_seed_table() {
        let rows: Vec<(&str, &str)> = SYSTEM_MAPPINGS
            .iter()
            .map(|m| (m.field_path, m.indicator_type.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("src_ip", "ip"),
                ("dst_ip", "ip"),
                ("src_hostname", "domain"),
                ("dst_hostname", "domain"),
                ("file_hash_md5", "hash_md5"),
                ("file_hash_sha256", "hash_sha256"),
                ("file_hash_sha1", "hash_sha1"),
                ("actor_email", "email"),
                ("actor_username", "account"),
                ("dns_query", "domain"),
                ("http_url", "url"),
                ("http_hostname", "domain"),
                ("email_from", "email"),
                ("email_reply_to", "email"),
            ]
        );
        assert_eq!(SYSTEM_MAPPINGS[5].description, "File hash, SHA-256");
        // Every system field path names a real normalized field.
        let mut alert = NormalizedAlert::new("t", Severity::Low, now(), "generic");
        alert.src_ip = Some("x".into());
        let readable = SYSTEM_MAPPINGS
            .iter()
            .filter(|m| alert.string_field(m.field_path).is_some())
            .count();
        assert_eq!(readable, 1);
    }

    #[test]
    fn pass2_reads_named_normalized_fields() {
        let mut alert = NormalizedAlert::new("  Evil.com  ", Severity::High, now(), "elastic");
        alert.src_ip = Some(" 10.0.0.1 ".into());
        alert.dst_ip = Some("   ".into());
        alert.actor_email = Some("a@b.c".into());
        let mut mappings = system_mappings();
        mappings.extend([
            mapping(None, "title", "domain", Target::Normalized),
            mapping(Some("splunk"), "actor_email", "account", Target::Normalized), // other source
            mapping(Some("elastic"), "severity", "account", Target::Normalized),
            mapping(None, "src_ip", "ipv4", Target::Normalized), // unknown type
            mapping(None, "occurred_at", "ip", Target::Normalized), // not a string
            mapping(None, "src_ip", "url", Target::RawPayload),  // other pass
        ]);
        assert_eq!(
            pass2_normalized(&alert, &mappings),
            vec![
                ExtractedIndicator::new(IndicatorType::Ip, "10.0.0.1", "normalized.src_ip"),
                ExtractedIndicator::new(IndicatorType::Email, "a@b.c", "normalized.actor_email"),
                ExtractedIndicator::new(IndicatorType::Domain, "Evil.com", "normalized.title"),
                ExtractedIndicator::new(IndicatorType::Account, "High", "normalized.severity"),
            ]
        );
    }

    #[test]
    fn pass3_walks_nested_objects_only() {
        let raw = object(json!({
            "okta": {"client": {"ipAddress": " 203.0.113.7 "}, "actors": [{"email": "x@y.z"}]},
            "flat.key": "ignored",
            "n": {"num": 5, "blank": "  "},
            "top": "t.example"
        }));
        let mappings = [
            mapping(
                Some("generic"),
                "okta.client.ipAddress",
                "ip",
                Target::RawPayload,
            ),
            mapping(None, "okta.actors.0.email", "email", Target::RawPayload),
            mapping(None, "flat.key", "domain", Target::RawPayload),
            mapping(None, "n.num", "ip", Target::RawPayload),
            mapping(None, "n.blank", "ip", Target::RawPayload),
            mapping(None, "n.missing.deeper", "ip", Target::RawPayload),
            mapping(None, "top", "domain", Target::RawPayload),
            mapping(None, "top", "bogus", Target::RawPayload),
            mapping(Some("splunk"), "top", "url", Target::RawPayload),
            mapping(None, "top", "url", Target::Normalized),
        ];
        assert_eq!(
            pass3_raw_payload(&raw, "generic", &mappings),
            vec![
                ExtractedIndicator::new(
                    IndicatorType::Ip,
                    "203.0.113.7",
                    "raw_payload.okta.client.ipAddress"
                ),
                ExtractedIndicator::new(IndicatorType::Domain, "t.example", "raw_payload.top"),
            ]
        );
    }

    #[test]
    fn merge_keeps_first_and_trims() {
        let merged = merge_dedupe([
            ExtractedIndicator::new(IndicatorType::Ip, " 1.2.3.4", "a"),
            ExtractedIndicator::new(IndicatorType::Ip, "1.2.3.4", "b"),
            ExtractedIndicator::new(IndicatorType::Domain, "1.2.3.4", "c"),
            ExtractedIndicator::new(IndicatorType::Domain, "Evil.com", "d"),
            ExtractedIndicator::new(IndicatorType::Domain, "evil.com", "e"),
            ExtractedIndicator::new(IndicatorType::Url, "   ", "f"),
            ExtractedIndicator::new(IndicatorType::Url, "", "g"),
            ExtractedIndicator::new(IndicatorType::Url, "a\0b", "h"),
        ]);
        assert_eq!(
            merged,
            vec![
                ExtractedIndicator::new(IndicatorType::Ip, "1.2.3.4", "a"),
                ExtractedIndicator::new(IndicatorType::Domain, "1.2.3.4", "c"),
                ExtractedIndicator::new(IndicatorType::Domain, "Evil.com", "d"),
                ExtractedIndicator::new(IndicatorType::Domain, "evil.com", "e"),
            ]
        );
        assert!(is_acceptable_value(" x "));
        assert!(!is_acceptable_value("\t\n"));
    }

    #[test]
    fn extract_all_runs_passes_in_order() {
        let source = sources::get("generic").unwrap();
        let raw = object(
            json!({"title": "t", "src_ip": "10.0.0.1", "user": "bob", "okta": {"ip": "10.0.0.1", "host": "h.example"}}),
        );
        let normalized = source.normalize_at(&raw, now()).unwrap();
        let mut mappings = system_mappings();
        mappings.push(mapping(None, "title", "account", Target::Normalized));
        mappings.push(mapping(None, "okta.ip", "ip", Target::RawPayload));
        mappings.push(mapping(None, "okta.host", "domain", Target::RawPayload));
        let expected_fingerprint_set = vec![
            candidate(IndicatorType::Ip, "10.0.0.1"),
            candidate(IndicatorType::Account, "bob"),
            candidate(IndicatorType::Account, "t"),
        ];
        assert_eq!(
            extract_all(source, &raw, Some(&normalized), &mappings, false),
            expected_fingerprint_set
        );
        let mut full = expected_fingerprint_set.clone();
        full.push(candidate(IndicatorType::Domain, "h.example"));
        assert_eq!(
            extract_all(source, &raw, Some(&normalized), &mappings, true),
            full
        );
        assert_eq!(
            extract_all(source, &raw, None, &mappings, true),
            vec![
                candidate(IndicatorType::Ip, "10.0.0.1"),
                candidate(IndicatorType::Account, "bob"),
                candidate(IndicatorType::Domain, "h.example")
            ]
        );
    }

    #[test]
    fn builtin_plugins_never_feed_system_mappings() {
        // ingestion.md §4 QUIRK: no builtin plugin fills the 14 extraction fields.
        let mappings = system_mappings();
        for (name, payload) in [
            (
                "sentinel",
                include_str!("../../tests/fixtures/payloads/sentinel_alert.json"),
            ),
            (
                "elastic",
                include_str!("../../tests/fixtures/payloads/elastic_alert.json"),
            ),
            (
                "splunk",
                include_str!("../../tests/fixtures/payloads/splunk_alert.json"),
            ),
        ] {
            let source = sources::get(name).unwrap();
            let raw: Map<String, Value> = serde_json::from_str(payload).unwrap();
            let normalized = source.normalize_at(&raw, now()).unwrap();
            assert!(
                pass2_normalized(&normalized, &mappings).is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn test_extraction_report_shape() {
        let source = sources::get("generic").unwrap();
        let raw = object(
            json!({"title": "Suspicious login", "severity": "high", "src_ip": " 198.51.100.7", "okta": {"ip": "198.51.100.7"}}),
        );
        let mappings = [mapping(None, "okta.ip", "ip", Target::RawPayload)];
        let report = test_extraction(source, &raw, &mappings, now());
        let mut json = serde_json::to_value(&report).unwrap();
        json["duration_ms"] = json!(0);
        assert_eq!(
            json,
            json!({
                "success": true,
                "source_name": "generic",
                "passes": [
                    {"pass_name": "source_plugin", "pass_label": "Source Plugin",
                     "indicators": [{"type": "ip", "value": " 198.51.100.7", "source_field": "src_ip"}], "error": null},
                    {"pass_name": "normalized_mappings", "pass_label": "Normalized Mappings", "indicators": [], "error": null},
                    {"pass_name": "raw_payload_mappings", "pass_label": "Raw Payload Mappings",
                     "indicators": [{"type": "ip", "value": "198.51.100.7", "source_field": "raw_payload.okta.ip"}], "error": null}
                ],
                "deduplicated": [{"type": "ip", "value": "198.51.100.7", "source_field": "src_ip"}],
                "deduplicated_count": 1,
                "normalization_preview": {
                    "title": "Suspicious login", "severity": "High", "occurred_at": "2030-06-01T12:00:00Z", "source_name": "generic",
                    "description": null, "src_ip": null, "dst_ip": null, "src_hostname": null, "dst_hostname": null,
                    "file_hash_md5": null, "file_hash_sha256": null, "file_hash_sha1": null, "actor_email": null,
                    "actor_username": null, "dns_query": null, "http_url": null, "http_hostname": null, "email_from": null,
                    "email_reply_to": null, "tags": [], "extra": {}
                },
                "error_message": null,
                "duration_ms": 0
            })
        );
    }

    #[test]
    fn test_extraction_when_normalization_fails() {
        let source = sources::get("sentinel").unwrap();
        let raw = object(
            json!({"properties": {"title": null, "severity": "High"}, "Entities": [{"Type": "ip", "Address": "1.1.1.1"}]}),
        );
        let report = test_extraction(source, &raw, &system_mappings(), now());
        assert_eq!(report.normalization_preview, None);
        assert_eq!(
            report.passes[1].error.as_deref(),
            Some(NORMALIZATION_FAILED_PASS2_ERROR)
        );
        assert_eq!(
            report.deduplicated,
            vec![ExtractedIndicator::new(
                IndicatorType::Ip,
                "1.1.1.1",
                "Entities.ip"
            )]
        );
        assert!(report.success);
    }

    #[test]
    fn target_strings() {
        assert_eq!("raw_payload".parse::<Target>(), Ok(Target::RawPayload));
        assert_eq!("normalized".parse::<Target>(), Ok(Target::Normalized));
        assert!("source_plugin".parse::<Target>().is_err());
        assert_eq!(
            serde_json::to_value(Target::RawPayload).unwrap(),
            json!("raw_payload")
        );
    }
}
