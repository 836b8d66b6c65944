//! YAML text → typed documents, one document at a time so that one broken document does not
//! hide the errors of the others.

use std::sync::Arc;

use serde::de::IgnoredAny;
use serde::Deserialize;
use supercp_core::diagnostic::with_line_offset;
use supercp_core::resource::{Document, DomainSpec, NodeSpec, PackageSpec, TenantSpec, API_VERSION, KINDS};
use supercp_core::{Diagnostic, Span};

/// A parsed document of a known kind.
#[derive(Clone, Debug)]
pub enum ParsedDoc {
    Node(Arc<str>, Document<NodeSpec>),
    Package(Arc<str>, Document<PackageSpec>),
    Tenant(Arc<str>, Document<TenantSpec>),
    Domain(Arc<str>, Document<DomainSpec>),
}

/// The documents of one file that parsed, and the problems of those that did not.
#[derive(Debug, Default)]
pub struct Parsed {
    pub docs: Vec<ParsedDoc>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses every YAML document of one file.
pub fn parse_file(file: &Arc<str>, text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (offset, chunk) in split_documents(text) {
        if is_blank(chunk) {
            continue;
        }
        match parse_document(file, offset, chunk) {
            Ok(doc) => parsed.docs.push(doc),
            Err(d) => parsed.diagnostics.push(d),
        }
    }
    parsed
}

fn parse_document(file: &Arc<str>, offset: u32, chunk: &str) -> Result<ParsedDoc, Diagnostic> {
    let header: Document<IgnoredAny> =
        deserialize(chunk, offset).map_err(|e| yaml_error(file, offset, chunk, &e, None))?;
    let at = |line, col| Span::new(file.clone(), line, col);
    if header.api_version.value != API_VERSION {
        return Err(Diagnostic::new(
            at(header.api_version.line, header.api_version.col),
            format!("unknown apiVersion {:?}", header.api_version.value),
            format!("write `apiVersion: {API_VERSION}`"),
        )
        .field("apiVersion"));
    }
    let resource = format!("{}/{}", header.kind.value, header.metadata.name.value);
    let kind = header.kind.value.as_str();
    let wrap = |e: serde_saphyr::Error| yaml_error(file, offset, chunk, &e, Some(&resource));
    let file = file.clone();
    Ok(match kind {
        "Node" => ParsedDoc::Node(file, deserialize(chunk, offset).map_err(wrap)?),
        "Package" => ParsedDoc::Package(file, deserialize(chunk, offset).map_err(wrap)?),
        "Tenant" => ParsedDoc::Tenant(file, deserialize(chunk, offset).map_err(wrap)?),
        "Domain" => ParsedDoc::Domain(file, deserialize(chunk, offset).map_err(wrap)?),
        other => {
            return Err(Diagnostic::new(
                at(header.kind.line, header.kind.col),
                format!("unknown kind {other:?}"),
                format!("use one of: {}", KINDS.join(", ")),
            )
            .field("kind"))
        }
    })
}

fn deserialize<T: for<'de> Deserialize<'de>>(chunk: &str, offset: u32) -> Result<T, serde_saphyr::Error> {
    with_line_offset(offset, || serde_saphyr::from_str(chunk))
}

/// Turns a YAML or type error into a diagnostic at its file line, naming the field (the key
/// written on that line) when there is one.
fn yaml_error(file: &Arc<str>, offset: u32, chunk: &str, error: &serde_saphyr::Error, resource: Option<&str>) -> Diagnostic {
    let (line, col) = error
        .location()
        .map(|l| (u32::try_from(l.line()).unwrap_or(0), u32::try_from(l.column()).unwrap_or(0)))
        .unwrap_or((0, 0));
    let line_text = chunk.lines().nth(line.saturating_sub(1) as usize).unwrap_or("");
    let message = bare_message(error);
    let help = help_for(&message);
    let mut d = Diagnostic::new(Span::new(file.clone(), line.max(1) + offset, col.max(1)), message, help);
    if let Some(resource) = resource {
        d = d.resource(resource);
    }
    if let Some(key) = key_on_line(line_text) {
        d = d.field(key);
    }
    d
}

/// The first line of serde-saphyr's message, without its source snippet and location suffix.
fn bare_message(error: &serde_saphyr::Error) -> String {
    let rendered = error.to_string();
    let first = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid YAML");
    let first = first.trim().trim_start_matches("error: ");
    let first = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    // serde-saphyr prefixes "line N column M: " relative to the document; the span says it.
    match first.strip_prefix("line ").and_then(|rest| rest.split_once(": ")) {
        Some((position, message)) if position.contains(" column ") => message.to_owned(),
        _ => first.to_owned(),
    }
}

fn help_for(message: &str) -> String {
    if message.contains("unknown field") {
        "remove the field or fix its spelling (fields are camelCase; see schemas/)".into()
    } else if message.contains("missing field") {
        "add the field; schemas/ lists the required fields of each kind".into()
    } else if message.starts_with("invalid") || message.contains("expected") {
        "give the field a value of the expected type (see schemas/)".into()
    } else {
        "fix the YAML syntax at this position".into()
    }
}

/// `  maxChildren: many` → `maxChildren`.
fn key_on_line(line: &str) -> Option<String> {
    let trimmed = line.trim_start().trim_start_matches("- ");
    let (key, _) = trimmed.split_once(':')?;
    let key = key.trim();
    let ok = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| key.to_owned())
}

/// Splits a YAML stream at `---` lines, returning (line offset, text) of each document.
fn split_documents(text: &str) -> Vec<(u32, &str)> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 0u32;
    let mut pos = 0usize;
    let mut line_no = 0u32;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        if is_marker && pos > start {
            docs.push((start_line, &text[start..pos]));
            start = pos;
            start_line = line_no;
        }
        pos += line.len();
        line_no += 1;
    }
    if start < text.len() {
        docs.push((start_line, &text[start..]));
    }
    docs
}

fn is_blank(chunk: &str) -> bool {
    chunk.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_at_marker_lines_with_their_line_offsets() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- \nc: 3\n");
        let offsets: Vec<u32> = docs.iter().map(|d| d.0).collect();
        assert_eq!(offsets, vec![0, 1, 3]);
    }

    #[test]
    fn key_is_read_from_the_line_of_an_error() {
        assert_eq!(key_on_line("  maxChildren: many"), Some("maxChildren".into()));
        assert_eq!(key_on_line("  - from: /x"), Some("from".into()));
        assert_eq!(key_on_line("just text"), None);
    }
}
