//! The per-agent redaction setting (`redact_untrusted_fields`): masks e-mail addresses, phone
//! numbers, payment card numbers (Luhn-valid only, so timestamps and ids survive) and
//! credential-looking strings (JWTs, `cai_` keys, AWS access keys, bearer tokens, `secret=…`
//! pairs, private-key blocks) inside the payload's untrusted fields. Masks name what they hid
//! (`[REDACTED:email]`), so an agent still knows something was there.

use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::Value;

struct Pattern {
    label: &'static str,
    regex: Regex,
    /// Extra check on a match (Luhn for cards); `None` accepts every match.
    accept: Option<fn(&str) -> bool>,
}

fn pattern(label: &'static str, regex: &str, accept: Option<fn(&str) -> bool>) -> Pattern {
    Pattern { label, regex: Regex::new(regex).expect("static redaction pattern"), accept }
}

/// Credentials first (a JWT contains dots a phone pattern must not see), cards before phones.
static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    vec![
        pattern("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", None),
        pattern("jwt", r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", None),
        pattern("api_key", r"\bcai_[A-Za-z0-9_-]{16,}", None),
        pattern("aws_key", r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", None),
        pattern("token", r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}", None),
        pattern(
            "credential",
            r#"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|token|client[_-]?secret)\s*[=:]\s*["']?[^\s"'&,;]{4,}"#,
            None,
        ),
        pattern("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b", None),
        pattern("card", r"\b(?:\d[ -]?){12,18}\d\b", Some(luhn_valid)),
        // Space or hyphen separated only: dotted digit groups are IP addresses and versions.
        pattern("phone", r"(?:\+\d{1,3}[ -]?)?(?:\(\d{2,4}\) ?|\b\d{2,4}[ -])\d{3,4}[ -]\d{3,4}\b", Some(phone_length)),
    ]
});

/// 9 to 15 digits: E.164's bound, and more than a date or a time.
fn phone_length(text: &str) -> bool {
    (9..=15).contains(&text.chars().filter(char::is_ascii_digit).count())
}

fn luhn_valid(text: &str) -> bool {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    crate::observability::redact::luhn(&digits)
}

/// `text` with every recognised sensitive substring replaced by `[REDACTED:<kind>]`.
pub fn redact_text(text: &str) -> String {
    let mut out = text.to_owned();
    for p in PATTERNS.iter() {
        if !p.regex.is_match(&out) {
            continue;
        }
        out = p
            .regex
            .replace_all(&out, |caps: &Captures| {
                let found = &caps[0];
                match p.accept {
                    Some(accept) if !accept(found) => found.to_owned(),
                    _ => format!("[REDACTED:{}]", p.label),
                }
            })
            .into_owned();
    }
    out
}

/// Redacts every string inside `value` (object keys are left alone: they are field names).
pub fn redact_value(value: &mut Value) {
    match value {
        Value::String(text) => *text = redact_text(text),
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => map.values_mut().for_each(redact_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_each_kind() {
        let cases = [
            ("mail jane.doe@corp.example now", "mail [REDACTED:email] now"),
            ("card 4111 1111 1111 1111 used", "card [REDACTED:card] used"),
            ("call +1 415-555-0132", "call [REDACTED:phone]"),
            ("or (020) 7946 0958", "or [REDACTED:phone]"),
            ("key AKIAIOSFODNN7EXAMPLE leaked", "key [REDACTED:aws_key] leaked"),
            ("Authorization: Bearer abcdefgh12345678", "Authorization: [REDACTED:token]"),
            ("password=hunter22 ok", "[REDACTED:credential] ok"),
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_abc", "[REDACTED:jwt]"),
            ("cai_abcdefghijklmnopqrstu", "[REDACTED:api_key]"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_text(input), expected, "{input}");
        }
    }

    #[test]
    fn leaves_ordinary_values() {
        for keep in ["198.51.100.7", "10.100.200.1", "2026-12-05T12:00:00Z", "2026-12-05 12:00:00", "order 1234567890123 shipped",
            "Suspicious login from host-7", "v1.2.3"] {
            assert_eq!(redact_text(keep), keep);
        }
        let mut value = serde_json::json!({"user@x.example": ["bob@x.example", 5]});
        redact_value(&mut value);
        assert_eq!(value, serde_json::json!({"user@x.example": ["[REDACTED:email]", 5]}));
    }
}
