//! Indicator field mappings (`indicator_field_mappings`): the operator-editable rules for Pass 2
//! (normalized fields) and Pass 3 (raw-payload dot paths) of indicator extraction, the 14 system
//! mappings seeded at start-up, and the REST surface under `/v1/indicator-mappings`.
//!
//! There is no cache: ingest and test-extraction read the active rows for every alert (ingest
//! shares one read among the requests that arrived before it started), so a change made through
//! the API applies to the next alert without a restart.

pub mod http;
pub mod service;
pub mod store;

pub use store::{active_mappings, all_active_mappings, seed_system_mappings};
