//! One integration-test binary (one link step for the whole suite). Every test drives the real
//! `calseta` binary over HTTP or as a CLI process.

mod support;

mod agents;
mod alerts;
mod approvals;
mod approvals_notify;
mod api_keys;
mod audit;
mod auth;
mod context_documents;
mod context_uploads;
mod detection_rules;
mod enrichment;
mod fake_vendor;
mod encryption;
mod health;
mod http_surface;
mod hygiene;
mod ingest;
mod jobs;
mod metrics;
mod mcp;
mod ops;
mod otel;
mod indicator_mappings;
mod indicators;
mod rate_limits;
mod seed;
mod route_table;
mod scale;
mod sources;
mod startup;
mod workflows;
