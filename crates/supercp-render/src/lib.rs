//! `(Catalog, Node, Templates) → Vec<Desired>`: every object the node should hold.
//!
//! Owns: the Tera templates (built in, overridable by file name from a node's template dir) and
//! the rules that turn resources into files and directories. Pure: no clock, no environment, no
//! file reads; the caller passes override templates in as text.
//!
//! # Guarantees
//! The same inputs give the same objects in the same order (parents before children).
//! Every string that reaches a template was checked by the loader's grammar, or is checked here
//! (node paths) before it is used.

use std::collections::BTreeMap;

use supercp_core::catalog::{DomainEntry, TenantEntry};
use supercp_core::names::check_config_string;
use supercp_core::object::{Account, Cert, KeyType, Renewal};
use supercp_core::resource::{CertSource, NodeSpec, TlsProfile};
use supercp_core::{
    Catalog, Desired, Diagnostic, Location, Object, Owner, Resource, ResourceKind, ResourceRef,
    Span, Unit,
};
use tera::{Context, Tera};

mod incremental;
pub mod zones;

pub use incremental::{render_delta, Delta, RenderMemory};

/// Built-in templates, by the file name an override must use.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    (
        "vhost.conf.tera",
        include_str!("../../../templates/vhost.conf.tera"),
    ),
    (
        "pool.conf.tera",
        include_str!("../../../templates/pool.conf.tera"),
    ),
    (
        "nginx.conf.tera",
        include_str!("../../../templates/nginx.conf.tera"),
    ),
    (
        "default-server.conf.tera",
        include_str!("../../../templates/default-server.conf.tera"),
    ),
    (
        "php-fpm.conf.tera",
        include_str!("../../../templates/php-fpm.conf.tera"),
    ),
    (
        "placeholder-pool.conf.tera",
        include_str!("../../../templates/placeholder-pool.conf.tera"),
    ),
    (
        "http.conf.tera",
        include_str!("../../../templates/http.conf.tera"),
    ),
    (
        "logrotate.tera",
        include_str!("../../../templates/logrotate.tera"),
    ),
    (
        "crontab.tera",
        include_str!("../../../templates/crontab.tera"),
    ),
    (
        "authorized_keys.tera",
        include_str!("../../../templates/authorized_keys.tera"),
    ),
];

/// The role whose nodes serve sites: nginx, PHP-FPM, tenant homes.
pub const ROLE_WEB: &str = "web";
/// The role of a node that serves DNS zones.
pub const ROLE_DNS: &str = "dns";

/// What a commit unit needs of the process that applies it, beyond its objects: a gate whose
/// check opens a file per site needs that many descriptors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitNeed {
    pub gate: String,
    pub open_files: u64,
    /// Why, and what to do when the process may open fewer.
    pub why: String,
}

/// The needs of the units this node renders (nginx with a log pair per site).
pub fn unit_needs(catalog: &Catalog, spec: &NodeSpec) -> Vec<UnitNeed> {
    if spec.web.site_logs != supercp_core::resource::SiteLogs::Domain
        || !spec.roles.iter().any(|r| r == ROLE_WEB)
    {
        return Vec::new();
    }
    let needed = 2 * catalog.domains.len() as u64 + 256;
    vec![UnitNeed {
        gate: GATE_NGINX.to_owned(),
        open_files: needed,
        why: format!(
            "nginx opens two log files per site: `nginx -t` needs about {needed} open files; \
             raise the open-files limit (LimitNOFILE) or set web.siteLogs: Node in the node file"
        ),
    }]
}

/// The gate names rendered objects ask for.
pub const GATE_NGINX: &str = "nginx";
pub const GATE_PHP_FPM: &str = "php-fpm";

/// Compiled templates: the built-in set with a node's overrides on top.
pub struct Templates {
    tera: Tera,
    /// Where each template came from, for error messages.
    origins: BTreeMap<String, String>,
    /// A hash of every template's text: what an incremental render compares.
    fingerprint: u64,
}

/// The node being rendered for: its name, where it is declared, and its resolved spec.
pub struct NodeRef<'a> {
    pub resource: &'a Resource<NodeSpec>,
    /// `resource.spec` with `{state}` resolved.
    pub spec: &'a NodeSpec,
}

impl Templates {
    /// The built-in templates.
    ///
    /// # Panics
    /// Never in a released binary: a test compiles every built-in template.
    pub fn builtin() -> Templates {
        Templates::with_overrides(&[])
            .unwrap_or_else(|d| panic!("built-in templates must compile: {d:?}"))
    }

    /// Built-in templates with overrides `(file name, text, shown path)`.
    ///
    /// # Errors
    /// A diagnostic naming the override file for an unknown name or a template that does not
    /// compile.
    pub fn with_overrides(
        overrides: &[(String, String, String)],
    ) -> Result<Templates, Vec<Diagnostic>> {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        let mut origins = BTreeMap::new();
        let mut diagnostics = Vec::new();
        let mut sources: BTreeMap<&str, &str> = BUILTIN_TEMPLATES.iter().copied().collect();
        for (name, text, shown) in overrides {
            if sources.contains_key(name.as_str()) {
                sources.insert(name, text);
                origins.insert(name.clone(), shown.clone());
            } else {
                let names: Vec<&str> = BUILTIN_TEMPLATES.iter().map(|t| t.0).collect();
                diagnostics.push(Diagnostic::new(
                    Span::new(shown.as_str().into(), 1, 1),
                    format!("template {name:?} overrides no built-in template"),
                    format!(
                        "name override files after a built-in template: {}",
                        names.join(", ")
                    ),
                ));
            }
        }
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            sources.hash(&mut h);
            h.finish()
        };
        for (name, text) in sources {
            if let Err(e) = tera.add_raw_template(name, text) {
                let shown = origins
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| format!("templates/{name}"));
                diagnostics.push(Diagnostic::new(
                    Span::new(shown.into(), 1, 1),
                    format!("template does not compile: {}", error_chain(&e)),
                    "fix the Tera syntax of the template",
                ));
            }
        }
        if diagnostics.is_empty() {
            Ok(Templates {
                tera,
                origins,
                fingerprint,
            })
        } else {
            Err(diagnostics)
        }
    }

    fn render(
        &self,
        name: &str,
        context: &Context,
        resource: &str,
        origin: &Span,
    ) -> Result<Vec<u8>, Diagnostic> {
        self.tera
            .render(name, context)
            .map(String::into_bytes)
            .map_err(|e| {
                let shown = self
                    .origins
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| format!("templates/{name}"));
                Diagnostic::new(
                    origin.clone(),
                    format!("rendering {shown} failed: {}", error_chain(&e)),
                    "fix the template or the resource",
                )
                .resource(resource)
            })
    }
}

/// Renders every object of the catalog for one node.
///
/// # Errors
/// Diagnostics for node strings that break the config grammar, unknown PHP versions, and
/// template errors; all of them, not just the first.
pub fn render(
    catalog: &Catalog,
    node: &NodeRef,
    templates: &Templates,
) -> Result<Vec<Desired>, Vec<Diagnostic>> {
    let mut r = Renderer::new(node, templates);
    r.check_node();
    r.check_dns(catalog);
    if !r.diagnostics.is_empty() {
        return Err(r.diagnostics);
    }
    // A dns node serves every zone of the repo (its `dns:` block is checked by the loader).
    let zones = match &node.spec.dns {
        Some(dns) if node.spec.roles.iter().any(|r| r == ROLE_DNS) => {
            zones::zones(catalog, node, dns)
        }
        _ => Vec::new(),
    };
    // Package, Tenant and Domain are the web role's: a node without it (a fleet's dns or
    // mail node) holds none of their objects.
    if !node.spec.roles.iter().any(|r| r == ROLE_WEB) {
        return Ok(zones);
    }
    let mut by_tenant: BTreeMap<&supercp_core::TenantName, Vec<&DomainEntry>> = BTreeMap::new();
    for d in catalog.domains.values() {
        by_tenant.entry(&d.tenant).or_default().push(d);
    }
    r.node_objects(catalog);
    let tenants: Vec<(&TenantEntry, &[&DomainEntry])> = catalog
        .tenants
        .values()
        .map(|t| (t, by_tenant.get(&t.name).map_or(&[][..], Vec::as_slice)))
        .collect();
    // Tenants render independently: one chunk per core, merged back in tenant order so the
    // output is the same as a sequential render (directories first, then files).
    let parts = supercp_core::par::map_chunks(&tenants, |chunk| {
        let mut part = Renderer::new(node, templates);
        for (tenant, domains) in chunk {
            part.tenant(tenant, domains);
        }
        (part.out, part.files, part.diagnostics)
    });
    // Zones are node-wide objects: after the node's files, before the tenants' (the order
    // `render_delta`'s memory keeps).
    let mut files = std::mem::take(&mut r.files);
    files.extend(zones);
    for (out, part_files, diagnostics) in parts {
        r.out.extend(out);
        files.extend(part_files);
        r.diagnostics.extend(diagnostics);
    }
    if r.diagnostics.is_empty() {
        let mut all = r.out;
        all.extend(files);
        Ok(all)
    } else {
        Err(r.diagnostics)
    }
}

impl Renderer<'_> {
    /// A dns node with zones to serve needs to know where they go: refused, naming the node,
    /// rather than silently serving nothing.
    fn check_dns(&mut self, catalog: &Catalog) {
        let dns_role = self.node.spec.roles.iter().any(|r| r == ROLE_DNS);
        if !dns_role || self.node.spec.dns.is_some() || catalog.zones.is_empty() {
            return;
        }
        self.diagnostics.push(
            Diagnostic::new(
                self.node.resource.origin.clone(),
                format!(
                    "node {} has the `dns` role and the repo has {} zone(s), but the node has no \
                     `dns:` block",
                    self.node.resource.name,
                    catalog.zones.len()
                ),
                "give spec.dns.apiUrl, apiKeyFile and nameservers of the PowerDNS this node \
                 converges its zones into (see docs/dns.md), or drop the `dns` role",
            )
            .resource(format!("Node/{}", self.node.resource.name)),
        );
    }
}

/// The name of the placeholder pool (and its file, `<poolDir>/supercp.conf`): a reserved
/// tenant name, so no tenant's pool can take it.
pub const PLACEHOLDER_POOL: &str = "supercp";

/// The PHP versions some tenant renders a pool for (the rule of `Renderer::tenant`: PHP on an
/// installed version, a PHP domain, not suspended).
fn versions_with_a_pool<'c>(
    catalog: &'c Catalog,
    spec: &NodeSpec,
) -> std::collections::BTreeSet<&'c str> {
    let with_php_domain: std::collections::BTreeSet<&supercp_core::TenantName> = catalog
        .domains
        .values()
        .filter(|d| d.resource.spec.php)
        .map(|d| &d.tenant)
        .collect();
    catalog
        .tenants
        .values()
        .filter(|t| !t.resource.spec.suspended && with_php_domain.contains(&t.name))
        .filter_map(|t| t.resource.spec.php.as_ref())
        .map(|p| p.version.value.as_str())
        .filter(|v| spec.php.versions.iter().any(|x| x == v))
        .collect()
}

/// What every site of one tenant shares.
struct Site<'a> {
    homes: &'a str,
    /// The tenant's root-owned log directory.
    logs: &'a str,
    owner: Option<Owner>,
    upload_max: &'a str,
    socket: &'a str,
    suspended: bool,
}

/// Where a rendered file goes and how it is owned.
struct FileSpec<'a> {
    anchor: &'a str,
    rel: &'a str,
    mode: u32,
    owner: Option<Owner>,
    gate: Option<&'a str>,
}

/// The resource an object is rendered for, and where it is declared.
struct Asker {
    resource: ResourceRef,
    origin: Span,
}

struct Renderer<'a> {
    node: &'a NodeRef<'a>,
    templates: &'a Templates,
    /// Directories, in parent-before-child order.
    out: Vec<Desired>,
    /// Files, rendered after every directory exists.
    files: Vec<Desired>,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Renderer<'a> {
    fn new(node: &'a NodeRef<'a>, templates: &'a Templates) -> Renderer<'a> {
        Renderer {
            node,
            templates,
            out: Vec::new(),
            files: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    fn spec(&self) -> &'a NodeSpec {
        self.node.spec
    }

    fn node_resource(&self) -> ResourceRef {
        ResourceRef::new(ResourceKind::Node, self.node.resource.name.clone())
    }

    /// Node paths come from the operator's node file: same grammar as repo strings.
    fn check_node(&mut self) {
        let s = self.spec();
        let mut strings = vec![
            &s.root,
            &s.home_dir,
            &s.web.sites_dir,
            &s.web.user,
            &s.web.fastcgi_params,
            &s.web.mime_types,
            &s.php.socket_dir,
        ];
        strings.extend([
            &s.log_dir,
            &s.accounts.nologin,
            &s.cron.spool_dir,
            &s.cron.group,
        ]);
        strings.extend(s.logrotate.iter());
        strings.extend([&s.tls.challenge_dir, &s.tls.cert_dir]);
        strings.extend(s.tls.listen.iter());
        strings.extend(s.web.http_config.iter());
        strings.extend(
            s.gates
                .iter()
                .filter_map(|g| g.reload_signal.as_ref().map(|r| &r.pid_file)),
        );
        strings.extend(s.web.listen.iter());
        strings.extend(s.web.main_config.iter());
        strings.extend(s.php.run_as.iter());
        strings.extend(s.php.run_as_group.iter());
        let pool_dir = s.php.pool_dir.replace("{version}", "0");
        let main = s
            .php
            .main_config
            .as_ref()
            .map(|m| m.replace("{version}", "0"));
        let mut problems = Vec::new();
        for g in &s.gates {
            if g.timeout_seconds.is_some_and(|t| !(1..=3600).contains(&t)) {
                problems.push(
                    Diagnostic::new(
                        self.node.resource.origin.clone(),
                        format!("gate {}: timeoutSeconds must be 1 to 3600", g.name),
                        "give the seconds its check may take, or leave it out for 120",
                    )
                    .resource(self.node_resource().to_string()),
                );
            }
        }
        for value in strings.into_iter().chain([&pool_dir]).chain(main.iter()) {
            if let Err(e) = check_config_string(value) {
                problems.push(
                    Diagnostic::new(self.node.resource.origin.clone(), e.message, e.help)
                        .resource(self.node_resource().to_string()),
                );
            }
        }
        self.diagnostics.extend(problems);
    }

    fn dir(
        &mut self,
        anchor: String,
        rel: String,
        mode: u32,
        owner: Option<Owner>,
        who: &Asker,
        tenant_data: bool,
    ) {
        self.out.push(Desired {
            object: Object::Dir {
                at: Location { anchor, rel },
                mode,
                owner,
            },
            resource: who.resource.clone(),
            origin: who.origin.clone(),
            unit: Unit::Direct,
            tenant_data,
        });
    }

    /// A root-owned 0644 config file at `path` that `gate` checks.
    fn file(&mut self, path: &str, template: &str, context: &Context, who: &Asker, gate: &str) {
        let (anchor, rel) = path.rsplit_once('/').unwrap_or(("", path));
        let anchor = if anchor.is_empty() { "/" } else { anchor };
        let spec = FileSpec {
            anchor,
            rel,
            mode: 0o644,
            owner: None,
            gate: Some(gate),
        };
        self.file_at(&spec, template, context, who);
    }

    /// A file below `spec.anchor` (a root-owned layout directory; `rel` is walked without
    /// following symlinks).
    fn file_at(&mut self, spec: &FileSpec, template: &str, context: &Context, who: &Asker) {
        match self
            .templates
            .render(template, context, &who.resource.to_string(), &who.origin)
        {
            Ok(content) => self.files.push(Desired {
                object: Object::File {
                    at: Location::new(spec.anchor, spec.rel),
                    content,
                    mode: spec.mode,
                    owner: spec.owner.clone(),
                },
                resource: who.resource.clone(),
                origin: who.origin.clone(),
                unit: Unit::from_gate(spec.gate),
                tenant_data: false,
            }),
            Err(d) => self.diagnostics.push(d),
        }
    }

    fn node_objects(&mut self, catalog: &Catalog) {
        let spec = self.spec();
        let resource = self.node_resource();
        let origin = self.node.resource.origin.clone();
        let who = Asker {
            resource: resource.clone(),
            origin: origin.clone(),
        };
        let root = spec.root.trim_end_matches('/').to_owned();
        let sites_dir = spec.path(&spec.web.sites_dir);
        let mut base = Context::new();
        base.insert("node", &self.node.resource.name);
        // The file, not the line: an edit above a resource must not rewrite its configs.
        base.insert("origin", &origin.file.to_string());
        base.insert("root", &root);
        let wants_runtime_dirs = spec.web.main_config.is_some() || spec.php.main_config.is_some();
        if wants_runtime_dirs {
            let sockets = spec.php.socket_dir.trim_matches('/');
            for rel in ["run", sockets, "var/log/nginx", "var/lib/nginx"] {
                self.dir(
                    if root.is_empty() {
                        "/".into()
                    } else {
                        root.clone()
                    },
                    rel.into(),
                    0o755,
                    None,
                    &who,
                    false,
                );
            }
        }
        // ACME HTTP-01 answers: root-owned, readable by nginx, written only by SuperCP.
        self.dir(
            if root.is_empty() {
                "/".into()
            } else {
                root.clone()
            },
            spec.tls.challenge_dir.trim_matches('/').to_owned(),
            0o755,
            None,
            &who,
            false,
        );
        let http_config = spec.web.http_config.as_ref().map(|p| spec.path(p));
        if let Some(main) = spec.web.main_config.clone() {
            let mut cx = base.clone();
            cx.insert("sites_dir", &sites_dir);
            cx.insert("mime_types", &spec.web.mime_types);
            cx.insert("web_user", &spec.web.user);
            cx.insert("http_config", &http_config);
            cx.insert("fastcgi_params", &spec.web.fastcgi_params);
            self.file(&spec.path(&main), "nginx.conf.tera", &cx, &who, GATE_NGINX);
        }
        if let Some(path) = &http_config {
            let mut cx = base.clone();
            cx.insert("fastcgi_params", &spec.web.fastcgi_params);
            self.file(path, "http.conf.tera", &cx, &who, GATE_NGINX);
        }
        if spec.web.default_server {
            let mut cx = base.clone();
            cx.insert("listen", &spec.web.listen);
            self.file(
                &format!("{sites_dir}/00-default.conf"),
                "default-server.conf.tera",
                &cx,
                &who,
                GATE_NGINX,
            );
        }
        if let Some(path) = &spec.logrotate {
            let reopen: Vec<BTreeMap<&str, String>> = spec
                .gates
                .iter()
                .filter_map(|g| g.reload_signal.as_ref())
                .map(|r| {
                    BTreeMap::from([
                        ("path", r.pid_file.clone()),
                        // Both nginx and PHP-FPM reopen their log files on USR1.
                        ("signal", "USR1".to_owned()),
                    ])
                })
                .collect();
            let mut cx = base.clone();
            cx.insert("log_dir", &spec.path(&spec.log_dir));
            cx.insert("reopen", &reopen);
            let path = spec.path(path);
            let (anchor, rel) = path.rsplit_once('/').unwrap_or(("/", &path));
            let file = FileSpec {
                anchor,
                rel,
                mode: 0o644,
                owner: None,
                gate: None,
            };
            self.file_at(&file, "logrotate.tera", &cx, &who);
        }
        // Every installed version keeps a config that passes `php-fpm -t` whatever the repo
        // holds: its main config (when the node manages it) and at least one pool, the
        // tenants' or the placeholder. A version's last pool going away (its last PHP site
        // removed, a tenant with PHP but no PHP domain) would otherwise fail the gate.
        let pooled = versions_with_a_pool(catalog, spec);
        for version in &spec.php.versions {
            if let Some(main) = &spec.php.main_config {
                let mut cx = base.clone();
                cx.insert("version", version);
                cx.insert("pool_dir", &spec.pool_dir(version));
                let path = spec.path(&main.replace("{version}", version));
                self.file(&path, "php-fpm.conf.tera", &cx, &who, GATE_PHP_FPM);
            }
            if !pooled.contains(version.as_str()) {
                let user = spec.php.run_as.clone().unwrap_or_else(|| "nobody".into());
                let group = spec
                    .php
                    .run_as_group
                    .clone()
                    .unwrap_or_else(|| "nogroup".into());
                let socket_dir = spec.path(&spec.php.socket_dir);
                let mut cx = base.clone();
                cx.insert("version", version);
                cx.insert("user", &user);
                cx.insert("group", &group);
                // Not a tenant's socket: tenant names hold no '.'.
                cx.insert("socket", &format!("{socket_dir}/supercp-php{version}.sock"));
                // `supercp` is a reserved tenant name: no tenant's pool file is `supercp.conf`.
                let path = format!("{}/{PLACEHOLDER_POOL}.conf", spec.pool_dir(version));
                self.file(&path, "placeholder-pool.conf.tera", &cx, &who, GATE_PHP_FPM);
            }
        }
    }

    fn tenant(&mut self, tenant: &TenantEntry, domains: &[&DomainEntry]) {
        let spec = self.spec();
        let name = tenant.name.as_str();
        let resource = ResourceRef::new(ResourceKind::Tenant, name);
        let origin = tenant.resource.origin.clone();
        let who = Asker {
            resource: resource.clone(),
            origin: origin.clone(),
        };
        let homes = spec.path(&spec.home_dir);
        let home = format!("{homes}/{name}");
        let owner = spec.manage_ownership.then(|| Owner {
            user: name.to_owned(),
            group: name.to_owned(),
        });
        let t = &tenant.resource.spec;
        if spec.manage_ownership {
            // The account comes first: every object below is chowned to it.
            let shell = match &t.shell {
                Some(shell) if !t.suspended => shell.value.clone(),
                _ => spec.accounts.nologin.clone(),
            };
            self.out.push(Desired {
                object: Object::Account(Account {
                    name: name.to_owned(),
                    uid: None,
                    home: home.clone(),
                    shell,
                    members: vec![spec.web.user.clone()],
                    locked: t.suspended,
                }),
                resource: resource.clone(),
                origin: origin.clone(),
                unit: Unit::Direct,
                tenant_data: true,
            });
        }
        self.dir(
            homes.clone(),
            name.to_owned(),
            0o750,
            owner.clone(),
            &who,
            true,
        );
        for (rel, mode) in [("domains", 0o750), ("logs", 0o750), ("tmp", 0o700)] {
            self.dir(
                homes.clone(),
                format!("{name}/{rel}"),
                mode,
                owner.clone(),
                &who,
                true,
            );
        }
        // Logs that root-run services write for the tenant: root-owned, group-readable.
        let log_dir = spec.path(&spec.log_dir);
        let log_owner = spec.manage_ownership.then(|| Owner {
            user: "root".to_owned(),
            group: name.to_owned(),
        });
        self.dir(
            log_dir.clone(),
            name.to_owned(),
            0o750,
            log_owner,
            &who,
            true,
        );
        let tenant_logs = format!("{log_dir}/{name}");
        let mut cx = Context::new();
        cx.insert("tenant", name);
        cx.insert("origin", &origin.file.to_string());
        cx.insert("suspended", &t.suspended);
        if !t.ssh_keys.is_empty() {
            self.dir(
                homes.clone(),
                format!("{name}/.ssh"),
                0o700,
                owner.clone(),
                &who,
                true,
            );
            let keys: Vec<&str> = t.ssh_keys.iter().map(|k| k.value.as_str()).collect();
            let mut cx = cx.clone();
            cx.insert("keys", &keys);
            let rel = format!("{name}/.ssh/authorized_keys");
            let file = FileSpec {
                anchor: &homes,
                rel: &rel,
                mode: 0o600,
                owner: owner.clone(),
                gate: None,
            };
            self.file_at(&file, "authorized_keys.tera", &cx, &who);
        }
        if !t.cron.is_empty() {
            let jobs: Vec<BTreeMap<&str, &str>> = t
                .cron
                .iter()
                .map(|j| {
                    BTreeMap::from([
                        ("schedule", j.schedule.value.as_str()),
                        ("command", j.command.value.as_str()),
                    ])
                })
                .collect();
            let mut cx = cx.clone();
            cx.insert("jobs", &jobs);
            let spool = spec.path(&spec.cron.spool_dir);
            // As `crontab -u` leaves it: the user's, group crontab, 0600.
            let file = FileSpec {
                anchor: &spool,
                rel: name,
                mode: 0o600,
                owner: spec.manage_ownership.then(|| Owner {
                    user: name.to_owned(),
                    group: spec.cron.group.clone(),
                }),
                gate: None,
            };
            self.file_at(&file, "crontab.tera", &cx, &who);
        }
        let upload_max = t
            .php
            .as_ref()
            .and_then(|p| p.upload_max_filesize.as_ref())
            .map_or("64M".to_owned(), |v| v.value.clone());
        let socket_dir = spec.path(&spec.php.socket_dir);
        let socket = format!("{socket_dir}/{name}.sock");
        let site = Site {
            homes: &homes,
            logs: &tenant_logs,
            owner,
            upload_max: &upload_max,
            socket: &socket,
            suspended: t.suspended,
        };
        for d in domains {
            self.domain(d, &site);
        }
        let Some(php) = &t.php else { return };
        if !domains.iter().any(|d| d.resource.spec.php) {
            return; // a tenant with no PHP domain gets no pool
        }
        let version = php.version.value.as_str();
        if !spec.php.versions.iter().any(|v| v == version) {
            let at = origin.at(&php.version);
            self.diagnostics.push(
                Diagnostic::new(
                    at,
                    format!(
                        "PHP {version} is not installed on node {}",
                        self.node.resource.name
                    ),
                    format!(
                        "use one of the installed versions: {}",
                        spec.php.versions.join(", ")
                    ),
                )
                .resource(resource.to_string())
                .field("spec.php.version"),
            );
            return;
        }
        if t.suspended {
            return; // a suspended tenant's pool is stopped: its file goes, the reload ends it
        }
        let user = spec.php.run_as.clone().unwrap_or_else(|| name.to_owned());
        let group = spec
            .php
            .run_as_group
            .clone()
            .unwrap_or_else(|| user.clone());
        let mut cx = Context::new();
        cx.insert("tenant", name);
        cx.insert("origin", &origin.file.to_string());
        cx.insert("user", &user);
        cx.insert("group", &group);
        cx.insert("socket", &socket);
        cx.insert("web_user", &spec.web.user);
        cx.insert("home", &home);
        cx.insert("log_dir", &tenant_logs);
        let children = php.max_children();
        cx.insert("max_children", &children);
        cx.insert("pm", php.pm.as_str());
        // dynamic: a quarter warm at start, one to half of the children spare.
        cx.insert("start_servers", &(children / 4).max(1));
        cx.insert("max_spare", &(children / 2).max(1));
        cx.insert(
            "memory_limit",
            &php.memory_limit
                .as_ref()
                .map_or("128M", |v| v.value.as_str()),
        );
        cx.insert(
            "max_execution_time",
            &php.max_execution_time.as_ref().map_or(30, |v| v.value),
        );
        cx.insert("upload_max", &upload_max);
        let ini: BTreeMap<&str, &str> = php
            .ini
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect();
        cx.insert("ini", &ini);
        let path = format!("{}/{name}.conf", spec.pool_dir(version));
        self.file(&path, "pool.conf.tera", &cx, &who, GATE_PHP_FPM);
    }

    /// The certificate an ACME site's HTTPS server points nginx at: issued by the node's CA
    /// once the vhosts are live (`Unit::Issue`), checked by nginx's gate.
    fn certificate(&mut self, domain: &str, names: &[&str], profile: TlsProfile, who: &Asker) {
        let spec = self.spec();
        self.files.push(Desired {
            object: Object::Cert(Cert {
                at: Location::new(
                    spec.path(&spec.tls.cert_dir),
                    format!("{domain}/fullchain.pem"),
                ),
                names: names.iter().map(|n| (*n).to_owned()).collect(),
                key: match profile {
                    TlsProfile::Intermediate => KeyType::EcdsaP256,
                    TlsProfile::Old => KeyType::Rsa2048,
                },
                renewal: Renewal {
                    renew_days: spec.tls.renew_days,
                    ..Renewal::default()
                },
            }),
            resource: who.resource.clone(),
            origin: who.origin.clone(),
            unit: Unit::Issue {
                gate: GATE_NGINX.to_owned(),
            },
            tenant_data: false,
        });
    }

    fn domain(&mut self, d: &DomainEntry, site: &Site) {
        let Site {
            homes,
            logs,
            upload_max,
            socket,
            ..
        } = *site;
        let owner = site.owner.clone();
        let spec = self.spec();
        let domain = d.name.as_str();
        let tenant = d.tenant.as_str();
        let resource = ResourceRef::new(ResourceKind::Domain, domain);
        let origin = d.resource.origin.clone();
        let who = Asker {
            resource: resource.clone(),
            origin: origin.clone(),
        };
        let s = &d.resource.spec;
        let base = format!("{tenant}/domains/{domain}");
        let docroot_rel = s
            .document_root
            .as_ref()
            .map_or("public_html", |r| r.value.as_str());
        self.dir(
            homes.to_owned(),
            base.clone(),
            0o750,
            owner.clone(),
            &who,
            true,
        );
        let mut rel = base.clone();
        for component in docroot_rel.split('/') {
            rel = format!("{rel}/{component}");
            self.dir(
                homes.to_owned(),
                rel.clone(),
                0o750,
                owner.clone(),
                &who,
                true,
            );
        }
        self.dir(
            homes.to_owned(),
            format!("{base}/logs"),
            0o750,
            owner,
            &who,
            true,
        );
        let mut server_names = vec![domain];
        server_names.extend(d.aliases.iter().map(|a| a.as_str()));
        let redirects: Vec<BTreeMap<&str, String>> = s
            .redirects
            .iter()
            .map(|r| {
                BTreeMap::from([
                    ("from", r.from.value.clone()),
                    ("to", r.to.value.clone()),
                    ("code", r.code.as_ref().map_or(301, |c| c.value).to_string()),
                ])
            })
            .collect();
        let mut cx = Context::new();
        cx.insert("domain", domain);
        cx.insert("origin", &origin.file.to_string());
        cx.insert("listen", &spec.web.listen);
        cx.insert("server_names", &server_names);
        cx.insert("document_root", &format!("{homes}/{base}/{docroot_rel}"));
        cx.insert("logs_dir", logs);
        cx.insert("tenant", tenant);
        cx.insert("suspended", &site.suspended);
        cx.insert(
            "site_logs",
            &(spec.web.site_logs == supercp_core::resource::SiteLogs::Domain),
        );
        cx.insert("php", &s.php);
        cx.insert("fpm_socket", socket);
        cx.insert("upload_max", upload_max);
        cx.insert("redirects", &redirects);
        cx.insert(
            "redirect_to",
            &s.redirect_to.as_ref().map(|r| r.value.clone()),
        );
        cx.insert("challenge_dir", &spec.path(&spec.tls.challenge_dir));
        // HTTP always (ACME answers, and the site or a redirect to HTTPS); HTTPS with `tls`.
        let mut servers = vec![BTreeMap::from([
            ("https", serde_json::Value::Bool(false)),
            ("listen", serde_json::json!(spec.web.listen)),
            (
                "redirect_https",
                serde_json::Value::Bool(s.tls.as_ref().is_some_and(|t| t.force_https)),
            ),
        ])];
        if let Some(t) = &s.tls {
            let (cert, key) = match t.certificate {
                CertSource::Acme => {
                    self.certificate(domain, &server_names, t.profile, &who);
                    let dir = spec.cert_dir_for(domain);
                    (format!("{dir}/fullchain.pem"), format!("{dir}/privkey.pem"))
                }
                CertSource::Files => (
                    t.cert_file
                        .as_ref()
                        .map(|f| f.value.clone())
                        .unwrap_or_default(),
                    t.key_file
                        .as_ref()
                        .map(|f| f.value.clone())
                        .unwrap_or_default(),
                ),
            };
            let hsts = t.hsts.as_ref().map(|h| {
                let mut value = format!("max-age={}", h.max_age);
                if h.include_sub_domains {
                    value.push_str("; includeSubDomains");
                }
                if h.preload {
                    value.push_str("; preload");
                }
                value
            });
            let listen: Vec<String> = spec
                .tls
                .listen
                .iter()
                .map(|l| {
                    if t.http2 {
                        format!("{l} ssl http2")
                    } else {
                        format!("{l} ssl")
                    }
                })
                .collect();
            servers.push(BTreeMap::from([
                ("https", serde_json::Value::Bool(true)),
                ("listen", serde_json::json!(listen)),
                ("redirect_https", serde_json::Value::Bool(false)),
            ]));
            let profile = match t.profile {
                TlsProfile::Intermediate => "intermediate",
                TlsProfile::Old => "old",
            };
            cx.insert(
                "tls",
                &serde_json::json!({"cert": cert, "key": key, "hsts": hsts, "profile": profile}),
            );
        }
        cx.insert("https_port", &https_port_suffix(&spec.tls.listen));
        cx.insert("servers", &servers);
        let path = format!("{}/{domain}.conf", spec.path(&spec.web.sites_dir));
        self.file(&path, "vhost.conf.tera", &cx, &who, GATE_NGINX);
    }
}

/// `:PORT` for redirects to HTTPS when the first HTTPS `listen` is not on 443 (`443`,
/// `[::]:443` and `127.0.0.1:443` need none).
fn https_port_suffix(listen: &[String]) -> String {
    let Some(first) = listen.first() else {
        return String::new();
    };
    let port = first.rsplit_once(':').map_or(first.as_str(), |(_, p)| p);
    if port == "443" || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        String::new()
    } else {
        format!(":{port}")
    }
}

/// Tera hides the useful part of an error in its source chain.
fn error_chain(e: &tera::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn redirects_to_https_name_the_port_only_when_it_is_not_443() {
        let l = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(super::https_port_suffix(&l(&["443", "[::]:443"])), "");
        assert_eq!(super::https_port_suffix(&l(&["127.0.0.1:443"])), "");
        assert_eq!(super::https_port_suffix(&l(&["127.0.0.1:8443"])), ":8443");
        assert_eq!(super::https_port_suffix(&l(&["[::1]:8443"])), ":8443");
        assert_eq!(super::https_port_suffix(&l(&[])), "");
    }
}
