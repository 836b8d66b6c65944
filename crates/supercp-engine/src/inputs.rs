//! Everything a plan starts from: the repo's catalog, the node (a file, or the embedded
//! sandbox node), and the templates (built in, plus the node's override directory).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use supercp_core::resource::NodeSpec;
use supercp_core::{Catalog, Desired, Diagnostic, Resource, Span};
use supercp_load::{LoadOptions, ParseCache};
use supercp_render::{Delta, NodeRef, RenderMemory, Templates};

/// The embedded default node: renders under `<state>/sandbox`, needs no root.
pub const SANDBOX_NODE: &str = include_str!("../../../examples/nodes/sandbox.yaml");

/// A loaded, validated repo and the node it is rendered for.
pub struct Inputs {
    pub catalog: Catalog,
    /// The node as declared (for its name and origin).
    pub node: Resource<NodeSpec>,
    /// `node.spec` with `{state}` and `{root}` resolved.
    pub spec: NodeSpec,
    pub templates: Templates,
    pub state_dir: PathBuf,
    pub repo: PathBuf,
}

impl Inputs {
    /// Loads the repo, the node (or the sandbox node) and the templates.
    ///
    /// # Errors
    /// Every diagnostic found, sorted; nothing is read from the node beyond `/etc/passwd`
    /// (system accounts no tenant may be named after) and the template directory.
    pub fn load(
        repo: &Path,
        node_file: Option<&Path>,
        state_dir: &Path,
    ) -> Result<Inputs, Vec<Diagnostic>> {
        Inputs::load_cached(repo, node_file, state_dir, &mut ParseCache::default())
    }

    /// `load`, parsing only the repo files whose text `cache` does not hold (the agent's
    /// incremental reconcile).
    ///
    /// # Errors
    /// As for `load`.
    pub fn load_cached(
        repo: &Path,
        node_file: Option<&Path>,
        state_dir: &Path,
        cache: &mut ParseCache,
    ) -> Result<Inputs, Vec<Diagnostic>> {
        let (node, spec, state) = node_for(node_file, state_dir)?;
        let options = LoadOptions {
            system_accounts: system_accounts(),
        };
        let catalog = supercp_load::load_repo_cached(repo, &options, cache);
        let templates = load_templates(spec.template_dir.as_deref());
        match (catalog, templates) {
            (Ok(catalog), Ok(templates)) => Ok(Inputs {
                catalog,
                node,
                spec,
                templates,
                state_dir: state,
                repo: repo.to_path_buf(),
            }),
            (catalog, templates) => {
                let mut all = catalog.err().unwrap_or_default();
                all.extend(templates.err().unwrap_or_default());
                Err(all)
            }
        }
    }

    /// Renders the node-wide objects and the tenants whose files changed since the render
    /// `memory` holds (see `supercp_render::render_delta`); `file_hash` is the parse cache's.
    ///
    /// # Errors
    /// Render diagnostics, as for `render`.
    pub fn render_delta(
        &self,
        file_hash: &(dyn Fn(&str) -> Option<u64> + Sync),
        memory: &mut RenderMemory,
    ) -> Result<Delta, Vec<Diagnostic>> {
        let node = NodeRef {
            resource: &self.node,
            spec: &self.spec,
        };
        supercp_render::render_delta(&self.catalog, &node, &self.templates, file_hash, memory)
    }

    /// Renders every desired object (pure).
    ///
    /// # Errors
    /// Render diagnostics (templates, PHP versions, node strings).
    pub fn render(&self) -> Result<Vec<Desired>, Vec<Diagnostic>> {
        let node = NodeRef {
            resource: &self.node,
            spec: &self.spec,
        };
        supercp_render::render(&self.catalog, &node, &self.templates)
    }

    /// The audit journal URL: the node's, or `<state>/audit.db`.
    pub fn audit_url(&self) -> String {
        default_audit_url(&self.spec, &self.state_dir)
    }

    pub fn node_name(&self) -> &str {
        &self.node.name
    }
}

/// The node's name and audit URL, without loading the repo (the node file, or the sandbox).
///
/// # Errors
/// Diagnostics of the node file.
pub fn node_journal(
    node_file: Option<&Path>,
    state_dir: &Path,
) -> Result<(String, String), Vec<Diagnostic>> {
    let (node, spec, state) = node_for(node_file, state_dir)?;
    Ok((node.name, default_audit_url(&spec, &state)))
}

/// The node (resolved spec) and its audit URL, without loading a repo: what the agent reads
/// before it has a checkout.
///
/// # Errors
/// Diagnostics of the node file.
pub fn node_spec(
    node_file: Option<&Path>,
    state_dir: &Path,
) -> Result<(String, NodeSpec, String), Vec<Diagnostic>> {
    let (node, spec, state) = node_for(node_file, state_dir)?;
    let url = default_audit_url(&spec, &state);
    Ok((node.name, spec, url))
}

/// The audit URL for commands that need no repo (`audit`): the node's, or the sandbox's.
///
/// # Errors
/// Diagnostics of the node file.
pub fn audit_url_for(
    node_file: Option<&Path>,
    state_dir: &Path,
) -> Result<String, Vec<Diagnostic>> {
    let (_, spec, state) = node_for(node_file, state_dir)?;
    Ok(default_audit_url(&spec, &state))
}

/// The node file (or the embedded sandbox node), its spec resolved against the absolute state
/// directory, and that directory.
fn node_for(
    node_file: Option<&Path>,
    state_dir: &Path,
) -> Result<(Resource<NodeSpec>, NodeSpec, PathBuf), Vec<Diagnostic>> {
    let node = match node_file {
        Some(path) => supercp_load::load_node(path, &path.display().to_string())?,
        None => supercp_load::load_node_text("(embedded sandbox node)".into(), SANDBOX_NODE)?,
    };
    let state = absolute(state_dir);
    let spec = node.spec.resolve(&state.display().to_string());
    Ok((node, spec, state))
}

fn default_audit_url(spec: &NodeSpec, state: &Path) -> String {
    spec.audit_url
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", state.join("audit.db").display()))
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Users and groups below id 1000 on this machine (system accounts such as `shadow`, `disk`
/// or `docker`): a tenant may not take their names, or its account would join that group.
fn system_accounts() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in ["/etc/passwd", "/etc/group"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        names.extend(text.lines().filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id: u32 = fields.nth(1)?.parse().ok()?;
            (id < 1000).then(|| name.to_owned())
        }));
    }
    names
}

fn load_templates(dir: Option<&str>) -> Result<Templates, Vec<Diagnostic>> {
    let Some(dir) = dir else {
        return Ok(Templates::builtin());
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![Diagnostic::new(
            Span::new(dir.into(), 1, 1),
            format!("cannot read the template directory: {e}"),
            "fix templateDir in the node file or create the directory",
        )]
    })?;
    let mut overrides = Vec::new();
    let mut diagnostics = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".tera") {
            continue;
        }
        let shown = entry.path().display().to_string();
        match std::fs::read_to_string(entry.path()) {
            Ok(text) => overrides.push((name, text, shown)),
            Err(e) => diagnostics.push(Diagnostic::new(
                Span::new(shown.into(), 1, 1),
                format!("cannot read the template: {e}"),
                "check the file's permissions",
            )),
        }
    }
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    overrides.sort();
    Templates::with_overrides(&overrides)
}
