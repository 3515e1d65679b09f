//! The domain's enumerations, in one place: every layer (HTTP, service, store, jobs, MCP) speaks
//! these types, and each serializes to the exact string Calseta stores and returns.
//! `string_enum!` gives each one `ALL`, `as_str`, `Display`, `FromStr` (exact, case-sensitive)
//! and serde as its string.

use std::fmt;

/// Error for a string that is not one of the exact enumeration values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {kind}")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];
            /// Every value's text, in declaration order (for enumeration errors and docs).
            pub const NAMES: [&'static str; [$($text),+].len()] = [$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { kind: $kind, value: text.to_owned() }),
                }
            }
        }

        /// For `#[sqlx(try_from = "String")]` on row fields: a stored value outside the enumeration
        /// is a decode error, not a silently wrong variant.
        impl TryFrom<String> for $name {
            type Error = UnknownVariant;
            fn try_from(text: String) -> Result<Self, Self::Error> {
                text.parse()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(|_| {
                    serde::de::Error::unknown_variant(&text, &$name::NAMES)
                })
            }
        }
    };
}

string_enum!(
    /// Alert severity (data-model.md).
    Severity, "severity" {
        Pending = "Pending",
        Informational = "Informational",
        Low = "Low",
        Medium = "Medium",
        High = "High",
        Critical = "Critical",
    }
);

impl Severity {
    /// Sort weight used by Calseta's severity CASE expression: Critical 5 … Informational 1,
    /// Pending 0.
    pub fn rank(self) -> u8 {
        self as u8
    }
}

string_enum!(
    /// Indicator of compromise type.
    IndicatorType, "indicator type" {
        Ip = "ip",
        Domain = "domain",
        HashMd5 = "hash_md5",
        HashSha1 = "hash_sha1",
        HashSha256 = "hash_sha256",
        Url = "url",
        Email = "email",
        Account = "account",
    }
);

string_enum!(
    /// An alert's triage status.
    AlertStatus, "alert status" {
        Open = "Open",
        Triaging = "Triaging",
        Escalated = "Escalated",
        Closed = "Closed",
    }
);

string_enum!(
    /// Where an alert's enrichment stands.
    EnrichmentStatus, "enrichment status" {
        Pending = "Pending",
        Enriched = "Enriched",
        Failed = "Failed",
    }
);

string_enum!(
    /// A malice verdict, from least to most severe (the derived `Ord` is that order).
    Malice, "malice" {
        Pending = "Pending",
        Benign = "Benign",
        Suspicious = "Suspicious",
        Malicious = "Malicious",
    }
);

string_enum!(
    /// Why an alert was closed.
    CloseClassification, "close classification" {
        TruePositive = "True Positive - Suspicious Activity",
        BenignPositive = "Benign Positive - Suspicious but Expected",
        FalsePositiveLogic = "False Positive - Incorrect Detection Logic",
        FalsePositiveData = "False Positive - Inaccurate Data",
        Undetermined = "Undetermined",
        Duplicate = "Duplicate",
        NotApplicable = "Not Applicable",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_exact_match() {
        for severity in Severity::ALL {
            assert_eq!(severity.as_str().parse::<Severity>().unwrap(), severity);
            assert_eq!(serde_json::to_value(severity).unwrap(), severity.as_str());
        }
        assert!("high".parse::<Severity>().is_err());
        assert_eq!(Severity::Critical.rank(), 5);
        assert_eq!(Severity::Pending.rank(), 0);
        assert!(Malice::Malicious > Malice::Suspicious && Malice::Benign > Malice::Pending);
        let err = serde_json::from_value::<AlertStatus>(serde_json::json!("Done")).unwrap_err().to_string();
        assert!(err.contains("Open"), "{err}");
        assert_eq!("account".parse::<IndicatorType>().unwrap(), IndicatorType::Account);
        assert_eq!(CloseClassification::ALL.len(), 7);
    }
}
