//! `POST /v1/context-documents` as a multipart upload (api.md §8): the file is converted to text
//! (PDF, DOCX, PPTX, HTML, plain text, Markdown), the form fields are those of the JSON create,
//! and every bad upload is a clear 4xx that stores nothing.

use std::io::Write;

use reqwest::Method;
use serde_json::json;

use crate::dual;
use crate::support::{Backend, TestServer, body, expect_error};

const ROUTE: &str = "/v1/context-documents";
const BOUNDARY: &str = "calseta-test-boundary";

/// One part of a form: name, file name (a file part when set), content type, bytes.
struct Part(&'static str, Option<String>, Option<&'static str>, Vec<u8>);

fn text(name: &'static str, value: &str) -> Part {
    Part(name, None, None, value.as_bytes().to_vec())
}

fn file(file_name: &str, content_type: &'static str, bytes: Vec<u8>) -> Part {
    Part("file", Some(file_name.to_owned()), Some(content_type), bytes)
}

fn form(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::new();
    for Part(name, file_name, content_type, bytes) in parts {
        write!(out, "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").unwrap();
        if let Some(file_name) = file_name {
            write!(out, "; filename=\"{file_name}\"").unwrap();
        }
        out.extend_from_slice(b"\r\n");
        if let Some(content_type) = content_type {
            write!(out, "Content-Type: {content_type}\r\n").unwrap();
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    write!(out, "--{BOUNDARY}--\r\n").unwrap();
    out
}

async fn upload(server: &TestServer, key: &str, body: Vec<u8>) -> reqwest::Response {
    server
        .request(Method::POST, ROUTE, Some(key))
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

fn zip_of(parts: &[(&str, &str)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in parts {
        writer.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        writer.write_all(content.as_bytes()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let body: String = paragraphs.iter().map(|p| format!("<w:p><w:r><w:t>{p}</w:t></w:r></w:p>")).collect();
    let xml = format!(r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#);
    zip_of(&[("[Content_Types].xml", "<Types/>"), ("word/document.xml", &xml)])
}

/// A one-page PDF showing `text`, with a correct cross-reference table.
fn pdf(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 24 Tf 72 700 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
    out
}

async fn document_count(server: &TestServer) -> i64 {
    server.db_count("SELECT COUNT(*) FROM context_documents").await
}

async fn uploads_are_converted_to_text(backend: Backend) {
    let server = TestServer::start(backend).await;
    let writer = server.create_key(&["alerts:write"], json!({})).await.0;
    let cases: Vec<(Part, &str)> = vec![
        (file("notes.txt", "text/plain", b"Call the on-call lead.".to_vec()), "Call the on-call lead."),
        (file("runbook.md", "text/markdown", b"# Steps\n\n1. Isolate".to_vec()), "# Steps\n\n1. Isolate"),
        (file("ir.html", "text/html", b"<html><body><h2>Contain</h2><p>Block the <b>IP</b></p><script>evil()</script></body></html>".to_vec()), "Contain"),
        (file("sop.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", docx(&["Reset credentials", "Notify &amp; escalate"])), "Reset credentials\n\nNotify & escalate"),
        (file("plan.pdf", "application/pdf", pdf("Preserve memory images")), "Preserve memory images"),
    ];
    for (part, expected) in cases {
        let file_name = part.1.clone().unwrap();
        let response = upload(&server, &writer, form(&[text("title", &format!("From {file_name}")), text("document_type", "runbook"), part])).await;
        assert_eq!(response.status(), 201, "{file_name}");
        let created = body(response).await;
        let content = created["data"]["content"].as_str().unwrap();
        assert!(content.contains(expected), "{file_name}: {content:?}");
        assert!(!content.contains("evil()"), "scripts are not text");
        assert_eq!(created["data"]["version"], 1);
        assert_eq!(created["meta"], json!({}));
    }

    // Every form field of api.md §8.
    let rules = json!({"match_any": [{"field": "severity", "op": "eq", "value": "High"}]});
    let response = upload(
        &server,
        &writer,
        form(&[
            text("title", "Full form"),
            text("document_type", "sop"),
            text("is_global", "YES"),
            text("description", "all fields"),
            text("tags", "[\"phishing\", \"email\"]"),
            text("targeting_rules", &rules.to_string()),
            file("a.txt", "text/plain", b"body".to_vec()),
        ]),
    )
    .await;
    let created = body(response).await["data"].clone();
    assert_eq!(created["is_global"], true);
    assert_eq!(created["description"], "all fields");
    assert_eq!(created["tags"], json!(["phishing", "email"]));
    assert_eq!(created["targeting_rules"], rules);
    let uuid = created["uuid"].as_str().unwrap();
    let fetched = body(server.get(&format!("{ROUTE}/{uuid}"), &server.admin_key).await).await;
    assert_eq!(fetched["data"]["content"], "body");

    let response = upload(
        &server,
        &writer,
        form(&[text("title", "Comma tags"), text("document_type", "other"), text("is_global", "no"), text("tags", "a, b"), file("b.txt", "text/plain", b"x".to_vec())]),
    )
    .await;
    let created = body(response).await["data"].clone();
    assert_eq!(created["tags"], json!(["a", "b"]));
    assert_eq!(created["is_global"], false);

    // Audited like the JSON create, with the format the text came from.
    let trail = server.db_texts("SELECT CAST(details AS TEXT) FROM audit_log WHERE action = 'context_documents.create' ORDER BY id").await;
    assert_eq!(trail.len(), 7);
    // (PostgreSQL's jsonb text has spaces after colons; SQLite's has none.)
    assert!(trail[4].as_deref().unwrap().replace(' ', "").contains("\"converted_from\":\"pdf\""), "{trail:?}");
    server.stop().await;
}
dual!(uploads_are_converted_to_text);

async fn bad_uploads_are_refused(backend: Backend) {
    let server = TestServer::builder(backend).env("MAX_REQUEST_BODY_SIZE_MB", "1").start().await;
    let admin = server.admin_key.clone();
    let named = |file: Part| form(&[text("title", "T"), text("document_type", "runbook"), file]);

    let unsupported: Vec<(Vec<u8>, &str)> = vec![
        (named(file("x.png", "image/png", b"\x89PNG\r\n\x1a\n....".to_vec())), "image"),
        (named(file("x.exe", "application/octet-stream", b"MZ\x90\x00".to_vec())), "executable"),
        (named(file("x.pdf", "application/pdf", b"%PDF-1.7\nthis is not a pdf".to_vec())), "corrupt PDF"),
        (named(file("x.docx", "application/octet-stream", b"PK\x03\x04 truncated".to_vec())), "corrupt DOCX"),
        (named(file("x.zip", "application/zip", zip_of(&[("readme.txt", "hi")]))), "a ZIP that is no document"),
        (named(file("x.txt", "text/plain", b"\xff\xfe\x00bad utf-8".to_vec())), "not UTF-8"),
        (named(file("x.txt", "text/plain", Vec::new())), "empty"),
    ];
    for (payload, case) in unsupported {
        let json = expect_error(upload(&server, &admin, payload).await, 422, "UNSUPPORTED_FORMAT").await;
        assert!(json["error"]["message"].as_str().unwrap().len() > 10, "{case}: {json}");
    }

    let invalid: Vec<(Vec<u8>, &str, &str)> = vec![
        (form(&[text("title", "T"), text("document_type", "manual"), file("a.txt", "text/plain", b"x".to_vec())]), "document_type", "enum"),
        (form(&[text("document_type", "runbook"), file("a.txt", "text/plain", b"x".to_vec())]), "title", "missing"),
        (form(&[text("title", "T"), text("document_type", "runbook")]), "file", "missing"),
        (form(&[text("title", " "), text("document_type", "runbook"), file("a.txt", "text/plain", b"x".to_vec())]), "title", "string_length"),
        (form(&[text("title", "T"), text("document_type", "runbook"), text("tags", "[1,2]"), file("a.txt", "text/plain", b"x".to_vec())]), "tags", "list_type"),
        (form(&[text("title", "T"), text("document_type", "runbook"), text("targeting_rules", "[]"), file("a.txt", "text/plain", b"x".to_vec())]), "targeting_rules", "dict_type"),
        (
            form(&[text("title", "T"), text("document_type", "runbook"), text("targeting_rules", r#"{"match_any": [{"field": "nope", "op": "eq", "value": 1}]}"#), file("a.txt", "text/plain", b"x".to_vec())]),
            "targeting_rules",
            "",
        ),
        (form(&[text("title", "T"), text("document_type", "runbook"), text("version", "7"), file("a.txt", "text/plain", b"x".to_vec())]), "version", "extra_forbidden"),
        (form(&[text("title", "T"), text("title", "U"), text("document_type", "runbook"), file("a.txt", "text/plain", b"x".to_vec())]), "title", "duplicate"),
        (form(&[text("title", "T\0"), text("document_type", "runbook"), file("a.txt", "text/plain", b"x".to_vec())]), "title", "string_type"),
    ];
    for (payload, field, kind) in invalid {
        let json = expect_error(upload(&server, &admin, payload).await, 422, "VALIDATION_ERROR").await;
        let errors = json["error"]["details"]["errors"].as_array().unwrap();
        assert!(
            errors.iter().any(|e| e["loc"][1] == field && (kind.is_empty() || e["type"] == kind)),
            "{field} {kind}: {json}"
        );
    }
    let json = expect_error(
        upload(&server, &admin, form(&[text("title", "T"), text("document_type", "manual"), file("a.txt", "text/plain", b"x".to_vec())])).await,
        422,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(json["error"]["details"]["errors"][0]["msg"].as_str().unwrap().starts_with("document_type must be one of: ["), "{json}");

    // Malformed multipart: no boundary, a body that never closes, junk.
    let no_boundary =
        server.request(Method::POST, ROUTE, Some(&admin)).header("content-type", "multipart/form-data").body("x").send().await.unwrap();
    expect_error(no_boundary, 400, "INVALID_MULTIPART").await;
    let mut unterminated = form(&[text("title", "T")]);
    unterminated.truncate(unterminated.len() - 10);
    expect_error(upload(&server, &admin, unterminated).await, 400, "INVALID_MULTIPART").await;

    // The JSON create's limit holds for uploads, and for what an upload inflates to.
    let big = named(file("big.txt", "text/plain", vec![b'a'; 1_200_000]));
    expect_error(upload(&server, &admin, big).await, 413, "PAYLOAD_TOO_LARGE").await;
    let paragraph = "a".repeat(100_000);
    let bomb = docx(&vec![paragraph.as_str(); 30]);
    assert!(bomb.len() < 100_000, "3 MB of text compresses to {} bytes", bomb.len());
    expect_error(upload(&server, &admin, named(file("bomb.docx", "application/octet-stream", bomb))).await, 413, "PAYLOAD_TOO_LARGE").await;

    // The scope is checked before the form is read.
    let reader = server.create_key(&["alerts:read"], json!({})).await.0;
    expect_error(upload(&server, &reader, b"not even multipart".to_vec()).await, 403, "FORBIDDEN").await;

    assert_eq!(document_count(&server).await, 0, "no refused upload stored anything");
    assert_eq!(server.db_count("SELECT COUNT(*) FROM audit_log WHERE action = 'context_documents.create'").await, 0);
    server.stop().await;
}
dual!(bad_uploads_are_refused);
