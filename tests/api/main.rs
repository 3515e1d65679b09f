//! One integration-test binary (one link step for the whole suite). Every test drives the real
//! `calseta` binary over HTTP or as a CLI process.

mod support;

mod agents;
mod alerts;
mod api_keys;
mod auth;
mod context_documents;
mod detection_rules;
mod enrichment;
mod fake_vendor;
mod encryption;
mod health;
mod http_surface;
mod ingest;
mod indicator_mappings;
mod indicators;
mod rate_limits;
mod route_table;
mod sources;
mod startup;
