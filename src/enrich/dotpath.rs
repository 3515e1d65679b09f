//! Dot paths into JSON values (`data.attributes.tags.0`), shared by field extraction, malice
//! rules and templates.
//!
//! Resolution follows the original resolver: split on `.`, an object is indexed by key, an array
//! by a numeric segment (negative numbers count from the end, as Python list indexing does), and a
//! `null` met anywhere — including the final value — means "not found".

use serde_json::Value;

/// Longest path accepted by [`validate`], in characters.
pub const MAX_PATH_CHARS: usize = 512;
/// Most segments accepted by [`validate`].
pub const MAX_SEGMENTS: usize = 32;

/// The value at `path`, or `None` when a segment is missing, an index is out of range or not a
/// number, a scalar would have to be descended into, or the value found is `null`.
pub fn resolve<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    resolve_segments(value, path.split('.'))
}

/// [`resolve`] over already split segments; with no segments this is `value` itself (unless null).
pub fn resolve_segments<'a, 's>(
    value: &'a Value,
    segments: impl IntoIterator<Item = &'s str>,
) -> Option<&'a Value> {
    let mut current = value;
    if current.is_null() {
        return None;
    }
    for segment in segments {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(array_index(segment, items.len())?)?,
            _ => return None,
        };
        if current.is_null() {
            return None;
        }
    }
    Some(current)
}

/// A segment as an index into an array of `len` items: decimal digits with an optional sign,
/// negative counting from the end.
fn array_index(segment: &str, len: usize) -> Option<usize> {
    let (negative, digits) = match segment.as_bytes().first()? {
        b'-' => (true, &segment[1..]),
        b'+' => (false, &segment[1..]),
        _ => (false, segment),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // Longer than any array could be: out of range rather than an overflow.
    let magnitude: usize = digits.parse().ok()?;
    if negative && magnitude > 0 {
        len.checked_sub(magnitude)
    } else {
        Some(magnitude)
    }
}

/// Whether `path` is an acceptable dot path for configuration: non-empty, no empty segment
/// (`a..b`, `.a`, `a.`), at most [`MAX_SEGMENTS`] segments and [`MAX_PATH_CHARS`] characters.
pub fn validate(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("path must not be empty".to_owned());
    }
    let chars = path.chars().count();
    if chars > MAX_PATH_CHARS {
        return Err(format!(
            "path is {chars} characters long (at most {MAX_PATH_CHARS} allowed)"
        ));
    }
    let mut segments = 0;
    for segment in path.split('.') {
        segments += 1;
        if segment.is_empty() {
            return Err(format!("path '{path}' has an empty segment"));
        }
    }
    if segments > MAX_SEGMENTS {
        return Err(format!(
            "path has {segments} segments (at most {MAX_SEGMENTS} allowed)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "data": {
                "attributes": {
                    "tags": ["tor", "scanner"],
                    "stats": {"malicious": 3},
                    "nothing": null,
                    "zero": 0,
                    "empty": "",
                },
                "devices": [{"name": "lt-1", "edr": {"agent": "falcon"}}, {"name": "lt-2"}],
            },
            "": "empty key",
            "ünï.cødé": "dotted",
            "ünï": {"cødé": "nested unicode"},
            "7": "digit key",
        })
    }

    #[test]
    fn objects_by_key() {
        let value = sample();
        assert_eq!(
            resolve(&value, "data.attributes.stats.malicious"),
            Some(&json!(3))
        );
        assert_eq!(resolve(&value, "data.attributes.missing"), None);
        assert_eq!(resolve(&value, "ünï.cødé"), Some(&json!("nested unicode")));
    }

    #[test]
    fn arrays_by_index() {
        let value = sample();
        assert_eq!(
            resolve(&value, "data.attributes.tags.0"),
            Some(&json!("tor"))
        );
        assert_eq!(
            resolve(&value, "data.attributes.tags.1"),
            Some(&json!("scanner"))
        );
        assert_eq!(resolve(&value, "data.attributes.tags.2"), None);
        assert_eq!(
            resolve(&value, "data.devices.0.edr.agent"),
            Some(&json!("falcon"))
        );
        assert_eq!(resolve(&value, "data.devices.1.edr.agent"), None);
    }

    #[test]
    fn negative_and_signed_indexes_follow_python_lists() {
        let value = sample();
        assert_eq!(
            resolve(&value, "data.attributes.tags.-1"),
            Some(&json!("scanner"))
        );
        assert_eq!(
            resolve(&value, "data.attributes.tags.-2"),
            Some(&json!("tor"))
        );
        assert_eq!(resolve(&value, "data.attributes.tags.-3"), None);
        assert_eq!(
            resolve(&value, "data.attributes.tags.-0"),
            Some(&json!("tor"))
        );
        assert_eq!(
            resolve(&value, "data.attributes.tags.+1"),
            Some(&json!("scanner"))
        );
    }

    #[test]
    fn bad_indexes_are_missing() {
        let value = sample();
        for path in [
            "data.attributes.tags.x",
            "data.attributes.tags.",
            "data.attributes.tags.1.5",
            "data.attributes.tags. 1",
            "data.attributes.tags.-",
            "data.attributes.tags.99999999999999999999999999",
        ] {
            assert_eq!(resolve(&value, path), None, "{path}");
        }
    }

    #[test]
    fn null_anywhere_is_missing() {
        let value = sample();
        assert_eq!(resolve(&value, "data.attributes.nothing"), None);
        assert_eq!(resolve(&value, "data.attributes.nothing.deeper"), None);
        assert_eq!(resolve(&Value::Null, "a"), None);
        assert_eq!(resolve_segments(&Value::Null, []), None);
    }

    #[test]
    fn falsy_values_are_found() {
        let value = sample();
        assert_eq!(resolve(&value, "data.attributes.zero"), Some(&json!(0)));
        assert_eq!(resolve(&value, "data.attributes.empty"), Some(&json!("")));
    }

    #[test]
    fn scalars_cannot_be_descended() {
        let value = sample();
        assert_eq!(resolve(&value, "data.attributes.zero.x"), None);
        assert_eq!(resolve(&value, "data.attributes.tags.0.0"), None);
    }

    #[test]
    fn odd_keys() {
        let value = sample();
        assert_eq!(resolve(&value, ""), Some(&json!("empty key")));
        // Objects are indexed by key even when the segment is numeric.
        assert_eq!(resolve(&value, "7"), Some(&json!("digit key")));
    }

    #[test]
    fn deep_paths() {
        let mut value = json!("bottom");
        for _ in 0..40 {
            value = json!({"n": [value]});
        }
        let path = vec!["n.0"; 40].join(".");
        assert_eq!(resolve(&value, &path), Some(&json!("bottom")));
    }

    #[test]
    fn segments_helper() {
        let value = sample();
        assert_eq!(resolve_segments(&value, []), Some(&value));
        assert_eq!(
            resolve_segments(&value, ["data", "devices", "1", "name"]),
            Some(&json!("lt-2"))
        );
    }

    #[test]
    fn validation() {
        assert!(validate("data.attributes.tags.0").is_ok());
        assert!(validate("ünï.cødé").is_ok());
        assert!(validate("a").is_ok());
        assert!(validate("").unwrap_err().contains("empty"));
        for bad in ["a..b", ".a", "a.", "."] {
            assert!(
                validate(bad).unwrap_err().contains("empty segment"),
                "{bad}"
            );
        }
        assert!(validate(&vec!["a"; 32].join(".")).is_ok());
        assert!(
            validate(&vec!["a"; 33].join("."))
                .unwrap_err()
                .contains("33 segments")
        );
        assert!(validate(&"é".repeat(512)).is_ok());
        assert!(
            validate(&"é".repeat(513))
                .unwrap_err()
                .contains("513 characters")
        );
    }
}
