//! The seven builtin enrichment providers and their 91 system field extractions
//! (enrichment.md §7, §8), as data for the seed.
//!
//! Each provider's `http_config`, `malice_rules` and `mock_responses` live in
//! `builtins/<provider_name>.json`; the rest is below. Differences from the original seed:
//! * the three internal providers (`internal_ip_intel`, `hr_insider_risk`, `asset_management`)
//!   map `base_url` to an environment variable, and their `{{auth.base_url}}/api/v1/…` URLs work
//!   because placeholders forming a URL's scheme/authority are no longer percent-encoded
//!   ([`super::template::Mode::Url`]) — in the original they only worked in mock mode;
//! * Entra's optional `user_manager` step keeps `not_found_status: [404]` (a user without a
//!   manager), and the engine treats "not found" on an *optional* step as "skip this step" rather
//!   than turning the whole result into `{"found": false}` as the original did.

use serde_json::{Map, Value};

/// One builtin provider row.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinProvider {
    pub provider_name: &'static str,
    pub display_name: &'static str,
    pub description: &'static str,
    pub supported_indicator_types: Vec<&'static str>,
    pub auth_type: &'static str,
    /// `{auth_field: ENV_VAR_NAME}`.
    pub env_var_mapping: Value,
    pub default_cache_ttl_seconds: i32,
    /// `{indicator_type: seconds}`.
    pub cache_ttl_by_type: Value,
    pub http_config: Value,
    pub malice_rules: Value,
    /// `{indicator_type | "default": {"raw": …, "extracted": …, "malice": …}}`.
    pub mock_responses: Value,
}

/// One builtin (system) field extraction row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinExtraction {
    pub provider_name: &'static str,
    pub indicator_type: &'static str,
    pub source_path: &'static str,
    pub target_key: &'static str,
    pub value_type: &'static str,
    pub description: &'static str,
}

struct ProviderSpec {
    provider_name: &'static str,
    display_name: &'static str,
    description: &'static str,
    supported_indicator_types: &'static [&'static str],
    auth_type: &'static str,
    env_var_mapping: &'static [(&'static str, &'static str)],
    default_cache_ttl_seconds: i32,
    cache_ttl_by_type: &'static [(&'static str, i32)],
    /// `{"http_config", "malice_rules", "mock_responses"}` as JSON text.
    data: &'static str,
}

const HASH_TYPES: [&str; 3] = ["hash_md5", "hash_sha1", "hash_sha256"];

const PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        provider_name: "virustotal",
        display_name: "VirusTotal",
        description: "VirusTotal API v3: multi-engine reputation of IP addresses, domains and file hashes.",
        supported_indicator_types: &["ip", "domain", "hash_md5", "hash_sha1", "hash_sha256"],
        auth_type: "api_key",
        env_var_mapping: &[("api_key", "VIRUSTOTAL_API_KEY")],
        default_cache_ttl_seconds: 3600,
        cache_ttl_by_type: &[
            ("ip", 3600),
            ("domain", 21600),
            ("hash_md5", 86400),
            ("hash_sha1", 86400),
            ("hash_sha256", 86400),
        ],
        data: include_str!("builtins/virustotal.json"),
    },
    ProviderSpec {
        provider_name: "abuseipdb",
        display_name: "AbuseIPDB",
        description: "AbuseIPDB API v2: community abuse reports and confidence score of IP addresses.",
        supported_indicator_types: &["ip"],
        auth_type: "api_key",
        env_var_mapping: &[("api_key", "ABUSEIPDB_API_KEY")],
        default_cache_ttl_seconds: 3600,
        cache_ttl_by_type: &[("ip", 3600)],
        data: include_str!("builtins/abuseipdb.json"),
    },
    ProviderSpec {
        provider_name: "okta",
        display_name: "Okta",
        description: "Okta Management API v1: user account profile, status, groups and manager.",
        supported_indicator_types: &["account"],
        auth_type: "api_token",
        env_var_mapping: &[("domain", "OKTA_DOMAIN"), ("api_token", "OKTA_API_TOKEN")],
        default_cache_ttl_seconds: 900,
        cache_ttl_by_type: &[("account", 900)],
        data: include_str!("builtins/okta.json"),
    },
    ProviderSpec {
        provider_name: "entra",
        display_name: "Microsoft Entra ID",
        description: "Microsoft Graph API v1.0: Entra ID user account, group memberships and manager.",
        supported_indicator_types: &["account"],
        auth_type: "oauth2_client_credentials",
        env_var_mapping: &[
            ("tenant_id", "ENTRA_TENANT_ID"),
            ("client_id", "ENTRA_CLIENT_ID"),
            ("client_secret", "ENTRA_CLIENT_SECRET"),
        ],
        default_cache_ttl_seconds: 900,
        cache_ttl_by_type: &[("account", 900)],
        // Its optional `user_manager` step declares `not_found_status: [404]`: a user without a
        // manager skips that step only (the engine's rule for optional steps).
        data: include_str!("builtins/entra.json"),
    },
    ProviderSpec {
        provider_name: "internal_ip_intel",
        display_name: "Internal IP Intelligence",
        description: "In-house IP intelligence service: network zone, VPN/cloud/datacenter flags and prior sightings.",
        supported_indicator_types: &["ip"],
        auth_type: "api_key",
        env_var_mapping: &[
            ("api_key", "INTERNAL_IP_INTEL_API_KEY"),
            ("base_url", "INTERNAL_IP_INTEL_BASE_URL"),
        ],
        default_cache_ttl_seconds: 1800,
        cache_ttl_by_type: &[("ip", 1800)],
        data: include_str!("builtins/internal_ip_intel.json"),
    },
    ProviderSpec {
        provider_name: "hr_insider_risk",
        display_name: "HR / Insider Risk",
        description: "HR system: employment status, manager, insider-threat watch groups and risk flags of an account.",
        supported_indicator_types: &["account"],
        auth_type: "api_key",
        env_var_mapping: &[
            ("api_key", "HR_INSIDER_RISK_API_KEY"),
            ("base_url", "HR_INSIDER_RISK_BASE_URL"),
        ],
        default_cache_ttl_seconds: 900,
        cache_ttl_by_type: &[("account", 900)],
        data: include_str!("builtins/hr_insider_risk.json"),
    },
    ProviderSpec {
        provider_name: "asset_management",
        display_name: "Asset Management",
        description: "Asset inventory: devices assigned to an account with OS, compliance, EDR and network state.",
        supported_indicator_types: &["account"],
        auth_type: "api_key",
        env_var_mapping: &[
            ("api_key", "ASSET_MGMT_API_KEY"),
            ("base_url", "ASSET_MGMT_BASE_URL"),
        ],
        default_cache_ttl_seconds: 600,
        cache_ttl_by_type: &[("account", 600)],
        data: include_str!("builtins/asset_management.json"),
    },
];

/// The seven builtin providers, in seeding order.
pub fn providers() -> Vec<BuiltinProvider> {
    PROVIDERS.iter().map(build_provider).collect()
}

fn build_provider(spec: &ProviderSpec) -> BuiltinProvider {
    let mut data: Map<String, Value> = serde_json::from_str(spec.data)
        .expect("builtin provider data is a JSON object (checked by the unit tests)");
    let mut take = |key: &str| data.remove(key).unwrap_or(Value::Null);
    BuiltinProvider {
        provider_name: spec.provider_name,
        display_name: spec.display_name,
        description: spec.description,
        supported_indicator_types: spec.supported_indicator_types.to_vec(),
        auth_type: spec.auth_type,
        env_var_mapping: Value::Object(
            spec.env_var_mapping
                .iter()
                .map(|(field, variable)| ((*field).to_owned(), Value::from(*variable)))
                .collect(),
        ),
        default_cache_ttl_seconds: spec.default_cache_ttl_seconds,
        cache_ttl_by_type: Value::Object(
            spec.cache_ttl_by_type
                .iter()
                .map(|(itype, seconds)| ((*itype).to_owned(), Value::from(*seconds)))
                .collect(),
        ),
        http_config: take("http_config"),
        malice_rules: take("malice_rules"),
        mock_responses: take("mock_responses"),
    }
}

/// `(source_path, target_key, value_type, description)` of one extraction.
type Rule = (&'static str, &'static str, &'static str, &'static str);

const VIRUSTOTAL_COMMON: &[Rule] = &[
    (
        "data.attributes.last_analysis_stats.malicious",
        "malicious_count",
        "int",
        "Engines flagging it malicious",
    ),
    (
        "data.attributes.last_analysis_stats.suspicious",
        "suspicious_count",
        "int",
        "Engines flagging it suspicious",
    ),
    (
        "data.attributes.reputation",
        "reputation",
        "int",
        "VirusTotal community reputation score",
    ),
    ("data.attributes.tags", "tags", "list", "VirusTotal tags"),
];

const VIRUSTOTAL_IP: &[Rule] = &[
    (
        "data.attributes.country",
        "country",
        "string",
        "Country code of the address",
    ),
    (
        "data.attributes.as_owner",
        "as_owner",
        "string",
        "Owner of the autonomous system",
    ),
    (
        "data.attributes.asn",
        "asn",
        "int",
        "Autonomous system number",
    ),
    (
        "data.attributes.network",
        "network",
        "string",
        "Network (CIDR) the address belongs to",
    ),
    (
        "data.attributes.categories",
        "categories",
        "dict",
        "Categories assigned by URL-filtering vendors",
    ),
];

const VIRUSTOTAL_DOMAIN: &[Rule] = &[
    (
        "data.attributes.registrar",
        "registrar",
        "string",
        "Domain registrar",
    ),
    (
        "data.attributes.creation_date",
        "creation_date",
        "int",
        "Registration date (Unix time)",
    ),
    (
        "data.attributes.categories",
        "categories",
        "dict",
        "Categories assigned by URL-filtering vendors",
    ),
];

const VIRUSTOTAL_HASH: &[Rule] = &[
    (
        "data.attributes.meaningful_name",
        "meaningful_name",
        "string",
        "Most descriptive file name seen",
    ),
    (
        "data.attributes.type_description",
        "type_description",
        "string",
        "File type",
    ),
    ("data.attributes.size", "size", "int", "File size in bytes"),
];

const ABUSEIPDB_IP: &[Rule] = &[
    (
        "data.abuseConfidenceScore",
        "abuse_confidence_score",
        "int",
        "Abuse confidence score (0-100)",
    ),
    (
        "data.totalReports",
        "total_reports",
        "int",
        "Abuse reports in the last 90 days",
    ),
    ("data.countryCode", "country_code", "string", "Country code"),
    ("data.isp", "isp", "string", "Internet service provider"),
    (
        "data.usageType",
        "usage_type",
        "string",
        "Usage type of the address",
    ),
    (
        "data.isWhitelisted",
        "is_whitelisted",
        "bool",
        "Address is on AbuseIPDB's allow list",
    ),
    ("data.isTor", "is_tor", "bool", "Address is a Tor exit node"),
    ("data.isPublic", "is_public", "bool", "Address is public"),
    (
        "data.numDistinctUsers",
        "num_distinct_users",
        "int",
        "Distinct users who reported it",
    ),
    (
        "data.lastReportedAt",
        "last_reported_at",
        "string",
        "Time of the latest report",
    ),
];

const OKTA_ACCOUNT: &[Rule] = &[
    ("user_lookup.id", "user_id", "string", "Okta user ID"),
    ("user_lookup.profile.login", "login", "string", "Okta login"),
    (
        "user_lookup.profile.email",
        "email",
        "string",
        "Primary email address",
    ),
    (
        "user_lookup.profile.firstName",
        "first_name",
        "string",
        "First name",
    ),
    (
        "user_lookup.profile.lastName",
        "last_name",
        "string",
        "Last name",
    ),
    (
        "user_lookup.profile.department",
        "department",
        "string",
        "Department",
    ),
    ("user_lookup.profile.title", "title", "string", "Job title"),
    (
        "user_lookup.status",
        "status",
        "string",
        "Account status (ACTIVE, SUSPENDED, …)",
    ),
    (
        "user_lookup.created",
        "created",
        "string",
        "Account creation time",
    ),
    (
        "user_lookup.lastLogin",
        "last_login",
        "string",
        "Time of the last login",
    ),
    (
        "user_lookup.passwordChanged",
        "password_changed",
        "string",
        "Time of the last password change",
    ),
];

const ENTRA_ACCOUNT: &[Rule] = &[
    ("user_lookup.id", "object_id", "string", "Entra object ID"),
    (
        "user_lookup.userPrincipalName",
        "user_principal_name",
        "string",
        "User principal name",
    ),
    (
        "user_lookup.displayName",
        "display_name",
        "string",
        "Display name",
    ),
    ("user_lookup.mail", "mail", "string", "Email address"),
    (
        "user_lookup.accountEnabled",
        "account_enabled",
        "bool",
        "Account is enabled",
    ),
    (
        "user_lookup.department",
        "department",
        "string",
        "Department",
    ),
    ("user_lookup.jobTitle", "job_title", "string", "Job title"),
    (
        "user_lookup.lastPasswordChangeDateTime",
        "last_password_change",
        "string",
        "Time of the last password change",
    ),
];

const INTERNAL_IP_INTEL_IP: &[Rule] = &[
    (
        "classification",
        "classification",
        "string",
        "Internal classification of the address",
    ),
    ("network_zone", "network_zone", "string", "Network zone"),
    (
        "is_vpn",
        "is_vpn",
        "bool",
        "Address belongs to a VPN service",
    ),
    (
        "is_cloud",
        "is_cloud",
        "bool",
        "Address belongs to a cloud provider",
    ),
    (
        "is_datacenter",
        "is_datacenter",
        "bool",
        "Address is in a datacenter",
    ),
    ("is_internal", "is_internal", "bool", "Address is internal"),
    (
        "known_asset",
        "known_asset",
        "bool",
        "Address belongs to a known asset",
    ),
    (
        "previous_sightings",
        "previous_sightings",
        "number",
        "Earlier sightings of the address",
    ),
];

const HR_INSIDER_RISK_ACCOUNT: &[Rule] = &[
    ("employee_id", "employee_id", "string", "Employee ID"),
    (
        "employment_status",
        "employment_status",
        "string",
        "Employment status",
    ),
    (
        "employment_type",
        "employment_type",
        "string",
        "Employment type",
    ),
    ("hire_date", "hire_date", "string", "Hire date"),
    ("manager.name", "manager_name", "string", "Manager's name"),
    (
        "manager.email",
        "manager_email",
        "string",
        "Manager's email address",
    ),
    (
        "insider_threat_groups",
        "insider_threat_groups",
        "list",
        "Insider-threat watch groups",
    ),
    ("risk_flags", "risk_flags", "list", "HR risk flags"),
    (
        "notice_period_active",
        "notice_period_active",
        "bool",
        "Employee is serving a notice period",
    ),
];

const ASSET_MANAGEMENT_ACCOUNT: &[Rule] = &[
    (
        "total_devices",
        "total_devices",
        "int",
        "Devices assigned to the account",
    ),
    (
        "devices.0.device_name",
        "primary_device_name",
        "string",
        "Primary device name",
    ),
    (
        "devices.0.os",
        "primary_device_os",
        "string",
        "Primary device operating system",
    ),
    (
        "devices.0.compliance_status",
        "primary_device_compliance",
        "string",
        "Primary device compliance status",
    ),
    (
        "devices.0.edr.agent",
        "primary_edr_agent",
        "string",
        "EDR agent on the primary device",
    ),
    (
        "devices.0.edr.status",
        "primary_edr_status",
        "string",
        "EDR agent status on the primary device",
    ),
    (
        "devices.0.managed_by",
        "primary_device_managed_by",
        "string",
        "Management system of the primary device",
    ),
    (
        "devices.0.network.last_ip",
        "primary_device_last_ip",
        "string",
        "Last IP address of the primary device",
    ),
];

/// The 91 builtin field extractions, in seeding order.
pub fn extractions() -> Vec<BuiltinExtraction> {
    let mut groups: Vec<(&'static str, &'static str, &'static [Rule])> = vec![
        ("virustotal", "ip", VIRUSTOTAL_COMMON),
        ("virustotal", "ip", VIRUSTOTAL_IP),
        ("virustotal", "domain", VIRUSTOTAL_COMMON),
        ("virustotal", "domain", VIRUSTOTAL_DOMAIN),
    ];
    for hash_type in HASH_TYPES {
        groups.push(("virustotal", hash_type, VIRUSTOTAL_COMMON));
        groups.push(("virustotal", hash_type, VIRUSTOTAL_HASH));
    }
    groups.extend([
        ("abuseipdb", "ip", ABUSEIPDB_IP),
        ("okta", "account", OKTA_ACCOUNT),
        ("entra", "account", ENTRA_ACCOUNT),
        ("internal_ip_intel", "ip", INTERNAL_IP_INTEL_IP),
        ("hr_insider_risk", "account", HR_INSIDER_RISK_ACCOUNT),
        ("asset_management", "account", ASSET_MANAGEMENT_ACCOUNT),
    ]);

    groups
        .into_iter()
        .flat_map(|(provider_name, indicator_type, rules)| {
            rules
                .iter()
                .map(
                    move |&(source_path, target_key, value_type, description)| BuiltinExtraction {
                        provider_name,
                        indicator_type,
                        source_path,
                        target_key,
                        value_type,
                        description,
                    },
                )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::str::FromStr;

    use super::*;
    use crate::enrich::config::{HttpConfig, MaliceRules, VALUE_TYPES, VERDICTS};
    use crate::enrich::extract::{ExtractionRule, extract};
    use crate::enrich::template::{self, Mode, Reference, TemplateContext};
    use crate::enrich::{dotpath, malice};
    use crate::ingest::IndicatorType;
    use serde_json::json;

    fn provider(name: &str) -> BuiltinProvider {
        providers()
            .into_iter()
            .find(|provider| provider.provider_name == name)
            .unwrap()
    }

    fn rules_of(provider_name: &str) -> Vec<ExtractionRule> {
        extractions()
            .into_iter()
            .filter(|extraction| extraction.provider_name == provider_name)
            .map(|extraction| ExtractionRule {
                indicator_type: extraction.indicator_type.into(),
                source_path: extraction.source_path.into(),
                target_key: extraction.target_key.into(),
                value_type: extraction.value_type.into(),
            })
            .collect()
    }

    #[test]
    fn seven_providers_with_unique_names() {
        let names: Vec<&str> = providers()
            .iter()
            .map(|provider| provider.provider_name)
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
            assert!(pattern.is_match(provider.provider_name));
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
            let name = provider.provider_name;
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
                assert!(provider.supported_indicator_types.contains(&itype.as_str()));
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
                    extraction.provider_name,
                    extraction.indicator_type,
                    extraction.source_path,
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
                provider
                    .supported_indicator_types
                    .contains(&extraction.indicator_type),
                "{extraction:?}"
            );
            assert!(
                VALUE_TYPES.contains(&extraction.value_type),
                "{extraction:?}"
            );
            dotpath::validate(extraction.source_path).unwrap();
            assert!(!extraction.target_key.is_empty() && !extraction.description.is_empty());
        }
    }

    #[test]
    fn mock_responses_cover_every_type_and_are_deterministic() {
        for provider in providers() {
            let mocks = provider.mock_responses.as_object().unwrap();
            for itype in &provider.supported_indicator_types {
                assert!(
                    mocks.contains_key(*itype) || mocks.contains_key("default"),
                    "{itype}"
                );
            }
            for (key, entry) in mocks {
                assert!(
                    key == "default" || provider.supported_indicator_types.contains(&key.as_str())
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
            let name = provider.provider_name;
            let rules = rules_of(name);
            let malice_rules = MaliceRules::parse(&provider.malice_rules).unwrap();
            for (key, entry) in provider.mock_responses.as_object().unwrap() {
                let itype = if key == "default" {
                    provider.supported_indicator_types[0]
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
}
