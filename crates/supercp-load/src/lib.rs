//! Repo files → `(Catalog, Vec<Diagnostic>)`.
//!
//! Owns: finding `.yaml`/`.yml` files under a repo, splitting them into YAML documents, parsing
//! each into its kind's spec, and every validation rule on user input (names, references,
//! duplicates, package limits, the config-string grammar). Does not own: rendering or the node.
//!
//! # Guarantees
//! Every problem of a repo is reported, sorted by file and line; a catalog is returned only
//! when there is none. Parsing never panics on any input (a proptest and a fuzz target check it).

mod outline;
mod parse;
mod validate;
mod zones;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use supercp_core::diagnostic::sort_diagnostics;
use supercp_core::resource::NodeSpec;
use supercp_core::{Catalog, Diagnostic, Resource, Span};

pub use parse::{parse_file, Parsed, ParsedDoc, MAX_DOCUMENT_NODES};

/// Facts about the node the repo is validated for.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Accounts that exist on the node below UID 1000: no tenant may take one of these names.
    pub system_accounts: BTreeSet<String>,
}

/// One file's text and the name it is reported under (relative to the repo).
#[derive(Clone, Debug)]
pub struct Source {
    pub path: Arc<str>,
    pub text: String,
}

/// The largest resource file the loader reads, in bytes (also the YAML reader's limit on the
/// bytes of values in one document). A larger file is refused, named as such, before it is
/// read into memory.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Loads every resource file under `repo` (`.yaml`/`.yml`; `.git`, hidden folders and
/// `state/` skipped).
///
/// A symbolic link in the repo is refused (a diagnostic naming it and its target) when it is
/// named like a resource file or points at a directory (or nowhere): skipping it would drop
/// its resources from the catalog, and apply would delete what they declared. Links are not
/// followed, even inside the repo: a Git checkout holds each file once, as itself.
///
/// # Errors
/// Unreadable files, refused links and bad input are diagnostics, never a panic or an early
/// stop.
pub fn load_repo(repo: &Path, options: &LoadOptions) -> Result<Catalog, Vec<Diagnostic>> {
    load_repo_cached(repo, options, &mut ParseCache::default())
}

/// The parsed documents of each file, by path and content hash: a long-running caller (the
/// agent) parses again only the files whose text changed. Validation always runs over the
/// whole repo (it is cross-resource), from the cached documents.
#[derive(Default)]
pub struct ParseCache {
    files: std::collections::HashMap<Arc<str>, (u64, Parsed)>,
}

impl ParseCache {
    /// The hash of a file's text as last loaded (`path` as diagnostics show it, relative to
    /// the repo): what an incremental render fingerprints.
    pub fn text_hash(&self, path: &str) -> Option<u64> {
        self.files.get(path).map(|(hash, _)| *hash)
    }
}

/// `load_repo`, parsing only the files `cache` does not hold with the same text.
///
/// # Errors
/// As for `load_repo`.
pub fn load_repo_cached(
    repo: &Path,
    options: &LoadOptions,
    cache: &mut ParseCache,
) -> Result<Catalog, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let mut sources = Vec::new();
    for path in discover(repo, &mut diagnostics) {
        let shown: Arc<str> = path
            .strip_prefix(repo)
            .unwrap_or(&path)
            .display()
            .to_string()
            .into();
        match read_source(&path) {
            Ok(text) => sources.push(Source { path: shown, text }),
            Err(Unread::TooLarge(bytes)) => diagnostics.push(Diagnostic::new(
                Span::new(shown, 1, 1),
                format!("the file is too large: {bytes} bytes, limit {MAX_FILE_BYTES}"),
                "split the resources into several smaller files (one per tenant, say)",
            )),
            Err(Unread::Io(e)) => diagnostics.push(Diagnostic::new(
                Span::new(shown, 1, 1),
                format!("cannot read the file: {e}"),
                "check the file's permissions and that it is UTF-8 text",
            )),
        }
    }
    let result = load_sources_cached(&sources, options, cache);
    match result {
        Ok(catalog) if diagnostics.is_empty() => Ok(catalog),
        Ok(_) => {
            sort_diagnostics(&mut diagnostics);
            Err(diagnostics)
        }
        Err(mut more) => {
            diagnostics.append(&mut more);
            sort_diagnostics(&mut diagnostics);
            Err(diagnostics)
        }
    }
}

/// Loads resources from in-memory sources (tests need no disk).
///
/// # Errors
/// Every diagnostic of every source, sorted by file, line and column.
pub fn load_sources(sources: &[Source], options: &LoadOptions) -> Result<Catalog, Vec<Diagnostic>> {
    load_sources_cached(sources, options, &mut ParseCache::default())
}

fn load_sources_cached(
    sources: &[Source],
    options: &LoadOptions,
    cache: &mut ParseCache,
) -> Result<Catalog, Vec<Diagnostic>> {
    use std::hash::{Hash, Hasher};
    let hash = |text: &str| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        h.finish()
    };
    let hashes: Vec<u64> = sources.iter().map(|s| hash(&s.text)).collect();
    let mut old = std::mem::take(&mut cache.files);
    // Files whose text is new: (index, source), parsed below.
    let stale: Vec<(usize, &Source)> = sources
        .iter()
        .enumerate()
        .filter(|(i, s)| old.get(&s.path).is_none_or(|(h, _)| *h != hashes[*i]))
        .collect();
    // Files parse independently: one chunk of them per core, merged back in file order.
    let chunks = supercp_core::par::map_chunks(&stale, |chunk| {
        chunk
            .iter()
            .map(|(i, source)| (*i, parse_file(&source.path, &source.text)))
            .collect::<Vec<_>>()
    });
    let mut parsed: Vec<Option<Parsed>> = vec![None; sources.len()];
    for (i, p) in chunks.into_iter().flatten() {
        parsed[i] = Some(p);
    }
    let mut diagnostics = Vec::new();
    let mut docs = Vec::new();
    let mut declared = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let p = match parsed[i].take() {
            Some(p) => p,
            None => match old.remove(&source.path) {
                Some((_, p)) => p,
                None => continue,
            },
        };
        diagnostics.extend(p.diagnostics.iter().cloned());
        docs.extend(p.docs.iter().cloned());
        declared.extend(p.declared.iter().cloned());
        // Files gone from the repo are dropped: only this load's files are kept.
        cache.files.insert(source.path.clone(), (hashes[i], p));
    }
    // Only called when a rule fails: finds the document again and reads its outline.
    let locate = |file: &str, line: u32, path: &str, role: outline::Role| {
        let source = sources.iter().find(|s| &*s.path == file)?;
        parse::locate(&source.text, line, path, role)
    };
    let catalog = validate::build_catalog(docs, declared, options, &locate, &mut diagnostics);
    if diagnostics.is_empty() {
        Ok(catalog)
    } else {
        sort_diagnostics(&mut diagnostics);
        Err(diagnostics)
    }
}

/// Loads a node file: exactly one `kind: Node` resource.
///
/// # Errors
/// Diagnostics naming the file, as for a repo.
pub fn load_node(path: &Path, shown: &str) -> Result<Resource<NodeSpec>, Vec<Diagnostic>> {
    let file: Arc<str> = shown.into();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::new(
            Span::new(file.clone(), 1, 1),
            format!("cannot read the node file: {e}"),
            "pass --node with the path of a readable Node YAML file",
        )]
    })?;
    load_node_text(file, &text)
}

/// Loads a node from text (the embedded sandbox node, tests).
///
/// # Errors
/// Diagnostics when the text is not exactly one valid Node.
pub fn load_node_text(file: Arc<str>, text: &str) -> Result<Resource<NodeSpec>, Vec<Diagnostic>> {
    let source = Source {
        path: file.clone(),
        text: text.to_owned(),
    };
    let catalog = load_sources(&[source], &LoadOptions::default())?;
    let count = catalog.len();
    let mut nodes = catalog.nodes.into_values();
    match (nodes.next(), count) {
        (Some(node), 1) => Ok(node),
        _ => Err(vec![Diagnostic::new(
            Span::new(file, 1, 1),
            format!(
                "a node file must hold exactly one resource of kind Node, found {count} resources"
            ),
            "keep only the Node resource in the node file",
        )]),
    }
}

/// Resource files under `repo`, sorted. Unreadable directories become diagnostics.
fn discover(repo: &Path, diagnostics: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                diagnostics.push(Diagnostic::new(
                    Span::new(dir.display().to_string().into(), 1, 1),
                    format!("cannot read the directory: {e}"),
                    "check --repo and the directory's permissions",
                ));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    diagnostics.push(Diagnostic::new(
                        Span::new(shown(repo, &dir), 1, 1),
                        format!("cannot list the directory: {e}"),
                        "check --repo and the directory's permissions",
                    ));
                    continue;
                }
            };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(e) => {
                    diagnostics.push(Diagnostic::new(
                        Span::new(shown(repo, &path), 1, 1),
                        format!("cannot tell what kind of file this is: {e}"),
                        "check the directory's permissions",
                    ));
                    continue;
                }
            };
            let skipped = name.starts_with('.') || (dir == repo && name == "state");
            let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
            if kind.is_dir() {
                if !skipped {
                    stack.push(path);
                }
            } else if kind.is_symlink() {
                // `metadata` follows the link: a directory or a dangling link may hide resources.
                let to_dir_or_nowhere = std::fs::metadata(&path).map_or(true, |m| m.is_dir());
                if !skipped && (yaml || to_dir_or_nowhere) {
                    let target = std::fs::read_link(&path)
                        .map_or_else(|_| "?".to_owned(), |t| t.display().to_string());
                    diagnostics.push(Diagnostic::new(
                        Span::new(shown(repo, &path), 1, 1),
                        format!("is a symbolic link (to {target}); links in the repo are not followed"),
                        "replace the link with the file or directory itself (commit the content, not a link)",
                    ));
                }
            } else if kind.is_file() && yaml {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Why a resource file was not read.
enum Unread {
    TooLarge(u64),
    Io(std::io::Error),
}

/// Reads one resource file, refusing one over `MAX_FILE_BYTES` before reading it.
fn read_source(path: &Path) -> Result<String, Unread> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(Unread::Io)?;
    let len = file.metadata().map_err(Unread::Io)?.len();
    if len > MAX_FILE_BYTES {
        return Err(Unread::TooLarge(len));
    }
    let mut text = String::new();
    // `take`: a file that grows after the size check is still read only up to the limit + 1.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(Unread::Io)?;
    match u64::try_from(text.len()) {
        Ok(n) if n <= MAX_FILE_BYTES => Ok(text),
        _ => Err(Unread::TooLarge(text.len() as u64)),
    }
}

/// A path as diagnostics show it: relative to the repo.
fn shown(repo: &Path, path: &Path) -> Arc<str> {
    path.strip_prefix(repo)
        .unwrap_or(path)
        .display()
        .to_string()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Vec<String> {
        let sources = [Source {
            path: "repo.yaml".into(),
            text: text.to_owned(),
        }];
        match load_sources(&sources, &LoadOptions::default()) {
            Ok(_) => Vec::new(),
            Err(ds) => ds
                .iter()
                .map(|d| d.to_string().lines().next().unwrap_or_default().to_owned())
                .collect(),
        }
    }

    #[test]
    fn reference_to_a_declared_but_broken_resource_is_not_reported_again() {
        let text = "apiVersion: supercp/v1\nkind: Package\nmetadata: {name: basic}\nspec: {maxDomains: many}\n---\n\
                    apiVersion: supercp/v1\nkind: Tenant\nmetadata: {name: acme}\nspec: {package: basic}\n";
        let found = load(text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with(
                "repo.yaml:4:20: error: Package/basic: spec.maxDomains: expected a whole number"
            ),
            "{found:#?}"
        );
    }

    #[test]
    fn a_nodes_tls_settings_are_checked() {
        let node = |tls: &str| {
            format!(
                "apiVersion: supercp/v1\nkind: Node\nmetadata: {{name: web1}}\nspec:\n  root: /\n  \
                 homeDir: /home\n  web: {{sitesDir: /s, listen: [\"80\"]}}\n  \
                 php: {{versions: [\"8.2\"], poolDir: /p, socketDir: /run/php}}\n  tls: {tls}\n"
            )
        };
        assert_eq!(
            load(&node("{acmeDirectory: letsencrypt-staging}")),
            Vec::<String>::new()
        );
        assert_eq!(
            load(&node("{acmeDirectory: \"https://ca.example/dir\"}")),
            Vec::<String>::new()
        );
        let found = load(&node(
            "{acmeDirectory: \"http://ca.example/dir\", acmeEmail: \"ops at example\", \
             renewDays: 90, maxOrdersPerRun: 0}",
        ));
        let all = found.join("\n");
        for field in [
            "spec.tls.acmeDirectory",
            "spec.tls.acmeEmail",
            "spec.tls.renewDays",
            "spec.tls.maxOrdersPerRun",
        ] {
            assert!(all.contains(&format!("Node/web1: {field}:")), "{all}");
        }
    }

    #[test]
    fn error_in_a_later_document_is_reported_at_its_file_line() {
        let text = "apiVersion: supercp/v1\nkind: Package\nmetadata: {name: basic}\nspec: {}\n---\n\
                    apiVersion: supercp/v1\nkind: Tenant\nmetadata: {name: acme}\nspec:\n  package: basic\n  shel: /bin/sh\n";
        assert_eq!(
            load(text),
            ["repo.yaml:11:3: error: Tenant/acme: spec.shel: unknown field `shel`"]
        );
    }
}
