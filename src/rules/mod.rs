//! Detection rules: the library of rules with MITRE fields and documentation. Ingest links each
//! alert to the rule its source references, creating a stub the first time a reference is seen.
//!
//! For other modules: `service` (the operations, for REST, MCP and jobs),
//! `store::find_or_create_stubs` (ingest), `store::find_by_id` plus `DetectionRuleResponse::from`
//! (the alert detail's `detection_rule`).

pub mod http;
pub mod metrics;
pub mod service;
pub mod store;

pub use service::DetectionRuleResponse;
pub use store::DetectionRuleRow;
