//! Detection rules: the library of rules with MITRE fields and documentation. Ingest links each
//! alert to the rule its source references, creating a stub the first time a reference is seen.
//!
//! For other modules: `store::find_or_create_stubs` (ingest), `store::find_by_id` plus
//! `http::DetectionRuleResponse::from` (the alert detail's `detection_rule`).

pub mod http;
pub mod metrics;
pub mod store;

pub use http::DetectionRuleResponse;
pub use store::DetectionRuleRow;
