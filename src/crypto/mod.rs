//! Encryption at rest: AES-256-GCM with a random 96-bit nonce per value. The stored envelope is
//! `v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`; the key id (first 8 hex chars of
//! SHA-256 of the key) tells rotation which key sealed a value without trying every key.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

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
    #[error("value was sealed with key id {0}, which is not the configured key")]
    UnknownKey(String),
    #[error("ciphertext failed authentication (tampered or wrong key)")]
    Tampered,
}

#[derive(Clone)]
pub struct Cipher {
    cipher: Aes256Gcm,
    key_id: String,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cipher").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl Cipher {
    pub fn new(key: [u8; 32]) -> Self {
        let key_id = hex::encode(&Sha256::digest(key)[..4]);
        Self { cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)), key_id }
    }

    pub fn from_setting(text: &str) -> Result<Self, &'static str> {
        parse_key(text).map(Self::new)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let nonce_bytes: [u8; 12] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        let sealed = self.cipher.encrypt(&nonce, plaintext).expect("AES-GCM encryption cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        format!("v1:{}:{}", self.key_id, URL_SAFE_NO_PAD.encode(out))
    }

    pub fn decrypt(&self, envelope: &str) -> Result<Vec<u8>, CryptoError> {
        let mut parts = envelope.splitn(3, ':');
        let (Some("v1"), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::Malformed);
        };
        if key_id != self.key_id {
            return Err(CryptoError::UnknownKey(key_id.to_owned()));
        }
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| CryptoError::Malformed)?;
        if raw.len() < 12 + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, sealed) = raw.split_at(12);
        let nonce = Nonce::try_from(nonce).map_err(|_| CryptoError::Malformed)?;
        self.cipher.decrypt(&nonce, sealed).map_err(|_| CryptoError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        STANDARD.encode((0u8..32).collect::<Vec<_>>())
    }

    #[test]
    fn round_trip_and_fresh_nonce() {
        let c = Cipher::from_setting(&key()).unwrap();
        let a = c.encrypt(b"secret");
        let b = c.encrypt(b"secret");
        assert_ne!(a, b, "every value gets its own nonce");
        assert_eq!(c.decrypt(&a).unwrap(), b"secret");
    }

    #[test]
    fn tamper_and_wrong_key_detected() {
        let c = Cipher::from_setting(&key()).unwrap();
        let sealed = c.encrypt(b"secret");
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(c.decrypt(std::str::from_utf8(&bytes).unwrap()), Err(CryptoError::Tampered));
        let other = Cipher::new([7u8; 32]);
        assert!(matches!(other.decrypt(&c.encrypt(b"x")), Err(CryptoError::UnknownKey(_))));
        assert_eq!(c.decrypt("garbage"), Err(CryptoError::Malformed));
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
