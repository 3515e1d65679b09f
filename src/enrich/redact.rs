//! Masking of credentials in the provider test endpoint's debug output (enrichment.md §10).
//!
//! Fix of the original's quirk: request bodies are masked too ([`mask_value`]) — the original
//! echoed e.g. Entra's `client_secret` form field in clear. Credentials are also recognised in
//! their percent-encoded and form-encoded spellings, since URL placeholders after the authority
//! are always percent-encoded and query strings are form-encoded.
//!
//! Credential values shorter than [`MIN_CREDENTIAL_CHARS`] are not searched for: a one-character
//! "credential" would mask every value containing that character.

use serde_json::{Map, Value};

use super::template;

/// Shortest credential value searched for inside other values.
pub const MIN_CREDENTIAL_CHARS: usize = 4;
/// Serialized size (characters) above which a debug body is replaced by a preview.
pub const MAX_DEBUG_BODY_CHARS: usize = 50_000;

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

/// `****` for values of at most 8 characters, else the first 4 + `****` + the last 4.
pub fn mask(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 8 {
        return "****".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
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

/// `text` (a URL, a query value) with every occurrence of a credential — raw, percent-encoded or
/// form-encoded — replaced by its [`mask`].
pub fn mask_credentials_in(text: &str, credentials: &[String]) -> String {
    let mut spellings: Vec<(String, String)> = searchable(credentials)
        .flat_map(|credential| {
            let masked = mask(credential);
            spellings_of(credential)
                .into_iter()
                .map(move |spelling| (spelling, masked.clone()))
        })
        .collect();
    if spellings.is_empty() {
        return text.to_owned();
    }
    // Longest first, so a credential containing another is replaced whole.
    spellings.sort_by_key(|(spelling, _)| std::cmp::Reverse(spelling.len()));
    // One pass over the text: a mask is never searched again for a shorter credential.
    let mut result = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(next) = rest.chars().next() {
        for (spelling, masked) in &spellings {
            if let Some(after) = rest.strip_prefix(spelling.as_str()) {
                result.push_str(masked);
                rest = after;
                continue 'scan;
            }
        }
        result.push(next);
        rest = &rest[next.len_utf8()..];
    }
    result
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
    searchable(credentials).any(|credential| {
        spellings_of(credential)
            .iter()
            .any(|spelling| text.contains(spelling.as_str()))
    })
}

/// The ways a credential can appear in a request: as is, percent-encoded (URL placeholders) and
/// form-encoded (query strings and form bodies).
fn spellings_of(credential: &str) -> Vec<String> {
    let mut spellings = vec![credential.to_owned()];
    for encoded in [
        template::percent_encode(credential),
        form_urlencoded::byte_serialize(credential.as_bytes()).collect::<String>(),
    ] {
        if !spellings.contains(&encoded) {
            spellings.push(encoded);
        }
    }
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
    fn masking() {
        assert_eq!(mask(""), "****");
        assert_eq!(mask("abc"), "****");
        assert_eq!(mask("12345678"), "****");
        assert_eq!(mask("123456789"), "1234****6789");
        assert_eq!(mask("abcdefghijklmnopwxyz"), "abcd****wxyz");
        assert_eq!(mask("ünïcødé√√"), "ünïc****dé√√");
        assert_eq!(mask("ünïcødé√"), "****");
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
                "Key": "abcd****wxyz",
                "Accept": "application/json",
                "Authorization": "SSWS****mnop",
                "x-apikey": "****",
                "X-Custom": "pref****ffix",
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
            "https://h.example.net/tena****0001/token"
        );
        // Percent-encoded by URL rendering.
        assert_eq!(
            mask_credentials_in(
                "https://h.example.net/v1?key=s3cr3t-key%2Fwith%26chars",
                &credentials
            ),
            "https://h.example.net/v1?key=s3cr****hars"
        );
        // Form-encoded in a query string.
        let spaced = creds(&["two words+more"]);
        assert_eq!(
            mask_credentials_in("q=two+words%2Bmore&x=1", &spaced),
            "q=two ****more&x=1"
        );
        assert_eq!(
            mask_credentials_in("two words+more", &spaced),
            "two ****more"
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
            "x=abcd****ijkl"
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
                "client_id": "1111****2222",
                "client_secret": "clie****alue",
                "scope": "https://graph.microsoft.com/.default",
                "password": "not-****tial",
                "nested": [{"note": "uses clie****alue inline"}, 5, null, true],
                "token": 12345,
            })
        );
        assert_eq!(
            mask_value(&json!("client-secret-value"), &credentials),
            json!("clie****alue")
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
