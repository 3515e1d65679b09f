//! Masking of credentials in the provider test endpoint's debug output (enrichment.md §10).
//!
//! Fix of the original's quirk: request bodies are masked too ([`mask_value`]) — the original
//! echoed e.g. Entra's `client_secret` form field in clear. Credentials are also recognised in
//! their percent-encoded, form-encoded and JSON-escaped spellings, since URL placeholders after
//! the authority are always percent-encoded and query strings are form-encoded.
//!
//! Two passes. While a step is recorded, credentials of at least [`MIN_CREDENTIAL_CHARS`]
//! characters are masked inside values (a one-character credential would otherwise mask every
//! value containing that character). Then [`scrub`] walks the whole finished debug output —
//! response bodies, redirect URLs, error texts, headers, object keys — and masks every
//! occurrence of every credential, however short: a vendor echoing the key back must not hand it
//! to whoever reads the test output. A mask never shows any character of the secret
//! (deviation from Calseta's first-4 + last-4, which left 8 of a 10-character key visible).

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::{Map, Value};

use super::template;

/// Shortest credential value searched for inside other values while a step is recorded.
pub const MIN_CREDENTIAL_CHARS: usize = 4;
/// Serialized size (characters) above which a debug body is replaced by a preview.
pub const MAX_DEBUG_BODY_CHARS: usize = 50_000;
/// What every masked value or occurrence becomes.
pub const MASK: &str = "****";

/// Header (and body field) names whose values are always masked, matched case-insensitively
/// anywhere in the name.
const SENSITIVE_NAME_PARTS: &[&str] = &[
    "authorization",
    "api_key",
    "api-key",
    "apikey",
    "token",
    "secret",
    "password",
    "x-api-key",
];

/// A masked secret: always [`MASK`], whatever its length, so no part of it is ever shown.
pub fn mask(_value: &str) -> String {
    MASK.to_owned()
}

/// Finds every spelling of a set of credentials in one pass, the longest match first (so a
/// credential containing another is masked whole).
struct Spellings(Option<AhoCorasick>);

impl Spellings {
    fn of<'a>(credentials: impl Iterator<Item = &'a String>) -> Self {
        let mut patterns: Vec<String> = credentials.filter(|c| !c.is_empty()).flat_map(|c| spellings_of(c)).collect();
        patterns.sort_unstable();
        patterns.dedup();
        if patterns.is_empty() {
            return Spellings(None);
        }
        let automaton = AhoCorasick::builder().match_kind(MatchKind::LeftmostLongest).build(&patterns).ok();
        Spellings(automaton)
    }

    fn found_in(&self, text: &str) -> bool {
        self.0.as_ref().is_some_and(|a| a.is_match(text))
    }

    fn replace<'t>(&self, text: &'t str) -> Cow<'t, str> {
        match &self.0 {
            Some(automaton) if automaton.is_match(text) => {
                Cow::Owned(automaton.replace_all(text, &vec![MASK; automaton.patterns_len()]))
            }
            _ => Cow::Borrowed(text),
        }
    }

    fn value(&self, value: Value) -> Value {
        match value {
            Value::String(text) => match self.replace(&text) {
                Cow::Borrowed(_) => Value::String(text),
                Cow::Owned(masked) => Value::String(masked),
            },
            Value::Array(items) => Value::Array(items.into_iter().map(|item| self.value(item)).collect()),
            Value::Object(map) => {
                Value::Object(map.into_iter().map(|(key, item)| (self.replace(&key).into_owned(), self.value(item))).collect())
            }
            // A credential of digits echoed as a JSON number is still the credential.
            Value::Number(n) if self.found_in(&n.to_string()) => Value::String(MASK.to_owned()),
            other => other,
        }
    }
}

/// The whole debug output with every occurrence of every credential (any length; raw,
/// percent-encoded, form-encoded or JSON-escaped; in strings, object keys and numbers) masked.
pub fn scrub(output: Value, credentials: &[String]) -> Value {
    Spellings::of(credentials.iter()).value(output)
}

/// Whether a header or field name marks its value as secret.
pub fn is_sensitive_name(name: &str) -> bool {
    let lower = name.to_lowercase();
    SENSITIVE_NAME_PARTS.iter().any(|part| lower.contains(part))
}

/// Headers for debug output: a value is masked whole when its name is sensitive or it contains a
/// credential. Repeated names are joined with `, ` (as HTTP combines them).
pub fn mask_headers(headers: &[(String, String)], credentials: &[String]) -> Map<String, Value> {
    let mut masked = Map::new();
    for (name, value) in headers {
        let shown = if is_sensitive_name(name) || contains_credential(value, credentials) {
            mask(value)
        } else {
            value.clone()
        };
        match masked.get_mut(name) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&shown);
            }
            _ => {
                masked.insert(name.clone(), Value::String(shown));
            }
        }
    }
    masked
}

/// `text` (a URL, a query value) with every occurrence of a credential (of at least
/// [`MIN_CREDENTIAL_CHARS`]) — raw, percent-encoded or form-encoded — replaced by [`MASK`].
pub fn mask_credentials_in(text: &str, credentials: &[String]) -> String {
    Spellings::of(searchable(credentials)).replace(text).into_owned()
}

/// A request body for debug output: strings under a sensitive field name are masked whole, other
/// strings have their credentials masked, at any depth.
pub fn mask_value(value: &Value, credentials: &[String]) -> Value {
    match value {
        Value::String(text) => Value::String(mask_credentials_in(text, credentials)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| mask_value(item, credentials))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    let shown = match item {
                        Value::String(text) if is_sensitive_name(key) => Value::String(mask(text)),
                        other => mask_value(other, credentials),
                    };
                    (key.clone(), shown)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A response body for debug output: one whose compact JSON exceeds [`MAX_DEBUG_BODY_CHARS`]
/// characters becomes `{"_truncated": true, "_preview": <its first 50,000 characters>}`.
pub fn truncate_body(value: Value) -> Value {
    let serialized = value.to_string();
    // Characters, not bytes; a string with fewer bytes cannot have more characters.
    if serialized.len() <= MAX_DEBUG_BODY_CHARS {
        return value;
    }
    match serialized.char_indices().nth(MAX_DEBUG_BODY_CHARS) {
        None => value,
        Some((cut, _)) => {
            let mut truncated = Map::new();
            truncated.insert("_truncated".into(), Value::Bool(true));
            truncated.insert(
                "_preview".into(),
                Value::String(serialized[..cut].to_owned()),
            );
            Value::Object(truncated)
        }
    }
}

fn searchable(credentials: &[String]) -> impl Iterator<Item = &String> {
    credentials
        .iter()
        .filter(|credential| credential.chars().count() >= MIN_CREDENTIAL_CHARS)
}

fn contains_credential(text: &str, credentials: &[String]) -> bool {
    Spellings::of(searchable(credentials)).found_in(text)
}

/// The ways a credential can appear: as is, percent-encoded (URL placeholders), form-encoded
/// (query strings and form bodies) and JSON-escaped (a truncated body's preview is JSON text).
fn spellings_of(credential: &str) -> Vec<String> {
    let json = serde_json::to_string(credential).unwrap_or_default();
    let mut spellings = vec![
        credential.to_owned(),
        template::percent_encode(credential),
        form_urlencoded::byte_serialize(credential.as_bytes()).collect::<String>(),
        json[1..json.len().saturating_sub(1).max(1)].to_owned(),
    ];
    spellings.retain(|s| !s.is_empty());
    spellings.dedup();
    spellings
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn creds(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| (*value).to_owned()).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn masking_shows_nothing_of_the_secret() {
        for secret in ["", "ab", "12345678", "abcdefghij", "abcdefghijkl", "abcdefghijklmnopwxyz", "ünïcødé√√"] {
            assert_eq!(mask(secret), "****", "{secret}");
        }
    }

    #[test]
    fn scrub_masks_every_occurrence_everywhere() {
        let credentials = creds(&["k9", "vt-secret-12", "a b/c&d", "4242"]);
        let output = json!({
            "error_message": "vendor said: invalid key vt-secret-12",
            "steps": [{
                "request_url": "https://v.example/redirect?to=https%3A%2F%2Fx%2F%3Fkey%3Dvt-secret-12",
                "response_headers": {"location": "https://v.example/?key=vt-secret-12&t=k9"},
                "response_body": {"echo": {"apikey": "k9", "vt-secret-12": true, "spaced": "a+b%2Fc%26d", "pin": 4242}},
                "error": "error sending request for url (https://v.example/a%20b%2Fc%26d)",
                "preview": "{\"q\":\"a b/c&d\"}",
            }],
        });
        let scrubbed = scrub(output, &credentials).to_string();
        for secret in ["k9", "vt-secret", "secret-12", "a b", "a+b", "c&d", "c%26d", "4242"] {
            assert!(!scrubbed.contains(secret), "{secret} in {scrubbed}");
        }
        assert!(scrubbed.contains(r#""pin":"****""#), "{scrubbed}");
        assert!(scrubbed.contains("invalid key ****"), "{scrubbed}");
        // Nothing to mask: the output is unchanged.
        let plain = json!({"a": ["b", 1, null]});
        assert_eq!(scrub(plain.clone(), &creds(&["zz"])), plain);
        assert_eq!(scrub(plain.clone(), &[]), plain);
    }

    #[test]
    fn sensitive_header_names() {
        for name in [
            "Authorization",
            "Proxy-Authorization",
            "X-API-KEY",
            "api_key",
            "Api-Key",
            "apikey",
            "X-Auth-Token",
            "client_secret",
            "PASSWORD",
        ] {
            assert!(is_sensitive_name(name), "{name}");
        }
        for name in [
            "Accept",
            "Content-Type",
            "Key",
            "X-Request-Id",
            "User-Agent",
        ] {
            assert!(!is_sensitive_name(name), "{name}");
        }
    }

    #[test]
    fn header_masking() {
        let masked = mask_headers(
            &headers(&[
                ("Key", "abcd1234efgh5678wxyz"),
                ("Accept", "application/json"),
                ("Authorization", "SSWS 00abcdefghijklmnop"),
                ("x-apikey", "short"),
                ("X-Custom", "prefix-abcd1234efgh5678wxyz-suffix"),
                ("X-Other", "abc"),
            ]),
            &creds(&["abcd1234efgh5678wxyz", "abc"]),
        );
        assert_eq!(
            Value::Object(masked),
            json!({
                "Key": "****",
                "Accept": "application/json",
                "Authorization": "****",
                "x-apikey": "****",
                "X-Custom": "****",
                // "abc" is too short to be searched for.
                "X-Other": "abc",
            })
        );
    }

    #[test]
    fn repeated_headers_are_joined() {
        let masked = mask_headers(
            &headers(&[
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("X-Token", "t1"),
                ("X-Token", "t2"),
            ]),
            &[],
        );
        assert_eq!(masked["Set-Cookie"], json!("a=1, b=2"));
        assert_eq!(masked["X-Token"], json!("****, ****"));
    }

    #[test]
    fn credentials_in_urls_and_query_values() {
        let credentials = creds(&["s3cr3t-key/with&chars", "tenant-0001"]);
        assert_eq!(
            mask_credentials_in("https://h.example.net/tenant-0001/token", &credentials),
            "https://h.example.net/****/token"
        );
        // Percent-encoded by URL rendering.
        assert_eq!(
            mask_credentials_in(
                "https://h.example.net/v1?key=s3cr3t-key%2Fwith%26chars",
                &credentials
            ),
            "https://h.example.net/v1?key=****"
        );
        // Form-encoded in a query string.
        let spaced = creds(&["two words+more"]);
        assert_eq!(
            mask_credentials_in("q=two+words%2Bmore&x=1", &spaced),
            "q=****&x=1"
        );
        assert_eq!(
            mask_credentials_in("two words+more", &spaced),
            "****"
        );
        assert_eq!(
            mask_credentials_in("nothing here", &credentials),
            "nothing here"
        );
        assert_eq!(mask_credentials_in("", &credentials), "");
        assert_eq!(mask_credentials_in("abc", &creds(&["abc"])), "abc");
        assert_eq!(mask_credentials_in("abcd", &creds(&["abcd"])), "****");
    }

    #[test]
    fn overlapping_credentials_mask_the_longest() {
        let credentials = creds(&["abcd", "abcdefghijkl"]);
        assert_eq!(
            mask_credentials_in("x=abcdefghijkl", &credentials),
            "x=****"
        );
        assert_eq!(mask_credentials_in("x=abcd", &credentials), "x=****");
    }

    #[test]
    fn bodies_are_masked() {
        let credentials = creds(&["client-secret-value", "11111111-2222"]);
        let body = json!({
            "client_id": "11111111-2222",
            "client_secret": "client-secret-value",
            "scope": "https://graph.microsoft.com/.default",
            "password": "not-a-configured-credential",
            "nested": [{"note": "uses client-secret-value inline"}, 5, null, true],
            "token": 12345,
        });
        assert_eq!(
            mask_value(&body, &credentials),
            json!({
                "client_id": "****",
                "client_secret": "****",
                "scope": "https://graph.microsoft.com/.default",
                "password": "****",
                "nested": [{"note": "uses **** inline"}, 5, null, true],
                "token": 12345,
            })
        );
        assert_eq!(
            mask_value(&json!("client-secret-value"), &credentials),
            json!("****")
        );
        assert_eq!(mask_value(&Value::Null, &credentials), Value::Null);
    }

    #[test]
    fn truncation() {
        let small = json!({"a": "b"});
        assert_eq!(truncate_body(small.clone()), small);
        // `"` + 49,998 chars + `"` = exactly 50,000 serialized characters: kept.
        let exact = json!("x".repeat(49_998));
        assert_eq!(truncate_body(exact.clone()), exact);
        let over = json!("x".repeat(49_999));
        let truncated = truncate_body(over);
        assert_eq!(truncated["_truncated"], json!(true));
        let preview = truncated["_preview"].as_str().unwrap();
        assert_eq!(preview.chars().count(), 50_000);
        assert!(preview.starts_with("\"xxx"));
        // Multi-byte characters: counted as characters, cut on a boundary.
        let wide = json!("é".repeat(30_000));
        assert_eq!(truncate_body(wide.clone()), wide);
        let wider = truncate_body(json!({"k": "é".repeat(60_000)}));
        assert_eq!(wider["_preview"].as_str().unwrap().chars().count(), 50_000);
    }
}
