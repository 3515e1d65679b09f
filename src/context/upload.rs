//! The multipart form of `POST /v1/context-documents` (api.md §8): form fields `title`,
//! `document_type` (required), `is_global`, `description`, `tags` (a JSON array, or
//! comma-separated), `targeting_rules` (a JSON object) and the `file` to convert. The body is
//! read under the same limit as the JSON create (the body-limit middleware, one 413 for both);
//! every malformed form is a 4xx.

use std::collections::HashSet;

use axum::extract::Request;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::service::{ContextDocumentCreate, DocumentUpload, UploadedFile};
use crate::error::{Error, FieldError, FieldErrors, Result};
use crate::http::extract::{json_text_error_to_http, parse_json_text, read_body};

/// The form as documented (the OpenAPI face of [`read_form`]).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ContextDocumentUploadForm {
    /// 1 to 500 characters, not blank.
    title: String,
    /// runbook, ir_plan, sop, playbook, detection_guide or other.
    document_type: String,
    /// `true`, `1` or `yes` (any case) for true; anything else is false.
    is_global: Option<String>,
    description: Option<String>,
    /// A JSON array of strings, or comma-separated.
    tags: Option<String>,
    /// A JSON object of targeting rules.
    targeting_rules: Option<String>,
    /// PDF, DOCX, PPTX, HTML, plain text or Markdown; converted to text, not stored.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

const TEXT_FIELDS: [&str; 6] = ["title", "document_type", "is_global", "description", "tags", "targeting_rules"];

pub fn is_multipart(request: &Request) -> bool {
    content_type(request).is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

fn content_type(request: &Request) -> Option<&str> {
    request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

fn malformed(e: multer::Error) -> Error {
    Error::bad_request("INVALID_MULTIPART", format!("The multipart body could not be parsed: {e}"))
}

/// Reads and checks the form; the file's conversion is the service's.
pub async fn read_form(request: Request, max_json_depth: usize) -> Result<DocumentUpload> {
    let boundary = content_type(&request).map(multer::parse_boundary).transpose().map_err(malformed)?.ok_or_else(|| {
        Error::bad_request("INVALID_MULTIPART", "multipart/form-data needs a boundary parameter")
    })?;
    let body = read_body(request).await?;
    let mut form = multer::Multipart::new(futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) }), boundary);
    let mut seen = HashSet::new();
    let mut texts = std::collections::HashMap::new();
    let mut file = None;
    let mut errors = FieldErrors::default();
    while let Some(field) = form.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_owned();
        if !seen.insert(name.clone()) {
            // As with duplicate JSON keys: which one would win is a guess, so neither does.
            errors.push(FieldError::body(&name, "duplicate", format!("form field '{name}' appears more than once")));
            continue;
        }
        if name == "file" {
            let name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(|m| m.to_string());
            let bytes = field.bytes().await.map_err(malformed)?;
            file = Some(UploadedFile { name, content_type, bytes });
        } else if TEXT_FIELDS.contains(&name.as_str()) {
            let bytes = field.bytes().await.map_err(malformed)?;
            match String::from_utf8(bytes.to_vec()) {
                Ok(text) if !text.contains('\0') => {
                    texts.insert(name, text);
                }
                _ => {
                    errors.push(FieldError::body(&name, "string_type", format!("{name} must be UTF-8 text without NUL characters")));
                }
            }
        } else {
            errors.push(FieldError::body(&name, "extra_forbidden", "Extra inputs are not permitted"));
        }
    }
    let mut take = |name: &str| texts.remove(name);
    let title = take("title");
    let document_type = take("document_type");
    for (field, value) in [("title", &title), ("document_type", &document_type)] {
        if value.is_none() {
            errors.push(FieldError::body(field, "missing", "title and document_type are required form fields"));
        }
    }
    if file.is_none() {
        errors.push(FieldError::body("file", "missing", "file is a required upload"));
    }
    let is_global = take("is_global").is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
    let tags = take("tags").map(|t| parse_tags(&t, max_json_depth)).transpose().unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let targeting_rules = match take("targeting_rules").filter(|t| !t.trim().is_empty()) {
        None => None,
        Some(text) => match parse_json_text(text.as_bytes(), max_json_depth).map_err(json_text_error_to_http)? {
            rules @ Value::Object(_) => Some(rules),
            _ => {
                errors.push(FieldError::body("targeting_rules", "dict_type", "targeting_rules must be a JSON object"));
                None
            }
        },
    };
    let description = take("description");
    errors.finish()?;
    let fields = ContextDocumentCreate {
        title: title.unwrap_or_default(),
        document_type: document_type.unwrap_or_default(),
        is_global,
        description,
        content: String::new(),
        tags: tags.unwrap_or_default(),
        targeting_rules,
    };
    Ok(DocumentUpload { fields, file: file.expect("checked above") })
}

/// `["a", "b"]` or `a, b`.
fn parse_tags(text: &str, max_json_depth: usize) -> std::result::Result<Vec<String>, FieldError> {
    let trimmed = text.trim();
    if !trimmed.starts_with('[') {
        return Ok(trimmed.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect());
    }
    let invalid = || FieldError::new("list_type", vec![json!("body"), json!("tags")], "tags must be a JSON array of strings or comma-separated");
    let value = parse_json_text(trimmed.as_bytes(), max_json_depth).map_err(|_| invalid())?;
    serde_json::from_value(value).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_as_json_or_comma_list() {
        assert_eq!(parse_tags("[\"a\", \"b\"]", 32).unwrap(), vec!["a", "b"]);
        assert_eq!(parse_tags(" a, b ,,c", 32).unwrap(), vec!["a", "b", "c"]);
        assert!(parse_tags("", 32).unwrap().is_empty());
        assert_eq!(parse_tags("[1, 2]", 32).unwrap_err().kind, "list_type");
        assert_eq!(parse_tags("[\"a\"", 32).unwrap_err().kind, "list_type");
    }
}
