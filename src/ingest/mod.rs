//! Alert ingestion. Pure logic: source plugins, indicator extraction, fingerprinting and webhook
//! signature verification. With I/O: the request-side `service` (dedup or persist + enqueue), its
//! `http` routes, and the worker-side `pipeline` (the `enrich_alert` job).

pub mod extract;
pub mod fingerprint;
pub mod http;
pub mod normalized;
pub mod pipeline;
pub mod service;
pub mod signature;
pub mod sources;

pub use extract::{FieldMapping, SYSTEM_MAPPINGS, Target, extract_all};
pub use normalized::{
    ExtractedIndicator, IndicatorCandidate, IndicatorType, NormalizeError, NormalizedAlert,
    Severity,
};
pub use signature::{SignatureError, SignatureScheme};
pub use sources::{AlertSource, PluginField};
