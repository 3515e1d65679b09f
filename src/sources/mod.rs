//! Source integrations (`source_integrations`): descriptive records of the alert sources an
//! operator has connected, under `/v1/sources`. Ingest never reads them. Their `auth_config` is a
//! secret: sealed with the configured key before it is stored and never returned.

pub mod http;
pub mod service;
pub mod store;

/// The sealing helpers live in `crate::crypto`; these names are kept for code written against them.
pub use crate::crypto::{ENCRYPTED_KEY, open_json as open_auth_config, seal_json as seal_auth_config};

pub use crate::http::extract::{MEDIUM_JSON_BYTES, check_json_size};

#[cfg(test)]
mod tests {
    use serde_json::json;

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
}
