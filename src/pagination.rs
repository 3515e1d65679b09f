//! The one pagination helper: `page` ≥ 1 (default 1), `page_size` 1..=500 (default 50), and the
//! list envelope `{"data": [...], "meta": {total, page, page_size, total_pages}}`.

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
    pub total: i64,
    pub page: i64,
    pub page_size: i64,
    pub total_pages: i64,
}

#[derive(Debug, Serialize)]
pub struct Page<T: Serialize> {
    pub data: Vec<T>,
    pub meta: ListMeta,
}

impl<T: Serialize> Page<T> {
    pub fn new(data: Vec<T>, total: i64, pagination: Pagination) -> Self {
        let total_pages = if total == 0 { 0 } else { (total + pagination.page_size - 1) / pagination.page_size };
        Page { data, meta: ListMeta { total, page: pagination.page, page_size: pagination.page_size, total_pages } }
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
}
