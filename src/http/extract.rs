//! Request extractors that turn every malformed input into a 4xx envelope:
//! `JsonBody<T>` (content type, body size, encoding, nesting depth, NUL characters, an object
//! at the top, then typed decoding with unknown fields refused by the target types),
//! `ValidPath<T>` (bad UUIDs → 422) and `ValidQuery<T>` (bad query values → 422).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{Error, FieldError};
use crate::state::AppState;

/// Reads the whole body. The body-limit middleware has already wrapped it in a length limit, so an
/// over-long chunked body surfaces here as a length error and becomes a 413, never a 500.
pub async fn read_body(request: Request) -> Result<Bytes, Error> {
    let ingest = request.extensions().get::<crate::http::middleware::BodyLimit>().copied();
    axum::body::to_bytes(request.into_body(), usize::MAX).await.map_err(|e| {
        let too_long = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>() || s.to_string().contains("length limit"));
        match (too_long, ingest) {
            (true, Some(limit)) => Error::PayloadTooLarge { limit_mb: limit.megabytes, ingest: limit.ingest },
            (true, None) => Error::PayloadTooLarge { limit_mb: 0, ingest: false },
            (false, _) => Error::bad_request("INVALID_BODY", "The request body could not be read."),
        }
    })
}

/// Why a body is not acceptable JSON text, before any schema is applied.
#[derive(Debug, PartialEq)]
pub enum JsonTextError {
    /// Not parseable (syntax); 422 like Calseta's `json_invalid`.
    Syntax(String),
    /// Invalid UTF-8, lone surrogate escapes, NUL characters or nesting deeper than allowed: 400.
    Encoding(String),
}

/// Parses `bytes` as JSON with a nesting-depth bound checked *before* parsing (a 10,000-deep
/// array never reaches the recursive parser) and rejects NUL characters anywhere in strings or
/// keys (they cannot be stored in PostgreSQL text and are never meaningful in alert data).
pub fn parse_json_text(bytes: &[u8], max_depth: usize) -> Result<Value, JsonTextError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| JsonTextError::Encoding("Request body is not valid UTF-8.".into()))?;
    check_depth(text, max_depth)?;
    let classify = |e: serde_json::Error| {
        let message = e.to_string();
        if message.contains("surrogate") || message.contains("unicode") {
            JsonTextError::Encoding(format!("Request body contains an invalid escape: {message}"))
        } else if message.starts_with(DUPLICATE_KEY) {
            JsonTextError::Encoding(format!("Request body contains a {message}"))
        } else {
            JsonTextError::Syntax(message)
        }
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde::de::DeserializeSeed::deserialize(UniqueKeys, &mut deserializer).map_err(classify)?;
    deserializer.end().map_err(classify)?;
    if contains_nul(&value) {
        return Err(JsonTextError::Encoding("Request body contains a NUL character.".into()));
    }
    Ok(value)
}

const DUPLICATE_KEY: &str = "duplicate key";

/// Builds a `Value` like serde_json does, but refuses an object that names a key twice (at any
/// depth). serde_json keeps the last one, so `{"scopes":["alerts:read"],"scopes":["admin"]}`
/// would otherwise mean whatever the last parser in a chain of proxies decides.
struct UniqueKeys;

impl<'de> serde::de::DeserializeSeed<'de> for UniqueKeys {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(UniqueKeys)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = serde_json::Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(serde::de::Error::custom(format!("{DUPLICATE_KEY} {shown:?} in a JSON object")));
            }
            let value = access.next_value_seed(UniqueKeys)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// One pass over the text before parsing: bounds the nesting depth and refuses lone UTF-16
/// surrogate escapes (`"\ud800"`), which serde_json would otherwise let through as U+FFFD.
fn check_depth(text: &str, max_depth: usize) -> Result<(), JsonTextError> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut i = 0;
    // A high surrogate escape seen just before; the next escape must be its low half.
    let mut pending_high = false;
    let lone = || JsonTextError::Encoding("Request body contains an unpaired UTF-16 surrogate escape.".into());
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                    let code = text.get(i + 2..i + 6).and_then(|h| u16::from_str_radix(h, 16).ok());
                    match code {
                        Some(0xD800..=0xDBFF) if !pending_high => pending_high = true,
                        Some(0xDC00..=0xDFFF) if pending_high => pending_high = false,
                        Some(0xD800..=0xDFFF) => return Err(lone()),
                        _ if pending_high => return Err(lone()),
                        _ => {}
                    }
                    i += 6;
                    continue;
                }
                _ if pending_high => return Err(lone()),
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(JsonTextError::Encoding(format!(
                        "JSON nesting exceeds the maximum depth of {max_depth}."
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// Decodes a JSON value into `T`, reporting the failing field path as a 422 `details.errors`
/// entry (`loc: ["body", …]`).
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut loc = vec![json!("body")];
        let inner = e.inner().to_string();
        // Sequence indices are numbers in `loc` (`["body", "tags", 0]`), as the reference reports them.
        loc.extend(e.path().iter().map(|segment| match segment {
            serde_path_to_error::Segment::Seq { index } => json!(index),
            serde_path_to_error::Segment::Map { key } => json!(key),
            serde_path_to_error::Segment::Enum { variant } => json!(variant),
            serde_path_to_error::Segment::Unknown => json!("?"),
        }));
        let kind = if inner.starts_with("missing field") {
            if let Some(field) = inner.split('`').nth(1) {
                loc.push(json!(field));
            }
            "missing"
        } else if inner.starts_with("unknown field") {
            if let Some(field) = inner.split('`').nth(1)
                && loc.last() != Some(&json!(field)) {
                    loc.push(json!(field));
                }
            "extra_forbidden"
        } else if inner.starts_with("invalid type") {
            "type_error"
        } else {
            "value_error"
        };
        let msg = inner.split(", expected one of").next().unwrap_or(&inner).to_owned();
        Error::Validation(vec![FieldError::new(kind, loc, msg)])
    })
}

pub fn json_text_error_to_http(e: JsonTextError) -> Error {
    match e {
        JsonTextError::Syntax(msg) => Error::Validation(vec![FieldError::new("json_invalid", vec![json!("body")], msg)]),
        JsonTextError::Encoding(msg) => Error::bad_request("INVALID_JSON", msg),
    }
}

/// `application/json` or any `application/*+json`, parameters (charset) ignored.
pub fn is_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

pub fn unsupported_media_type() -> Error {
    Error::client(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json.")
}

/// A JSON request body decoded into `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(request.headers()) {
            return Err(unsupported_media_type());
        }
        let bytes = read_body(request).await?;
        if bytes.is_empty() {
            return Err(Error::Validation(vec![FieldError::new("missing", vec![json!("body")], "Field required")]));
        }
        let value = parse_json_text(&bytes, state.settings.max_json_depth).map_err(json_text_error_to_http)?;
        // Every request body is an object. serde would also accept a struct written as an array
        // of its fields in order (`["name", ["admin"]]`), which no client means to send.
        if !value.is_object() {
            return Err(Error::Validation(vec![FieldError::new(
                "model_attributes_type",
                vec![json!("body")],
                "Input should be a valid dictionary or object to extract fields from",
            )]));
        }
        decode(value).map(JsonBody)
    }
}

/// data-model.md "JSONB size limits", measured on the compact serialization.
pub const LARGE_JSON_BYTES: usize = 1_048_576;
/// An alert's payload, on both ingest paths (webhook body, `payload` of `POST /v1/alerts`),
/// measured on its compact serialization. The request body itself may be larger (whitespace,
/// the envelope) up to `MAX_INGEST_PAYLOAD_SIZE_MB`.
pub const ALERT_PAYLOAD_MAX_BYTES: usize = LARGE_JSON_BYTES;
/// A context document's `content` (UTF-8 bytes): documents are read whole into an agent's
/// context, so anything larger belongs in several documents.
pub const DOCUMENT_CONTENT_MAX_BYTES: usize = LARGE_JSON_BYTES;
pub const MEDIUM_JSON_BYTES: usize = 262_144;
pub const SMALL_JSON_BYTES: usize = 65_536;

/// Rejects a JSON value whose compact serialization is longer than `limit` bytes, with
/// Calseta's message, e.g. `auth_config exceeds maximum size of 256 KB (262,145 bytes serialized)`.
pub fn check_json_size<T: serde::Serialize + ?Sized>(field: &str, value: &T, limit: usize) -> Result<(), FieldError> {
    let size = serde_json::to_vec(value).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
    if size <= limit {
        return Ok(());
    }
    let limit_text = if limit >= 1_048_576 { format!("{} MB", limit / 1_048_576) } else { format!("{} KB", limit / 1024) };
    let digits = size.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    Err(FieldError::body(field, "value_error", format!("{field} exceeds maximum size of {limit_text} ({grouped} bytes serialized)")))
}

/// Path parameters; a malformed UUID (or any unparsable segment) is a 422, not a 400/500.
pub struct ValidPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ValidPath<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(raw) = axum::extract::RawPathParams::from_request_parts(parts, state).await
            && raw.iter().any(|(_, value)| value.contains('\0'))
        {
            return Err(Error::bad_request("INVALID_PATH", "A path parameter contains a NUL character."));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ValidPath(p.0))
            .map_err(|e| Error::Validation(vec![FieldError::new("uuid_parsing", vec![json!("path")], e.body_text())]))
    }
}

/// Query parameters; wrong types or out-of-range values are a 422.
pub struct ValidQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        // NUL cannot be stored in PostgreSQL text: refuse it here rather than as a driver error.
        if form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(Error::bad_request("INVALID_QUERY", "The query string contains a NUL character (%00)."));
        }
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize::<_, T>(deserializer).map(ValidQuery).map_err(|e| {
            let loc = vec![json!("query"), json!(e.path().to_string())];
            Error::Validation(vec![FieldError::new("value_error", loc, e.inner().to_string())])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_size_message() {
        let err = check_json_size("evidence", &json!({"k": "x".repeat(1_234_567)}), SMALL_JSON_BYTES).unwrap_err();
        assert_eq!(err.msg, "evidence exceeds maximum size of 64 KB (1,234,575 bytes serialized)");
        let err = check_json_size("payload", &json!("x".repeat(1_048_576)), LARGE_JSON_BYTES).unwrap_err();
        assert_eq!(err.msg, "payload exceeds maximum size of 1 MB (1,048,578 bytes serialized)");
        assert!(check_json_size("auth_config", &json!({"k": 1}), MEDIUM_JSON_BYTES).is_ok());
    }

    #[test]
    fn depth_is_bounded_before_parsing() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(matches!(parse_json_text(deep.as_bytes(), 64), Err(JsonTextError::Encoding(_))));
        let ok = "[".repeat(64) + &"]".repeat(64);
        assert!(parse_json_text(ok.as_bytes(), 64).is_ok());
        // Brackets inside strings do not count.
        assert!(parse_json_text(br#"{"a":"[[[[[[[[[[[[[[[["}"#, 2).is_ok());
        assert!(parse_json_text(br#"{"a":"\"[[[["}"#, 2).is_ok());
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let refused = [
            &br#"{"name":"x","scopes":["alerts:read"],"scopes":["admin"]}"#[..],
            br#"{"a":{"b":1,"b":2}}"#,
            br#"[{"a":1},{"c":[{"d":1,"d":1}]}]"#,
            // The same key spelt with an escape is the same key.
            br#"{"admin":1,"admin":2}"#,
        ];
        for body in refused {
            let err = parse_json_text(body, 8).unwrap_err();
            assert!(matches!(&err, JsonTextError::Encoding(m) if m.contains("duplicate key")), "{err:?}");
        }
        assert_eq!(parse_json_text(br#"{"a":{"b":1},"b":{"a":1}}"#, 8).unwrap(), json!({"a":{"b":1},"b":{"a":1}}));
        assert_eq!(parse_json_text(br#"[1.5,-2,18446744073709551615,null,true,"s"]"#, 8).unwrap(),
            json!([1.5, -2, 18446744073709551615u64, null, true, "s"]));
        assert!(matches!(parse_json_text(br#"{"a":1} x"#, 8), Err(JsonTextError::Syntax(_))));
    }

    #[test]
    fn nul_surrogates_and_bad_utf8_are_encoding_errors() {
        assert!(matches!(parse_json_text(br#"{"a":"x\u0000y"}"#, 8), Err(JsonTextError::Encoding(_))));
        assert!(matches!(parse_json_text(br#"{"a\u0000":1}"#, 8), Err(JsonTextError::Encoding(_))));
        assert!(matches!(parse_json_text(br#"{"a":"\ud800"}"#, 8), Err(JsonTextError::Encoding(_))));
        assert!(matches!(parse_json_text(br#"{"a":"\udc00x"}"#, 8), Err(JsonTextError::Encoding(_))));
        assert!(matches!(parse_json_text(br#"{"a":"\ud800\u0041"}"#, 8), Err(JsonTextError::Encoding(_))));
        // A proper pair is fine: U+1F600.
        assert_eq!(parse_json_text(br#"{"a":"\ud83d\ude00"}"#, 8).unwrap()["a"], "\u{1F600}");
        assert!(matches!(parse_json_text(b"{\"a\":\"\xc0\xaf\"}", 8), Err(JsonTextError::Encoding(_))));
        assert!(matches!(parse_json_text(b"{\"a\":", 8), Err(JsonTextError::Syntax(_))));
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        count: u32,
    }

    #[test]
    fn decode_reports_the_field() {
        let err = decode::<Sample>(json!({"name": "x"})).unwrap_err();
        let Error::Validation(errors) = err else { panic!() };
        assert_eq!(errors[0].kind, "missing");
        assert_eq!(errors[0].loc, vec![json!("body"), json!("count")]);
        let Error::Validation(errors) = decode::<Sample>(json!({"name": "x", "count": "no"})).unwrap_err() else { panic!() };
        assert_eq!(errors[0].kind, "type_error");
        assert_eq!(errors[0].loc, vec![json!("body"), json!("count")]);
        let Error::Validation(errors) = decode::<Sample>(json!({"name": "x", "count": 1, "id": 5})).unwrap_err() else { panic!() };
        assert_eq!(errors[0].kind, "extra_forbidden");
        assert_eq!(errors[0].loc, vec![json!("body"), json!("id")]);
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Outer {
            items: Vec<Sample>,
        }
        let Error::Validation(errors) = decode::<Outer>(json!({"items": [{"name": "x", "count": 1}, {"name": "y", "count": 1, "z": 0}]})).unwrap_err() else { panic!() };
        assert_eq!(errors[0].loc, vec![json!("body"), json!("items"), json!(1), json!("z")]);
        let Error::Validation(errors) = decode::<Outer>(json!({"items": [{"name": "x"}]})).unwrap_err() else { panic!() };
        assert_eq!(errors[0].loc, vec![json!("body"), json!("items"), json!(0), json!("count")]);
    }
}

/// For PATCH fields where an explicit `null` differs from an omitted field: omitted → `None`
/// (with `#[serde(default)]`), `null` → `Some(None)`, a value → `Some(Some(v))`.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}
