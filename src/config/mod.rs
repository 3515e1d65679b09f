//! Settings: built-in defaults → `config/default.toml` → the file named by `CALSETA_CONFIG` →
//! `.env` → process environment (highest). Names are Calseta's environment variable names,
//! lower-cased as struct fields. Any secret can also be read from a file named by `<NAME>_FILE`
//! (Docker / Kubernetes secrets). `ENVIRONMENT=production` refuses unsafe settings at start-up,
//! naming the setting.

mod checks;
mod defaults;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `development` (default) or `production`.
    pub environment: String,
    /// `sqlite://…` or `postgres://…`; unset means the embedded SQLite file under `./data`.
    pub database_url: Option<String>,
    pub database_max_connections: u32,
    /// Listen address of `serve` (also `--bind`).
    pub calseta_bind: String,
    pub app_version: String,
    pub log_format: String,
    pub log_level: String,

    // Secrets.
    pub encryption_key: Option<String>,
    pub sentinel_webhook_secret: Option<String>,
    pub elastic_webhook_secret: Option<String>,
    pub splunk_webhook_secret: Option<String>,

    // HTTP surface.
    pub cors_allowed_origins: String,
    #[serde(deserialize_with = "lenient_bool")]
    pub cors_allow_all_origins: bool,
    #[serde(deserialize_with = "lenient_bool")]
    pub https_enabled: bool,
    #[serde(deserialize_with = "lenient_bool")]
    pub security_header_hsts_enabled: bool,
    pub trusted_proxy_count: usize,
    pub max_request_body_size_mb: u64,
    pub max_ingest_payload_size_mb: u64,
    /// Deepest JSON nesting accepted in a request body.
    pub max_json_depth: usize,
    /// Serve `/openapi.json` and the docs UI. Defaults on in development, off in production.
    #[serde(deserialize_with = "lenient_optional_bool")]
    pub docs_enabled: Option<bool>,
    /// Production refuses `docs_enabled=true` unless this explicit opt-in is set too.
    #[serde(deserialize_with = "lenient_bool")]
    pub docs_allow_in_production: bool,

    // Rate limits (per minute; 0 = unlimited).
    pub rate_limit_default_per_minute: u32,
    pub rate_limit_unauthed_per_minute: u32,
    pub rate_limit_ingest_per_minute: u32,
    pub rate_limit_enrichment_per_minute: u32,
    pub rate_limit_workflow_execute_per_minute: u32,
    /// Shared limiter store; unset = in-process limiter (one replica only).
    pub redis_url: Option<String>,
    /// What to do when the shared store is unreachable: `default` (fail closed for
    /// unauthenticated and ingest traffic, open for the rest), `open` or `closed`.
    pub rate_limit_store_failure: String,
    /// Prefix of every rate-limit key in Redis (separate deployments sharing one Redis).
    pub rate_limit_redis_namespace: String,
    /// How many replicas serve this deployment; >1 requires a shared limiter store.
    pub calseta_replicas: u32,

    // Auth.
    /// How long a verified API key is trusted without re-reading its row (seconds).
    pub auth_cache_refresh_seconds: u64,
    /// How long a verified API key skips argon2 (seconds).
    pub auth_cache_ttl_seconds: u64,
    /// Print a one-time admin key on first start when no key exists.
    #[serde(deserialize_with = "lenient_bool")]
    pub bootstrap_admin_key: bool,

    // Ingestion and the job queue.
    /// Fingerprint dedup window; 0 disables dedup.
    pub alert_dedup_window_hours: i64,
    /// Sources allowed to run without a webhook secret in production (comma-separated), an
    /// explicit waiver of the "signed or refused" rule.
    pub ingest_unsigned_sources_allowed: String,
    /// Signed sources (comma-separated) whose alerts `POST /v1/alerts` may accept in production
    /// without the webhook signature, an explicit waiver (by default production refuses them).
    pub ingest_api_signed_sources_allowed: String,
    /// Worker tasks per process.
    pub queue_concurrency: usize,
    /// Attempts of `enrich_alert` before it is marked failed.
    pub queue_max_retries: i32,
    /// Wait between `enrich_alert` attempts (seconds).
    pub queue_retry_backoff_seconds: i32,
    /// How often an idle worker looks for jobs enqueued by other processes (ms).
    pub queue_poll_interval_ms: u64,
    /// How long a claimed job stays reserved for its worker; after that (a crashed worker) it is
    /// claimable again (seconds).
    pub queue_lease_seconds: u64,
    /// How often finished jobs older than 7 days are deleted (the `prune_finished_jobs` periodic
    /// job, run once per period across all processes) (seconds).
    pub queue_prune_interval_seconds: u64,

    // Outbound HTTP (the egress gateway).
    /// Hosts and CIDRs the egress gateway may reach even though they are not globally routable
    /// (comma-separated: `vault.corp.example, 10.20.0.0/16, 127.0.0.1`). Empty = public only.
    pub ssrf_allowed_hosts: String,
    /// Refuse plain-http outbound URLs (at save and at send).
    #[serde(deserialize_with = "lenient_bool")]
    pub egress_require_https: bool,
    /// TCP+TLS connect timeout of every outbound request (seconds).
    pub egress_connect_timeout_seconds: u64,
    /// Upper bound on any outbound request's total time, whatever a provider step asks (seconds).
    pub egress_max_timeout_seconds: u64,
    /// Largest outbound response body read; longer bodies fail the request (bytes).
    pub egress_max_response_bytes: u64,

    // Encryption.
    /// Keys that may still open older values during a rotation (comma-separated, base64).
    /// Never used to seal.
    pub encryption_key_previous: Option<String>,

    // Enrichment.
    /// Providers answer with their seeded canned responses; no network.
    #[serde(deserialize_with = "lenient_bool")]
    pub enrichment_mock_mode: bool,
    /// Consecutive failures after which a provider's circuit opens.
    pub enrichment_breaker_failures: u32,
    /// How long an open circuit stays open before one trial call (seconds).
    pub enrichment_breaker_cooldown_seconds: u64,
    /// Memory for cached enrichment results per process (MiB): each entry weighs its serialized
    /// size plus its bookkeeping; least recently used evicted first.
    pub enrichment_cache_max_mb: u64,
    /// How often a process re-checks provider / extraction rows changed by another process (ms).
    pub enrichment_registry_refresh_ms: u64,
    /// Credentials of the builtin providers, used when a provider has no stored auth_config.
    pub virustotal_api_key: Option<String>,
    pub abuseipdb_api_key: Option<String>,
    pub okta_domain: Option<String>,
    pub okta_api_token: Option<String>,
    pub entra_tenant_id: Option<String>,
    pub entra_client_id: Option<String>,
    pub entra_client_secret: Option<String>,
    pub internal_ip_intel_api_key: Option<String>,
    pub internal_ip_intel_base_url: Option<String>,
    pub hr_insider_risk_api_key: Option<String>,
    pub hr_insider_risk_base_url: Option<String>,
    pub asset_mgmt_api_key: Option<String>,
    pub asset_mgmt_base_url: Option<String>,

    // Demo data.
    /// Seed the demo data and keys at start-up and reset them periodically (implies
    /// `enrichment_mock_mode`; refused in production).
    #[serde(deserialize_with = "lenient_bool")]
    pub sandbox_mode: bool,
    /// Hours between sandbox resets; fractions allowed (Calseta declares it and resets daily).
    pub sandbox_reset_interval_hours: f64,

    // Workflows (issue 9): the sandbox, ctx grants, integrations, the generator, approvals.
    /// Run workflows at all. When false no sandbox is started and production may start on a
    /// host without the sandbox's kernel layers.
    #[serde(deserialize_with = "lenient_bool")]
    pub workflows_enabled: bool,
    /// Python asked once for the real interpreter (default `python3` on PATH).
    pub workflow_python: Option<String>,
    /// Address-space cap of each sandboxed interpreter (MiB).
    pub workflow_max_memory_mb: u64,
    /// Pre-spawned single-use interpreters kept ready.
    pub workflow_pool_size: usize,
    /// Workflow runs executing at once per process.
    pub workflow_max_concurrent_runs: usize,
    /// Names (comma-separated) of environment variables `ctx.secrets.get` may return. Nothing
    /// else is readable by workflow code; platform settings are refused.
    pub workflow_secrets: String,
    /// `POST /v1/workflows/generate` calls the Anthropic Messages API with this key.
    pub anthropic_api_key: Option<String>,
    pub anthropic_base_url: String,
    pub workflow_generate_model: String,
    /// Okta API origin for workflow integrations (default `https://<OKTA_DOMAIN>`).
    pub okta_base_url: Option<String>,
    /// Entra token and Graph origins for workflow integrations.
    pub entra_login_base_url: String,
    pub entra_graph_base_url: String,
    /// Approval window when a workflow's own `approval_timeout_seconds` is 0.
    pub approval_default_timeout_seconds: i64,
    /// `none` (log only), `slack` or `teams` (see `crate::approvals::notify`).
    pub approval_notifier: String,
    /// Public base of this server in notifications (browser decide links).
    pub calseta_base_url: String,
    /// `calseta_api_base_url` of agent webhook payloads: where agents call back.
    pub calseta_api_base_url: String,

    // MCP (issue 12). The transports are served on the API listener; `MCP_BIND` (e.g.
    // `0.0.0.0:8001`, Calseta's MCP port) adds a listener that serves only them.
    pub mcp_bind: Option<String>,
    /// The URL clients reach this server at (`https://calseta.example`): its host is an allowed
    /// MCP `Host` (DNS-rebinding protection refuses others).
    pub calseta_public_url: Option<String>,
    /// More allowed MCP `Host` values, comma-separated (`name` = any port, `name:port`).
    pub mcp_allowed_hosts: String,
    // Approval decisions (issue 10).
    /// Let the key that triggered an approval request decide it too (four-eyes off). Default off.
    #[serde(deserialize_with = "lenient_bool")]
    pub approval_allow_self_approval: bool,
    /// Slack channel for requests whose workflow names none (required by `APPROVAL_NOTIFIER=slack`).
    pub approval_default_channel: Option<String>,
    pub slack_bot_token: Option<String>,
    /// Verifies Slack interactivity callbacks (`v0` signatures); without it they are refused.
    pub slack_signing_secret: Option<String>,
    pub teams_webhook_url: Option<String>,
    /// Slack Web API origin (tests point it at a fake Slack).
    pub slack_api_base_url: String,
    /// Attempts of each notification job, and the first retry's wait (doubling, jittered, ≤ 1 h).
    pub approval_notify_max_attempts: i32,
    pub approval_notify_retry_seconds: u64,
    /// Expired pending requests are swept to `expired` this often.
    pub approval_sweep_interval_seconds: u64,

    // Retention (issue 14): rows older than N days are purged by the `purge_expired_rows` job;
    // 0 = keep forever (default). The audit log is never purged (its hash chain would break).
    /// Alerts (with their indicator links, agent runs, and indicators no longer linked to any).
    pub retention_alerts_days: u32,
    pub retention_workflow_runs_days: u32,
    pub retention_agent_runs_days: u32,
    pub retention_activity_events_days: u32,
    /// Finished jobs (succeeded, failed, cancelled). The queue already drops them after 7 days;
    /// a smaller value drops them sooner.
    pub retention_finished_jobs_days: u32,
    /// How often the purge runs (seconds).
    pub retention_interval_seconds: u64,
    /// Rows deleted per transaction: small batches keep the write lock short.
    pub retention_batch_size: u32,
    /// How often the alert metrics rollups are brought up to date (seconds).
    pub metrics_rollup_interval_seconds: u64,

    // Operations (issue 15): metrics, network controls, cloud secret backends. All off by default.
    /// Collect Prometheus metrics and serve `/metrics` behind an admin key on the API listener.
    #[serde(deserialize_with = "lenient_bool")]
    pub metrics_enabled: bool,
    /// Serve `/metrics` (unauthenticated) on this address instead; implies `METRICS_ENABLED`.
    pub metrics_bind: Option<String>,
    /// Client addresses allowed to call the API (comma-separated IPs/CIDRs); empty = any. The
    /// client address is resolved through `TRUSTED_PROXY_COUNT`. Health probes are exempt.
    pub ip_allowlist: String,
    /// `Host` header values accepted (comma-separated; `*.example.com` matches subdomains; a
    /// port in the header is ignored); empty = any.
    pub trusted_hosts: String,
    /// Redirect plain-http requests to https (308). The scheme is read from `X-Forwarded-Proto`
    /// only when the socket peer is in `TRUSTED_PROXIES`.
    #[serde(deserialize_with = "lenient_bool")]
    pub https_redirect: bool,
    /// Proxies (comma-separated IPs/CIDRs) whose `X-Forwarded-Proto` is believed.
    pub trusted_proxies: String,
    /// Cloud secret backends, read at start-up (see `crate::secrets`); Azure wins if both are set.
    pub azure_key_vault_url: Option<String>,
    pub aws_secrets_manager_secret_name: Option<String>,
    pub aws_region: Option<String>,
    /// OpenTelemetry traces: the OTLP/HTTP collector's base URL (`http://collector:4318`; spans go
    /// to `<it>/v1/traces`). Unset = no traces, no cost.
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub otel_service_name: String,
}

/// Booleans accept the usual spellings (`true/false/1/0/yes/no/on/off`, any case), as Calseta did.
fn parse_bool(value: &serde_json::Value) -> Option<bool> {
    match value {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::Number(n) => n.as_i64().and_then(|n| match n {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }),
        serde_json::Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    parse_bool(&value).ok_or_else(|| serde::de::Error::custom(format!("expected a boolean (true/false/1/0/yes/no/on/off), got {value}")))
}

fn lenient_optional_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    match &value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
        _ => parse_bool(&value)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a boolean (true/false/1/0/yes/no/on/off), got {value}"))),
    }
}

/// Debug output never shows secret values (a stray `?settings` in a log must not leak them).
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut value = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        if let Some(map) = value.as_object_mut() {
            for name in SECRET_SETTINGS {
                if let Some(v) = map.get_mut(&name.to_lowercase())
                    && !v.is_null() {
                        *v = serde_json::Value::String("<redacted>".into());
                    }
            }
        }
        write!(f, "Settings({value})")
    }
}

/// Settings that hold secrets: each may come from `<NAME>_FILE` instead.
const SECRET_SETTINGS: &[&str] = &[
    "DATABASE_URL",
    "ENCRYPTION_KEY",
    "REDIS_URL",
    "SENTINEL_WEBHOOK_SECRET",
    "ELASTIC_WEBHOOK_SECRET",
    "SPLUNK_WEBHOOK_SECRET",
    "ENCRYPTION_KEY_PREVIOUS",
    "VIRUSTOTAL_API_KEY",
    "ABUSEIPDB_API_KEY",
    "OKTA_API_TOKEN",
    "ENTRA_CLIENT_SECRET",
    "INTERNAL_IP_INTEL_API_KEY",
    "HR_INSIDER_RISK_API_KEY",
    "ASSET_MGMT_API_KEY",
    "ANTHROPIC_API_KEY",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "TEAMS_WEBHOOK_URL",
];

/// Settings a builtin provider's `env_var_mapping` may name (its credentials come from here, so
/// `.env`, `_FILE` and config files work for them like for every other setting).
const PROVIDER_CREDENTIAL_SETTINGS: &[&str] = &[
    "VIRUSTOTAL_API_KEY",
    "ABUSEIPDB_API_KEY",
    "OKTA_DOMAIN",
    "OKTA_API_TOKEN",
    "ENTRA_TENANT_ID",
    "ENTRA_CLIENT_ID",
    "ENTRA_CLIENT_SECRET",
    "INTERNAL_IP_INTEL_API_KEY",
    "INTERNAL_IP_INTEL_BASE_URL",
    "HR_INSIDER_RISK_API_KEY",
    "HR_INSIDER_RISK_BASE_URL",
    "ASSET_MGMT_API_KEY",
    "ASSET_MGMT_BASE_URL",
];

/// Calseta's older names accepted as aliases (the canonical name wins when both are set).
const ALIASES: &[(&str, &str)] = &[
    ("rate_limit_authed_per_minute", "rate_limit_default_per_minute"),
    ("rate_limit_storage_url", "redis_url"),
];

/// Names of every known setting, upper-cased as environment variables. Only these are read from
/// the environment, so unrelated variables (PATH, HOME, …) never leak into the settings.
/// Every setting's name, lower case (what a secret backend may set).
pub fn known_setting_names() -> Vec<String> {
    let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
    defaults.as_object().expect("object").keys().cloned().collect()
}

fn known_env_names() -> Vec<String> {
    let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
    let mut names: Vec<String> =
        defaults.as_object().expect("object").keys().map(|k| k.to_uppercase()).collect();
    names.extend(ALIASES.iter().map(|(alias, _)| alias.to_uppercase()));
    names
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration error: {0}")]
    Invalid(String),
    #[error("refusing to start in production: {setting}: {reason}")]
    Production { setting: &'static str, reason: String },
}

impl Settings {
    /// Loads the layered settings. `.env` is read into the process environment first (existing
    /// variables win over it, as documented).
    pub fn load() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_figment(Self::figment())
    }

    pub fn figment() -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if Path::new("config/default.toml").exists() {
            figment = figment.merge(Toml::file("config/default.toml"));
        }
        if let Ok(path) = std::env::var("CALSETA_CONFIG") {
            figment = figment.merge(Toml::file_exact(path));
        }
        let known = known_env_names();
        let only_known = move |k: &figment::value::UncasedStr| known.iter().any(|n| k == n.as_str());
        let aliases = Env::raw()
            .filter(|k| ALIASES.iter().any(|(alias, _)| k == *alias))
            .map(|k| {
                let canonical = ALIASES.iter().find(|(alias, _)| k == *alias).map(|(_, c)| *c);
                canonical.unwrap_or(k.as_str()).to_owned().into()
            });
        figment
            .merge(aliases)
            .merge(Env::raw().filter(only_known.clone()).map(|k| k.as_str().to_lowercase().into()))
            .merge(Serialized::defaults(secret_files()))
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let mut settings: Settings =
            figment.extract().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        // Empty strings in the environment mean "unset" for optional settings.
        for field in [
            &mut settings.database_url,
            &mut settings.encryption_key,
            &mut settings.redis_url,
            &mut settings.sentinel_webhook_secret,
            &mut settings.elastic_webhook_secret,
            &mut settings.splunk_webhook_secret,
            &mut settings.encryption_key_previous,
            &mut settings.virustotal_api_key,
            &mut settings.abuseipdb_api_key,
            &mut settings.okta_domain,
            &mut settings.okta_api_token,
            &mut settings.entra_tenant_id,
            &mut settings.entra_client_id,
            &mut settings.entra_client_secret,
            &mut settings.internal_ip_intel_api_key,
            &mut settings.internal_ip_intel_base_url,
            &mut settings.hr_insider_risk_api_key,
            &mut settings.hr_insider_risk_base_url,
            &mut settings.asset_mgmt_api_key,
            &mut settings.asset_mgmt_base_url,
            &mut settings.approval_default_channel,
            &mut settings.slack_bot_token,
            &mut settings.slack_signing_secret,
            &mut settings.teams_webhook_url,
            &mut settings.metrics_bind,
            &mut settings.azure_key_vault_url,
            &mut settings.aws_secrets_manager_secret_name,
            &mut settings.aws_region,
            &mut settings.otel_exporter_otlp_endpoint,
        ] {
            if field.as_deref().is_some_and(|v| v.trim().is_empty()) {
                *field = None;
            }
        }
        settings.validate()?;
        // The demo alerts must never reach a real vendor: the sandbox enriches with canned data.
        settings.enrichment_mock_mode |= settings.sandbox_mode;
        Ok(settings)
    }

    /// The period of the sandbox reset job (at least one second).
    pub fn sandbox_reset_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64((self.sandbox_reset_interval_hours * 3600.0).max(1.0))
    }

    pub fn is_production(&self) -> bool {
        self.environment.eq_ignore_ascii_case("production")
    }

    /// The `Host` values MCP requests may carry: loopback, the public URL's host, and
    /// `MCP_ALLOWED_HOSTS`.
    pub fn mcp_allowed_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        let public = self.calseta_public_url.as_deref().and_then(|u| url::Url::parse(u).ok());
        if let Some(url) = public
            && let Some(host) = url.host_str()
        {
            hosts.push(match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            });
        }
        hosts.extend(self.mcp_allowed_hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned));
        hosts
    }

    pub fn docs_enabled(&self) -> bool {
        self.docs_enabled.unwrap_or(!self.is_production())
    }

    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_allowed_origins
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The shared secret a webhook source's signature is checked with, by its setting name.
    pub fn webhook_secret(&self, setting: &str) -> Option<&str> {
        match setting {
            "SENTINEL_WEBHOOK_SECRET" => self.sentinel_webhook_secret.as_deref(),
            "ELASTIC_WEBHOOK_SECRET" => self.elastic_webhook_secret.as_deref(),
            "SPLUNK_WEBHOOK_SECRET" => self.splunk_webhook_secret.as_deref(),
            _ => None,
        }
    }

    /// A provider credential setting by its environment-variable name (a builtin provider's
    /// `env_var_mapping` value); `None` for names that are not provider credentials.
    pub fn provider_credential(&self, env_name: &str) -> Option<&str> {
        if !PROVIDER_CREDENTIAL_SETTINGS.contains(&env_name) {
            return None;
        }
        let value = match env_name {
            "VIRUSTOTAL_API_KEY" => &self.virustotal_api_key,
            "ABUSEIPDB_API_KEY" => &self.abuseipdb_api_key,
            "OKTA_DOMAIN" => &self.okta_domain,
            "OKTA_API_TOKEN" => &self.okta_api_token,
            "ENTRA_TENANT_ID" => &self.entra_tenant_id,
            "ENTRA_CLIENT_ID" => &self.entra_client_id,
            "ENTRA_CLIENT_SECRET" => &self.entra_client_secret,
            "INTERNAL_IP_INTEL_API_KEY" => &self.internal_ip_intel_api_key,
            "INTERNAL_IP_INTEL_BASE_URL" => &self.internal_ip_intel_base_url,
            "HR_INSIDER_RISK_API_KEY" => &self.hr_insider_risk_api_key,
            "HR_INSIDER_RISK_BASE_URL" => &self.hr_insider_risk_base_url,
            "ASSET_MGMT_API_KEY" => &self.asset_mgmt_api_key,
            "ASSET_MGMT_BASE_URL" => &self.asset_mgmt_base_url,
            _ => return None,
        };
        value.as_deref()
    }

    /// Sources explicitly allowed to ingest unsigned in production.
    pub fn unsigned_sources_allowed(&self) -> Vec<String> {
        self.ingest_unsigned_sources_allowed.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }

    /// Signed sources production lets `POST /v1/alerts` accept without their signature.
    pub fn api_signed_sources_allowed(&self) -> Vec<String> {
        self.ingest_api_signed_sources_allowed.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }

    /// The database URL, defaulting to the embedded SQLite file.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| "sqlite://data/calseta.db".into())
    }
}

/// `<NAME>_FILE` → the file's contents (one trailing newline trimmed) as `<name>`. A directly set
/// `<NAME>` wins over the file, so this layer only fills what the environment left unset.
fn secret_files() -> serde_json::Map<String, serde_json::Value> {
    let mut values = serde_json::Map::new();
    for name in SECRET_SETTINGS {
        if std::env::var(name).is_ok_and(|v| !v.is_empty()) {
            continue;
        }
        let Ok(path) = std::env::var(format!("{name}_FILE")) else { continue };
        match std::fs::read_to_string(PathBuf::from(&path)) {
            Ok(content) => {
                let value = content.strip_suffix('\n').unwrap_or(&content);
                let value = value.strip_suffix('\r').unwrap_or(value);
                values.insert(name.to_lowercase(), serde_json::Value::String(value.to_owned()));
            }
            Err(e) => eprintln!("warning: cannot read {name}_FILE ({path}): {e}"),
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn layering_and_aliases() {
        Jail::expect_with(|jail| {
            jail.create_dir("config")?;
            jail.create_file("config/default.toml", "rate_limit_ingest_per_minute = 7\nlog_level = \"debug\"")?;
            jail.set_env("LOG_LEVEL", "warn");
            jail.set_env("RATE_LIMIT_AUTHED_PER_MINUTE", "99");
            let s = Settings::from_figment(Settings::figment()).unwrap();
            assert_eq!(s.rate_limit_ingest_per_minute, 7);
            assert_eq!(s.log_level, "warn");
            assert_eq!(s.rate_limit_default_per_minute, 99);
            jail.set_env("RATE_LIMIT_DEFAULT_PER_MINUTE", "5");
            let s = Settings::from_figment(Settings::figment()).unwrap();
            assert_eq!(s.rate_limit_default_per_minute, 5, "canonical name wins over alias");
            Ok(())
        });
    }

    #[test]
    fn secret_from_file() {
        Jail::expect_with(|jail| {
            jail.create_file("secret.txt", "s3cr3t\n")?;
            let path = jail.directory().join("secret.txt");
            jail.set_env("SPLUNK_WEBHOOK_SECRET_FILE", path.display().to_string());
            let s = Settings::from_figment(Settings::figment()).unwrap();
            assert_eq!(s.splunk_webhook_secret.as_deref(), Some("s3cr3t"));
            Ok(())
        });
    }

    #[test]
    fn lenient_booleans_and_redacted_debug() {
        Jail::expect_with(|jail| {
            jail.set_env("HTTPS_ENABLED", "yes");
            jail.set_env("SANDBOX_MODE", "0");
            jail.set_env("DOCS_ENABLED", "Off");
            jail.set_env("ENCRYPTION_KEY", "q6Zt1m3sJ0xq4m2w5c8v0b7n9k1j3h5g7f9d2s4a6p8=");
            let s = Settings::from_figment(Settings::figment()).unwrap();
            assert!(s.https_enabled);
            assert!(!s.sandbox_mode);
            assert_eq!(s.docs_enabled, Some(false));
            let debug = format!("{s:?}");
            assert!(!debug.contains("q6Zt1m3s"), "{debug}");
            assert!(debug.contains("<redacted>"));
            jail.set_env("HTTPS_ENABLED", "maybe");
            assert!(Settings::from_figment(Settings::figment()).is_err());
            Ok(())
        });
    }

    #[test]
    fn cors_origins_must_be_exact_origins() {
        let with = |origins: &str| Settings { cors_allowed_origins: origins.into(), ..Settings::default() }.validate();
        for good in ["https://soc.example.com", "http://localhost:3000, https://a.example:8443", "http://[::1]:8080"] {
            assert!(with(good).is_ok(), "{good}");
        }
        for bad in ["null", "*", "https://soc.example.com/", "https://soc.example.com/app", "https://*.example.com",
            "soc.example.com", "ftp://soc.example.com", "https://user:pw@soc.example.com", "https://SOC.example.com",
            "https://soc.example.com:443", "https://a.example.com,null"] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("CORS_ALLOWED_ORIGINS"), "{bad}: {err}");
        }
    }

    fn production() -> Settings {
        Settings {
            environment: "production".into(),
            encryption_key: Some("q6Zt1m3sJ0xq4m2w5c8v0b7n9k1j3h5g7f9d2s4a6p8=".into()),
            https_enabled: true,
            ingest_unsigned_sources_allowed: "sentinel,elastic,splunk".into(),
            ..Settings::default()
        }
    }

    #[test]
    fn production_refuses_text_keys_and_public_egress_ranges() {
        use base64::Engine;
        assert!(production().validate().is_ok());
        let phrase = base64::engine::general_purpose::STANDARD.encode("correct horse battery staple 123");
        let err = Settings { encryption_key: Some(phrase), ..production() }.validate().unwrap_err().to_string();
        assert!(err.contains("ENCRYPTION_KEY") && err.contains("printable text"), "{err}");
        for bad in ["0.0.0.0/0", "8.8.8.0/24", "10.0.0.0/8, 1.1.1.1", "::/0", "0.0.0.0/1", "100.0.0.0/6"] {
            let err = Settings { ssrf_allowed_hosts: bad.into(), ..production() }.validate().unwrap_err().to_string();
            assert!(err.contains("SSRF_ALLOWED_HOSTS"), "{bad}: {err}");
        }
        let good = "10.20.0.0/16, vault.corp.example, 127.0.0.1, [fd00::1]:8200, 192.168.1.0/24";
        assert!(Settings { ssrf_allowed_hosts: good.into(), ..production() }.validate().is_ok(), "{good}");
        // Development keeps its freedom (a lab may allow-list anything).
        assert!(Settings { ssrf_allowed_hosts: "0.0.0.0/0".into(), ..Settings::default() }.validate().is_ok());
    }

    #[test]
    fn otel_endpoints_must_be_http_urls() {
        let with = |url: &str| Settings { otel_exporter_otlp_endpoint: Some(url.into()), ..Settings::default() }.validate();
        assert!(with("http://127.0.0.1:4318").is_ok());
        assert!(with("https://otel.example.com/otlp/").is_ok());
        for bad in ["collector:4318", "grpc://collector:4317", "not a url"] {
            assert!(with(bad).unwrap_err().to_string().contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{bad}");
        }
    }

    #[test]
    fn redis_urls_are_checked_at_load_and_tls_is_supported() {
        let with = |url: &str| Settings { redis_url: Some(url.into()), ..Settings::default() }.validate();
        assert!(with("redis://127.0.0.1:6379").is_ok());
        assert!(with("rediss://redis.example.com:6380/0").is_ok());
        let err = with("http://user:s3cret@example.com").unwrap_err().to_string();
        assert!(err.contains("REDIS_URL") && !err.contains("s3cret"), "{err}");
    }

    #[test]
    fn production_names_the_setting() {
        Jail::expect_with(|jail| {
            jail.set_env("ENVIRONMENT", "production");
            let err = Settings::from_figment(Settings::figment()).unwrap_err().to_string();
            assert!(err.contains("ENCRYPTION_KEY"), "{err}");
            Ok(())
        });
    }
}
