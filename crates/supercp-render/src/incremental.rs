//! Rendering again only what changed, for a long-running caller (the agent).
//!
//! A tenant's objects depend on the node (its spec and the templates) and on the tenant's own
//! resources: the Tenant and its Domains. Each of those is read from one document, so the
//! text of the files they are declared in (a hash the loader's parse cache already holds), their
//! places in those files and the tenant's list of domains are a fingerprint of everything its
//! render reads. `render_delta` renders again the tenants whose fingerprint moved, plus the
//! node-wide objects (a handful), and reuses every other tenant's objects from `RenderMemory`.
//!
//! # Guarantees
//! - A tenant is rendered again whenever anything its render reads may have changed; when the
//!   node or the templates change, every tenant is.
//! - `RenderMemory::all` is what `render` returns for the same inputs, in the same order.
//! - The memory changes only when a render succeeds.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use supercp_core::catalog::DomainEntry;
use supercp_core::{Catalog, Desired, Diagnostic, Span, TenantName};

use crate::{NodeRef, Renderer, Templates, ROLE_WEB};

/// What the last successful render made, part by part.
#[derive(Default)]
pub struct RenderMemory {
    /// Fingerprint of the node and the templates; `None` before the first render.
    shared: Option<u64>,
    node: Part,
    tenants: BTreeMap<TenantName, Part>,
}

/// One tenant's (or the node's) objects and the fingerprint of its inputs.
#[derive(Default)]
struct Part {
    /// `None`: unknown, rendered again next time.
    inputs: Option<u64>,
    dirs: Vec<Desired>,
    files: Vec<Desired>,
}

impl Part {
    fn ids(&self) -> impl Iterator<Item = String> + '_ {
        self.dirs
            .iter()
            .chain(&self.files)
            .map(|d| d.id().to_string())
    }
}

/// What one incremental render changed.
pub struct Delta {
    /// The node-wide objects and every object of the tenants rendered again: directories
    /// first, then files, as `render` orders them. Every object when `full`.
    pub fresh: Vec<Desired>,
    /// Ids the memory held for the parts rendered again (or for tenants that are gone) that
    /// this render no longer makes.
    pub gone: Vec<String>,
    /// Tenants rendered again.
    pub tenants_rendered: usize,
    /// Every tenant was rendered (no memory yet, or the node or templates changed).
    pub full: bool,
}

impl RenderMemory {
    /// The whole desired state as the last render left it, in `render`'s order.
    pub fn all(&self) -> Vec<Desired> {
        let parts = || std::iter::once(&self.node).chain(self.tenants.values());
        let mut all: Vec<Desired> = parts().flat_map(|p| p.dirs.iter().cloned()).collect();
        all.extend(parts().flat_map(|p| p.files.iter().cloned()));
        all
    }

    /// The objects of `all`, borrowed, in slices (two per part; not in `render`'s order).
    pub fn slices(&self) -> Vec<&[Desired]> {
        std::iter::once(&self.node)
            .chain(self.tenants.values())
            .flat_map(|p| [p.dirs.as_slice(), p.files.as_slice()])
            .collect()
    }
}

/// Renders the node-wide objects and the tenants whose inputs changed since the render
/// `memory` holds, and records the new parts in `memory`.
///
/// `file_hash` gives the hash of a repo file's text as loaded (the parse cache's); a file it
/// does not know makes its tenant render again.
///
/// # Errors
/// As for `render`; `memory` is left as it was.
pub fn render_delta(
    catalog: &Catalog,
    node: &NodeRef,
    templates: &Templates,
    file_hash: &(dyn Fn(&str) -> Option<u64> + Sync),
    memory: &mut RenderMemory,
) -> Result<Delta, Vec<Diagnostic>> {
    let mut r = Renderer::new(node, templates);
    r.check_node();
    r.check_dns(catalog);
    if !r.diagnostics.is_empty() {
        return Err(r.diagnostics);
    }
    let shared = shared_fingerprint(node, templates);
    let full = memory.shared != Some(shared);
    let web = node.spec.roles.iter().any(|role| role == ROLE_WEB);
    let mut by_tenant: BTreeMap<&TenantName, Vec<&DomainEntry>> = BTreeMap::new();
    if web {
        for d in catalog.domains.values() {
            by_tenant.entry(&d.tenant).or_default().push(d);
        }
        r.node_objects(catalog);
    }
    let mut files = std::mem::take(&mut r.files);
    // Zones are node-wide: rendered again every time (their template reads every Domain).
    if let Some(dns) = &node.spec.dns {
        if node.spec.roles.iter().any(|role| role == crate::ROLE_DNS) {
            files.extend(crate::zones::zones(catalog, node, dns));
        }
    }
    let node_part = Part {
        inputs: None,
        dirs: std::mem::take(&mut r.out),
        files,
    };
    // Tenants to render: new ones, and those whose fingerprint moved.
    let mut stale = Vec::new();
    if web {
        for tenant in catalog.tenants.values() {
            let domains = by_tenant.get(&tenant.name).map_or(&[][..], Vec::as_slice);
            let inputs = tenant_fingerprint(&tenant.resource.origin, domains, file_hash);
            let known = memory.tenants.get(&tenant.name);
            if full || inputs.is_none() || known.and_then(|p| p.inputs) != inputs {
                stale.push((tenant, domains, inputs));
            }
        }
    }
    let parts = supercp_core::par::map_chunks(&stale, |chunk| {
        chunk
            .iter()
            .map(|(tenant, domains, inputs)| {
                let mut part = Renderer::new(node, templates);
                part.tenant(tenant, domains);
                let rendered = Part {
                    inputs: *inputs,
                    dirs: part.out,
                    files: part.files,
                };
                (tenant.name.clone(), rendered, part.diagnostics)
            })
            .collect::<Vec<_>>()
    });
    let mut diagnostics = r.diagnostics;
    let mut fresh_parts = Vec::with_capacity(stale.len());
    for (name, part, part_diagnostics) in parts.into_iter().flatten() {
        diagnostics.extend(part_diagnostics);
        fresh_parts.push((name, part));
    }
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }

    // Success: work out what is gone, then move the new parts into the memory.
    let tenants_rendered = fresh_parts.len();
    let mut gone: Vec<String> = Vec::new();
    let mut replaced: Vec<Part> = vec![std::mem::replace(&mut memory.node, node_part)];
    for (name, part) in fresh_parts {
        if let Some(old) = memory.tenants.insert(name, part) {
            replaced.push(old);
        }
    }
    let vanished: Vec<TenantName> = memory
        .tenants
        .keys()
        .filter(|name| !web || !catalog.tenants.contains_key(*name))
        .cloned()
        .collect();
    for name in vanished {
        if let Some(old) = memory.tenants.remove(&name) {
            replaced.push(old);
        }
    }
    memory.shared = Some(shared);
    let fresh_names: Vec<&TenantName> = stale.iter().map(|(t, _, _)| &t.name).collect();
    let fresh_of = |memory: &RenderMemory| -> Vec<Desired> {
        let parts = || {
            std::iter::once(&memory.node).chain(
                fresh_names
                    .iter()
                    .filter_map(|name| memory.tenants.get(*name)),
            )
        };
        let mut fresh: Vec<Desired> = parts().flat_map(|p| p.dirs.iter().cloned()).collect();
        fresh.extend(parts().flat_map(|p| p.files.iter().cloned()));
        fresh
    };
    let fresh = if full { memory.all() } else { fresh_of(memory) };
    if !replaced
        .iter()
        .all(|p| p.dirs.is_empty() && p.files.is_empty())
    {
        let now: std::collections::HashSet<String> =
            fresh.iter().map(|d| d.id().to_string()).collect();
        gone.extend(
            replaced
                .iter()
                .flat_map(Part::ids)
                .filter(|id| !now.contains(id)),
        );
    }
    Ok(Delta {
        fresh,
        gone,
        tenants_rendered,
        full,
    })
}

/// The node's spec and name, and the templates' texts.
fn shared_fingerprint(node: &NodeRef, templates: &Templates) -> u64 {
    let mut h = DefaultHasher::new();
    node.resource.name.hash(&mut h);
    node.resource.origin.hash(&mut h);
    // NodeSpec is plain data: its Debug text names every field and value.
    format!("{:?}", node.spec).hash(&mut h);
    templates.fingerprint.hash(&mut h);
    h.finish()
}

/// Where the tenant and its domains are declared and the text of those files; `None` when a
/// file's text is unknown (the tenant renders again).
fn tenant_fingerprint(
    origin: &Span,
    domains: &[&DomainEntry],
    file_hash: &(dyn Fn(&str) -> Option<u64> + Sync),
) -> Option<u64> {
    let mut h = DefaultHasher::new();
    origin.hash(&mut h);
    file_hash(&origin.file)?.hash(&mut h);
    for d in domains {
        d.name.hash(&mut h);
        d.resource.origin.hash(&mut h);
        file_hash(&d.resource.origin.file)?.hash(&mut h);
    }
    Some(h.finish())
}
