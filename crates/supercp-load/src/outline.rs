//! Where each key and value of one YAML document sits, and its dotted path (`spec.aliases[1]`).
//!
//! serde reports an error at a line and column only; the outline turns that position back into
//! the field the user wrote and the resource (`kind`, `metadata.name`) it belongs to. It is read
//! from the YAML event stream, so it also covers the part of a document before a syntax error.
//! Does not own: typing or validating values (that is serde's and `validate`'s job).

use serde_saphyr::granit_parser::{Event, Parser, Span as YamlSpan};

/// A 1-based `(line, column)` within the document.
pub type Pos = (u32, u32);

/// The keys, values and mappings of one document, in the order they were written.
#[derive(Debug, Default)]
pub struct Outline {
    pub nodes: Vec<Node>,
    pub mappings: Vec<Mapping>,
}

/// One key or value.
#[derive(Debug)]
pub struct Node {
    pub pos: Pos,
    pub path: String,
    pub role: Role,
    /// The text of a scalar, as loaded (escapes processed).
    pub scalar: Option<String>,
    pub shape: Shape,
}

/// What kind of YAML node a key or value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Scalar,
    Mapping,
    Sequence,
    Alias,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Key,
    Value,
}

/// One mapping: where it starts and ends and the key it is the value of, if any.
#[derive(Debug)]
pub struct Mapping {
    pub path: String,
    pub start: Pos,
    /// `None` when the document ends (or breaks) before the mapping does.
    pub end: Option<Pos>,
    pub key: Option<Pos>,
}

impl Node {
    /// How an error message names what was written here: `` `ten` ``, `a list` …
    pub fn describe(&self) -> String {
        match (self.shape, &self.scalar) {
            (Shape::Scalar, Some(text)) if text.is_empty() => "an empty value".into(),
            (Shape::Scalar, Some(text)) => {
                let short: String = text.chars().take(40).collect();
                let more = if short.len() < text.len() { "…" } else { "" };
                format!("{short:?}{more}")
            }
            (Shape::Scalar, None) => "a value".into(),
            (Shape::Mapping, _) => "a mapping".into(),
            (Shape::Sequence, _) => "a list".into(),
            (Shape::Alias, _) => "an alias".into(),
        }
    }
}

impl Outline {
    /// Reads the outline of `chunk` (one YAML document), stopping at the first syntax error.
    ///
    /// Reads at most `4 × MAX_DOCUMENT_NODES` events: a larger document is refused before
    /// the loader needs anything from its outline past that.
    pub fn read(chunk: &str) -> Outline {
        let mut walk = Walk::default();
        let most = 4 * crate::parse::MAX_DOCUMENT_NODES;
        for event in Parser::new_from_str(chunk).take(most) {
            let Ok((event, span)) = event else { break };
            if walk.documents > 1 {
                break;
            }
            walk.event(&event, &span);
        }
        walk.outline
    }

    /// The scalar value written at `path`, e.g. `kind` or `metadata.name`.
    pub fn scalar(&self, path: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.role == Role::Value && n.path == path)
            .and_then(|n| n.scalar.as_deref())
    }

    /// `Kind/name` when the document names both.
    pub fn resource(&self) -> Option<String> {
        Some(format!(
            "{}/{}",
            self.scalar("kind")?,
            self.scalar("metadata.name")?
        ))
    }

    /// The node written exactly at `pos` in `role`; of several (a block mapping starts at its
    /// first key), the outermost.
    pub fn at(&self, pos: Pos, role: Role) -> Option<&Node> {
        self.nodes.iter().find(|n| n.pos == pos && n.role == role)
    }

    /// The last node written at or before `pos` (for errors between nodes, such as syntax
    /// errors).
    pub fn before(&self, pos: Pos) -> Option<&Node> {
        self.nodes.iter().rev().find(|n| n.pos <= pos)
    }

    /// The innermost mapping that contains `pos`.
    pub fn mapping_around(&self, pos: Pos) -> Option<&Mapping> {
        self.mappings
            .iter()
            .filter(|m| m.start <= pos && m.end.is_none_or(|end| pos < end))
            .max_by_key(|m| m.start)
    }
}

/// Event-stream state: one frame per open mapping or sequence.
#[derive(Default)]
struct Walk {
    outline: Outline,
    frames: Vec<Frame>,
    documents: u32,
}

enum Frame {
    Map {
        path: String,
        mapping: usize,
        key: Option<(String, Pos)>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

impl Walk {
    fn event(&mut self, event: &Event<'_>, span: &YamlSpan) {
        let pos = position(span);
        match event {
            Event::DocumentStart(..) => self.documents += 1,
            Event::Scalar(text, ..) => {
                if let Some(path) = self.key_or_value(pos, Some(text), Shape::Scalar) {
                    self.value(pos, path, Some(text.to_string()), Shape::Scalar);
                }
            }
            Event::Alias(..) => {
                if let Some(path) = self.key_or_value(pos, None, Shape::Alias) {
                    self.value(pos, path, None, Shape::Alias);
                }
            }
            Event::SequenceStart(..) => {
                let path = self
                    .key_or_value(pos, None, Shape::Sequence)
                    .unwrap_or_else(|| "?".to_owned());
                self.value(pos, path.clone(), None, Shape::Sequence);
                self.frames.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingStart(..) => {
                let key = self.pending_key();
                let path = self
                    .key_or_value(pos, None, Shape::Mapping)
                    .unwrap_or_else(|| "?".to_owned());
                self.value(pos, path.clone(), None, Shape::Mapping);
                let mapping = self.outline.mappings.len();
                self.outline.mappings.push(Mapping {
                    path: path.clone(),
                    start: pos,
                    end: None,
                    key,
                });
                self.frames.push(Frame::Map {
                    path,
                    mapping,
                    key: None,
                });
            }
            Event::MappingEnd => {
                if let Some(Frame::Map { mapping, .. }) = self.frames.pop() {
                    if let Some(m) = self.outline.mappings.get_mut(mapping) {
                        m.end = Some(position_end(span));
                    }
                }
            }
            Event::SequenceEnd => {
                self.frames.pop();
            }
            _ => {}
        }
    }

    /// Classifies the next node: a key (recorded here, returns `None`) or a value at the
    /// returned path. A collection used as a key is given the path `…?`.
    fn key_or_value(&mut self, pos: Pos, text: Option<&str>, shape: Shape) -> Option<String> {
        match self.frames.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}[{index}]");
                *index += 1;
                Some(p)
            }
            Some(Frame::Map { path, key, .. }) => match key.take() {
                Some((k, _)) => Some(join(path, &k)),
                None => {
                    let k = text.unwrap_or("?").to_owned();
                    let full = join(path, &k);
                    *key = Some((k, pos));
                    let scalar = text.map(String::from);
                    self.outline.nodes.push(Node {
                        pos,
                        path: full,
                        role: Role::Key,
                        scalar,
                        shape,
                    });
                    if text.is_some() {
                        None
                    } else {
                        Some(join(path, "?"))
                    }
                }
            },
        }
    }

    /// The position of the key whose value comes next, if the next node is a mapping value.
    fn pending_key(&self) -> Option<Pos> {
        match self.frames.last() {
            Some(Frame::Map {
                key: Some((_, pos)),
                ..
            }) => Some(*pos),
            _ => None,
        }
    }

    fn value(&mut self, pos: Pos, path: String, scalar: Option<String>, shape: Shape) {
        self.outline.nodes.push(Node {
            pos,
            path,
            role: Role::Value,
            scalar,
            shape,
        });
    }
}

/// `spec` + `php` → `spec.php`; the document root has the empty path.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn position(span: &YamlSpan) -> Pos {
    to_pos(span.start.line(), span.start.col())
}

fn position_end(span: &YamlSpan) -> Pos {
    to_pos(span.end.line(), span.end.col())
}

/// granit lines are 1-based and columns 0-based; diagnostics use 1-based for both.
fn to_pos(line: usize, col: usize) -> Pos {
    let line = u32::try_from(line).unwrap_or(u32::MAX);
    let col = u32::try_from(col).unwrap_or(u32::MAX - 1).saturating_add(1);
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_mappings_and_sequences() {
        let o = Outline::read("kind: Domain\nmetadata: {name: a.test}\nspec:\n  aliases: [x, y]\n  redirects:\n    - {from: /a, to: /b}\n");
        let paths: Vec<(&str, Pos, Role)> = o
            .nodes
            .iter()
            .map(|n| (n.path.as_str(), n.pos, n.role))
            .collect();
        assert!(
            paths.contains(&("spec.aliases[1]", (4, 16), Role::Value)),
            "{paths:#?}"
        );
        assert!(
            paths.contains(&("spec.redirects[0].to", (6, 18), Role::Key)),
            "{paths:#?}"
        );
        assert_eq!(o.resource().as_deref(), Some("Domain/a.test"));
    }

    #[test]
    fn outline_keeps_what_came_before_a_syntax_error() {
        let o = Outline::read("kind: Tenant\nmetadata: {name: acme}\nspec:\n  package: [basic\n");
        assert_eq!(o.resource().as_deref(), Some("Tenant/acme"));
        assert!(o.nodes.iter().any(|n| n.path == "spec.package"));
    }
}
