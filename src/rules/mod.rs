//! Detection rules: the library of rules with MITRE fields and documentation. Ingest links each
//! alert to the rule its source references, creating a stub the first time a reference is seen.

pub mod store;
