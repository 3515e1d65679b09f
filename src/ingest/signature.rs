//! Inbound webhook authentication (ingestion.md §2, hardened).
//!
//! Two forms, each source declaring which headers carry which:
//! * HMAC: hex HMAC-SHA256 of the exact raw body, keyed with the secret; either hex case; an
//!   optional `sha256=` prefix. With an `X-Webhook-Timestamp` header (unix seconds) the MAC
//!   must instead cover `"{timestamp}.{body}"` and the timestamp be within ±300 s of `now`.
//! * Shared token (Calseta's Splunk form): the header value equals the secret.
//!
//! Deviations from Calseta: upper-case hex is accepted (Calseta compares case-sensitively), our
//! design's header names are accepted besides Calseta's, and the optional timestamp adds replay
//! protection.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Header carrying the unix-seconds timestamp that, when present, the HMAC must cover.
pub const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// Largest accepted distance between the timestamp header and `now`, either direction.
pub const MAX_TIMESTAMP_SKEW_SECONDS: i64 = 300;

pub const WEBHOOK_SIGNATURE_HEADER: &str = "x-webhook-signature";
pub const SENTINEL_SIGNATURE_HEADER: &str = "x-sentinel-signature";
pub const ELASTIC_SIGNATURE_HEADER: &str = "x-elastic-signature";
pub const SPLUNK_SIGNATURE_HEADER: &str = "x-splunk-signature";
pub const SPLUNK_TOKEN_HEADER: &str = "x-splunk-webhook-secret";

/// Which headers authenticate a source, in priority order, and which setting holds its
/// secret. The first header present (and non-empty) is the one checked; HMAC headers are
/// looked at before token headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureScheme {
    pub hmac_headers: &'static [&'static str],
    pub token_headers: &'static [&'static str],
    /// Environment variable with the shared secret (e.g. `SENTINEL_WEBHOOK_SECRET`).
    pub secret_env_var: Option<&'static str>,
}

impl SignatureScheme {
    /// No authentication (the generic source): every request passes.
    pub const NONE: SignatureScheme = SignatureScheme {
        hmac_headers: &[],
        token_headers: &[],
        secret_env_var: None,
    };

    pub fn is_none(&self) -> bool {
        self.hmac_headers.is_empty() && self.token_headers.is_empty()
    }
}

/// Why a webhook was refused (all map to 401 `INVALID_SIGNATURE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("webhook signature header is missing")]
    Missing,
    #[error("webhook signature does not match")]
    Mismatch,
    #[error("webhook timestamp is outside the allowed window")]
    Stale,
    #[error("webhook signature or timestamp header is malformed")]
    Malformed,
}

/// Verify `body` against `headers` under `scheme`. `secret = None` (or empty, which Calseta
/// treats as "not configured") skips the check: the caller decides whether that is allowed.
pub fn verify(
    scheme: &SignatureScheme,
    secret: Option<&[u8]>,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let Some(secret) = secret.filter(|secret| !secret.is_empty()) else {
        return Ok(());
    };
    if scheme.is_none() {
        return Ok(());
    }
    let timestamp = signed_timestamp(headers, now)?;
    if let Some(signature) = first_header(headers, scheme.hmac_headers)? {
        return verify_hmac(secret, signature, timestamp, body);
    }
    if let Some(token) = first_header(headers, scheme.token_headers)? {
        // A shared token cannot vouch for a timestamp, so a timestamp beside it is unsigned.
        if timestamp.is_some() {
            return Err(SignatureError::Mismatch);
        }
        return constant_time_equal(token.as_bytes(), secret)
            .then_some(())
            .ok_or(SignatureError::Mismatch);
    }
    Err(SignatureError::Missing)
}

/// The first non-empty header of `names`; a value that is not visible ASCII is malformed.
fn first_header<'a>(
    headers: &'a HeaderMap,
    names: &[&str],
) -> Result<Option<&'a str>, SignatureError> {
    for name in names {
        let Some(value) = headers.get(*name) else {
            continue;
        };
        let text = value
            .to_str()
            .map_err(|_| SignatureError::Malformed)?
            .trim();
        if !text.is_empty() {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

/// The timestamp header, checked against the window; `None` when absent.
fn signed_timestamp(
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<Option<&str>, SignatureError> {
    let Some(text) = first_header(headers, &[TIMESTAMP_HEADER])? else {
        return match headers.get(TIMESTAMP_HEADER) {
            Some(_) => Err(SignatureError::Malformed), // present but blank
            None => Ok(None),
        };
    };
    if text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed);
    }
    let seconds: i64 = text.parse().map_err(|_| SignatureError::Malformed)?;
    if now.timestamp().abs_diff(seconds) > MAX_TIMESTAMP_SKEW_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(Some(text))
}

fn verify_hmac(
    secret: &[u8],
    header_value: &str,
    timestamp: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let hex_digest = strip_prefix_ignore_case(header_value, "sha256=").trim();
    let received = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)?;
    if received.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let expected = hmac_sha256(secret, timestamp, body);
    if bool::from(expected.as_slice().ct_eq(&received)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// HMAC-SHA256 over `body`, or over `"{timestamp}.{body}"` when a timestamp is given.
pub fn hmac_sha256(secret: &[u8], timestamp: Option<&str>, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC would never match.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return Vec::new();
    };
    if let Some(timestamp) = timestamp {
        mac.update(timestamp.as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Compare digests rather than raw values so neither the length nor the content of the secret
/// leaks through timing.
fn constant_time_equal(left: &[u8], right: &[u8]) -> bool {
    bool::from(
        Sha256::digest(left)
            .as_slice()
            .ct_eq(Sha256::digest(right).as_slice()),
    )
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> &'a str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use http::{HeaderName, HeaderValue};

    const SECRET: &[u8] = b"s3cr3t";
    const BODY: &[u8] = br#"{"a":1}"#;
    const HMAC_SCHEME: SignatureScheme = SignatureScheme {
        hmac_headers: &[WEBHOOK_SIGNATURE_HEADER, ELASTIC_SIGNATURE_HEADER],
        token_headers: &[],
        secret_env_var: None,
    };
    const SPLUNK_SCHEME: SignatureScheme = SignatureScheme {
        hmac_headers: &[SPLUNK_SIGNATURE_HEADER],
        token_headers: &[SPLUNK_TOKEN_HEADER],
        secret_env_var: None,
    };

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn body_hex() -> String {
        hex::encode(hmac_sha256(SECRET, None, BODY))
    }

    #[test]
    fn known_hmac_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", None, b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The timestamped form is the plain MAC of "{ts}.{body}".
        assert_eq!(
            hmac_sha256(SECRET, Some("17"), BODY),
            hmac_sha256(SECRET, None, br#"17.{"a":1}"#)
        );
    }

    #[test]
    fn hmac_header_forms() {
        let lower = body_hex();
        let upper = lower.to_uppercase();
        for (name, value) in [
            ("X-Webhook-Signature", lower.clone()),
            ("X-Elastic-Signature", lower.clone()),
            ("x-elastic-signature", format!("sha256={lower}")),
            ("X-Webhook-Signature", upper.clone()),
            ("X-Webhook-Signature", format!("SHA256={upper}")),
            ("X-Webhook-Signature", format!(" sha256={lower} ")),
        ] {
            assert_eq!(
                verify(
                    &HMAC_SCHEME,
                    Some(SECRET),
                    &headers(&[(name, &value)]),
                    BODY,
                    now()
                ),
                Ok(()),
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn hmac_failures() {
        let good = body_hex();
        let check = |pairs: &[(&str, &str)], body: &[u8]| {
            verify(&HMAC_SCHEME, Some(SECRET), &headers(pairs), body, now())
        };
        assert_eq!(check(&[], BODY), Err(SignatureError::Missing));
        assert_eq!(
            check(&[("X-Webhook-Signature", "")], BODY),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            check(&[("X-Sentinel-Signature", &good)], BODY),
            Err(SignatureError::Missing)
        ); // not this scheme's header
        assert_eq!(
            check(&[("X-Webhook-Signature", &good)], br#"{"a":2}"#),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&[("X-Webhook-Signature", &good)], br#"{"a": 1}"#),
            Err(SignatureError::Mismatch)
        );
        let wrong_key = hex::encode(hmac_sha256(b"other", None, BODY));
        assert_eq!(
            check(&[("X-Webhook-Signature", &wrong_key)], BODY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&[("X-Webhook-Signature", "zz")], BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(&[("X-Webhook-Signature", &good[..62])], BODY),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(&[("X-Webhook-Signature", "sha1=abcd")], BODY),
            Err(SignatureError::Malformed)
        );
        // The first present header in priority order decides.
        assert_eq!(
            check(
                &[
                    ("X-Webhook-Signature", &"0".repeat(64)),
                    ("X-Elastic-Signature", &good)
                ],
                BODY
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn no_secret_or_no_scheme_skips() {
        let none = headers(&[]);
        assert_eq!(verify(&HMAC_SCHEME, None, &none, BODY, now()), Ok(()));
        assert_eq!(verify(&HMAC_SCHEME, Some(b""), &none, BODY, now()), Ok(()));
        assert_eq!(
            verify(&SignatureScheme::NONE, Some(SECRET), &none, BODY, now()),
            Ok(())
        );
    }

    #[test]
    fn timestamped_signatures() {
        let ts = now().timestamp();
        let signed = |ts: i64| hex::encode(hmac_sha256(SECRET, Some(&ts.to_string()), BODY));
        let check = |ts_text: &str, signature: &str| {
            verify(
                &HMAC_SCHEME,
                Some(SECRET),
                &headers(&[
                    ("X-Webhook-Timestamp", ts_text),
                    ("X-Webhook-Signature", signature),
                ]),
                BODY,
                now(),
            )
        };
        assert_eq!(check(&ts.to_string(), &signed(ts)), Ok(()));
        assert_eq!(check(&(ts - 300).to_string(), &signed(ts - 300)), Ok(()));
        assert_eq!(check(&(ts + 300).to_string(), &signed(ts + 300)), Ok(()));
        assert_eq!(
            check(&(ts - 301).to_string(), &signed(ts - 301)),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(&(ts + 301).to_string(), &signed(ts + 301)),
            Err(SignatureError::Stale)
        );
        // A timestamp the MAC does not cover (body-only MAC) fails.
        assert_eq!(
            check(&ts.to_string(), &body_hex()),
            Err(SignatureError::Mismatch)
        );
        // MAC over another timestamp fails.
        assert_eq!(
            check(&ts.to_string(), &signed(ts - 1)),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "abc", "-5", "1.5", "99999999999999999999"] {
            assert_eq!(
                check(bad, &signed(ts)),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
        // Timestamp with no signature at all.
        let only_ts = headers(&[("X-Webhook-Timestamp", &ts.to_string())]);
        assert_eq!(
            verify(&HMAC_SCHEME, Some(SECRET), &only_ts, BODY, now()),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn splunk_token_and_hmac() {
        let check = |pairs: &[(&str, &str)]| {
            verify(&SPLUNK_SCHEME, Some(SECRET), &headers(pairs), BODY, now())
        };
        assert_eq!(check(&[("X-Splunk-Webhook-Secret", "s3cr3t")]), Ok(()));
        assert_eq!(
            check(&[("X-Splunk-Webhook-Secret", "s3cr3")]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&[("X-Splunk-Webhook-Secret", "S3CR3T")]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check(&[("X-Splunk-Signature", &body_hex())]), Ok(()));
        assert_eq!(
            check(&[("X-Splunk-Signature", &"ab".repeat(32))]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check(&[]), Err(SignatureError::Missing));
        let ts = now().timestamp().to_string();
        assert_eq!(
            check(&[
                ("X-Webhook-Timestamp", &ts),
                ("X-Splunk-Webhook-Secret", "s3cr3t")
            ]),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn non_ascii_header_is_malformed() {
        let mut map = HeaderMap::new();
        map.insert(
            "x-webhook-signature",
            HeaderValue::from_bytes(&[0xff, 0xfe]).unwrap(),
        );
        assert_eq!(
            verify(&HMAC_SCHEME, Some(SECRET), &map, BODY, now()),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn spec_example_elastic_header() {
        // ingestion.md §2: secret s3cr3t, body {"a":1}, header sha256=<hex>.
        let value = format!("sha256={}", body_hex());
        let scheme = crate::ingest::sources::get("elastic")
            .map(|s| s.signature())
            .unwrap();
        assert_eq!(
            verify(
                &scheme,
                Some(SECRET),
                &headers(&[("X-Elastic-Signature", &value)]),
                BODY,
                now()
            ),
            Ok(())
        );
        let sentinel = crate::ingest::sources::get("sentinel")
            .map(|s| s.signature())
            .unwrap();
        assert_eq!(
            verify(
                &sentinel,
                Some(SECRET),
                &headers(&[("X-Elastic-Signature", &value)]),
                BODY,
                now()
            ),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(
                &sentinel,
                Some(SECRET),
                &headers(&[("X-Sentinel-Signature", &value)]),
                BODY,
                now()
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &sentinel,
                Some(SECRET),
                &headers(&[("X-Webhook-Signature", &value)]),
                BODY,
                now()
            ),
            Ok(())
        );
    }
}
