//! calseta: a Rust implementation of the Calseta SOC data platform.

pub mod activity;
pub mod alerts;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod context;
pub mod crypto;
pub mod db;
pub mod egress;
pub mod enrich;
pub mod error;
pub mod http;
pub mod indicators;
pub mod ingest;
pub mod jobs;
pub mod mappings;
pub mod pagination;
pub mod ratelimit;
pub mod rules;
pub mod sandbox;
pub mod sources;
pub mod state;
pub mod telemetry;
pub mod workflows;
