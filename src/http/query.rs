//! Query-string pieces shared by list routes: `sort_by` / `sort_order` validation, comma-separated
//! filter lists, and lenient boolean / datetime parameters (the values FastAPI accepted).

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Deserializer};

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

impl SortOrder {
    pub fn sql(self) -> &'static str {
        match self {
            SortOrder::Asc => "ASC",
            SortOrder::Desc => "DESC",
        }
    }
}

/// Validates `sort_by` against `allowed` and `sort_order` against asc/desc. An absent or empty
/// value takes the default. Invalid values are a 400 `VALIDATION_ERROR` with Calseta's messages
/// (`allowed` is listed sorted, as Python printed it).
pub fn parse_sort(
    sort_by: Option<&str>,
    sort_order: Option<&str>,
    allowed: &[&'static str],
    default_by: &'static str,
    default_order: SortOrder,
) -> Result<(&'static str, SortOrder), Error> {
    let by = match sort_by.filter(|s| !s.is_empty()) {
        None => default_by,
        Some(requested) => match allowed.iter().find(|a| **a == requested) {
            Some(found) => found,
            None => {
                let mut listed: Vec<&str> = allowed.to_vec();
                listed.sort_unstable();
                let listed: Vec<String> = listed.iter().map(|a| format!("'{a}'")).collect();
                return Err(Error::client(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    format!("sort_by must be one of: [{}]", listed.join(", ")),
                ));
            }
        },
    };
    let order = match sort_order.filter(|s| !s.is_empty()) {
        None => default_order,
        Some("asc") => SortOrder::Asc,
        Some("desc") => SortOrder::Desc,
        Some(_) => {
            return Err(Error::client(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "sort_order must be 'asc' or 'desc'"));
        }
    };
    Ok((by, order))
}

/// `"a, b,,c"` → `["a", "b", "c"]`; absent or only separators → `None` (no filter).
pub fn comma_list(value: Option<&str>) -> Option<Vec<String>> {
    let items: Vec<String> =
        value?.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if items.is_empty() { None } else { Some(items) }
}

/// Booleans as pydantic read them from a query string: true/false, 1/0, yes/no, on/off, t/f,
/// y/n (any case). An empty value counts as absent.
pub fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    let raw: Option<String> = Option::deserialize(deserializer)?;
    let Some(raw) = raw else { return Ok(None) };
    match raw.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(Some(true)),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(Some(false)),
        _ => Err(serde::de::Error::custom("Input should be a valid boolean")),
    }
}

/// A datetime query value: RFC 3339 (`Z` or an offset; a `+` decoded to a space by the query
/// string is put back) or a naive ISO datetime taken as UTC. Truncated to microseconds, the
/// precision both databases store. An empty value counts as absent.
pub fn lenient_datetime<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw: Option<String> = Option::deserialize(deserializer)?;
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    parse_datetime(text)
        .map(|at| Some(at.trunc_subsecs(6)))
        .ok_or_else(|| serde::de::Error::custom("Input should be a valid datetime"))
}

fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    // "2026-01-01T00:00:00 00:00": an unencoded '+' arrives as a space.
    if let Some((head, offset)) = text.rsplit_once(' ')
        && offset.len() == 5
        && offset.as_bytes()[2] == b':'
        && let Ok(at) = DateTime::parse_from_rfc3339(&format!("{head}+{offset}"))
    {
        return Some(at.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_defaults_and_rejections() {
        let allowed = ["name", "created_at"];
        assert_eq!(parse_sort(None, None, &allowed, "created_at", SortOrder::Desc).unwrap(), ("created_at", SortOrder::Desc));
        assert_eq!(parse_sort(Some(""), Some(""), &allowed, "created_at", SortOrder::Desc).unwrap(), ("created_at", SortOrder::Desc));
        assert_eq!(parse_sort(Some("name"), Some("asc"), &allowed, "created_at", SortOrder::Desc).unwrap(), ("name", SortOrder::Asc));
        let Err(Error::Client { status, message, .. }) = parse_sort(Some("id"), None, &allowed, "created_at", SortOrder::Desc) else {
            panic!()
        };
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(message, "sort_by must be one of: ['created_at', 'name']");
        let Err(Error::Client { message, .. }) = parse_sort(None, Some("ASC"), &allowed, "created_at", SortOrder::Desc) else {
            panic!()
        };
        assert_eq!(message, "sort_order must be 'asc' or 'desc'");
    }

    #[test]
    fn comma_lists() {
        assert_eq!(comma_list(Some(" a, b,,c ")), Some(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(comma_list(Some(" , ")), None);
        assert_eq!(comma_list(None), None);
    }

    #[test]
    fn datetimes() {
        let expected = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_datetime("2026-01-02T03:04:05Z"), Some(expected));
        assert_eq!(parse_datetime("2026-01-02T05:04:05+02:00"), Some(expected));
        assert_eq!(parse_datetime("2026-01-02T03:04:05 00:00"), Some(expected));
        assert_eq!(parse_datetime("2026-01-02T03:04:05"), Some(expected));
        assert_eq!(parse_datetime("2026-01-02 03:04:05.000"), Some(expected));
        assert_eq!(parse_datetime("yesterday"), None);
    }
}
