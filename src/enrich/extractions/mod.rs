//! Field extractions as a resource (`/v1/enrichment-field-extractions`): which values of a
//! provider's raw response land in `extracted`, under which key and type. The operations are in
//! [`service`], their input and output in [`model`], the SQL in `store`.

mod http;
pub mod model;
pub mod service;
pub(in crate::enrich) mod store;

pub use http::routes;
