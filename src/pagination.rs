//! The one pagination helper: `page` ≥ 1 (default 1), `page_size` 1..=500 (default 50), and the
//! list envelope `{"data": [...], "meta": {total, page, page_size, total_pages}}`.
//!
//! Totals are bounded (README "Pagination totals"): an exact count of a million-row filtered
//! set costs a scan of all of it on every page, so `db::fetch_page` counts matching rows only up
//! to [`count_bound`] — the rows up to the end of this page plus [`COUNT_AHEAD`] more. Below the
//! bound `meta.total` is exact; at the bound it is a lower bound ("at least this many"), and
//! `meta.total_is_lower_bound: true` says so (the field is present only then). `total_pages` follows
//! `total`, so it always reaches past the current page while rows remain, and page N always
//! returns the same rows as with an exact count.

use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldError};

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct Pagination {
    pub page: i64,
    pub page_size: i64,
}

impl Default for Pagination {
    fn default() -> Self {
        Self { page: 1, page_size: 50 }
    }
}

pub const MAX_PAGE_SIZE: i64 = 500;

/// How many matching rows past the end of the requested page a list counts before it stops
/// counting and reports a lower bound.
pub const COUNT_AHEAD: i64 = 1_000;

/// The number of matching rows a page at `offset` of `limit` rows counts up to: a total at or
/// above it is reported as a lower bound.
pub fn count_bound(limit: i64, offset: i64) -> i64 {
    offset.saturating_add(limit).saturating_add(COUNT_AHEAD)
}

impl Pagination {
    pub fn validate(self) -> Result<Self, Error> {
        let mut errors = Vec::new();
        if self.page < 1 {
            errors.push(FieldError::new("greater_than_equal", vec!["query".into(), "page".into()], "Input should be greater than or equal to 1"));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            errors.push(FieldError::new(
                "value_error",
                vec!["query".into(), "page_size".into()],
                format!("Input should be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        if errors.is_empty() { Ok(self) } else { Err(Error::Validation(errors)) }
    }
    pub fn limit(&self) -> i64 {
        self.page_size
    }
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.page_size)
    }
}

#[derive(Debug, Serialize)]
pub struct ListMeta {
    /// Matching rows: exact, or a lower bound when `total_is_lower_bound`.
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
    pub total_pages: i64,
    /// Serialized (as `true`) only when `total` reached the count bound.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub total_is_lower_bound: bool,
}

#[derive(Debug, Serialize)]
pub struct Page<T: Serialize> {
    pub data: Vec<T>,
    pub meta: ListMeta,
}

impl<T: Serialize> Page<T> {
    pub fn new(data: Vec<T>, total: i64, pagination: Pagination) -> Self {
        let total_pages = if total == 0 { 0 } else { (total + pagination.page_size - 1) / pagination.page_size };
        let total_is_lower_bound = total >= count_bound(pagination.limit(), pagination.offset());
        Page { data, meta: ListMeta { total, page: pagination.page, page_size: pagination.page_size, total_pages, total_is_lower_bound } }
    }
}

impl<T: Serialize> axum::response::IntoResponse for Page<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self).into_response()
    }
}

/// The single-object envelope `{"data": …, "meta": {}}`.
#[derive(Debug, Serialize)]
pub struct Data<T: Serialize> {
    pub data: T,
    pub meta: serde_json::Value,
}

impl<T: Serialize> Data<T> {
    pub fn new(data: T) -> Self {
        Data { data, meta: serde_json::json!({}) }
    }
}

impl<T: Serialize> axum::response::IntoResponse for Data<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_pages_and_bounds() {
        let p = Pagination { page: 2, page_size: 50 };
        assert_eq!(Page::<u8>::new(vec![], 137, p).meta.total_pages, 3);
        assert_eq!(Page::<u8>::new(vec![], 0, p).meta.total_pages, 0);
        assert_eq!(p.offset(), 50);
        assert!(Pagination { page: 0, page_size: 1 }.validate().is_err());
        assert!(Pagination { page: 1, page_size: 501 }.validate().is_err());
        assert!(Pagination { page: 1, page_size: 500 }.validate().is_ok());
    }

    #[test]
    fn a_total_at_the_count_bound_is_flagged() {
        let p = Pagination { page: 3, page_size: 10 };
        assert_eq!(count_bound(p.limit(), p.offset()), 30 + COUNT_AHEAD);
        assert!(!Page::<u8>::new(vec![], 29 + COUNT_AHEAD, p).meta.total_is_lower_bound);
        let capped = Page::<u8>::new(vec![], 30 + COUNT_AHEAD, p);
        assert!(capped.meta.total_is_lower_bound);
        assert_eq!(serde_json::to_value(&capped.meta).unwrap()["total_is_lower_bound"], true);
        assert!(serde_json::to_value(Page::<u8>::new(vec![], 5, p).meta).unwrap().get("total_is_lower_bound").is_none());
    }
}
