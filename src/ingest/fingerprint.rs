//! Alert fingerprint for deduplication (ingestion.md §3.3).

use md5::{Digest, Md5};

use super::normalized::IndicatorCandidate;

/// Lowercase hex MD5 of `title \0 source_name \0 joined`, where `joined` is the
/// `(type, trimmed value)` pairs sorted by type then value (code-point order, as Python sorts
/// str tuples), rendered `type:value` and joined with `|`. Empty values and repeated pairs are
/// ignored, which changes nothing for the deduplicated list the ingest service passes in.
pub fn compute(title: &str, source_name: &str, indicators: &[IndicatorCandidate]) -> String {
    let mut pairs: Vec<(&str, &str)> = indicators
        .iter()
        .map(|indicator| (indicator.itype.as_str(), indicator.value.trim()))
        .filter(|(_, value)| !value.is_empty())
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let joined: Vec<String> = pairs
        .iter()
        .map(|(itype, value)| format!("{itype}:{value}"))
        .collect();
    let material = format!("{title}\u{0}{source_name}\u{0}{}", joined.join("|"));
    hex::encode(Md5::digest(material.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::normalized::IndicatorType;

    fn md5_hex(text: &str) -> String {
        hex::encode(Md5::digest(text.as_bytes()))
    }

    #[test]
    fn spec_worked_example() {
        let indicators = [
            IndicatorCandidate::new(IndicatorType::Ip, "198.51.100.7"),
            IndicatorCandidate::new(IndicatorType::Account, "bob"),
        ];
        let fingerprint = compute("Brute force", "generic", &indicators);
        assert_eq!(
            fingerprint,
            md5_hex("Brute force\0generic\0account:bob|ip:198.51.100.7")
        );
        assert_eq!(fingerprint, "71d92804f8fd5d506d7c16780b195847");
    }

    #[test]
    fn order_whitespace_and_duplicates_do_not_matter() {
        let a = [
            IndicatorCandidate::new(IndicatorType::Ip, " 198.51.100.7 "),
            IndicatorCandidate::new(IndicatorType::Account, "bob"),
        ];
        let b = [
            IndicatorCandidate::new(IndicatorType::Account, "bob"),
            IndicatorCandidate::new(IndicatorType::Ip, "198.51.100.7"),
            IndicatorCandidate::new(IndicatorType::Ip, "198.51.100.7"),
            IndicatorCandidate::new(IndicatorType::Url, "   "),
        ];
        assert_eq!(
            compute("Brute force", "generic", &a),
            compute("Brute force", "generic", &b)
        );
    }

    #[test]
    fn sorting_is_by_type_string_then_value() {
        // "hash_sha1" < "hash_sha256" < "ip" as strings; "B" < "a" by code point.
        let indicators = [
            IndicatorCandidate::new(IndicatorType::Ip, "a"),
            IndicatorCandidate::new(IndicatorType::HashSha256, "x"),
            IndicatorCandidate::new(IndicatorType::HashSha1, "y"),
            IndicatorCandidate::new(IndicatorType::Ip, "B"),
        ];
        assert_eq!(
            compute("t", "s", &indicators),
            md5_hex("t\0s\0hash_sha1:y|hash_sha256:x|ip:B|ip:a")
        );
    }

    #[test]
    fn case_title_and_source_matter() {
        let none: [IndicatorCandidate; 0] = [];
        assert_eq!(
            compute("Brute force", "generic", &none),
            md5_hex("Brute force\0generic\0")
        );
        assert_ne!(
            compute("Brute force", "generic", &none),
            compute("brute force", "generic", &none)
        );
        assert_ne!(
            compute("Brute force", "generic", &none),
            compute("Brute force", "splunk", &none)
        );
        let upper = [IndicatorCandidate::new(IndicatorType::Domain, "Evil.com")];
        let lower = [IndicatorCandidate::new(IndicatorType::Domain, "evil.com")];
        assert_ne!(compute("t", "s", &upper), compute("t", "s", &lower));
        assert_eq!(compute("t", "s", &upper).len(), 32);
    }
}
