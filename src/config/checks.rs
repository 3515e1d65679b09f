//! The checks every configuration passes before anything touches the database: value ranges and
//! shapes for every environment, and the refusals `ENVIRONMENT=production` adds (each naming its
//! setting).

use super::{ConfigError, Settings};

impl Settings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let env = self.environment.to_ascii_lowercase();
        if env != "development" && env != "production" {
            return Err(ConfigError::Invalid(format!(
                "ENVIRONMENT must be 'development' or 'production', got '{}'",
                self.environment
            )));
        }
        if !["json", "text"].contains(&self.log_format.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::Invalid("LOG_FORMAT must be 'json' or 'text'".into()));
        }
        if !["default", "open", "closed"].contains(&self.rate_limit_store_failure.to_ascii_lowercase().as_str()) {
            return Err(ConfigError::Invalid(
                "RATE_LIMIT_STORE_FAILURE must be 'default', 'open' or 'closed'".into(),
            ));
        }
        if self.max_request_body_size_mb == 0 || self.max_ingest_payload_size_mb == 0 {
            return Err(ConfigError::Invalid("body size limits must be at least 1 MB".into()));
        }
        if !(self.sandbox_reset_interval_hours.is_finite() && self.sandbox_reset_interval_hours > 0.0) {
            return Err(ConfigError::Invalid("SANDBOX_RESET_INTERVAL_HOURS must be a positive number of hours".into()));
        }
        if self.is_production() {
            self.validate_production()?;
        }
        self.validate_cors_origins()?;
        let egress_allow_list = crate::egress::AllowList::parse(&self.ssrf_allowed_hosts)
            .map_err(|e| ConfigError::Invalid(format!("SSRF_ALLOWED_HOSTS: {e}")))?;
        if self.is_production() {
            refuse_public_networks(&egress_allow_list)?;
        }
        if let Some(url) = &self.redis_url {
            crate::ratelimit::RateLimiter::check_redis_url(url)
                .map_err(|e| ConfigError::Invalid(format!("REDIS_URL: {e}")))?;
        }
        crate::http::network::NetworkPolicy::from_settings(self).map_err(ConfigError::Invalid)?;
        if let Some(key) = &self.encryption_key {
            crate::crypto::parse_key(key).map_err(|reason| {
                ConfigError::Invalid(format!("ENCRYPTION_KEY is invalid: {reason}"))
            })?;
        }
        Ok(())
    }

    /// Every configured origin must be exactly what a browser sends in `Origin`:
    /// `scheme://host[:port]` (http or https, lower case, no default port, no path, no trailing
    /// slash, no credentials). `null` (sandboxed frames, `file:` pages) and `*` are refused:
    /// CORS responses carry credentials, so an origin must name one site. Allowing every origin
    /// is the separate `CORS_ALLOW_ALL_ORIGINS` switch, which never carries credentials.
    fn validate_cors_origins(&self) -> Result<(), ConfigError> {
        for origin in self.cors_origins() {
            let refuse = |why: &str| {
                Err(ConfigError::Invalid(format!(
                    "CORS_ALLOWED_ORIGINS: '{origin}' is not an origin ({why}); write scheme://host[:port], e.g. https://soc.example.com"
                )))
            };
            if origin == "*" {
                return refuse("a wildcard; use CORS_ALLOW_ALL_ORIGINS=true to allow every origin without credentials");
            }
            let Ok(url) = url::Url::parse(&origin) else { return refuse("not a URL") };
            if !matches!(url.scheme(), "http" | "https") {
                return refuse("the scheme must be http or https");
            }
            if url.host_str().is_none_or(|h| h.contains('*')) {
                return refuse("it needs one exact host");
            }
            let canonical = url.origin().ascii_serialization();
            if canonical != origin {
                return refuse(&format!("browsers send it as '{canonical}'; nothing after the host and port"));
            }
        }
        Ok(())
    }

    /// The fail-fast rules of a production start. Each names the setting to fix.
    fn validate_production(&self) -> Result<(), ConfigError> {
        let refuse = |setting, reason: &str| {
            Err(ConfigError::Production { setting, reason: reason.to_owned() })
        };
        match &self.encryption_key {
            None => return refuse("ENCRYPTION_KEY", "must be set (32 random bytes, base64)"),
            Some(key) if crate::crypto::is_weak_key(key) => {
                return refuse("ENCRYPTION_KEY", "is malformed, a known example, or a low-entropy key");
            }
            Some(key) if crate::crypto::parse_key(key).is_ok_and(|bytes| is_printable_text(&bytes)) => {
                return refuse(
                    "ENCRYPTION_KEY",
                    "decodes to printable text (a phrase or password, base64-encoded), not 32 random bytes; \
                     generate one with `openssl rand -base64 32`",
                );
            }
            Some(_) => {}
        }
        if self.cors_allow_all_origins || self.cors_origins().iter().any(|o| o == "*") {
            return refuse("CORS_ALLOWED_ORIGINS", "wildcard origins are not allowed in production");
        }
        if self.sandbox_mode {
            return refuse("SANDBOX_MODE", "the demo/sandbox keys must not be enabled in production");
        }
        if self.docs_enabled == Some(true) && !self.docs_allow_in_production {
            return refuse(
                "DOCS_ENABLED",
                "the docs UI is on; set DOCS_ALLOW_IN_PRODUCTION=true to opt in explicitly",
            );
        }
        if !self.https_enabled && self.trusted_proxy_count == 0 {
            return refuse(
                "HTTPS_ENABLED",
                "must be true (TLS terminated in front of this service), or TRUSTED_PROXY_COUNT set \
                 to the number of TLS-terminating proxies in front of it",
            );
        }
        let waived = self.unsigned_sources_allowed();
        for source in crate::ingest::sources::all() {
            let Some(setting) = source.signature().secret_env_var else { continue };
            if self.webhook_secret(setting).is_none() && !waived.iter().any(|w| w == source.name()) {
                return Err(ConfigError::Production {
                    setting: source.signature().secret_env_var.unwrap_or("webhook secret"),
                    reason: format!(
                        "the '{}' webhook source would accept unsigned alerts; set the secret, or waive it \
                         explicitly with INGEST_UNSIGNED_SOURCES_ALLOWED={}",
                        source.name(),
                        source.name()
                    ),
                });
            }
        }
        if self.calseta_replicas > 1 && self.redis_url.is_none() {
            return refuse(
                "REDIS_URL",
                "CALSETA_REPLICAS > 1 needs a shared rate-limit store; an in-process limiter would \
                 multiply every limit by the replica count",
            );
        }
        Ok(())
    }
}

/// 32 random bytes are all printable ASCII with probability (95/256)^32 ≈ 2·10⁻¹⁴; a key that
/// is, is text someone typed (a passphrase) and has a fraction of the entropy it claims.
fn is_printable_text(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| (0x20..0x7f).contains(b))
}

/// Blocks of addresses that are not globally routable (RFC 6890 and successors): the only
/// networks `SSRF_ALLOWED_HOSTS` exists to open. Public addresses need no allow-list entry.
const NON_GLOBAL_BLOCKS: &[&str] = &[
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10",
    "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "::1/128", "fc00::/7", "fe80::/10", "2001:db8::/32",
];

/// In production an allow-list network must lie inside one non-global block: `0.0.0.0/0`, a
/// public range or a public address would hand the egress gateway's SSRF protection to
/// whatever the entry covers (a public entry is never needed: public hosts are reachable anyway).
fn refuse_public_networks(list: &crate::egress::AllowList) -> Result<(), ConfigError> {
    let blocks: Vec<ipnet::IpNet> = NON_GLOBAL_BLOCKS.iter().map(|b| b.parse().expect("valid CIDR")).collect();
    for entry in list.entries() {
        let crate::egress::AllowTarget::Net(net) = &entry.target else { continue };
        if !blocks.iter().any(|block| block.contains(net)) {
            return Err(ConfigError::Production {
                setting: "SSRF_ALLOWED_HOSTS",
                reason: format!(
                    "'{net}' covers globally routable addresses; list only private, loopback or other \
                     non-global networks (or host names)"
                ),
            });
        }
    }
    Ok(())
}

