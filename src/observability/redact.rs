//! No secrets or PII in the server's output (issue 15 item 6): every log line passes through
//! [`scrub`] on its way to stdout (see [`ScrubbingStdout`]), whatever its level or origin, so a
//! value quoted in an error, a path, or a debug dump of a payload is masked there. Masked:
//! e-mail addresses, phone numbers, Luhn-valid card numbers, JWTs, full `cai_` API keys (the
//! 8-character display prefix stays: it identifies a key without unlocking it), AWS access key
//! ids and AWS-style secret keys. Indicator values that are not personal (IPs, hashes, domains)
//! are kept: operators need them.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::LazyLock;

use regex::{Captures, Regex};

pub const MASK: &str = "[REDACTED]";

static PATTERNS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<jwt>eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*)",
        r"|(?P<cai>cai_[A-Za-z0-9_-]{8,})",
        r"|(?P<akid>\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b)",
        r"|(?P<email>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})",
        r"|(?P<digits>\+?\(?\d[\d \t().-]{6,}\d)",
    ))
    .expect("redaction patterns compile")
});

static DATE_OR_ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|\d{4}-\d{2}-\d{2}.*|\d+\.\d+)$").expect("compiles")
});

/// Runs of the AWS secret-key alphabet; `/` belongs to it, so a key in a path is inside a
/// longer run and is looked for at each segment start (see [`mask_secret_keys`]).
static KEY_ALPHABET_RUN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[A-Za-z0-9/+]{40,}").expect("compiles"));

/// `text` with every sensitive value replaced by [`MASK`]; borrowed when nothing matched.
pub fn scrub(text: &str) -> Cow<'_, str> {
    match mask_patterns(text) {
        Cow::Borrowed(_) => mask_secret_keys(text),
        Cow::Owned(masked) => Cow::Owned(mask_secret_keys(&masked).into_owned()),
    }
}

/// AWS-style secret keys: 40 characters mixing cases and digits, at the start of a run or of a
/// `/`-separated segment of it, ending the run or a segment.
fn mask_secret_keys(text: &str) -> Cow<'_, str> {
    KEY_ALPHABET_RUN.replace_all(text, |caps: &Captures| {
        let run = &caps[0];
        let starts = std::iter::once(0).chain(run.match_indices('/').map(|(i, _)| i + 1));
        for start in starts {
            let end = start + 40;
            let window = run.get(start..end);
            let ends_segment = run.get(end..).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            if ends_segment && window.is_some_and(looks_like_aws_secret) {
                return format!("{}{MASK}{}", &run[..start], &run[end..]);
            }
        }
        run.to_owned()
    })
}

fn mask_patterns(text: &str) -> Cow<'_, str> {
    PATTERNS.replace_all(text, |caps: &Captures| {
        let whole = &caps[0];
        if let Some(digits) = caps.name("digits") {
            // Digits inside a word (a uuid's tail, a hex hash) are not a phone or card number.
            let glued = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if glued(text[..digits.start()].chars().next_back()) || glued(text[digits.end()..].chars().next()) {
                return whole.to_owned();
            }
            return mask_digits(digits.as_str()).unwrap_or_else(|| whole.to_owned());
        }
        MASK.to_owned()
    })
}

/// A run of digits and separators: a card number when it has 13–19 digits and passes Luhn; a
/// phone number when it has 9–15 digits and is written like one (leading `+` or separators), but
/// not an IPv4 address, a date or a decimal number.
fn mask_digits(run: &str) -> Option<String> {
    let digits: Vec<u32> = run.chars().filter_map(|c| c.to_digit(10)).collect();
    if (13..=19).contains(&digits.len()) && luhn(&digits) {
        return Some(MASK.to_owned());
    }
    let written_like_a_phone = run.starts_with('+') || run.chars().any(|c| matches!(c, ' ' | '-' | '(' | ')' | '.'));
    if (9..=15).contains(&digits.len()) && written_like_a_phone && !DATE_OR_ADDRESS.is_match(run.trim()) {
        return Some(MASK.to_owned());
    }
    None
}

/// The Luhn checksum of a card number's digits (also used by the agent payload redactor).
pub(crate) fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d })
        .sum();
    sum.is_multiple_of(10)
}

/// Exactly 40 characters of the secret-key alphabet mixing cases and digits (a SHA-1 is 40 lower
/// hex characters and is kept).
fn looks_like_aws_secret(run: &str) -> bool {
    run.len() == 40
        && run.chars().any(|c| c.is_ascii_uppercase())
        && run.chars().any(|c| c.is_ascii_lowercase())
        && run.chars().any(|c| c.is_ascii_digit() || c == '/' || c == '+')
}

/// Set by commands whose standard output is data (`calseta audit export` writes JSON lines for a
/// SIEM): their log lines go to standard error instead, so they never corrupt that data.
pub static LOGS_TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The log writer: each formatted event (one `write` per event) is scrubbed, then written.
pub struct ScrubbingStdout;

impl Write for ScrubbingStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        if LOGS_TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            io::stderr().lock().write_all(scrub(&text).as_bytes())?;
        } else {
            io::stdout().lock().write_all(scrub(&text).as_bytes())?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()?;
        io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ScrubbingStdout {
    type Writer = ScrubbingStdout;
    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingStdout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_sensitive_values() {
        for value in [
            "jane.doe@victim-corp.example",
            "+1-415-555-0132",
            "(415) 555-0132",
            "4111111111111111",
            "5500 0000 0000 0004",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJl",
            "cai_ZmFrZWtleWZvcnRlc3Rpbmdvbmx5MDAwMDAwMDA",
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ] {
            let line = format!(r#"{{"msg":"x {value} y"}}"#);
            assert_eq!(scrub(&line), format!(r#"{{"msg":"x {MASK} y"}}"#), "{value}");
            let path = format!(r#""path":"/v1/alerts/{value}""#);
            assert_eq!(scrub(&path), format!(r#""path":"/v1/alerts/{MASK}""#), "{value}");
        }
    }

    #[test]
    fn keeps_what_operators_need() {
        for value in [
            "198.51.100.23",
            "2026-12-05T13:52:01.123456Z",
            "4111111111111112",
            "cai_abcd",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "duration_ms=12.34",
            "550e8400-e29b-41d4-a716-446655440000",
            "evil.example.com",
            "1733400000",
            "/v1/alerts/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/b",
        ] {
            assert_eq!(scrub(value), value);
        }
    }
}
