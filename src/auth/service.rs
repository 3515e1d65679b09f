//! API-key operations: list, create, get, patch, revoke, and the start-up bootstrap key. All need
//! `admin`. The plaintext key is returned by create only; neither it nor its hash appears in any
//! other output or in the audit trail. REST, the CLI (`Principal::Cli`) and start-up
//! (`Principal::System`) all go through here, so every key change is audited the same way.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::keys::{self, ApiKeyRow, KeyPatch, NewApiKey};
use super::{Authenticator, KeyType, Principal, SCOPES, generate_key};
use crate::audit::{self, Record};
use crate::db::Db;
use crate::error::{Error, FieldError, FieldErrors, Result};
use crate::operation;
use crate::pagination::Pagination;
use crate::service::Operation as _;

operation!(ListApiKeys = "api_keys.list", scopes ["admin"]);
operation!(CreateApiKey = "api_keys.create", scopes ["admin"]);
operation!(GetApiKey = "api_keys.get", scopes ["admin"]);
operation!(PatchApiKey = "api_keys.patch", scopes ["admin"]);
operation!(RevokeApiKey = "api_keys.revoke", scopes ["admin"]);

const NOT_FOUND: &str = "API key";

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    pub uuid: Uuid,
    pub name: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub key_type: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// `null` when unrestricted (an empty list is reported as `null` too).
    pub allowed_sources: Option<Vec<String>>,
    /// CIDRs the key may be used from (normalized: `10.1.2.3` → `10.1.2.3/32`); `null` when
    /// unrestricted.
    pub allowed_cidrs: Option<Vec<String>>,
}

impl From<ApiKeyRow> for ApiKeyResponse {
    fn from(row: ApiKeyRow) -> Self {
        ApiKeyResponse {
            uuid: row.uuid,
            name: row.name,
            key_prefix: row.key_prefix,
            scopes: row.scopes.0,
            key_type: row.key_type,
            is_active: row.is_active,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            allowed_sources: row.allowed_sources.map(|s| s.0).filter(|s| !s.is_empty()),
            allowed_cidrs: row.allowed_cidrs.map(|c| c.0).filter(|c| !c.is_empty()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub key: ApiKeyResponse,
    /// The full key. Shown once, never again.
    #[serde(rename = "key")]
    pub plaintext: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub key_type: Option<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub allowed_sources: Option<Vec<String>>,
    /// Client addresses (CIDRs or single addresses) the key may be used from; omitted, `null`
    /// or empty: any address.
    #[serde(default)]
    pub allowed_cidrs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyUpdate {
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub is_active: Option<bool>,
    /// Omitted: unchanged. `null`: restriction removed. A list: replaces the restriction.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_sources: Option<Option<Vec<String>>>,
    /// Omitted: unchanged. `null` (or an empty list): restriction removed. A list: replaces it.
    #[serde(default, deserialize_with = "crate::http::extract::double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_cidrs: Option<Option<Vec<String>>>,
}

fn validate_scopes(scopes: &[String]) -> std::result::Result<(), FieldError> {
    if scopes.is_empty() {
        return Err(FieldError::body("scopes", "too_short", "List should have at least 1 item"));
    }
    if scopes.len() > SCOPES.len() * 2 {
        return Err(FieldError::body("scopes", "too_long", format!("List should have at most {} items", SCOPES.len() * 2)));
    }
    if let Some(unknown) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(FieldError::body("scopes", "value_error", format!("Unknown scope '{unknown}'. Valid scopes: {}", SCOPES.join(", "))));
    }
    Ok(())
}

fn validate_name(name: &str) -> std::result::Result<(), FieldError> {
    if name.trim().is_empty() || name.chars().count() > 255 {
        return Err(FieldError::body("name", "string_length", "name must be 1 to 255 characters"));
    }
    Ok(())
}

fn validate_sources(sources: Option<&[String]>) -> std::result::Result<(), FieldError> {
    if let Some(list) = sources
        && (list.iter().any(|s| s.trim().is_empty() || s.len() > 100) || list.len() > 100)
    {
        return Err(FieldError::body("allowed_sources", "value_error", "source names must be 1 to 100 characters, at most 100 of them"));
    }
    Ok(())
}

/// At most this many entries in a key's `allowed_cidrs`.
const MAX_CIDRS: usize = 100;

/// Validates and normalizes `allowed_cidrs`: every entry a CIDR or an address, stored as its
/// network (`10.1.2.3/8` → `10.0.0.0/8`, `192.0.2.7` → `192.0.2.7/32`). An empty list means no
/// restriction, like `null`.
fn normalize_cidrs(cidrs: Option<&[String]>) -> std::result::Result<Option<Vec<String>>, FieldError> {
    let Some(list) = cidrs.filter(|l| !l.is_empty()) else { return Ok(None) };
    if list.len() > MAX_CIDRS {
        return Err(FieldError::body("allowed_cidrs", "too_long", format!("List should have at most {MAX_CIDRS} items")));
    }
    let mut networks = Vec::with_capacity(list.len());
    for entry in list {
        let Some(network) = (entry.len() <= 64).then(|| crate::http::network::parse_network(entry)).flatten() else {
            let shown: String = entry.chars().take(64).collect();
            return Err(FieldError::body("allowed_cidrs", "value_error", format!("'{shown}' is not an IP address or CIDR")));
        };
        let text = network.to_string();
        if !networks.contains(&text) {
            networks.push(text);
        }
    }
    Ok(Some(networks))
}

/// Where key operations act: the database and, in the server, this replica's cache of verified
/// keys (dropped for a key the moment it changes; the CLI has none, and other replicas re-read
/// within `AUTH_CACHE_REFRESH_SECONDS`).
#[derive(Clone, Copy)]
pub struct Keys<'a> {
    db: &'a Db,
    cache: Option<&'a Authenticator>,
}

impl<'a> Keys<'a> {
    pub fn new(db: &'a Db, cache: Option<&'a Authenticator>) -> Self {
        Keys { db, cache }
    }

    pub fn of(state: &'a crate::state::AppState) -> Self {
        Keys { db: &state.db, cache: Some(&state.auth) }
    }

    /// Active keys, newest first.
    pub async fn list(&self, who: &Principal, pagination: Pagination) -> Result<(Vec<ApiKeyResponse>, i64)> {
        who.authorize::<ListApiKeys>()?;
        let pagination = pagination.validate()?;
        let (rows, total) = keys::list_active(self.db, pagination.limit(), pagination.offset()).await?;
        Ok((rows.into_iter().map(ApiKeyResponse::from).collect(), total))
    }

    pub async fn get(&self, who: &Principal, uuid: Uuid) -> Result<ApiKeyResponse> {
        who.authorize::<GetApiKey>()?;
        let row = keys::find_by_uuid(self.db, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
        Ok(row.into())
    }

    pub async fn create(&self, who: &Principal, input: ApiKeyCreate) -> Result<ApiKeyCreated> {
        who.authorize::<CreateApiKey>()?;
        let mut errors = FieldErrors::default();
        errors.check(validate_name(&input.name)).check(validate_scopes(&input.scopes));
        let key_type = match input.key_type.as_deref() {
            None => Some(KeyType::Human),
            Some(t) => KeyType::parse(t),
        };
        if key_type.is_none() {
            errors.push(FieldError::body("key_type", "enum", "key_type must be 'human' or 'agent'"));
        }
        if input.expires_at.is_some_and(|at| at <= Utc::now()) {
            errors.push(FieldError::body("expires_at", "value_error", "expires_at must be in the future"));
        }
        errors.check(validate_sources(input.allowed_sources.as_deref()));
        let cidrs = normalize_cidrs(input.allowed_cidrs.as_deref());
        let cidrs = match cidrs {
            Ok(cidrs) => cidrs,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        errors.finish()?;
        let new = NewKey {
            name: input.name.trim(),
            scopes: &input.scopes,
            key_type: key_type.expect("validated above"),
            expires_at: input.expires_at,
            allowed_sources: input.allowed_sources.as_deref(),
            allowed_cidrs: cidrs.as_deref(),
        };
        let (row, plaintext) = insert(self.db, who, &new, false).await?.expect("an unconditional insert returns the row");
        Ok(ApiKeyCreated { key: row.into(), plaintext })
    }

    pub async fn patch(&self, who: &Principal, uuid: Uuid, input: ApiKeyUpdate) -> Result<ApiKeyResponse> {
        who.authorize::<PatchApiKey>()?;
        let mut errors = FieldErrors::default();
        errors
            .check(input.scopes.as_deref().map_or(Ok(()), validate_scopes))
            .check(validate_sources(input.allowed_sources.as_ref().and_then(|s| s.as_deref())));
        // `Some(None)`: clear; `Some(Some(list))`: replace with the normalized list.
        let cidrs = match input.allowed_cidrs.as_ref().map(|c| normalize_cidrs(c.as_deref())).transpose() {
            Ok(cidrs) => cidrs,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        errors.finish()?;
        let patch = KeyPatch {
            scopes: input.scopes.as_deref(),
            is_active: input.is_active,
            allowed_sources: input.allowed_sources.as_ref().map(|s| s.as_deref()),
            allowed_cidrs: cidrs.as_ref().map(|c| c.as_deref()),
        };
        let mut tx = self.db.begin().await?;
        let row = keys::update(&mut tx, uuid, &patch).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
        // What changed (the fields the caller sent), never key material.
        let mut changed = serde_json::Map::new();
        if let Some(scopes) = &input.scopes {
            changed.insert("scopes".into(), json!(scopes));
        }
        if let Some(active) = input.is_active {
            changed.insert("is_active".into(), json!(active));
        }
        if let Some(sources) = &input.allowed_sources {
            changed.insert("allowed_sources".into(), json!(sources));
        }
        if let Some(cidrs) = &cidrs {
            changed.insert("allowed_cidrs".into(), json!(cidrs));
        }
        audit::record(&mut tx, who, Record::success(PatchApiKey::NAME, "api_key", row.uuid).with_details(changed.into())).await?;
        tx.commit().await?;
        self.forget(uuid);
        Ok(row.into())
    }

    /// Soft delete: the row stays for audit, the key stops working.
    pub async fn revoke(&self, who: &Principal, uuid: Uuid) -> Result<ApiKeyResponse> {
        who.authorize::<RevokeApiKey>()?;
        let mut tx = self.db.begin().await?;
        let row = keys::deactivate(&mut tx, uuid).await?.ok_or_else(|| Error::not_found(NOT_FOUND))?;
        let details = json!({ "name": row.name });
        audit::record(&mut tx, who, Record::success(RevokeApiKey::NAME, "api_key", row.uuid).with_details(details)).await?;
        tx.commit().await?;
        self.forget(uuid);
        Ok(row.into())
    }

    fn forget(&self, uuid: Uuid) {
        if let Some(cache) = self.cache {
            cache.invalidate(uuid);
        }
    }
}

/// A validated key to insert.
struct NewKey<'a> {
    name: &'a str,
    scopes: &'a [String],
    key_type: KeyType,
    expires_at: Option<DateTime<Utc>>,
    allowed_sources: Option<&'a [String]>,
    allowed_cidrs: Option<&'a [String]>,
}

/// Generates a key and inserts it with its audit record; with `only_if_table_empty`, inserts
/// nothing (and audits nothing) when any key exists.
async fn insert(db: &Db, who: &Principal, key: &NewKey<'_>, only_if_table_empty: bool) -> Result<Option<(ApiKeyRow, String)>> {
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let generated = tokio::task::spawn_blocking(generate_key).await.map_err(|e| Error::Internal(e.into()))?;
    let mut tx = db.begin().await?;
    let new = NewApiKey {
        name: key.name,
        key_prefix: &generated.display_prefix,
        lookup_hash: &generated.lookup_hash,
        key_hash: &generated.argon2_hash,
        scopes: key.scopes,
        key_type: key.key_type.as_str(),
        expires_at: key.expires_at,
        allowed_sources: key.allowed_sources,
        allowed_cidrs: key.allowed_cidrs,
    };
    let Some(row) = keys::insert(&mut tx, &new, only_if_table_empty).await? else { return Ok(None) };
    // The target is the key's UUID; its display prefix would be redacted as key-like anyway.
    let details = json!({
        "name": row.name,
        "scopes": row.scopes.0,
        "key_type": row.key_type,
        "expires_at": row.expires_at,
        "allowed_sources": row.allowed_sources.as_ref().map(|s| &s.0),
        "allowed_cidrs": row.allowed_cidrs.as_ref().map(|c| &c.0),
    });
    audit::record(&mut tx, who, Record::success(CreateApiKey::NAME, "api_key", row.uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(Some((row, generated.plaintext)))
}

/// The one admin key of a database's first start (`None` when any key, active or not, already
/// exists: it is printed once in a database's life).
pub async fn create_bootstrap_key(db: &Db) -> Result<Option<ApiKeyCreated>> {
    let scopes = vec!["admin".to_owned()];
    let key = NewKey { name: "bootstrap-admin", scopes: &scopes, key_type: KeyType::Human, expires_at: None, allowed_sources: None, allowed_cidrs: None };
    let created = insert(db, &Principal::System, &key, true).await?;
    Ok(created.map(|(row, plaintext)| ApiKeyCreated { key: row.into(), plaintext }))
}

/// Records a valid key refused because the request came from outside its `allowed_cidrs`: a
/// denied `api_keys.authenticate` row in the audit trail (the structured auth-failure event is
/// logged by the caller). Only requests the per-address rate limit let through get here.
pub async fn record_refused_address(db: &Db, key: std::sync::Arc<super::KeyIdentity>, request: crate::http::context::RequestContext) -> Result<()> {
    let target = key.key_uuid;
    let details = json!({ "reason": "ip_not_allowed", "client_ip": request.client_ip });
    let who = Principal::rest(key, request);
    let record = Record { outcome: audit::Outcome::Denied, ..Record::success(AUTHENTICATE, "api_key", target) }.with_details(details);
    let mut tx = db.begin().await?;
    audit::record(&mut tx, &who, record).await?;
    tx.commit().await?;
    Ok(())
}

/// The audit action of a refused use of a key.
pub const AUTHENTICATE: &str = "api_keys.authenticate";

/// Creates a well-known system key (`is_system`, human) from its published plaintext, once: a key
/// that already exists, even revoked, is left as it is. Returns whether it was created.
pub async fn ensure_system_key(db: &Db, name: &str, plaintext: &str, scopes: &[String]) -> Result<bool> {
    let lookup = super::lookup_hash(plaintext);
    if keys::find_by_lookup_hash(db, &lookup).await?.is_some() {
        return Ok(false);
    }
    let presented = plaintext.to_owned();
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let key_hash = tokio::task::spawn_blocking(move || super::hash_key(&presented)).await.map_err(|e| Error::Internal(e.into()))?;
    let mut tx = db.begin().await?;
    let new = NewApiKey {
        name,
        key_prefix: &plaintext[..super::DISPLAY_PREFIX_LEN.min(plaintext.len())],
        lookup_hash: &lookup,
        key_hash: &key_hash,
        scopes,
        key_type: KeyType::Human.as_str(),
        expires_at: None,
        allowed_sources: None,
        allowed_cidrs: None,
    };
    let Some(row) = keys::insert_system_if_absent(&mut tx, &new).await? else { return Ok(false) };
    let details = json!({ "name": row.name, "scopes": row.scopes.0, "key_type": row.key_type, "is_system": true });
    audit::record(&mut tx, &Principal::System, Record::success(CreateApiKey::NAME, "api_key", row.uuid).with_details(details)).await?;
    tx.commit().await?;
    Ok(true)
}

/// The CLI's lookup for `revoke <uuid|prefix>`: the key with that UUID, or the one active key
/// with that display prefix (an ambiguous prefix is an error).
pub async fn find_for_revoke(db: &Db, uuid_or_prefix: &str) -> Result<Option<Uuid>> {
    if let Ok(uuid) = Uuid::parse_str(uuid_or_prefix) {
        return Ok(keys::find_by_uuid(db, uuid).await?.map(|row| row.uuid));
    }
    let mut matches = keys::find_active_by_prefix(db, uuid_or_prefix).await?;
    if matches.len() > 1 {
        return Err(Error::Conflict(format!(
            "prefix {uuid_or_prefix} matches {} active keys; revoke by UUID instead",
            matches.len()
        )));
    }
    Ok(matches.pop().map(|row| row.uuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_rules() {
        assert!(validate_scopes(&["alerts:read".into()]).is_ok());
        assert_eq!(validate_scopes(&[]).unwrap_err().kind, "too_short");
        assert!(validate_scopes(&["root".into()]).unwrap_err().msg.starts_with("Unknown scope 'root'"));
        assert!(validate_name(" ").is_err());
        assert!(validate_name(&"x".repeat(256)).is_err());
        assert!(validate_sources(Some(&["".into()])).is_err());
        assert!(validate_sources(None).is_ok());
        let cidrs = |list: &[&str]| normalize_cidrs(Some(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
        assert_eq!(cidrs(&["10.1.2.3/8", "192.0.2.7", "2001:db8::1/32", "192.0.2.7/32"]).unwrap().unwrap(), ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        assert_eq!(cidrs(&[]).unwrap(), None);
        for bad in ["10.0.0.0/33", "example.com", "", "10.0.0.0/8,10.1.0.0/16"] {
            assert_eq!(cidrs(&[bad]).unwrap_err().kind, "value_error", "{bad}");
        }
    }
}
