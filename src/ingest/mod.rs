//! Alert ingestion: source plugins, indicator extraction, fingerprinting and webhook
//! signature verification (pure logic; no I/O).

pub mod extract;
pub mod fingerprint;
pub mod normalized;
pub mod signature;
pub mod sources;

pub use extract::{FieldMapping, SYSTEM_MAPPINGS, Target, extract_all};
pub use normalized::{
    ExtractedIndicator, IndicatorCandidate, IndicatorType, NormalizeError, NormalizedAlert,
    Severity,
};
pub use signature::{SignatureError, SignatureScheme};
pub use sources::{AlertSource, PluginField};
