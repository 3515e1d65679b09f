//! API-key authentication.
//!
//! A key is `cai_` + 43 chars of base64url (32 random bytes). The database holds its argon2id
//! hash, an 8-char display prefix and a lookup id (hex SHA-256 of the whole key, unique), so a
//! request costs one indexed lookup, never a scan, and prefix collisions cannot fail a create.
//! argon2 runs once per key per `AUTH_CACHE_TTL_SECONDS`; in between, a verified key is served
//! from an in-memory cache keyed by an HMAC of the token under a per-process secret, and its row
//! is re-read every `AUTH_CACHE_REFRESH_SECONDS` so a revocation made by another replica takes
//! effect within that window (on this replica it takes effect at once).

pub mod audit;
pub mod extract;
pub mod http;
pub mod keys;
pub mod principal;
pub mod scoped;
pub mod service;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::Db;
use crate::error::Error;
pub use audit::AuthFailureReason;
pub use extract::Auth;
pub use principal::{Channel, Principal};
pub use scoped::Authorized;

pub const KEY_PREFIX: &str = "cai_";
/// Characters of the key shown for display, audit and logs (`cai_` + 4).
pub const DISPLAY_PREFIX_LEN: usize = 8;

/// Every scope the API checks. `admin` satisfies all of them.
pub const SCOPES: &[&str] = &[
    "alerts:read",
    "alerts:write",
    "enrichments:read",
    "workflows:read",
    "workflows:write",
    "workflows:execute",
    "approvals:write",
    "agents:read",
    "agents:write",
    "admin",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Human,
    Agent,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Human => "human",
            KeyType::Agent => "agent",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "human" => Some(KeyType::Human),
            "agent" => Some(KeyType::Agent),
            _ => None,
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct KeyIdentity {
    pub key_id: i64,
    pub key_uuid: Uuid,
    pub key_prefix: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub key_type: KeyType,
    /// `None` (or empty) = may ingest from every source.
    pub allowed_sources: Option<Vec<String>>,
    /// `None` = usable from any address (that the global `IP_ALLOWLIST` admits).
    pub allowed_cidrs: Option<Vec<ipnet::IpNet>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl KeyIdentity {
    fn from_row(row: &keys::ApiKeyRow) -> Self {
        KeyIdentity {
            key_id: row.id,
            key_uuid: row.uuid,
            key_prefix: row.key_prefix.clone(),
            name: row.name.clone(),
            scopes: row.scopes.0.clone(),
            key_type: KeyType::parse(&row.key_type).unwrap_or(KeyType::Human),
            allowed_sources: row.allowed_sources.as_ref().map(|s| s.0.clone()),
            // Entries were validated on write; one that no longer parses matches nothing, so a
            // damaged list fails closed instead of lifting the restriction.
            allowed_cidrs: row
                .allowed_cidrs
                .as_ref()
                .filter(|list| !list.0.is_empty())
                .map(|list| list.0.iter().filter_map(|c| crate::http::network::parse_network(c)).collect()),
            expires_at: row.expires_at,
        }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == "admin" || s == scope)
    }

    /// Whether the key may be used by a client at `client_ip` (resolved through
    /// `TRUSTED_PROXY_COUNT`); an unreadable address is refused when the key is restricted.
    pub fn may_connect_from(&self, client_ip: &str) -> bool {
        match &self.allowed_cidrs {
            Some(networks) => crate::http::network::address_in(networks, client_ip),
            None => true,
        }
    }

    pub fn may_ingest_from(&self, source: &str) -> bool {
        match &self.allowed_sources {
            Some(list) if !list.is_empty() => list.iter().any(|s| s == source),
            _ => true,
        }
    }
}

/// A freshly generated key: the plaintext (shown once) and what is stored.
pub struct GeneratedKey {
    pub plaintext: String,
    pub display_prefix: String,
    pub lookup_hash: String,
    pub argon2_hash: String,
}

pub fn generate_key() -> GeneratedKey {
    let secret: [u8; 32] = rand::random();
    let plaintext = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let argon2_hash = hash_key(&plaintext);
    GeneratedKey {
        display_prefix: plaintext[..DISPLAY_PREFIX_LEN].to_owned(),
        lookup_hash: lookup_hash(&plaintext),
        plaintext,
        argon2_hash,
    }
}

/// The stored argon2id hash of a key.
pub fn hash_key(plaintext: &str) -> String {
    argon2::Argon2::default()
        .hash_password(plaintext.as_bytes())
        .expect("argon2 hashing with default params cannot fail")
        .to_string()
}

/// The indexed lookup id of a key: hex SHA-256 of the whole token.
pub fn lookup_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Syntactic check before any lookup: `cai_` + base64url, bounded length.
fn well_formed(token: &str) -> bool {
    token.len() >= DISPLAY_PREFIX_LEN
        && token.len() <= 128
        && token.starts_with(KEY_PREFIX)
        && token[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Result of resolving a request's `Authorization` header.
#[derive(Debug, Clone)]
pub enum AuthOutcome {
    Authenticated(Arc<KeyIdentity>),
    Failed { reason: AuthFailureReason, key_prefix: Option<String> },
}

struct CachedKey {
    principal: Arc<KeyIdentity>,
    verified_at: Instant,
    refreshed_at: Instant,
    last_used_written: Instant,
}

pub struct Authenticator {
    db: Db,
    /// Per-process secret for the cache key, so the cache never holds anything derivable offline.
    cache_secret: [u8; 32],
    cache: RwLock<HashMap<[u8; 32], CachedKey>>,
    refresh_every: Duration,
    trust_for: Duration,
    /// One verification per token at a time: concurrent first requests with the same key wait for
    /// it instead of each running argon2 (19 MiB and ~25 ms apiece).
    verifying: std::sync::Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    /// Bounds concurrent argon2 runs across all keys (CPU and memory).
    argon2_slots: tokio::sync::Semaphore,
}

/// `last_used_at` is written at most this often per key: a write per request would turn every
/// authenticated read into a database write.
const LAST_USED_WRITE_INTERVAL: Duration = Duration::from_secs(60);

impl Authenticator {
    pub fn new(db: Db, refresh_every: Duration, trust_for: Duration) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self {
            db,
            cache_secret: rand::random(),
            cache: RwLock::default(),
            refresh_every,
            trust_for,
            verifying: Default::default(),
            argon2_slots: tokio::sync::Semaphore::new(cores),
        }
    }

    fn cache_key(&self, token: &str) -> [u8; 32] {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.cache_secret).expect("any key length");
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Resolves the value of an `Authorization` header (or its absence).
    pub async fn authenticate(&self, header: Option<&str>) -> Result<AuthOutcome, Error> {
        let failed = |reason, key_prefix| Ok(AuthOutcome::Failed { reason, key_prefix });
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return failed(AuthFailureReason::MissingHeader, None);
        };
        let token = token.trim();
        if !well_formed(token) {
            return failed(AuthFailureReason::InvalidFormat, None);
        }
        let display_prefix = Some(token[..DISPLAY_PREFIX_LEN].to_owned());
        let cache_key = self.cache_key(token);

        if let Some(outcome) = self.from_cache(&cache_key).await? {
            return Ok(outcome);
        }
        let flight = self.verifying.lock().expect("poisoned").entry(cache_key).or_default().clone();
        let _verifying = flight.lock().await;
        let outcome = self.verify_uncached(token, cache_key, display_prefix).await;
        drop(_verifying);
        self.verifying.lock().expect("poisoned").remove(&cache_key);
        outcome
    }

    /// The slow path: lookup by id, one argon2 verification, cache. Called with the token's
    /// single-flight lock held, so it first re-checks the cache a concurrent request may have filled.
    async fn verify_uncached(&self, token: &str, cache_key: [u8; 32], display_prefix: Option<String>) -> Result<AuthOutcome, Error> {
        let failed = |reason, key_prefix| Ok(AuthOutcome::Failed { reason, key_prefix });
        if let Some(outcome) = self.from_cache(&cache_key).await? {
            return Ok(outcome);
        }
        let Some(row) = keys::find_by_lookup_hash(&self.db, &lookup_hash(token)).await? else {
            return failed(AuthFailureReason::InvalidKey, display_prefix);
        };
        if !row.is_active {
            return failed(AuthFailureReason::InvalidKey, display_prefix);
        }
        let hash = row.key_hash.clone();
        let presented = token.to_owned();
        let _slot = self.argon2_slots.acquire().await.map_err(|e| Error::Internal(e.into()))?;
        let verified = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| argon2::Argon2::default().verify_password(presented.as_bytes(), &parsed).is_ok())
                .unwrap_or(false)
        })
        .await
        .map_err(|e| Error::Internal(e.into()))?;
        if !verified {
            return failed(AuthFailureReason::InvalidKey, display_prefix);
        }
        let principal = Arc::new(KeyIdentity::from_row(&row));
        if is_expired(&principal) {
            return failed(AuthFailureReason::KeyExpired, display_prefix);
        }
        let now = Instant::now();
        self.cache.write().expect("auth cache poisoned").insert(
            cache_key,
            CachedKey { principal: principal.clone(), verified_at: now, refreshed_at: now, last_used_written: now },
        );
        self.write_last_used(principal.key_id);
        Ok(AuthOutcome::Authenticated(principal))
    }

    /// A cache hit answers without the database, unless the row is due for a refresh.
    async fn from_cache(&self, cache_key: &[u8; 32]) -> Result<Option<AuthOutcome>, Error> {
        let (principal, needs_refresh, write_last_used) = {
            let cache = self.cache.read().expect("auth cache poisoned");
            let Some(entry) = cache.get(cache_key) else { return Ok(None) };
            if entry.verified_at.elapsed() > self.trust_for {
                (None, false, false)
            } else {
                (
                    Some(entry.principal.clone()),
                    entry.refreshed_at.elapsed() > self.refresh_every,
                    entry.last_used_written.elapsed() > LAST_USED_WRITE_INTERVAL,
                )
            }
        };
        let Some(mut principal) = principal else {
            self.cache.write().expect("auth cache poisoned").remove(cache_key);
            return Ok(None);
        };
        if needs_refresh {
            match keys::find_by_id(&self.db, principal.key_id).await? {
                Some(row) if row.is_active => {
                    principal = Arc::new(KeyIdentity::from_row(&row));
                    if let Some(entry) = self.cache.write().expect("auth cache poisoned").get_mut(cache_key) {
                        entry.principal = principal.clone();
                        entry.refreshed_at = Instant::now();
                    }
                }
                _ => {
                    let prefix = principal.key_prefix.clone();
                    self.cache.write().expect("auth cache poisoned").remove(cache_key);
                    return Ok(Some(AuthOutcome::Failed {
                        reason: AuthFailureReason::InvalidKey,
                        key_prefix: Some(prefix),
                    }));
                }
            }
        }
        if is_expired(&principal) {
            return Ok(Some(AuthOutcome::Failed {
                reason: AuthFailureReason::KeyExpired,
                key_prefix: Some(principal.key_prefix.clone()),
            }));
        }
        if write_last_used {
            if let Some(entry) = self.cache.write().expect("auth cache poisoned").get_mut(cache_key) {
                entry.last_used_written = Instant::now();
            }
            self.write_last_used(principal.key_id);
        }
        Ok(Some(AuthOutcome::Authenticated(principal)))
    }

    fn write_last_used(&self, key_id: i64) {
        let db = self.db.clone();
        tokio::spawn(async move {
            if let Err(e) = keys::touch_last_used(&db, key_id, crate::db::now()).await {
                tracing::warn!(error = %e, "could not record api key last_used_at");
            }
        });
    }

    /// Drops every cached verification of this key, so a revoke or scope change applies to the
    /// very next request on this replica.
    pub fn invalidate(&self, key_uuid: Uuid) {
        self.cache.write().expect("auth cache poisoned").retain(|_, entry| entry.principal.key_uuid != key_uuid);
    }

    /// Forgets every cached key (after a sandbox reset deleted keys wholesale).
    pub fn clear(&self) {
        self.cache.write().expect("auth cache poisoned").clear();
    }
}

fn is_expired(principal: &KeyIdentity) -> bool {
    principal.expires_at.is_some_and(|at| at <= Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = generate_key();
        assert_eq!(key.plaintext.len(), 47);
        assert!(key.plaintext.starts_with("cai_"));
        assert!(well_formed(&key.plaintext));
        assert_eq!(key.display_prefix, &key.plaintext[..8]);
        assert_eq!(key.lookup_hash.len(), 64);
        assert!(key.argon2_hash.starts_with("$argon2id$"));
        assert_ne!(generate_key().plaintext, key.plaintext);
    }

    #[test]
    fn malformed_tokens_are_rejected_before_lookup() {
        for bad in ["", "cai_", "abc_12345678", "cai_abc def", "cai_ab\u{0}cdefgh", &format!("cai_{}", "a".repeat(200))] {
            assert!(!well_formed(bad), "{bad:?}");
        }
    }
}
