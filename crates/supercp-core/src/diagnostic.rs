//! Where a value came from (`Span`, `Loc<T>`) and what is wrong with it (`Diagnostic`).
//!
//! `Loc<T>` is the located value the loader fills in: it deserializes through serde-saphyr's
//! `Spanned<T>` and carries the 1-based line and column of the YAML node. Because the loader
//! parses one YAML document at a time, the document's first line within its file is added from a
//! thread-local offset set by the loader (`with_line_offset`).

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A position in a repo file: `file:line:col`, 1-based. `line == 0` means unknown.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

/// A value with the line and column it was written at (the file is known from its resource).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Loc<T> {
    pub value: T,
    pub line: u32,
    pub col: u32,
}

/// One problem found in user input, with where it is and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Span,
    /// `Kind/name` of the resource, when known.
    pub resource: Option<String>,
    /// Dotted path of the field, e.g. `spec.aliases[1]`, when known.
    pub field: Option<String>,
    pub message: String,
    pub help: String,
}

thread_local! {
    static LINE_OFFSET: Cell<u32> = const { Cell::new(0) };
}

impl Span {
    pub fn new(file: Arc<str>, line: u32, col: u32) -> Span {
        Span { file, line, col }
    }

    /// The span of a located value inside this span's file.
    pub fn at<T>(&self, loc: &Loc<T>) -> Span {
        Span {
            file: self.file.clone(),
            line: loc.line,
            col: loc.col,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

impl<T> Loc<T> {
    pub fn new(value: T, line: u32, col: u32) -> Loc<T> {
        Loc { value, line, col }
    }

    /// A value made in code rather than read from a file (line 0: unknown).
    pub fn synthetic(value: T) -> Loc<T> {
        Loc {
            value,
            line: 0,
            col: 0,
        }
    }
}

impl<T: fmt::Display> fmt::Display for Loc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

/// Runs `f` with located values shifted down by `offset` lines (the loader parses one YAML
/// document at a time; this maps document lines back to file lines).
pub fn with_line_offset<R>(offset: u32, f: impl FnOnce() -> R) -> R {
    let previous = LINE_OFFSET.with(|c| c.replace(offset));
    let result = f();
    LINE_OFFSET.with(|c| c.set(previous));
    result
}

/// The current line offset (see `with_line_offset`).
pub fn line_offset() -> u32 {
    LINE_OFFSET.with(Cell::get)
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Loc<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        let line = u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX);
        let col = u32::try_from(spanned.referenced.column()).unwrap_or(u32::MAX);
        let line = if line == 0 {
            0
        } else {
            line.saturating_add(line_offset())
        };
        Ok(Loc {
            value: spanned.value,
            line,
            col,
        })
    }
}

impl<T: Serialize> Serialize for Loc<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Loc<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>, help: impl Into<String>) -> Diagnostic {
        Diagnostic {
            span,
            resource: None,
            field: None,
            message: message.into(),
            help: help.into(),
        }
    }

    pub fn resource(mut self, resource: impl Into<String>) -> Diagnostic {
        self.resource = Some(resource.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Diagnostic {
        self.field = Some(field.into());
        self
    }
}

/// `file:line:col: error: [Kind/name] field: message` then an indented `help:` line.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: ", self.span)?;
        if let Some(resource) = &self.resource {
            write!(f, "{resource}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}\n  help: {}", self.message, self.help)
    }
}

/// Sorts diagnostics by file, line and column, the order an operator fixes them in.
pub fn sort_diagnostics(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| a.span.cmp(&b.span).then_with(|| a.message.cmp(&b.message)));
}
