//! Uploaded files to document text (api.md §8: PDF, DOCX, PPTX, HTML, plain text, Markdown).
//! The format is recognised from the bytes first (PDF and ZIP signatures, the ZIP's own part
//! names), then from the file name and declared type; anything else is refused. Every format's
//! output is bounded by `limit` bytes *while* it is produced: a small DOCX can inflate to
//! gigabytes of XML, so nothing is ever fully decompressed before its size is known.
//!
//! Blocking and CPU-bound: call it from `spawn_blocking`.

use std::io::{Cursor, Read};

use quick_xml::XmlVersion;
use quick_xml::events::Event;

/// The text of a file and the format it was read as.
#[derive(Debug)]
pub struct Converted {
    pub text: String,
    pub format: &'static str,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConvertError {
    #[error("Unsupported file format. Upload PDF, DOCX, PPTX, HTML, plain text or Markdown.")]
    Unsupported,
    #[error("The file could not be read as {0}: {1}")]
    Unreadable(&'static str, String),
    #[error("The file contains no text.")]
    Empty,
    #[error("The converted text exceeds the size limit.")]
    TooLarge,
}

type Outcome<T> = Result<T, ConvertError>;

/// Converts `bytes` (named `file_name`, declared as `content_type`) to text of at most `limit`
/// bytes.
pub fn to_text(file_name: Option<&str>, content_type: Option<&str>, bytes: &[u8], limit: usize) -> Outcome<Converted> {
    let extension = file_name.and_then(|n| n.rsplit_once('.')).map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
    let mime = content_type.unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let (format, text) = if bytes.starts_with(b"%PDF-") {
        ("pdf", pdf(bytes)?)
    } else if bytes.starts_with(b"PK\x03\x04") {
        office(bytes, limit)?
    } else if matches!(extension.as_str(), "html" | "htm" | "xhtml") || matches!(mime.as_str(), "text/html" | "application/xhtml+xml") {
        ("html", html(bytes, limit)?)
    } else if matches!(extension.as_str(), "md" | "markdown") || mime == "text/markdown" {
        ("markdown", utf8(bytes)?)
    } else if matches!(extension.as_str(), "txt" | "text" | "log" | "") && (mime.is_empty() || mime.starts_with("text/") || mime == "application/octet-stream")
        || mime == "text/plain"
    {
        ("text", utf8(bytes)?)
    } else {
        return Err(ConvertError::Unsupported);
    };
    // PostgreSQL text cannot hold NUL, and no document means one.
    let text = text.replace('\0', "");
    if text.trim().is_empty() {
        return Err(ConvertError::Empty);
    }
    if text.len() > limit {
        return Err(ConvertError::TooLarge);
    }
    Ok(Converted { text, format })
}

fn utf8(bytes: &[u8]) -> Outcome<String> {
    let text = std::str::from_utf8(bytes).map_err(|e| ConvertError::Unreadable("UTF-8 text", e.to_string()))?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text).to_owned())
}

fn html(bytes: &[u8], limit: usize) -> Outcome<String> {
    // Wide enough that paragraphs are not re-wrapped; links and emphasis keep their markers.
    let text = html2text::from_read(bytes, 10_000).map_err(|e| ConvertError::Unreadable("HTML", e.to_string()))?;
    if text.len() > limit { Err(ConvertError::TooLarge) } else { Ok(text) }
}

fn pdf(bytes: &[u8]) -> Outcome<String> {
    // The PDF parser panics on some malformed files instead of returning an error: a bad upload
    // must be a 422, not a dead worker thread.
    let owned = bytes.to_vec();
    let outcome = std::panic::catch_unwind(move || pdf_extract::extract_text_from_mem(&owned));
    match outcome {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(ConvertError::Unreadable("PDF", e.to_string())),
        Err(_) => Err(ConvertError::Unreadable("PDF", "malformed document".into())),
    }
}

/// DOCX and PPTX are ZIP archives of XML parts; any other ZIP is not a document.
fn office(bytes: &[u8], limit: usize) -> Outcome<(&'static str, String)> {
    let unreadable = |e: zip::result::ZipError| ConvertError::Unreadable("an Office document", e.to_string());
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(unreadable)?;
    if archive.index_for_name("word/document.xml").is_some() {
        let xml = read_part(&mut archive, "word/document.xml", limit)?;
        return Ok(("docx", word_text(&xml, limit)?));
    }
    let mut slides: Vec<(u32, String)> = archive
        .file_names()
        .filter_map(|name| {
            let name = name.ok()?;
            let number = name.strip_prefix("ppt/slides/slide")?.strip_suffix(".xml")?.parse().ok()?;
            Some((number, name.into_owned()))
        })
        .collect();
    if slides.is_empty() {
        return Err(ConvertError::Unsupported);
    }
    slides.sort();
    let mut out = String::new();
    for (number, name) in slides {
        let xml = read_part(&mut archive, &name, limit)?;
        out.push_str(&format!("## Slide {number}\n\n"));
        out.push_str(&slide_text(&xml, limit)?);
        out.push('\n');
        if out.len() > limit {
            return Err(ConvertError::TooLarge);
        }
    }
    Ok(("pptx", out))
}

/// One part of the archive, inflated to at most `limit` bytes (XML markup counts against the
/// limit too: a part that inflates past it is refused without being held whole).
fn read_part<R: Read + std::io::Seek>(archive: &mut zip::ZipArchive<R>, name: &str, limit: usize) -> Outcome<Vec<u8>> {
    let part = archive.by_name(name).map_err(|e| ConvertError::Unreadable("an Office document", e.to_string()))?;
    let mut out = Vec::new();
    // Markup is several times the size of the text it wraps; allow for it, bounded.
    let budget = limit.saturating_mul(8);
    part.take(budget as u64 + 1).read_to_end(&mut out).map_err(|e| ConvertError::Unreadable("an Office document", e.to_string()))?;
    if out.len() > budget {
        return Err(ConvertError::TooLarge);
    }
    Ok(out)
}

/// WordprocessingML: `w:t` runs, `w:tab`, `w:br`; a paragraph per `w:p`, headings (`HeadingN`
/// styles) as Markdown `#` lines.
fn word_text(xml: &[u8], limit: usize) -> Outcome<String> {
    let xml = std::str::from_utf8(xml).map_err(|e| ConvertError::Unreadable("DOCX", e.to_string()))?;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = String::new();
    let mut paragraph = String::new();
    let mut heading: Option<usize> = None;
    let mut in_text = false;
    loop {
        let event = reader.read_event().map_err(|e| ConvertError::Unreadable("DOCX", e.to_string()))?;
        match event {
            Event::Start(e) if e.local_name().as_ref() == "t" => in_text = true,
            Event::End(e) if e.local_name().as_ref() == "t" => in_text = false,
            Event::Empty(e) | Event::Start(e) if e.local_name().as_ref() == "pStyle" => {
                heading = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.local_name().as_ref() == "val")
                    .and_then(|a| a.value.strip_prefix("Heading").and_then(|n| n.parse().ok()));
            }
            Event::Empty(e) if e.local_name().as_ref() == "tab" => paragraph.push('\t'),
            Event::Empty(e) if e.local_name().as_ref() == "br" => paragraph.push('\n'),
            Event::Text(t) if in_text => paragraph.push_str(&t.xml_content(XmlVersion::Implicit1_0)),
            Event::GeneralRef(r) if in_text => paragraph.push_str(&reference(&r)),
            Event::End(e) if e.local_name().as_ref() == "p" => {
                if let Some(level) = heading.take().filter(|_| !paragraph.trim().is_empty()) {
                    out.push_str(&"#".repeat(level.clamp(1, 6)));
                    out.push(' ');
                }
                out.push_str(paragraph.trim_end());
                out.push_str("\n\n");
                paragraph.clear();
                if out.len() > limit {
                    return Err(ConvertError::TooLarge);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// DrawingML text of one slide: `a:t` runs, a line per `a:p`.
fn slide_text(xml: &[u8], limit: usize) -> Outcome<String> {
    let xml = std::str::from_utf8(xml).map_err(|e| ConvertError::Unreadable("PPTX", e.to_string()))?;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = String::new();
    let mut line = String::new();
    let mut in_text = false;
    loop {
        let event = reader.read_event().map_err(|e| ConvertError::Unreadable("PPTX", e.to_string()))?;
        match event {
            Event::Start(e) if e.local_name().as_ref() == "t" => in_text = true,
            Event::End(e) if e.local_name().as_ref() == "t" => in_text = false,
            Event::Text(t) if in_text => line.push_str(&t.xml_content(XmlVersion::Implicit1_0)),
            Event::GeneralRef(r) if in_text => line.push_str(&reference(&r)),
            Event::End(e) if e.local_name().as_ref() == "p" => {
                if !line.trim().is_empty() {
                    out.push_str(line.trim_end());
                    out.push('\n');
                }
                line.clear();
                if out.len() > limit {
                    return Err(ConvertError::TooLarge);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// The text of an entity or character reference (`&apos;`, `&#233;`, `&#xE9;`); unknown
/// entities (DTD-defined) are dropped.
fn reference(r: &quick_xml::events::BytesRef<'_>) -> String {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return c.to_string();
    }
    quick_xml::escape::resolve_xml_entity(&r.clone().into_inner()).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1024 * 1024;

    fn zip_of(parts: &[(&str, &str)]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, body) in parts {
            writer.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut writer, body.as_bytes()).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn docx_paragraphs_headings_and_entities() {
        let xml = r#"<w:document xmlns:w="x"><w:body>
            <w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Phishing</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">Reset the </w:t></w:r><w:r><w:t>user&apos;s password&#233;</w:t></w:r></w:p>
        </w:body></w:document>"#;
        let docx = zip_of(&[("[Content_Types].xml", "<Types/>"), ("word/document.xml", xml)]);
        let out = to_text(Some("runbook.docx"), None, &docx, LIMIT).unwrap();
        assert_eq!(out.format, "docx");
        assert_eq!(out.text, "# Phishing\n\nReset the user's passwordé\n\n");
    }

    #[test]
    fn pptx_slides_in_number_order() {
        let slide = |t: &str| format!(r#"<p:sld xmlns:a="a" xmlns:p="p"><a:p><a:r><a:t>{t}</a:t></a:r></a:p></p:sld>"#);
        let pptx = zip_of(&[("ppt/slides/slide10.xml", &slide("ten")), ("ppt/slides/slide2.xml", &slide("two"))]);
        let out = to_text(Some("deck.pptx"), None, &pptx, LIMIT).unwrap();
        assert_eq!(out.text, "## Slide 2\n\ntwo\n\n## Slide 10\n\nten\n\n");
    }

    #[test]
    fn html_text_and_markdown() {
        let out = to_text(Some("a.html"), None, b"<html><body><h1>Title</h1><p>Body <b>bold</b></p><script>x()</script></body></html>", LIMIT).unwrap();
        assert_eq!(out.format, "html");
        assert!(out.text.contains("Title") && out.text.contains("bold") && !out.text.contains("x()"), "{}", out.text);
        assert_eq!(to_text(Some("a.md"), None, "\u{feff}# Hi".as_bytes(), LIMIT).unwrap().text, "# Hi");
        assert_eq!(to_text(None, Some("text/plain; charset=utf-8"), b"plain", LIMIT).unwrap().format, "text");
    }

    /// A one-page PDF showing `text` in Helvetica, with a correct cross-reference table.
    pub fn pdf_with(text: &str) -> Vec<u8> {
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
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
        for offset in offsets {
            out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
        out
    }

    #[test]
    fn pdf_text() {
        let out = to_text(Some("plan.pdf"), Some("application/pdf"), &pdf_with("Isolate the host"), LIMIT).unwrap();
        assert_eq!(out.format, "pdf");
        assert!(out.text.contains("Isolate the host"), "{:?}", out.text);
    }

    #[test]
    fn refusals() {
        assert_eq!(to_text(Some("a.exe"), None, b"MZ\x90\x00", LIMIT).unwrap_err(), ConvertError::Unsupported);
        assert_eq!(to_text(Some("a.png"), Some("image/png"), b"\x89PNG", LIMIT).unwrap_err(), ConvertError::Unsupported);
        assert!(matches!(to_text(Some("a.txt"), None, b"\xff\xfe", LIMIT).unwrap_err(), ConvertError::Unreadable(..)));
        assert_eq!(to_text(Some("a.txt"), None, b"  \n", LIMIT).unwrap_err(), ConvertError::Empty);
        assert_eq!(to_text(Some("a.txt"), None, b"0123456789", 5).unwrap_err(), ConvertError::TooLarge);
        let other_zip = zip_of(&[("hello.txt", "hi")]);
        assert_eq!(to_text(Some("a.docx"), None, &other_zip, LIMIT).unwrap_err(), ConvertError::Unsupported);
        assert!(matches!(to_text(Some("a.pdf"), None, b"%PDF-1.4 garbage", LIMIT).unwrap_err(), ConvertError::Unreadable("PDF", _)));
        assert!(matches!(to_text(Some("a.docx"), None, b"PK\x03\x04broken", LIMIT).unwrap_err(), ConvertError::Unreadable(..)));
    }

    #[test]
    fn an_inflating_archive_is_refused_without_being_held() {
        let huge = format!("<w:document xmlns:w=\"x\"><w:body><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:body></w:document>", "a".repeat(200_000));
        let docx = zip_of(&[("word/document.xml", &huge)]);
        assert!(docx.len() < 10_000, "compresses well");
        assert_eq!(to_text(Some("bomb.docx"), None, &docx, 10_000).unwrap_err(), ConvertError::TooLarge);
    }
}
