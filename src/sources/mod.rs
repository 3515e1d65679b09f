//! Source integrations (`source_integrations`): descriptive records of the alert sources an
//! operator has connected, under `/v1/sources`. Ingest never reads them. Their `auth_config` is a
//! secret: sealed with the configured key before it is stored and never returned.

pub mod http;
pub mod store;

use serde_json::{Map, Value, json};

use crate::crypto::{Cipher, CryptoError};

/// Key of the stored wrapper `{"_encrypted": "<envelope>"}` (security-and-config.md §7).
pub const ENCRYPTED_KEY: &str = "_encrypted";

pub use crate::http::extract::{MEDIUM_JSON_BYTES, check_json_size};

/// The stored form of an `auth_config` object: its JSON text sealed with `cipher`.
pub fn seal_auth_config(cipher: &Cipher, config: &Map<String, Value>) -> Value {
    let text = Value::Object(config.clone()).to_string();
    json!({ ENCRYPTED_KEY: cipher.encrypt(text.as_bytes()) })
}

/// The inverse of [`seal_auth_config`], for whatever comes to need the credentials.
pub fn open_auth_config(cipher: &Cipher, stored: &Value) -> Result<Map<String, Value>, CryptoError> {
    let envelope = stored.get(ENCRYPTED_KEY).and_then(Value::as_str).ok_or(CryptoError::Malformed)?;
    let plaintext = cipher.decrypt(envelope)?;
    match serde_json::from_slice::<Value>(&plaintext) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(CryptoError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_limit_message() {
        let small = json!({"a": "b"});
        assert!(check_json_size("auth_config", &small, MEDIUM_JSON_BYTES).is_ok());
        // {"k":"…"} is 8 bytes of wrapper around the string.
        let exact = json!({"k": "x".repeat(MEDIUM_JSON_BYTES - 8)});
        assert!(check_json_size("auth_config", &exact, MEDIUM_JSON_BYTES).is_ok());
        let over = json!({"k": "x".repeat(MEDIUM_JSON_BYTES - 7)});
        let err = check_json_size("auth_config", &over, MEDIUM_JSON_BYTES).unwrap_err();
        assert_eq!(err.msg, "auth_config exceeds maximum size of 256 KB (262,145 bytes serialized)");
        assert_eq!(err.loc, vec![json!("body"), json!("auth_config")]);
        let err = check_json_size("payload", &json!("x".repeat(2 * 1024 * 1024)), 1024 * 1024).unwrap_err();
        assert_eq!(err.msg, "payload exceeds maximum size of 1 MB (2,097,154 bytes serialized)");
    }

    #[test]
    fn seal_and_open_round_trip() {
        let cipher = Cipher::new([9u8; 32]);
        let config: Map<String, Value> = serde_json::from_value(json!({"token": "s3cr3t", "n": 1})).unwrap();
        let sealed = seal_auth_config(&cipher, &config);
        let text = sealed.to_string();
        assert!(!text.contains("s3cr3t"));
        assert_eq!(sealed.as_object().map(|m| m.len()), Some(1));
        assert_eq!(open_auth_config(&cipher, &sealed).unwrap(), config);
        assert_eq!(open_auth_config(&cipher, &json!({"token": "s3cr3t"})), Err(CryptoError::Malformed));
        assert!(open_auth_config(&Cipher::new([8u8; 32]), &sealed).is_err());
    }
}
