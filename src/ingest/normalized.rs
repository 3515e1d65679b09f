//! The normalized alert every source plugin produces, the enumerations it uses, and the
//! timestamp parsing shared by the plugins (ingestion.md §4).


use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::domain::{IndicatorType, Severity, UnknownVariant};

/// One extracted indicator, as fed to fingerprinting and persistence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndicatorCandidate {
    #[serde(rename = "type")]
    pub itype: IndicatorType,
    pub value: String,
}

impl IndicatorCandidate {
    pub fn new(itype: IndicatorType, value: impl Into<String>) -> Self {
        Self {
            itype,
            value: value.into(),
        }
    }
}

/// An indicator plus the label of where it came from (`source_field`), which only the
/// test-extraction endpoint shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractedIndicator {
    #[serde(rename = "type")]
    pub itype: IndicatorType,
    pub value: String,
    pub source_field: String,
}

impl ExtractedIndicator {
    pub fn new(
        itype: IndicatorType,
        value: impl Into<String>,
        source_field: impl Into<String>,
    ) -> Self {
        Self {
            itype,
            value: value.into(),
            source_field: source_field.into(),
        }
    }

    pub fn candidate(&self) -> IndicatorCandidate {
        IndicatorCandidate {
            itype: self.itype,
            value: self.value.clone(),
        }
    }
}

impl From<ExtractedIndicator> for IndicatorCandidate {
    fn from(extracted: ExtractedIndicator) -> Self {
        IndicatorCandidate {
            itype: extracted.itype,
            value: extracted.value,
        }
    }
}

/// A payload the plugin cannot turn into an alert (Calseta answers 500 here; we answer 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot normalize {source_name} payload: field '{field}' {reason}")]
pub struct NormalizeError {
    pub source_name: &'static str,
    pub field: &'static str,
    pub reason: String,
}

impl NormalizeError {
    pub fn new(source_name: &'static str, field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            source_name,
            field,
            reason: reason.into(),
        }
    }
}

/// The agent-facing normalized alert (Calseta's `CalsetaAlert`); field order is the
/// `normalization_preview` order of the test-extraction endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizedAlert {
    pub title: String,
    pub severity: Severity,
    pub occurred_at: DateTime<Utc>,
    pub source_name: String,
    pub description: Option<String>,
    pub src_ip: Option<String>,
    pub dst_ip: Option<String>,
    pub src_hostname: Option<String>,
    pub dst_hostname: Option<String>,
    pub file_hash_md5: Option<String>,
    pub file_hash_sha256: Option<String>,
    pub file_hash_sha1: Option<String>,
    pub actor_email: Option<String>,
    pub actor_username: Option<String>,
    pub dns_query: Option<String>,
    pub http_url: Option<String>,
    pub http_hostname: Option<String>,
    pub email_from: Option<String>,
    pub email_reply_to: Option<String>,
    pub tags: Vec<String>,
    pub extra: Map<String, Value>,
}

impl NormalizedAlert {
    /// An alert with the four required fields and every optional field empty.
    pub fn new(
        title: impl Into<String>,
        severity: Severity,
        occurred_at: DateTime<Utc>,
        source_name: impl Into<String>,
    ) -> Self {
        Self {
            title: title.into(),
            severity,
            occurred_at,
            source_name: source_name.into(),
            description: None,
            src_ip: None,
            dst_ip: None,
            src_hostname: None,
            dst_hostname: None,
            file_hash_md5: None,
            file_hash_sha256: None,
            file_hash_sha1: None,
            actor_email: None,
            actor_username: None,
            dns_query: None,
            http_url: None,
            http_hostname: None,
            email_from: None,
            email_reply_to: None,
            tags: Vec::new(),
            extra: Map::new(),
        }
    }

    /// The top-level field named `field_name` when it holds a string (Pass 2 reads any
    /// normalized field by name). `severity` counts: Calseta's severity is a `StrEnum`.
    /// `occurred_at`, `tags` and `extra` are not strings and yield `None`.
    pub fn string_field(&self, field_name: &str) -> Option<&str> {
        fn optional(value: &Option<String>) -> Option<&str> {
            value.as_deref()
        }
        match field_name {
            "title" => Some(&self.title),
            "severity" => Some(self.severity.as_str()),
            "source_name" => Some(&self.source_name),
            "description" => optional(&self.description),
            "src_ip" => optional(&self.src_ip),
            "dst_ip" => optional(&self.dst_ip),
            "src_hostname" => optional(&self.src_hostname),
            "dst_hostname" => optional(&self.dst_hostname),
            "file_hash_md5" => optional(&self.file_hash_md5),
            "file_hash_sha256" => optional(&self.file_hash_sha256),
            "file_hash_sha1" => optional(&self.file_hash_sha1),
            "actor_email" => optional(&self.actor_email),
            "actor_username" => optional(&self.actor_username),
            "dns_query" => optional(&self.dns_query),
            "http_url" => optional(&self.http_url),
            "http_hostname" => optional(&self.http_hostname),
            "email_from" => optional(&self.email_from),
            "email_reply_to" => optional(&self.email_reply_to),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------------------------

/// Python's datetime range (years 1..=9999); anything outside is a parse failure there, and
/// keeping to it keeps every stored timestamp representable in both databases.
fn within_python_range(instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (1..=9999).contains(&instant.year()).then_some(instant)
}

/// Parse an ISO-8601 string with Python 3.12 `datetime.fromisoformat` semantics: dates
/// `YYYY-MM-DD`, `YYYYMMDD`, ISO week dates; any single character as date/time separator;
/// `HH[:MM[:SS[.f…]]]` or the basic forms, fractions truncated to microseconds, `24:00` as next
/// midnight; offsets `Z`, `±HH`, `±HH:MM`, `±HHMM`, `±HH:MM:SS[.f]`. A value without an offset
/// is taken as UTC. Returns `None` where Python raises.
pub fn parse_iso_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if text.chars().count() < 7 {
        return None;
    }
    let date_len = iso_date_length(text.as_bytes())?;
    let date_part = text.get(..date_len)?;
    let date = parse_iso_date(date_part)?;
    // Python skips exactly one character (any character) between date and time.
    let mut rest = text[date_len..].chars();
    rest.next();
    let time_part = rest.as_str();
    if time_part.is_empty() {
        return within_python_range(date.and_time(NaiveTime::MIN).and_utc());
    }
    let (naive, offset_micros) = parse_iso_time(date, time_part)?;
    let utc = naive.checked_sub_signed(TimeDelta::microseconds(offset_micros))?;
    within_python_range(utc.and_utc())
}

/// Where the date part ends (CPython `_find_isoformat_datetime_separator`).
fn iso_date_length(bytes: &[u8]) -> Option<usize> {
    let len = bytes.len();
    if len == 7 {
        return Some(7);
    }
    if len < 8 {
        return None;
    }
    let at = |index: usize| bytes.get(index).copied();
    if at(4) == Some(b'-') {
        if at(5) != Some(b'W') {
            return Some(10);
        }
        if len > 8 && at(8) == Some(b'-') {
            if len == 9 {
                return None;
            }
            if len > 10 && at(10).is_some_and(|b| b.is_ascii_digit()) {
                return Some(8);
            }
            return Some(10);
        }
        return Some(8);
    }
    if at(4) == Some(b'W') {
        let mut index = 7;
        while index < len && bytes[index].is_ascii_digit() {
            index += 1;
        }
        if index < 9 {
            return Some(index);
        }
        return Some(if index % 2 == 0 { 7 } else { 8 });
    }
    Some(8)
}

fn ascii_number(digits: &str) -> Option<u32> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn parse_iso_date(date_part: &str) -> Option<NaiveDate> {
    if !matches!(date_part.len(), 7 | 8 | 10) || !date_part.is_ascii() {
        return None;
    }
    let year = ascii_number(&date_part[0..4])? as i32;
    let has_dash = date_part.as_bytes()[4] == b'-';
    let mut pos = 4 + usize::from(has_dash);
    if date_part.get(pos..pos + 1) == Some("W") {
        pos += 1;
        let week = ascii_number(date_part.get(pos..pos + 2)?)?;
        pos += 2;
        let mut weekday = 1;
        if date_part.len() > pos {
            if (date_part.get(pos..pos + 1) == Some("-")) != has_dash {
                return None;
            }
            pos += usize::from(has_dash);
            weekday = ascii_number(date_part.get(pos..pos + 1)?)?;
            if date_part.len() != pos + 1 {
                return None;
            }
        }
        let weekday = match weekday {
            1 => chrono::Weekday::Mon,
            2 => chrono::Weekday::Tue,
            3 => chrono::Weekday::Wed,
            4 => chrono::Weekday::Thu,
            5 => chrono::Weekday::Fri,
            6 => chrono::Weekday::Sat,
            7 => chrono::Weekday::Sun,
            _ => return None,
        };
        return NaiveDate::from_isoywd_opt(year, week, weekday);
    }
    let month = ascii_number(date_part.get(pos..pos + 2)?)?;
    pos += 2;
    if (date_part.get(pos..pos + 1) == Some("-")) != has_dash {
        return None;
    }
    pos += usize::from(has_dash);
    let day_digits = date_part.get(pos..)?;
    if day_digits.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(year, month, ascii_number(day_digits)?)
}

/// `HH[:?MM[:?SS[{.,}f…]]]` → (hour, minute, second, microsecond) (CPython `_parse_hh_mm_ss_ff`).
fn parse_hh_mm_ss_ff(text: &str) -> Option<[u32; 4]> {
    if !text.is_ascii() {
        return None;
    }
    let bytes = text.as_bytes();
    let mut components = [0u32; 4];
    let mut pos = 0;
    let mut has_colon = false;
    for (index, component) in components.iter_mut().take(3).enumerate() {
        *component = ascii_number(text.get(pos..pos + 2)?)?;
        pos += 2;
        let next = bytes.get(pos).copied();
        if index == 0 {
            has_colon = next == Some(b':');
        }
        let Some(next) = next else { break };
        if index >= 2 {
            break;
        }
        if has_colon && next != b':' {
            return None;
        }
        pos += usize::from(has_colon);
    }
    if pos < bytes.len() {
        if bytes[pos] != b'.' && bytes[pos] != b',' {
            return None;
        }
        pos += 1;
        let fraction = &text[pos..];
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Python keeps six digits and ignores (digit-only) excess, e.g. Sentinel's 7-digit
        // fractions.
        let kept = &fraction[..fraction.len().min(6)];
        components[3] = ascii_number(kept)? * 10u32.pow(6 - kept.len() as u32);
    }
    Some(components)
}

/// The time part (after the separator) → naive local datetime and its UTC offset in µs.
fn parse_iso_time(date: NaiveDate, time_part: &str) -> Option<(NaiveDateTime, i64)> {
    if time_part.len() < 2 {
        return None;
    }
    let offset_start = time_part.find(['+', '-', 'Z']);
    let clock = &time_part[..offset_start.unwrap_or(time_part.len())];
    let [hour, minute, second, micro] = parse_hh_mm_ss_ff(clock)?;
    let (date, hour) = if hour == 24 {
        if minute != 0 || second != 0 || micro != 0 {
            return None;
        }
        (date.succ_opt()?, 0)
    } else {
        (date, hour)
    };
    let naive = date.and_time(NaiveTime::from_hms_micro_opt(hour, minute, second, micro)?);
    let Some(offset_start) = offset_start else {
        return Some((naive, 0));
    };
    let marker = time_part.as_bytes()[offset_start];
    let offset_text = &time_part[offset_start + 1..];
    if marker == b'Z' {
        return offset_text.is_empty().then_some((naive, 0));
    }
    if matches!(offset_text.len(), 0 | 1 | 3) {
        return None;
    }
    let [off_hours, off_minutes, off_seconds, off_micros] = parse_hh_mm_ss_ff(offset_text)?;
    if off_minutes > 59 || off_seconds > 59 {
        return None;
    }
    let magnitude = ((i64::from(off_hours) * 60 + i64::from(off_minutes)) * 60
        + i64::from(off_seconds))
        * 1_000_000
        + i64::from(off_micros);
    // Python's timezone() only accepts offsets strictly inside ±24 h.
    if magnitude >= 86_400_000_000 {
        return None;
    }
    let signed = if marker == b'-' {
        -magnitude
    } else {
        magnitude
    };
    Some((naive, signed))
}

/// Unix epoch seconds (fractional allowed), rounded to microseconds as Python's
/// `datetime.fromtimestamp` does.
pub fn from_epoch_seconds(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() {
        return None;
    }
    let whole = seconds.floor();
    let mut micros = ((seconds - whole) * 1e6).round_ties_even() as i64;
    let mut whole = whole;
    if micros >= 1_000_000 {
        micros -= 1_000_000;
        whole += 1.0;
    }
    if whole.abs() > 1e14 {
        return None;
    }
    let instant = DateTime::from_timestamp(whole as i64, (micros * 1000) as u32)?;
    within_python_range(instant)
}

/// Unix epoch milliseconds (Elasticsearch's `epoch_millis`).
pub fn from_epoch_millis(millis: f64) -> Option<DateTime<Utc>> {
    from_epoch_seconds(millis / 1000.0)
}

/// Numbers at or above 1e11 are taken as milliseconds (1e11 s would be the year 5138; 1e11 ms
/// is March 1973), everything else as seconds.
pub fn from_epoch_auto(value: f64) -> Option<DateTime<Utc>> {
    if value.abs() >= 1e11 {
        from_epoch_millis(value)
    } else {
        from_epoch_seconds(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micro: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
            + TimeDelta::microseconds(i64::from(micro))
    }

    #[test]
    fn severity_strings_rank_and_serde() {
        for severity in Severity::ALL {
            assert_eq!(severity.as_str().parse::<Severity>().unwrap(), severity);
            assert_eq!(
                serde_json::to_value(severity).unwrap(),
                Value::from(severity.as_str())
            );
        }
        assert!("high".parse::<Severity>().is_err());
        let mut sorted = vec![
            Severity::Low,
            Severity::Critical,
            Severity::Pending,
            Severity::High,
        ];
        sorted.sort_by_key(|s| std::cmp::Reverse(s.rank()));
        assert_eq!(
            sorted,
            [
                Severity::Critical,
                Severity::High,
                Severity::Low,
                Severity::Pending
            ]
        );
        assert_eq!(Severity::Informational.rank(), 1);
    }

    #[test]
    fn indicator_type_strings() {
        let expected = [
            "ip",
            "domain",
            "hash_md5",
            "hash_sha1",
            "hash_sha256",
            "url",
            "email",
            "account",
        ];
        for (itype, text) in IndicatorType::ALL.into_iter().zip(expected) {
            assert_eq!(itype.to_string(), text);
            assert_eq!(text.parse::<IndicatorType>().unwrap(), itype);
            assert_eq!(serde_json::to_value(itype).unwrap(), Value::from(text));
        }
        assert_eq!(
            "IP".parse::<IndicatorType>().unwrap_err().to_string(),
            "'IP' is not a valid indicator type"
        );
        let candidate = IndicatorCandidate::new(IndicatorType::HashSha256, "abc");
        assert_eq!(
            serde_json::to_string(&candidate).unwrap(),
            r#"{"type":"hash_sha256","value":"abc"}"#
        );
    }

    #[test]
    fn iso_timestamps_like_python_fromisoformat() {
        let cases: [(&str, DateTime<Utc>); 14] = [
            ("2024-01-15T10:30:00.000Z", utc(2024, 1, 15, 10, 30, 0, 0)),
            ("2024-01-15T10:30:00Z", utc(2024, 1, 15, 10, 30, 0, 0)),
            ("2024-01-15T10:30:00", utc(2024, 1, 15, 10, 30, 0, 0)),
            ("2024-01-15 10:30:00+02:00", utc(2024, 1, 15, 8, 30, 0, 0)),
            ("2024-01-15T10:30:00-0530", utc(2024, 1, 15, 16, 0, 0, 0)),
            ("2024-01-15T10:30+01", utc(2024, 1, 15, 9, 30, 0, 0)),
            ("2024-01-15T10", utc(2024, 1, 15, 10, 0, 0, 0)),
            ("2024-01-15", utc(2024, 1, 15, 0, 0, 0, 0)),
            ("20240115T103000Z", utc(2024, 1, 15, 10, 30, 0, 0)),
            (
                "2024-01-15T10:29:50.1234567Z",
                utc(2024, 1, 15, 10, 29, 50, 123_456),
            ),
            (
                "2024-01-15T10:29:50,5",
                utc(2024, 1, 15, 10, 29, 50, 500_000),
            ),
            ("2024-01-15T24:00:00", utc(2024, 1, 16, 0, 0, 0, 0)),
            ("2024-W03-1", utc(2024, 1, 15, 0, 0, 0, 0)),
            (
                "2024-01-15\u{00e9}10:30:00+00:00",
                utc(2024, 1, 15, 10, 30, 0, 0),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_iso_timestamp(text), Some(expected), "{text}");
        }
        for bad in [
            "",
            "2024",
            "yesterday",
            "2024-13-01",
            "2024-02-30T00:00:00",
            "2024-01-15T25:00",
            "2024-01-15T10:30:60",
            "2024-01-15T24:00:01",
            "2024-01-15T10:30:00+24:00",
            "2024-01-15T10:30:00+1",
            "2024-0115",
            "0000-01-01",
            "2024-01-15T10:30:00.",
            "2024-01-15T10:30:00.12x",
            "1705312200",
            "2024-01-15T10:3",
        ] {
            assert_eq!(parse_iso_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn epoch_timestamps() {
        let mid_january = |micros| Some(utc(2024, 1, 15, 9, 50, 0, micros));
        for (read, expected) in [
            (from_epoch_seconds(1_705_312_200.0), mid_january(0)),
            (from_epoch_seconds(1_705_312_200.25), mid_january(250_000)),
            (from_epoch_millis(1_705_312_200_123.0), mid_january(123_000)),
            (from_epoch_auto(1_705_312_200_000.0), mid_january(0)),
            (from_epoch_auto(1_705_312_200.0), mid_january(0)),
            (from_epoch_seconds(-1.5), Some(utc(1969, 12, 31, 23, 59, 58, 500_000))),
        ] {
            assert_eq!(read, expected);
        }
        for bad in [
            f64::NAN,
            f64::INFINITY,
            1e300,
            253_402_300_800.0, /* year 10000 */
        ] {
            assert_eq!(from_epoch_seconds(bad), None);
        }
    }

    #[test]
    fn string_field_covers_every_normalized_string() {
        let mut alert =
            NormalizedAlert::new("T", Severity::High, utc(2024, 1, 1, 0, 0, 0, 0), "generic");
        alert.src_ip = Some("1.2.3.4".into());
        assert_eq!(alert.string_field("title"), Some("T"));
        assert_eq!(alert.string_field("severity"), Some("High"));
        assert_eq!(alert.string_field("source_name"), Some("generic"));
        assert_eq!(alert.string_field("src_ip"), Some("1.2.3.4"));
        assert_eq!(alert.string_field("dst_ip"), None);
        assert_eq!(alert.string_field("occurred_at"), None);
        assert_eq!(alert.string_field("tags"), None);
        assert_eq!(alert.string_field("nonexistent"), None);
    }

    #[test]
    fn normalized_alert_serializes_in_preview_order() {
        let alert =
            NormalizedAlert::new("T", Severity::Low, utc(2024, 1, 15, 10, 0, 0, 0), "generic");
        let json = serde_json::to_string(&alert).unwrap();
        assert!(json.starts_with(
            r#"{"title":"T","severity":"Low","occurred_at":"2024-01-15T10:00:00Z","source_name":"generic","description":null,"src_ip":null,"#
        ), "{json}");
        assert!(
            json.ends_with(r#""email_reply_to":null,"tags":[],"extra":{}}"#),
            "{json}"
        );
    }
}
