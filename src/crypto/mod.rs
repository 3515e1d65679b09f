//! Encryption at rest: AES-256-GCM with a random 96-bit nonce per value. The stored envelope is
//! `v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`; the key id (first 8 hex chars of
//! SHA-256 of the key) names the key that sealed a value, so a keyring opens each value with the
//! right key without trying every key, and rotation sees which values are still on an old key.
//!
//! A [`Cipher`] is a keyring: one current key that seals, plus older keys
//! (`ENCRYPTION_KEY_PREVIOUS`) that only open values sealed before a rotation.

pub mod rotate;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::Settings;

/// Example keys that appear in our docs and in Calseta's: production refuses them.
const KNOWN_EXAMPLE_KEYS: &[&str] = &[
    "change-me",
    "changeme",
    "CHANGE_ME_32_BYTES_BASE64_ENCODED_KEY_HERE=",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
];

/// Decodes a 32-byte key given as base64 (standard or URL-safe, with or without padding).
pub fn parse_key(text: &str) -> Result<[u8; 32], &'static str> {
    let text = text.trim();
    let bytes = [&STANDARD, &URL_SAFE]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .or_else(|| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok())
        .ok_or("not valid base64")?;
    bytes.try_into().map_err(|_| "must decode to exactly 32 bytes")
}

/// A key that decodes but is an example value or has almost no entropy (e.g. all one byte).
pub fn is_weak_key(text: &str) -> bool {
    if KNOWN_EXAMPLE_KEYS.contains(&text.trim()) {
        return true;
    }
    match parse_key(text) {
        Ok(bytes) => {
            let mut distinct = bytes.to_vec();
            distinct.sort_unstable();
            distinct.dedup();
            distinct.len() < 8
        }
        Err(_) => true,
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CryptoError {
    #[error("ENCRYPTION_KEY is not configured")]
    NotConfigured,
    #[error("malformed ciphertext envelope")]
    Malformed,
    #[error("value was sealed with key id {0}, which is none of the configured keys")]
    UnknownKey(String),
    #[error("ciphertext failed authentication (tampered or wrong key)")]
    Tampered,
}

/// A key setting that cannot become a keyring; start-up and the rotation command stop on it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KeySettingError {
    #[error("ENCRYPTION_KEY is invalid: {0}")]
    Current(&'static str),
    #[error("ENCRYPTION_KEY_PREVIOUS entry {position} is invalid: {reason}")]
    Previous { position: usize, reason: &'static str },
    #[error(
        "ENCRYPTION_KEY_PREVIOUS is set but ENCRYPTION_KEY is not: set ENCRYPTION_KEY to the key that \
         seals new values (older keys only open)"
    )]
    PreviousWithoutCurrent,
}

/// Version tag of the only envelope format.
const ENVELOPE_VERSION: &str = "v1";
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// One AES-256-GCM key and its id.
#[derive(Clone)]
struct KeyEntry {
    aead: Aes256Gcm,
    key_id: String,
}

impl KeyEntry {
    fn new(key: [u8; 32]) -> Self {
        Self { aead: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)), key_id: key_id_of(&key) }
    }
}

fn key_id_of(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..4])
}

/// The parts of an envelope: (key id, base64url body).
fn split_envelope(envelope: &str) -> Option<(&str, &str)> {
    let mut parts = envelope.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(ENVELOPE_VERSION), Some(key_id), Some(body)) if !key_id.is_empty() => Some((key_id, body)),
        _ => None,
    }
}

/// The id of the key that sealed `envelope`, or `None` if it is not an envelope.
pub fn envelope_key_id(envelope: &str) -> Option<&str> {
    split_envelope(envelope).map(|(key_id, _)| key_id)
}

/// A keyring: the current key seals, the current and every previous key open.
#[derive(Clone)]
pub struct Cipher {
    current: KeyEntry,
    /// Keys that only open, in the order configured; never one with the current key's id.
    previous: Vec<KeyEntry>,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|k| k.key_id.as_str()).collect();
        f.debug_struct("Cipher").field("key_id", &self.current.key_id).field("previous", &previous).finish_non_exhaustive()
    }
}

impl Cipher {
    /// A keyring of one key.
    pub fn new(key: [u8; 32]) -> Self {
        Self { current: KeyEntry::new(key), previous: Vec::new() }
    }

    /// A keyring of one key given as base64.
    pub fn from_setting(text: &str) -> Result<Self, &'static str> {
        parse_key(text).map(Self::new)
    }

    /// Adds keys that open but never seal. A key equal to one already on the ring is skipped, so
    /// listing the current key among the previous ones is harmless.
    pub fn with_previous(mut self, keys: impl IntoIterator<Item = [u8; 32]>) -> Self {
        for key in keys {
            self.push_previous(KeyEntry::new(key));
        }
        self
    }

    fn push_previous(&mut self, entry: KeyEntry) {
        if !self.has_key_id(&entry.key_id) {
            self.previous.push(entry);
        }
    }

    /// The keyring of the settings: `ENCRYPTION_KEY` seals, `ENCRYPTION_KEY_PREVIOUS` (comma-separated)
    /// only opens. `Ok(None)` when no key is configured: nothing can be sealed or opened.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, KeySettingError> {
        let previous = match &settings.encryption_key_previous {
            Some(list) => parse_key_list(list)?,
            None => Vec::new(),
        };
        match &settings.encryption_key {
            Some(text) => {
                let current = parse_key(text).map_err(KeySettingError::Current)?;
                Ok(Some(Self::new(current).with_previous(previous)))
            }
            None if previous.is_empty() => Ok(None),
            None => Err(KeySettingError::PreviousWithoutCurrent),
        }
    }

    /// The keyring a rotation to `new_key` works with: `new_key` seals; it and every key of
    /// `old` (current and previous) open.
    pub fn rotating_to(new_key: [u8; 32], old: Option<&Cipher>) -> Self {
        let mut ring = Self::new(new_key);
        if let Some(old) = old {
            for entry in std::iter::once(&old.current).chain(&old.previous) {
                ring.push_previous(entry.clone());
            }
        }
        ring
    }

    /// Id of the key that seals.
    pub fn key_id(&self) -> &str {
        &self.current.key_id
    }

    /// Ids of the keys that only open, in the order configured.
    pub fn previous_key_ids(&self) -> Vec<&str> {
        self.previous.iter().map(|k| k.key_id.as_str()).collect()
    }

    /// Whether a key with this id is on the ring (current or previous).
    pub fn has_key_id(&self, key_id: &str) -> bool {
        self.entry(key_id).is_some()
    }

    fn entry(&self, key_id: &str) -> Option<&KeyEntry> {
        std::iter::once(&self.current).chain(&self.previous).find(|k| k.key_id == key_id)
    }

    /// Seals with the current key and a fresh random nonce.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let nonce_bytes: [u8; NONCE_BYTES] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        let sealed = self.current.aead.encrypt(&nonce, plaintext).expect("AES-GCM encryption cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        format!("{ENVELOPE_VERSION}:{}:{}", self.current.key_id, URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens an envelope with the key its key id names.
    pub fn decrypt(&self, envelope: &str) -> Result<Vec<u8>, CryptoError> {
        let (key_id, body) = split_envelope(envelope).ok_or(CryptoError::Malformed)?;
        let entry = self.entry(key_id).ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| CryptoError::Malformed)?;
        if raw.len() < NONCE_BYTES + TAG_BYTES {
            return Err(CryptoError::Malformed);
        }
        let (nonce, sealed) = raw.split_at(NONCE_BYTES);
        let nonce = Nonce::try_from(nonce).map_err(|_| CryptoError::Malformed)?;
        entry.aead.decrypt(&nonce, sealed).map_err(|_| CryptoError::Tampered)
    }
}

/// Comma-separated keys; empty entries (a trailing comma) are ignored.
fn parse_key_list(list: &str) -> Result<Vec<[u8; 32]>, KeySettingError> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .enumerate()
        .map(|(index, entry)| parse_key(entry).map_err(|reason| KeySettingError::Previous { position: index + 1, reason }))
        .collect()
}

/// Key of the stored wrapper `{"_encrypted": "<envelope>"}` (security-and-config.md §7).
pub const ENCRYPTED_KEY: &str = "_encrypted";

/// The stored form of a secret JSON object (an `auth_config`): its JSON text sealed with the
/// current key, wrapped as `{"_encrypted": "<envelope>"}`.
pub fn seal_json(cipher: &Cipher, object: &Map<String, Value>) -> Value {
    let text = Value::Object(object.clone()).to_string();
    json!({ ENCRYPTED_KEY: cipher.encrypt(text.as_bytes()) })
}

/// The envelope inside a stored `{"_encrypted": "<envelope>"}` wrapper, or `None` if `stored`
/// is not exactly that shape.
pub fn sealed_envelope(stored: &Value) -> Option<&str> {
    match stored.as_object() {
        Some(map) if map.len() == 1 => map.get(ENCRYPTED_KEY).and_then(Value::as_str),
        _ => None,
    }
}

/// The inverse of [`seal_json`], used at the moment the secret is needed.
pub fn open_json(cipher: &Cipher, stored: &Value) -> Result<Map<String, Value>, CryptoError> {
    let envelope = sealed_envelope(stored).ok_or(CryptoError::Malformed)?;
    let plaintext = cipher.decrypt(envelope)?;
    match serde_json::from_slice::<Value>(&plaintext) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(CryptoError::Malformed),
    }
}

/// The configured cipher, or the 400 that tells the operator to set the key (every route that
/// stores a secret answers the same).
pub fn require_cipher(cipher: Option<&Cipher>) -> Result<&Cipher, crate::error::Error> {
    cipher.ok_or_else(|| {
        crate::error::Error::bad_request(
            "ENCRYPTION_NOT_CONFIGURED",
            "ENCRYPTION_KEY must be set to store auth_config securely. \
             Set ENCRYPTION_KEY in your environment and restart the service.",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        STANDARD.encode((0u8..32).collect::<Vec<_>>())
    }

    fn key_bytes(seed: u8) -> [u8; 32] {
        std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
    }

    /// Decodes an envelope body, lets `edit` change the raw bytes, and re-encodes it.
    fn edit_body(envelope: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
        let (key_id, body) = split_envelope(envelope).unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        edit(&mut raw);
        format!("v1:{key_id}:{}", URL_SAFE_NO_PAD.encode(raw))
    }

    #[test]
    fn round_trip_and_fresh_nonce() {
        let c = Cipher::from_setting(&key()).unwrap();
        let a = c.encrypt(b"secret");
        let b = c.encrypt(b"secret");
        assert_ne!(a, b, "every value gets its own nonce");
        let nonce = |e: &str| URL_SAFE_NO_PAD.decode(split_envelope(e).unwrap().1).unwrap()[..NONCE_BYTES].to_vec();
        assert_ne!(nonce(&a), nonce(&b));
        assert_eq!(c.decrypt(&a).unwrap(), b"secret");
        assert_eq!(c.decrypt(&c.encrypt(b"")).unwrap(), b"");
        assert!(a.starts_with(&format!("v1:{}:", c.key_id())));
        assert!(!a.contains("secret"));
    }

    #[test]
    fn bit_flips_anywhere_are_detected() {
        let c = Cipher::new(key_bytes(1));
        let sealed = c.encrypt(b"the secret value");
        let len = URL_SAFE_NO_PAD.decode(split_envelope(&sealed).unwrap().1).unwrap().len();
        // Nonce, ciphertext and tag: every byte is covered by the authentication.
        for position in [0, NONCE_BYTES - 1, NONCE_BYTES, NONCE_BYTES + 3, len - TAG_BYTES, len - 1] {
            let flipped = edit_body(&sealed, |raw| raw[position] ^= 0x01);
            assert_eq!(c.decrypt(&flipped), Err(CryptoError::Tampered), "flip at byte {position}");
        }
    }

    #[test]
    fn truncation_and_extension_are_detected() {
        let c = Cipher::new(key_bytes(2));
        let sealed = c.encrypt(b"the secret value");
        assert_eq!(c.decrypt(&edit_body(&sealed, |raw| raw.truncate(raw.len() - 1))), Err(CryptoError::Tampered));
        assert_eq!(c.decrypt(&edit_body(&sealed, |raw| raw.push(0))), Err(CryptoError::Tampered));
        // Shorter than nonce + tag: not even a candidate.
        assert_eq!(c.decrypt(&edit_body(&sealed, |raw| raw.truncate(NONCE_BYTES + TAG_BYTES - 1))), Err(CryptoError::Malformed));
        // Cut in the text: a body that is no longer base64 of anything, or shorter.
        for cut in 1..8 {
            assert!(c.decrypt(&sealed[..sealed.len() - cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn nonce_swap_is_detected() {
        let c = Cipher::new(key_bytes(3));
        let a = c.encrypt(b"value a");
        let b = c.encrypt(b"value b");
        let nonce_of_a = URL_SAFE_NO_PAD.decode(split_envelope(&a).unwrap().1).unwrap()[..NONCE_BYTES].to_vec();
        let swapped = edit_body(&b, |raw| raw[..NONCE_BYTES].copy_from_slice(&nonce_of_a));
        assert_eq!(c.decrypt(&swapped), Err(CryptoError::Tampered));
    }

    #[test]
    fn wrong_key_is_detected() {
        let c = Cipher::new(key_bytes(4));
        let other = Cipher::new(key_bytes(5));
        let sealed = c.encrypt(b"x");
        assert_eq!(other.decrypt(&sealed), Err(CryptoError::UnknownKey(c.key_id().to_owned())));
        // A forged key id that names the other key does not make its key open the value.
        let relabelled = sealed.replacen(c.key_id(), other.key_id(), 1);
        assert_eq!(other.decrypt(&relabelled), Err(CryptoError::Tampered));
    }

    #[test]
    fn malformed_envelopes() {
        let c = Cipher::new(key_bytes(6));
        let sealed = c.encrypt(b"x");
        assert_eq!(c.decrypt("garbage"), Err(CryptoError::Malformed));
        assert_eq!(c.decrypt(""), Err(CryptoError::Malformed));
        assert_eq!(c.decrypt(&sealed.replacen("v1:", "v2:", 1)), Err(CryptoError::Malformed));
        assert_eq!(c.decrypt(&format!("v1:{}:not*base64", c.key_id())), Err(CryptoError::Malformed));
        assert_eq!(c.decrypt(&format!("v1::{}", split_envelope(&sealed).unwrap().1)), Err(CryptoError::Malformed));
        assert_eq!(envelope_key_id(&sealed), Some(c.key_id()));
        assert_eq!(envelope_key_id("plain text"), None);
    }

    #[test]
    fn previous_keys_open_but_never_seal() {
        let old = Cipher::new(key_bytes(7));
        let older = Cipher::new(key_bytes(8));
        let ring = Cipher::new(key_bytes(9)).with_previous([key_bytes(7), key_bytes(8)]);
        assert_eq!(ring.previous_key_ids(), vec![old.key_id(), older.key_id()]);
        let from_old = old.encrypt(b"sealed before the rotation");
        let from_older = older.encrypt(b"sealed before that");
        assert_eq!(ring.decrypt(&from_old).unwrap(), b"sealed before the rotation");
        assert_eq!(ring.decrypt(&from_older).unwrap(), b"sealed before that");
        let fresh = ring.encrypt(b"new");
        assert_eq!(envelope_key_id(&fresh), Some(ring.key_id()));
        assert_eq!(old.decrypt(&fresh), Err(CryptoError::UnknownKey(ring.key_id().to_owned())));
    }

    #[test]
    fn key_id_selects_the_key() {
        let a = Cipher::new(key_bytes(10));
        let b = Cipher::new(key_bytes(11));
        let ring = Cipher::new(key_bytes(12)).with_previous([key_bytes(10), key_bytes(11), key_bytes(12), key_bytes(10)]);
        assert_eq!(ring.previous_key_ids().len(), 2, "duplicates and the current key are not repeated");
        // Each value is opened by the key its id names: a value whose id names key b but whose
        // body came from key a fails, although key a is on the ring.
        let by_a = a.encrypt(b"a");
        let claims_b = by_a.replacen(a.key_id(), b.key_id(), 1);
        assert_eq!(ring.decrypt(&by_a).unwrap(), b"a");
        assert_eq!(ring.decrypt(&claims_b), Err(CryptoError::Tampered));
        assert_eq!(ring.decrypt(&by_a.replacen(a.key_id(), "0badc0de", 1)), Err(CryptoError::UnknownKey("0badc0de".into())));
        assert!(ring.has_key_id(b.key_id()));
        assert!(!ring.has_key_id("0badc0de"));
    }

    #[test]
    fn rotating_keyring() {
        let old = Cipher::new(key_bytes(13)).with_previous([key_bytes(14)]);
        let ring = Cipher::rotating_to(key_bytes(15), Some(&old));
        assert_eq!(ring.key_id(), Cipher::new(key_bytes(15)).key_id());
        assert_eq!(ring.previous_key_ids(), vec![old.key_id(), Cipher::new(key_bytes(14)).key_id()]);
        assert_eq!(ring.decrypt(&old.encrypt(b"v")).unwrap(), b"v");
        // Rotating to the current key keeps one copy of it.
        let same = Cipher::rotating_to(key_bytes(13), Some(&old));
        assert_eq!(same.previous_key_ids(), vec![Cipher::new(key_bytes(14)).key_id()]);
        assert!(Cipher::rotating_to(key_bytes(15), None).previous_key_ids().is_empty());
    }

    #[test]
    fn keyring_from_settings() {
        let encode = |seed| STANDARD.encode(key_bytes(seed));
        let mut settings = Settings::default();
        assert!(Cipher::from_settings(&settings).unwrap().is_none());
        settings.encryption_key = Some(encode(20));
        let ring = Cipher::from_settings(&settings).unwrap().unwrap();
        assert_eq!(ring.key_id(), Cipher::new(key_bytes(20)).key_id());
        assert!(ring.previous_key_ids().is_empty());
        settings.encryption_key_previous = Some(format!(" {} , {},", encode(21), encode(22)));
        let ring = Cipher::from_settings(&settings).unwrap().unwrap();
        assert_eq!(ring.previous_key_ids(), vec![Cipher::new(key_bytes(21)).key_id(), Cipher::new(key_bytes(22)).key_id()]);
        settings.encryption_key_previous = Some(format!("{},short", encode(21)));
        assert_eq!(
            Cipher::from_settings(&settings).unwrap_err(),
            KeySettingError::Previous { position: 2, reason: "not valid base64" }
        );
        settings.encryption_key_previous = Some(encode(21));
        settings.encryption_key = None;
        assert_eq!(Cipher::from_settings(&settings).unwrap_err(), KeySettingError::PreviousWithoutCurrent);
        settings.encryption_key = Some("short".into());
        assert!(matches!(Cipher::from_settings(&settings).unwrap_err(), KeySettingError::Current(_)));
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let ring = Cipher::new(key_bytes(30)).with_previous([key_bytes(31)]);
        let text = format!("{ring:?}");
        assert!(text.contains(ring.key_id()) && text.contains(ring.previous_key_ids()[0]), "{text}");
        assert!(!text.contains(&STANDARD.encode(key_bytes(30))));
    }

    #[test]
    fn seal_and_open_json() {
        let cipher = Cipher::new([9u8; 32]);
        let config: Map<String, Value> = serde_json::from_value(json!({"token": "s3cr3t", "n": 1})).unwrap();
        let sealed = seal_json(&cipher, &config);
        assert!(!sealed.to_string().contains("s3cr3t"));
        assert_eq!(sealed.as_object().map(|m| m.len()), Some(1));
        assert_eq!(open_json(&cipher, &sealed).unwrap(), config);
        assert_eq!(open_json(&cipher, &json!({"token": "s3cr3t"})), Err(CryptoError::Malformed));
        let extra = json!({ENCRYPTED_KEY: sealed[ENCRYPTED_KEY].clone(), "other": 1});
        assert_eq!(open_json(&cipher, &extra), Err(CryptoError::Malformed), "only the bare wrapper is accepted");
        assert!(open_json(&Cipher::new([8u8; 32]), &sealed).is_err());
        // A sealed JSON text that is not an object is refused too.
        let not_object = json!({ENCRYPTED_KEY: cipher.encrypt(b"[1,2]")});
        assert_eq!(open_json(&cipher, &not_object), Err(CryptoError::Malformed));
    }

    #[test]
    fn key_parsing_and_weak_keys() {
        assert!(parse_key("short").is_err());
        assert!(parse_key(&key()).is_ok());
        assert!(is_weak_key(&STANDARD.encode([0u8; 32])));
        assert!(!is_weak_key(&key()));
        assert!(is_weak_key("CHANGE_ME_32_BYTES_BASE64_ENCODED_KEY_HERE="));
    }
}

