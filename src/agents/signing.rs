//! Standard Webhooks signing (https://www.standardwebhooks.com): every agent delivery carries
//! `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256>` computed
//! over `"{id}.{timestamp}.{body}"` with the agent's `whsec_` secret, so a receiver can check
//! origin and integrity with any conforming verifier. During a secret rotation the header holds
//! one signature per live secret, space-separated (the spec's rotation form).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Prefix of a Standard Webhooks secret; the rest is the base64 of the key bytes.
pub const SECRET_PREFIX: &str = "whsec_";
/// 32 random bytes: the HMAC-SHA256 block-size-friendly key length the spec recommends (24..64).
const SECRET_BYTES: usize = 32;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Headers the signer owns: an operator-configured auth header may never take one of these
/// names (nor `content-type`, which the signature's body bytes depend on).
pub const RESERVED_HEADERS: [&str; 4] = [HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE, "content-type"];

/// A fresh `whsec_…` secret.
pub fn generate_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// A fresh message id (`msg_` + 32 hex digits): one per delivery, reused by its retries.
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// The key bytes of a `whsec_` secret (the prefix is optional, as verifiers accept it).
fn key_bytes(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret)).ok()
}

/// `v1,<base64 signature>` of one message under one secret; `None` for an undecodable secret.
pub fn sign(secret: &str, message_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = key_bytes(secret)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).ok()?;
    mac.update(message_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The three signing headers for `body`, one signature per secret in `secrets` (current first).
/// With no usable secret (no `ENCRYPTION_KEY` in development) the id and timestamp are still
/// sent so receivers can deduplicate.
pub fn headers(secrets: &[String], message_id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let mut headers = vec![(HEADER_ID.to_owned(), message_id.to_owned()), (HEADER_TIMESTAMP.to_owned(), timestamp.to_string())];
    let signatures: Vec<String> = secrets.iter().filter_map(|secret| sign(secret, message_id, timestamp, body)).collect();
    if !signatures.is_empty() {
        headers.push((HEADER_SIGNATURE.to_owned(), signatures.join(" ")));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks specification.
    #[test]
    fn spec_test_vector() {
        let signature = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(signature.as_deref(), Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
    }

    #[test]
    fn independent_verifier_accepts_ours_and_rotation_sends_both() {
        let (old, new) = (generate_secret(), generate_secret());
        assert!(new.starts_with(SECRET_PREFIX) && new != old);
        let id = new_message_id();
        let now = chrono::Utc::now().timestamp();
        let body = br#"{"alert":{"title":"x"}}"#;
        let sent = headers(&[new.clone(), old.clone()], &id, now, body);
        let mut map = http::HeaderMap::new();
        for (name, value) in &sent {
            map.insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        assert_eq!(sent[2].1.split(' ').count(), 2);
        for secret in [&new, &old] {
            let verifier = standardwebhooks::Webhook::new(secret).unwrap();
            verifier.verify(body, &map).expect("verifies with either secret");
        }
        let stranger = standardwebhooks::Webhook::new(&generate_secret()).unwrap();
        assert!(stranger.verify(body, &map).is_err());
        assert!(standardwebhooks::Webhook::new(&new).unwrap().verify(b"{}", &map).is_err(), "bound to the exact bytes");
    }

    #[test]
    fn no_secret_still_identifies_the_message() {
        let sent = headers(&[], "msg_1", 5, b"{}");
        assert_eq!(sent.len(), 2);
        assert!(sign("whsec_%%%", "m", 1, b"").is_none());
    }
}
