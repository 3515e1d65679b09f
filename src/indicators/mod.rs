//! Indicators of compromise: global entities unique on `(type, value)`, linked to alerts.

pub mod store;
