//! The query string of `GET /v1/alerts`, parsed by hand: `tags` repeats (`tags=a&tags=b`),
//! which `serde_urlencoded` cannot decode into a struct. Type errors are 422s (all of them at
//! once, `loc: ["query", <name>]`); a bad `sort_by`/`sort_order` is a 400, checked after them,
//! as in the reference.

use axum::http::StatusCode;
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;
use uuid::Uuid;

use super::store::{AlertFilter, AlertSort, SortColumn};
use crate::error::{Error, FieldError, FieldErrors};
use crate::pagination::Pagination;

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: AlertFilter,
    pub sort: AlertSort,
    pub pagination: Pagination,
}

/// A query boolean as the reference accepts it: `true/false`, `1/0`, `yes/no`, `on/off`,
/// `t/f`, `y/n`, case-insensitive.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

pub fn bool_error(name: &str) -> FieldError {
    FieldError::new("bool_parsing", vec![json!("query"), json!(name)], "Input should be a valid boolean, unable to interpret input")
}

/// `a, b,,c` → `["a", "b", "c"]`.
fn comma_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

/// An enumerated filter: `None` for an empty list (no filter), else the values that name a
/// variant. Others are dropped, not refused: the filter is an exact match, and no alert holds
/// such a value (so `status=Nope` lists nothing, as in the reference).
fn known_values<T: std::str::FromStr>(text: &str) -> Option<Vec<T>> {
    let items = comma_list(text);
    if items.is_empty() { None } else { Some(items.iter().filter_map(|item| item.parse().ok()).collect()) }
}

fn parse_time(name: &str, text: &str, errors: &mut FieldErrors) -> Option<DateTime<Utc>> {
    match crate::ingest::normalized::parse_iso_timestamp(text.trim()) {
        // Stored timestamps have microsecond precision; a finer bound would compare unevenly
        // between the backends' representations.
        Some(at) => Some(at.trunc_subsecs(6)),
        None => {
            errors.push(FieldError::new(
                "datetime_parsing",
                vec![json!("query"), json!(name)],
                "Input should be a valid datetime",
            ));
            None
        }
    }
}

fn parse_int(name: &str, text: &str, errors: &mut FieldErrors) -> Option<i64> {
    match text.trim().parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push(FieldError::new(
                "int_parsing",
                vec![json!("query"), json!(name)],
                "Input should be a valid integer, unable to parse string as an integer",
            ));
            None
        }
    }
}

fn python_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Parses the raw query string (`None` = no `?`). Single-valued parameters given twice take
/// the last value; unknown parameters are ignored.
pub fn parse_list_query(raw: Option<&str>) -> Result<ListQuery, Error> {
    let mut filter = AlertFilter::default();
    let mut errors = FieldErrors::default();
    let mut sort_by: Option<String> = None;
    let mut sort_order: Option<String> = None;
    let mut pagination = Pagination::default();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "status" => filter.statuses = known_values(&value),
            "severity" => filter.severities = known_values(&value),
            "source_name" => filter.source_names = comma_list(&value),
            "enrichment_status" => filter.enrichment_statuses = known_values(&value),
            "is_enriched" => match parse_bool(&value) {
                Some(flag) => filter.is_enriched = Some(flag),
                None => {
                    errors.push(bool_error("is_enriched"));
                }
            },
            "detection_rule_uuid" => match Uuid::parse_str(value.trim()) {
                Ok(id) => filter.detection_rule_uuid = Some(id),
                Err(e) => {
                    errors.push(FieldError::new(
                        "uuid_parsing",
                        vec![json!("query"), json!("detection_rule_uuid")],
                        format!("Input should be a valid UUID, {e}"),
                    ));
                }
            },
            "from_time" => filter.from_time = parse_time("from_time", &value, &mut errors),
            "to_time" => filter.to_time = parse_time("to_time", &value, &mut errors),
            "tags" => filter.tags.push(value.into_owned()),
            "sort_by" => sort_by = Some(value.into_owned()).filter(|v| !v.is_empty()),
            "sort_order" => sort_order = Some(value.into_owned()).filter(|v| !v.is_empty()),
            "page" => pagination.page = parse_int("page", &value, &mut errors).unwrap_or(pagination.page),
            "page_size" => pagination.page_size = parse_int("page_size", &value, &mut errors).unwrap_or(pagination.page_size),
            _ => {}
        }
    }
    let pagination = match pagination.validate() {
        Ok(p) => p,
        Err(Error::Validation(more)) => {
            errors.extend(more);
            pagination
        }
        Err(other) => return Err(other),
    };
    errors.finish()?;

    let column = match sort_by.as_deref() {
        None => SortColumn::OccurredAt,
        Some(name) => SortColumn::parse(name).ok_or_else(|| {
            Error::client(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!("Invalid sort_by '{name}'. Must be one of: {}", python_list(&SortColumn::NAMES)),
            )
        })?,
    };
    let descending = match sort_order.as_deref() {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(Error::client(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!("Invalid sort_order '{other}'. Must be one of: {}", python_list(&["asc", "desc"])),
            ));
        }
    };
    Ok(ListQuery { filter, sort: AlertSort { column, descending }, pagination })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AlertStatus, EnrichmentStatus, Severity};
    use chrono::TimeZone;

    fn message(err: Error) -> String {
        match err {
            Error::Client { status, message, .. } => format!("{} {message}", status.as_u16()),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let q = parse_list_query(None).unwrap();
        assert_eq!(q.filter, AlertFilter::default());
        assert_eq!(q.sort, AlertSort { column: SortColumn::OccurredAt, descending: true });
        assert_eq!((q.pagination.page, q.pagination.page_size), (1, 50));
    }

    #[test]
    fn every_filter() {
        let q = parse_list_query(Some(
            "status=Open,%20Closed&severity=High&source_name=splunk,elastic&enrichment_status=Enriched&is_enriched=YES\
             &detection_rule_uuid=0b9d1d4e-0000-4000-8000-000000000001&from_time=2024-01-15T10:00:00Z\
             &to_time=2024-01-16%2010:00:00%2B02:00&tags=a&tags=b%20c&sort_by=severity&sort_order=asc&page=2&page_size=5&other=x",
        ))
        .unwrap();
        assert_eq!(q.filter.statuses, Some(vec![AlertStatus::Open, AlertStatus::Closed]));
        assert_eq!(q.filter.severities, Some(vec![Severity::High]));
        assert_eq!(q.filter.source_names, ["splunk", "elastic"]);
        assert_eq!(q.filter.enrichment_statuses, Some(vec![EnrichmentStatus::Enriched]));
        assert_eq!(q.filter.is_enriched, Some(true));
        assert_eq!(q.filter.detection_rule_uuid.unwrap().to_string(), "0b9d1d4e-0000-4000-8000-000000000001");
        assert_eq!(q.filter.from_time, Some(Utc.with_ymd_and_hms(2024, 1, 15, 10, 0, 0).unwrap()));
        assert_eq!(q.filter.to_time, Some(Utc.with_ymd_and_hms(2024, 1, 16, 8, 0, 0).unwrap()));
        assert_eq!(q.filter.tags, ["a", "b c"]);
        assert_eq!(q.sort, AlertSort { column: SortColumn::Severity, descending: false });
        assert_eq!((q.pagination.page, q.pagination.page_size), (2, 5));
    }

    #[test]
    fn enumerated_filters_keep_known_values() {
        let q = parse_list_query(Some("status=Nope&severity=High,bad&enrichment_status=")).unwrap();
        assert_eq!(q.filter.statuses, Some(vec![]), "asked for, but nothing can match");
        assert_eq!(q.filter.severities, Some(vec![Severity::High]));
        assert_eq!(q.filter.enrichment_statuses, None);
    }

    #[test]
    fn type_errors_are_422_all_at_once() {
        let Err(Error::Validation(errors)) =
            parse_list_query(Some("is_enriched=maybe&detection_rule_uuid=nope&from_time=yesterday&page=x&page_size=0&sort_by=bad"))
        else {
            panic!("expected 422")
        };
        let locs: Vec<String> = errors.iter().map(|e| e.loc[1].as_str().unwrap().to_owned()).collect();
        assert_eq!(locs, ["is_enriched", "detection_rule_uuid", "from_time", "page", "page_size"]);
    }

    #[test]
    fn bad_sort_is_400() {
        assert_eq!(
            message(parse_list_query(Some("sort_by=fingerprint")).unwrap_err()),
            "400 Invalid sort_by 'fingerprint'. Must be one of: ['title', 'status', 'severity', 'source_name', 'occurred_at', 'created_at']"
        );
        assert_eq!(
            message(parse_list_query(Some("sort_order=up")).unwrap_err()),
            "400 Invalid sort_order 'up'. Must be one of: ['asc', 'desc']"
        );
    }

    #[test]
    fn booleans() {
        for t in ["true", "1", "Yes", "on", "T", "y"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "0", "no", "OFF", "f", "n"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("2"), None);
    }
}
