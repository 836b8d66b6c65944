//! YAML text → typed documents, one document at a time so that one broken document does not
//! hide the errors of the others.

use std::sync::Arc;

use serde::de::IgnoredAny;
use serde::Deserialize;
use supercp_core::diagnostic::with_line_offset;
use supercp_core::resource::{
    Document, DomainSpec, NodeSpec, PackageSpec, TenantSpec, ZoneSpec, API_VERSION, KINDS,
};
use supercp_core::{Diagnostic, Span};

use crate::outline::{join, Outline, Pos, Role};

/// A parsed document of a known kind.
#[derive(Clone, Debug)]
pub enum ParsedDoc {
    /// Boxed: a node document is many times larger than the others.
    Node(Arc<str>, Box<Document<NodeSpec>>),
    Package(Arc<str>, Document<PackageSpec>),
    Tenant(Arc<str>, Document<TenantSpec>),
    Domain(Arc<str>, Document<DomainSpec>),
    Zone(Arc<str>, Document<ZoneSpec>),
}

/// The documents of one file that parsed, and the problems of those that did not.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub docs: Vec<ParsedDoc>,
    pub diagnostics: Vec<Diagnostic>,
    /// `(kind, metadata.name)` of the documents that did not parse but named themselves: a
    /// reference to one of them is not reported again as missing.
    pub declared: Vec<(String, String)>,
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
            Err(failed) => {
                parsed.diagnostics.push(failed.diagnostic);
                parsed.declared.extend(failed.declared);
            }
        }
    }
    parsed
}

/// A document that did not parse: why, and what it declared if it got that far.
struct Failed {
    diagnostic: Diagnostic,
    declared: Option<(String, String)>,
}

fn parse_document(file: &Arc<str>, offset: u32, chunk: &str) -> Result<ParsedDoc, Box<Failed>> {
    if let Some(doc) = parse_known_kind(file, offset, chunk) {
        return Ok(doc);
    }
    // Read lazily: most documents parse and never need their outline.
    let outline = std::cell::OnceCell::new();
    let outline = || outline.get_or_init(|| Outline::read(chunk));
    let fail = |diagnostic: Diagnostic| {
        let o = outline();
        let declared = o.scalar("kind").zip(o.scalar("metadata.name"));
        Box::new(Failed {
            diagnostic,
            declared: declared.map(|(k, n)| (k.to_owned(), n.to_owned())),
        })
    };
    let wrap = |e: serde_saphyr::Error| fail(yaml_error(file, offset, chunk, outline(), &e));
    let header: Document<IgnoredAny> = deserialize(chunk, offset).map_err(wrap)?;
    let at = |line, col| Span::new(file.clone(), line, col);
    let resource = format!("{}/{}", header.kind.value, header.metadata.name.value);
    if header.api_version.value != API_VERSION {
        return Err(fail(
            Diagnostic::new(
                at(header.api_version.line, header.api_version.col),
                format!("unknown apiVersion {:?}", header.api_version.value),
                format!("write `apiVersion: {API_VERSION}`"),
            )
            .resource(resource)
            .field("apiVersion"),
        ));
    }
    let file = file.clone();
    let other = header.kind.value.as_str();
    Ok(match parse_as(other, &file, chunk, offset) {
        Some(parsed) => parsed.map_err(wrap)?,
        None => {
            let known = KINDS
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let help = match closest(other, KINDS) {
                Some(k) => format!("did you mean `{k}`? the kinds of {API_VERSION} are {known}"),
                None => format!("use one of the kinds of {API_VERSION}: {known}"),
            };
            return Err(fail(
                Diagnostic::new(
                    at(header.kind.line, header.kind.col),
                    format!("unknown kind {other:?}"),
                    help,
                )
                .resource(resource)
                .field("kind"),
            ));
        }
    })
}

/// The fast path for the common case: a document whose `kind:` line names a known kind and
/// that parses as that kind, in one pass. Anything else (including every error) goes through
/// the full path, which parses the envelope first to report the precise problem.
fn parse_known_kind(file: &Arc<str>, offset: u32, chunk: &str) -> Option<ParsedDoc> {
    let kind = chunk
        .lines()
        .find_map(|l| l.strip_prefix("kind:"))
        .map(str::trim)?;
    let doc = parse_as(kind, file, chunk, offset)?.ok()?;
    let (api_version, written_kind) = doc.envelope();
    (api_version == API_VERSION && written_kind == kind).then_some(doc)
}

/// Parses `chunk` as a document of `kind`: the one dispatch from kind names to spec types.
/// `None` for a kind this version does not know.
fn parse_as(
    kind: &str,
    file: &Arc<str>,
    chunk: &str,
    offset: u32,
) -> Option<Result<ParsedDoc, serde_saphyr::Error>> {
    let file = file.clone();
    Some(match kind {
        "Node" => deserialize(chunk, offset).map(|d| ParsedDoc::Node(file, Box::new(d))),
        "Package" => deserialize(chunk, offset).map(|d| ParsedDoc::Package(file, d)),
        "Tenant" => deserialize(chunk, offset).map(|d| ParsedDoc::Tenant(file, d)),
        "Domain" => deserialize(chunk, offset).map(|d| ParsedDoc::Domain(file, d)),
        "Zone" => deserialize(chunk, offset).map(|d| ParsedDoc::Zone(file, d)),
        _ => return None,
    })
}

impl ParsedDoc {
    /// `apiVersion` and `kind` as written.
    fn envelope(&self) -> (&str, &str) {
        let (a, k) = match self {
            ParsedDoc::Node(_, d) => (&d.api_version, &d.kind),
            ParsedDoc::Package(_, d) => (&d.api_version, &d.kind),
            ParsedDoc::Tenant(_, d) => (&d.api_version, &d.kind),
            ParsedDoc::Domain(_, d) => (&d.api_version, &d.kind),
            ParsedDoc::Zone(_, d) => (&d.api_version, &d.kind),
        };
        (&a.value, &k.value)
    }
}

/// The most YAML nodes (scalars, mappings, lists) one document may hold: one resource never
/// needs near this many, and the reader's default (250,000) costs seconds per document to
/// reach. The YAML reader's other limits are its defaults.
pub const MAX_DOCUMENT_NODES: usize = 50_000;

fn budget() -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = MAX_DOCUMENT_NODES;
    budget
}

fn deserialize<T: for<'de> Deserialize<'de>>(
    chunk: &str,
    offset: u32,
) -> Result<T, serde_saphyr::Error> {
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget());
    with_line_offset(offset, || {
        serde_saphyr::from_str_with_options(chunk, options)
    })
}

/// Turns a YAML or type error into a diagnostic at its file line and column, naming the
/// resource and the dotted path of the field (read back from the document's outline).
fn yaml_error(
    file: &Arc<str>,
    offset: u32,
    chunk: &str,
    outline: &Outline,
    error: &serde_saphyr::Error,
) -> Diagnostic {
    let error = error.without_snippet();
    let pos: Pos = error
        .location()
        .map(|l| {
            (
                u32::try_from(l.line()).unwrap_or(u32::MAX),
                u32::try_from(l.column()).unwrap_or(u32::MAX),
            )
        })
        .map_or((1, 1), |(line, col)| (line.max(1), col.max(1)));
    let explained = explain(error, pos, outline, chunk);
    let (line, col) = explained.pos;
    let mut d = Diagnostic::new(
        Span::new(file.clone(), line.saturating_add(offset), col),
        explained.message,
        explained.help,
    );
    if let Some(resource) = outline.resource() {
        d = d.resource(resource);
    }
    if let Some(field) = explained.field.filter(|f| !f.is_empty()) {
        d = d.field(field);
    }
    d
}

/// A serde-saphyr error said in the words of a resource file.
struct Explained {
    pos: Pos,
    field: Option<String>,
    message: String,
    help: String,
}

fn explain(error: &serde_saphyr::Error, pos: Pos, outline: &Outline, chunk: &str) -> Explained {
    use serde_saphyr::Error as E;
    let key_path = || outline.at(pos, Role::Key).map(|n| n.path.clone());
    let value = outline.at(pos, Role::Value);
    let value_path = || value.map(|n| n.path.clone());
    let found = || value.map_or_else(String::new, |n| format!(", found {}", n.describe()));
    let typed = |expected: &str| Explained {
        pos,
        field: value_path(),
        message: format!("expected {expected}{}", found()),
        help: help_for_type(expected),
    };
    match error {
        E::SerdeMissingField { field, .. } => {
            // serde-saphyr reports the last key it read in the mapping that lacks the field.
            let mapping = outline.mapping_around(pos);
            let parent = mapping.map_or("", |m| m.path.as_str());
            let where_ = if parent.is_empty() {
                "at the top level of the document".to_owned()
            } else {
                format!("under `{parent}`")
            };
            Explained {
                pos: mapping.map_or(pos, |m| m.key.unwrap_or(m.start)),
                field: Some(join(parent, field)),
                message: "required field is missing".into(),
                help: format!(
                    "add `{field}:` {where_} (schemas/ lists the required fields of each kind)"
                ),
            }
        }
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            let known = expected
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let help = match closest(field, expected) {
                Some(f) => format!("did you mean `{f}`? the fields here are {known}"),
                None => format!("remove the field or use one of {known} (fields are camelCase)"),
            };
            Explained {
                pos,
                field: key_path(),
                message: format!("unknown field `{field}`"),
                help,
            }
        }
        E::DuplicateMappingKey { key, .. } => Explained {
            pos,
            field: key_path(),
            message: match key {
                Some(k) => format!("key `{k}` is written twice in this mapping"),
                None => "a key is written twice in this mapping".into(),
            },
            help: "keep only one of the two entries".into(),
        },
        E::SerdeUnknownVariant {
            variant, expected, ..
        } => Explained {
            pos,
            field: value_path(),
            message: format!("unknown value `{variant}`"),
            help: format!("use one of: {}", expected.join(", ")),
        },
        E::InvalidScalar { ty, .. } => typed(&expected_scalar(ty)),
        E::InvalidBooleanStrict { .. } => typed("true or false"),
        E::NullIntoString { .. } => typed("a string"),
        E::Unexpected { expected, .. } => typed(match *expected {
            "sequence start" => "a list",
            "mapping start" => "a mapping of `key: value` lines",
            "string scalar" => "a string",
            other => other,
        }),
        E::SerdeInvalidType { expected, .. } | E::SerdeInvalidValue { expected, .. } => {
            typed(expected)
        }
        E::SerdeInvalidLength { expected, .. } => typed(expected),
        E::Budget { breach, .. } => Explained {
            pos,
            field: None,
            message: format!("the document is too large: {}", budget_breach(breach)),
            help: "split the resources into several smaller files (one per tenant, say)".into(),
        },
        _ => syntax_error(bare_message(error), pos, outline, chunk),
    }
}

/// What limit of the YAML reader (per document) was crossed, with the limit.
fn budget_breach(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let limit = budget();
    match breach {
        B::Nodes { nodes } => format!("{nodes} YAML nodes, limit {}", limit.max_nodes),
        B::Events { events } => format!("{events} YAML events, limit {}", limit.max_events),
        B::ScalarBytes { total_scalar_bytes } => format!(
            "{total_scalar_bytes} bytes of values, limit {}",
            limit.max_total_scalar_bytes
        ),
        B::Depth { depth } => format!("nested {depth} deep, limit {}", limit.max_depth),
        B::Aliases { aliases } => format!("{aliases} aliases, limit {}", limit.max_aliases),
        B::Anchors { anchors } => format!("{anchors} anchors, limit {}", limit.max_anchors),
        other => format!("a limit of the YAML reader was crossed ({other:?})"),
    }
}

/// Where `path` (a key or its value) is written in the document of `text` that holds file line
/// `line`, as a file `(line, col)`.
pub fn locate(text: &str, line: u32, path: &str, role: Role) -> Option<Pos> {
    let (offset, chunk) = split_documents(text)
        .into_iter()
        .take_while(|(offset, _)| *offset < line)
        .last()?;
    let outline = Outline::read(chunk);
    let node = outline
        .nodes
        .iter()
        .find(|n| n.path == path && n.role == role)?;
    Some((node.pos.0.saturating_add(offset), node.pos.1))
}

/// A YAML syntax error, with help for the usual mistakes.
fn syntax_error(message: String, pos: Pos, outline: &Outline, chunk: &str) -> Explained {
    // The scanner reports a tab where the scalar before it ends; point at the tab itself.
    if message.contains("tab") {
        if let Some(tab) = tab_indent_after(chunk, pos) {
            return Explained {
                pos: tab,
                field: outline.before(tab).map(|n| n.path.clone()),
                message: "a tab is used for indentation".into(),
                help: "indent with spaces: YAML does not allow tabs there".into(),
            };
        }
    }
    let help = if message.contains("mapping values are not allowed") {
        "check the indentation: a `key:` must line up with the keys beside it, and a value containing ': ' must be quoted"
    } else if message.contains("quote") {
        "close the quote on the same value, or remove it"
    } else if message.contains("bracket") || message.contains("flow") {
        "close every `[` with `]` and every `{` with `}`, in the order they were opened"
    } else {
        "fix the YAML syntax at this position (indent with spaces, close every quote and bracket)"
    };
    Explained {
        pos,
        field: outline.before(pos).map(|n| n.path.clone()),
        message,
        help: help.into(),
    }
}

/// The first tab in the indentation of a line at or after `pos`, if any.
fn tab_indent_after(chunk: &str, pos: Pos) -> Option<Pos> {
    chunk
        .lines()
        .enumerate()
        .skip(pos.0.saturating_sub(1) as usize)
        .find_map(|(i, line)| {
            let indent = &line[..line.len() - line.trim_start().len()];
            let col = indent.find('\t')?;
            Some((u32::try_from(i + 1).ok()?, u32::try_from(col + 1).ok()?))
        })
}

/// How to write a value of the expected type.
fn help_for_type(expected: &str) -> String {
    if expected.starts_with("a whole number") {
        "write a number without quotes, units or sign, e.g. `8`".into()
    } else if expected == "true or false" {
        "write `true` or `false`".into()
    } else if expected == "a list" {
        "write a list, `[a, b]` or one `- item` line per entry, even for a single entry".into()
    } else if expected.starts_with("a mapping") {
        "write `key: value` lines indented below the key, or `{key: value}`".into()
    } else if expected == "a string" {
        "write a text value; quote it (\"…\") if YAML would read it as something else".into()
    } else {
        "give the field a value of the type schemas/ lists for it".into()
    }
}

/// What a scalar type of a spec field accepts, in the words of the file.
fn expected_scalar(ty: &str) -> String {
    match ty {
        "u8" => "a whole number from 0 to 255".into(),
        "u16" => "a whole number from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" => "a whole number from 0 to 18446744073709551615".into(),
        "bool" | "boolean" => "true or false".into(),
        other => format!("a value of type {other}"),
    }
}

/// The first line of serde-saphyr's message, without its source snippet and location suffix.
fn bare_message(error: &serde_saphyr::Error) -> String {
    let rendered = error.to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid YAML");
    let first = first.trim().trim_start_matches("error: ");
    let first = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    // serde-saphyr prefixes "line N column M: " relative to the document; the span says it.
    match first
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((position, message)) if position.contains(" column ") => message.to_owned(),
        _ => first.to_owned(),
    }
}

/// The known word closest to a misspelt one, when it is close enough to be a typo.
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&word, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Splits a YAML stream at `---` lines, returning (line offset, text) of each document.
fn split_documents(text: &str) -> Vec<(u32, &str)> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 0u32;
    let mut pos = 0usize;
    for (line_no, line) in (0u32..).zip(text.split_inclusive('\n')) {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        if is_marker && pos > start {
            docs.push((start_line, &text[start..pos]));
            start = pos;
            start_line = line_no;
        }
        pos += line.len();
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
    fn misspelt_word_finds_its_closest_known_word() {
        assert_eq!(
            closest("maxChildrn", &["version", "maxChildren", "memoryLimit"]),
            Some("maxChildren")
        );
        assert_eq!(
            closest("Tennant", &["Node", "Package", "Tenant", "Domain"]),
            Some("Tenant")
        );
        assert_eq!(closest("annotations", &["name", "labels"]), None);
    }
}
