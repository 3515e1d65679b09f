//! Field checks shared by the enrichment resources (on-demand lookups, providers, field
//! extractions). Each pushes onto a [`FieldErrors`], so a request learns every problem at once.

use serde_json::json;

use crate::domain::IndicatorType;
use crate::error::{FieldError, FieldErrors};

/// Longest description of a provider or an extraction.
pub const MAX_DESCRIPTION: usize = 10_000;
/// Indicator values longer than this are refused (no indicator is this long; it bounds what we
/// send out).
pub const MAX_VALUE_CHARS: usize = 2048;

/// A body error at a dotted location (`extractions.3.source_path` inside a bulk body).
pub fn field(loc: &str, kind: &str, msg: impl Into<String>) -> FieldError {
    let mut path = vec![json!("body")];
    path.extend(loc.split('.').map(|p| json!(p)));
    FieldError::new(kind, path, msg)
}

pub fn is_indicator_type(value: &str) -> bool {
    value.parse::<IndicatorType>().is_ok()
}

/// `loc` names a known indicator type.
pub fn indicator_type(errors: &mut FieldErrors, loc: &str, value: &str) {
    if !is_indicator_type(value) {
        errors.push(field(loc, "enum", format!("Invalid indicator type: '{value}'")));
    }
}

/// `loc` holds an indicator value of 1 to [`MAX_VALUE_CHARS`] characters.
pub fn indicator_value(errors: &mut FieldErrors, loc: &str, value: &str) {
    if value.is_empty() || value.chars().count() > MAX_VALUE_CHARS {
        errors.push(field(loc, "string_length", format!("{loc} must be 1 to {MAX_VALUE_CHARS} characters")));
    }
}

/// `loc` is absent, or at most [`MAX_DESCRIPTION`] characters.
pub fn description(errors: &mut FieldErrors, loc: &str, value: Option<&str>) {
    if value.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
        let name = loc.rsplit('.').next().unwrap_or(loc);
        errors.push(field(loc, "string_too_long", format!("{name} must be at most {MAX_DESCRIPTION} characters")));
    }
}

/// `loc` holds 1 to `max` characters, not all blank.
pub fn text_length(errors: &mut FieldErrors, loc: &str, value: &str, max: usize) {
    if value.trim().is_empty() || value.chars().count() > max {
        let name = loc.rsplit('.').next().unwrap_or(loc);
        errors.push(field(loc, "string_length", format!("{name} must be 1 to {max} characters")));
    }
}
