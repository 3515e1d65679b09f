//! calseta: a Rust implementation of the Calseta SOC data platform.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod http;
pub mod pagination;
pub mod ratelimit;
pub mod state;
pub mod telemetry;
