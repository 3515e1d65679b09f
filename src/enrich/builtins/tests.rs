use std::collections::BTreeSet;
use std::str::FromStr;

use super::*;
use crate::enrich::config::{HttpConfig, MaliceRules, VALUE_TYPES, VERDICTS};
use crate::enrich::extract::{ExtractionRule, extract};
use crate::enrich::template::{self, Mode, Reference, TemplateContext};
use crate::enrich::{dotpath, malice};
use crate::ingest::IndicatorType;
use serde_json::json;

const HASH_TYPES: [&str; 3] = ["hash_md5", "hash_sha1", "hash_sha256"];

fn provider(name: &str) -> &'static BuiltinProvider {
    providers().iter().find(|provider| provider.provider_name == name).unwrap()
}

fn supports(provider: &BuiltinProvider, indicator_type: &str) -> bool {
    provider.supported_indicator_types.iter().any(|t| t == indicator_type)
}

fn rules_of(provider_name: &str) -> Vec<ExtractionRule> {
    extractions()
        .iter()
        .filter(|extraction| extraction.provider_name == provider_name)
        .map(|extraction| ExtractionRule {
            indicator_type: extraction.indicator_type.clone(),
            source_path: extraction.source_path.clone(),
            target_key: extraction.target_key.clone(),
            value_type: extraction.value_type.clone(),
        })
        .collect()
}

#[test]
fn seven_providers_with_unique_names() {
    let names: Vec<&str> = providers()
        .iter()
        .map(|provider| provider.provider_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "virustotal",
            "abuseipdb",
            "okta",
            "entra",
            "internal_ip_intel",
            "hr_insider_risk",
            "asset_management"
        ]
    );
    let pattern = regex::Regex::new(r"^[a-z0-9_]+$").unwrap();
    for provider in providers() {
        assert!(pattern.is_match(&provider.provider_name));
        assert!(!provider.display_name.is_empty() && provider.display_name.len() <= 200);
        assert!(!provider.description.is_empty());
    }
}

#[test]
fn provider_table_matches_the_specification() {
    let table = [
        (
            "virustotal",
            "VirusTotal",
            "api_key",
            3600,
            json!({"api_key": "VIRUSTOTAL_API_KEY"}),
            json!({"ip": 3600, "domain": 21600, "hash_md5": 86400, "hash_sha1": 86400, "hash_sha256": 86400}),
        ),
        (
            "abuseipdb",
            "AbuseIPDB",
            "api_key",
            3600,
            json!({"api_key": "ABUSEIPDB_API_KEY"}),
            json!({"ip": 3600}),
        ),
        (
            "okta",
            "Okta",
            "api_token",
            900,
            json!({"domain": "OKTA_DOMAIN", "api_token": "OKTA_API_TOKEN"}),
            json!({"account": 900}),
        ),
        (
            "entra",
            "Microsoft Entra ID",
            "oauth2_client_credentials",
            900,
            json!({"tenant_id": "ENTRA_TENANT_ID", "client_id": "ENTRA_CLIENT_ID", "client_secret": "ENTRA_CLIENT_SECRET"}),
            json!({"account": 900}),
        ),
        (
            "internal_ip_intel",
            "Internal IP Intelligence",
            "api_key",
            1800,
            json!({"api_key": "INTERNAL_IP_INTEL_API_KEY", "base_url": "INTERNAL_IP_INTEL_BASE_URL"}),
            json!({"ip": 1800}),
        ),
        (
            "hr_insider_risk",
            "HR / Insider Risk",
            "api_key",
            900,
            json!({"api_key": "HR_INSIDER_RISK_API_KEY", "base_url": "HR_INSIDER_RISK_BASE_URL"}),
            json!({"account": 900}),
        ),
        (
            "asset_management",
            "Asset Management",
            "api_key",
            600,
            json!({"api_key": "ASSET_MGMT_API_KEY", "base_url": "ASSET_MGMT_BASE_URL"}),
            json!({"account": 600}),
        ),
    ];
    for (name, display, auth_type, ttl, env, ttl_by_type) in table {
        let provider = provider(name);
        assert_eq!(provider.display_name, display);
        assert_eq!(provider.auth_type, auth_type);
        assert_eq!(provider.default_cache_ttl_seconds, ttl);
        assert_eq!(provider.env_var_mapping, env, "{name}");
        assert_eq!(provider.cache_ttl_by_type, ttl_by_type, "{name}");
    }
    assert_eq!(
        provider("virustotal").supported_indicator_types,
        ["ip", "domain", "hash_md5", "hash_sha1", "hash_sha256"]
    );
    for (name, types) in [
        ("abuseipdb", vec!["ip"]),
        ("okta", vec!["account"]),
        ("entra", vec!["account"]),
        ("internal_ip_intel", vec!["ip"]),
        ("hr_insider_risk", vec!["account"]),
        ("asset_management", vec!["account"]),
    ] {
        assert_eq!(provider(name).supported_indicator_types, types);
    }
}

#[test]
fn every_http_config_and_malice_rules_parse() {
    for provider in providers() {
        let name = &provider.provider_name;
        let config = HttpConfig::parse(&provider.http_config)
            .unwrap_or_else(|issues| panic!("{name}: {issues:#?}"));
        assert!(!config.steps.is_empty());
        MaliceRules::parse(&provider.malice_rules)
            .unwrap_or_else(|issues| panic!("{name}: {issues:#?}"));
    }
}

#[test]
fn types_and_ttls_are_valid() {
    for provider in providers() {
        for itype in &provider.supported_indicator_types {
            assert!(IndicatorType::from_str(itype).is_ok(), "{itype}");
        }
        for (itype, seconds) in provider.cache_ttl_by_type.as_object().unwrap() {
            assert!(supports(provider, itype));
            assert!(seconds.as_i64().unwrap() > 0);
        }
        assert!((0..=86400).contains(&provider.default_cache_ttl_seconds));
    }
}

#[test]
fn every_auth_reference_has_an_environment_variable() {
    for provider in providers() {
        let mapping = provider.env_var_mapping.as_object().unwrap();
        let mut referenced = BTreeSet::new();
        collect_auth_references(&provider.http_config, &mut referenced);
        let mapped: BTreeSet<String> = mapping.keys().cloned().collect();
        assert_eq!(referenced, mapped, "{}", provider.provider_name);
    }
}

fn collect_auth_references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => {
            for reference in template::check(text).unwrap() {
                if let Reference::Auth(field) = reference {
                    out.insert(field);
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_auth_references(item, out)),
        Value::Object(map) => map
            .values()
            .for_each(|item| collect_auth_references(item, out)),
        _ => {}
    }
}

#[test]
fn requests_render_as_specified() {
    let auth = json!({
        "api_key": "key-123", "api_token": "tok-456", "domain": "acme.okta.com",
        "tenant_id": "contoso.onmicrosoft.com", "base_url": "https://intel.example.net",
    });
    let steps = json!({"user_lookup": {"id": "00u1"}, "token": {"access_token": "at"}});
    let ctx = |itype: &'static str, value: &'static str| TemplateContext {
        indicator_type: itype,
        indicator_value: value,
        auth: auth.as_object().unwrap(),
        steps: steps.as_object().unwrap(),
    };
    let url = |name: &str, index: usize, itype: &'static str, value: &'static str| {
        let config = HttpConfig::parse(&provider(name).http_config).unwrap();
        template::render(
            config.url_template(index, itype),
            &ctx(itype, value),
            Mode::Url,
        )
    };
    assert_eq!(
        url("virustotal", 0, "ip", "8.8.8.8"),
        "https://www.virustotal.com/api/v3/ip_addresses/8.8.8.8"
    );
    assert_eq!(
        url("virustotal", 0, "domain", "example.com"),
        "https://www.virustotal.com/api/v3/domains/example.com"
    );
    for hash_type in HASH_TYPES {
        assert_eq!(
            url("virustotal", 0, hash_type, "abc"),
            "https://www.virustotal.com/api/v3/files/abc"
        );
    }
    assert_eq!(
        url("abuseipdb", 0, "ip", "8.8.8.8"),
        "https://api.abuseipdb.com/api/v2/check"
    );
    assert_eq!(
        url("okta", 0, "account", "jane doe@example.com"),
        "https://acme.okta.com/api/v1/users/jane%20doe%40example.com"
    );
    assert_eq!(
        url("okta", 1, "account", "x"),
        "https://acme.okta.com/api/v1/users/00u1/groups"
    );
    assert_eq!(
        url("okta", 2, "account", "x"),
        "https://acme.okta.com/api/v1/users/00u1/linkedObjects/manager"
    );
    assert_eq!(
        url("entra", 0, "account", "x"),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(
        url("entra", 1, "account", "jane@example.com"),
        "https://graph.microsoft.com/v1.0/users/jane%40example.com?$select=id,displayName,userPrincipalName,mail,accountEnabled,department,jobTitle,lastPasswordChangeDateTime"
    );
    assert_eq!(
        url("entra", 2, "account", "x"),
        "https://graph.microsoft.com/v1.0/users/00u1/memberOf?$select=displayName"
    );
    assert_eq!(
        url("entra", 3, "account", "x"),
        "https://graph.microsoft.com/v1.0/users/00u1/manager?$select=displayName,mail,jobTitle"
    );
    assert_eq!(
        url("internal_ip_intel", 0, "ip", "2001:db8::1"),
        "https://intel.example.net/api/v1/ip/2001%3Adb8%3A%3A1"
    );
    assert_eq!(
        url("hr_insider_risk", 0, "account", "jane@example.com"),
        "https://intel.example.net/api/v1/employees/jane%40example.com"
    );
    assert_eq!(
        url("asset_management", 0, "account", "jane@example.com"),
        "https://intel.example.net/api/v1/users/jane%40example.com/devices"
    );

    let abuse = HttpConfig::parse(&provider("abuseipdb").http_config).unwrap();
    let query = template::render_value(
        &Value::Object(abuse.steps[0].query_params.clone().unwrap()),
        &ctx("ip", "8.8.8.8"),
        Mode::Text,
    );
    assert_eq!(query, json!({"ipAddress": "8.8.8.8", "maxAgeInDays": "90"}));
    let headers = template::render_value(
        &Value::Object(abuse.steps[0].headers.clone()),
        &ctx("ip", "8.8.8.8"),
        Mode::Text,
    );
    assert_eq!(
        headers,
        json!({"Key": "key-123", "Accept": "application/json"})
    );
}

#[test]
fn step_shapes_match_the_specification() {
    let config = |name: &str| HttpConfig::parse(&provider(name).http_config).unwrap();
    let virustotal = config("virustotal");
    assert_eq!(virustotal.steps.len(), 1);
    assert_eq!(virustotal.steps[0].name, "lookup");
    assert_eq!(virustotal.steps[0].not_found_status, vec![404]);
    assert_eq!(virustotal.url_templates_by_type.len(), 5);
    assert!(config("abuseipdb").steps[0].not_found_status.is_empty());

    let okta = config("okta");
    let names: Vec<&str> = okta.steps.iter().map(|step| step.name.as_str()).collect();
    assert_eq!(names, ["user_lookup", "user_groups", "user_manager"]);
    assert_eq!(
        okta.steps
            .iter()
            .map(|step| step.optional)
            .collect::<Vec<_>>(),
        [false, true, true]
    );
    assert_eq!(okta.steps[0].not_found_status, vec![404]);

    let entra = config("entra");
    let names: Vec<&str> = entra.steps.iter().map(|step| step.name.as_str()).collect();
    assert_eq!(
        names,
        ["token", "user_lookup", "user_groups", "user_manager"]
    );
    assert_eq!(entra.steps[0].method, http::Method::POST);
    assert_eq!(
        entra.steps[0].form_body.as_ref().unwrap()["grant_type"],
        json!("client_credentials")
    );
    assert!(entra.steps[3].optional);
    assert_eq!(entra.steps[3].not_found_status, vec![404]);

    for name in ["internal_ip_intel", "hr_insider_risk", "asset_management"] {
        let step = &config(name).steps[0];
        assert_eq!(step.timeout, std::time::Duration::from_secs(15));
        assert_eq!(step.expected_status, vec![200]);
        assert_eq!(step.not_found_status, vec![404]);
        assert!(step.url.starts_with("{{auth.base_url}}/api/v1/"));
        assert_eq!(
            MaliceRules::parse(&provider(name).malice_rules).unwrap(),
            MaliceRules::pending()
        );
    }
}

#[test]
fn ninety_one_unique_extractions() {
    let all = extractions();
    assert_eq!(all.len(), 91);
    let keys: BTreeSet<(&str, &str, &str)> = all
        .iter()
        .map(|extraction| {
            (
                extraction.provider_name.as_str(),
                extraction.indicator_type.as_str(),
                extraction.source_path.as_str(),
            )
        })
        .collect();
    assert_eq!(keys.len(), 91);
    let count = |provider: &str, itype: &str| {
        all.iter()
            .filter(|extraction| {
                extraction.provider_name == provider && extraction.indicator_type == itype
            })
            .count()
    };
    assert_eq!(count("virustotal", "ip"), 9);
    assert_eq!(count("virustotal", "domain"), 7);
    for hash_type in HASH_TYPES {
        assert_eq!(count("virustotal", hash_type), 7);
    }
    assert_eq!(count("abuseipdb", "ip"), 10);
    assert_eq!(count("okta", "account"), 11);
    assert_eq!(count("entra", "account"), 8);
    assert_eq!(count("internal_ip_intel", "ip"), 8);
    assert_eq!(count("hr_insider_risk", "account"), 9);
    assert_eq!(count("asset_management", "account"), 8);
}

#[test]
fn extractions_are_valid() {
    let providers = providers();
    for extraction in extractions() {
        let provider = providers
            .iter()
            .find(|provider| provider.provider_name == extraction.provider_name)
            .unwrap();
        assert!(
            supports(provider, &extraction.indicator_type),
            "{extraction:?}"
        );
        assert!(
            VALUE_TYPES.contains(&extraction.value_type.as_str()),
            "{extraction:?}"
        );
        dotpath::validate(&extraction.source_path).unwrap();
        assert!(!extraction.target_key.is_empty() && !extraction.description.is_empty());
    }
}

#[test]
fn mock_responses_cover_every_type_and_are_deterministic() {
    for provider in providers() {
        let mocks = provider.mock_responses.as_object().unwrap();
        for itype in &provider.supported_indicator_types {
            assert!(
                mocks.contains_key(itype) || mocks.contains_key("default"),
                "{itype}"
            );
        }
        for (key, entry) in mocks {
            assert!(
                key == "default" || supports(provider, key)
            );
            let entry = entry.as_object().unwrap();
            let keys: BTreeSet<&str> = entry.keys().map(String::as_str).collect();
            assert_eq!(keys, BTreeSet::from(["extracted", "malice", "raw"]));
            assert!(entry["raw"].is_object());
            assert!(entry["extracted"].is_object());
            assert!(
                !entry["extracted"]
                    .as_object()
                    .unwrap()
                    .contains_key("malice")
            );
            assert!(VERDICTS.contains(&entry["malice"].as_str().unwrap()));
        }
    }
    assert_eq!(providers(), providers());
}

#[test]
fn mock_verdicts_match_the_specification() {
    let expected = [
        ("virustotal", "ip", "Malicious"),
        ("virustotal", "domain", "Malicious"),
        ("virustotal", "hash_md5", "Malicious"),
        ("virustotal", "hash_sha1", "Malicious"),
        ("virustotal", "hash_sha256", "Malicious"),
        ("abuseipdb", "ip", "Malicious"),
        ("okta", "account", "Pending"),
        ("entra", "account", "Pending"),
        ("internal_ip_intel", "ip", "Suspicious"),
        ("internal_ip_intel", "default", "Suspicious"),
        ("hr_insider_risk", "account", "Pending"),
        ("asset_management", "account", "Pending"),
    ];
    let mut total = 0;
    for (name, key, verdict) in expected {
        assert_eq!(
            provider(name).mock_responses[key]["malice"],
            json!(verdict),
            "{name} {key}"
        );
    }
    for provider in providers() {
        total += provider.mock_responses.as_object().unwrap().len();
    }
    assert_eq!(total, expected.len());
}

#[test]
fn mock_extracted_agrees_with_live_extraction_and_rules() {
    for provider in providers() {
        let name = provider.provider_name.as_str();
        let rules = rules_of(name);
        let malice_rules = MaliceRules::parse(&provider.malice_rules).unwrap();
        for (key, entry) in provider.mock_responses.as_object().unwrap() {
            let itype = if key == "default" {
                provider.supported_indicator_types[0].as_str()
            } else {
                key.as_str()
            };
            let extracted = extract(&entry["raw"], &rules, itype);
            let mock = entry["extracted"].as_object().unwrap();
            let expected_keys: BTreeSet<&str> = rules
                .iter()
                .filter(|rule| rule.indicator_type == itype)
                .map(|rule| rule.target_key.as_str())
                .collect();
            let extracted_keys: BTreeSet<&str> = extracted.keys().map(String::as_str).collect();
            assert_eq!(
                extracted_keys, expected_keys,
                "{name} {key}: every live extraction finds its value"
            );
            for (target, value) in &extracted {
                assert_eq!(mock.get(target), Some(value), "{name} {key}.{target}");
            }
            // Rules-driven verdicts agree with the canned one; the internal intel service's
            // canned verdict is the service's own classification.
            if name != "internal_ip_intel" {
                assert_eq!(
                    json!(malice::evaluate(&entry["raw"], &malice_rules, false)),
                    entry["malice"],
                    "{name} {key}"
                );
            }
        }
    }
}

#[test]
fn every_extraction_group_names_supported_types() {
    for (name, text) in FILES {
        let file: BuiltinFile = serde_json::from_str(text).unwrap();
        for group in &file.field_extractions {
            assert!(!group.indicator_types.is_empty() && !group.fields.is_empty(), "{name}: an empty group");
            for itype in &group.indicator_types {
                assert!(file.supported_indicator_types.contains(itype), "{name}: group for unsupported type {itype}");
            }
        }
    }
}
