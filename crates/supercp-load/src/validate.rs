//! Every rule on parsed resources: names, references, duplicates, hostnames claimed twice,
//! package limits, and the strict grammar of strings that reach config files.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use supercp_core::catalog::{DomainEntry, TenantEntry};
use supercp_core::names::{check_config_string, check_resource_name, NameError};
use supercp_core::resource::{Document, DomainSpec, TenantSpec};
use supercp_core::{Catalog, Diagnostic, DomainName, Loc, Resource, Span, TenantName};

use crate::outline::{Pos, Role};
use crate::parse::ParsedDoc;
use crate::LoadOptions;

/// Finds where a field is written, for the few rules whose field carries no position (a
/// `bool`, a map key): `(file, a line inside the document, dotted path, key or value)` →
/// `(line, col)` in the file. Only called when a rule fails, so it may re-read the document.
pub type Locate<'a> = &'a (dyn Fn(&str, u32, &str, Role) -> Option<Pos> + Sync);

/// `php_admin_value` keys a tenant may set through `php.ini`.
pub const INI_ALLOWLIST: &[&str] = &[
    "display_errors",
    "error_reporting",
    "log_errors",
    "max_input_time",
    "max_input_vars",
    "session.gc_maxlifetime",
    "date.timezone",
    "default_charset",
    "short_open_tag",
    "output_buffering",
    "max_file_uploads",
    "allow_url_fopen",
    "zlib.output_compression",
];

/// Login shells a tenant may have.
pub const SHELL_ALLOWLIST: &[&str] = &[
    "/usr/sbin/nologin",
    "/bin/bash",
    "/bin/sh",
    "/usr/bin/rbash",
];

/// Collects every resource into a catalog, pushing a diagnostic for every problem.
///
/// `unparsed` holds `(kind, name)` of the documents that named themselves but did not parse.
/// A reference to a resource that is declared but invalid (it did not parse, or its name broke
/// the grammar) is not reported as missing: the declaration carries its own diagnostic, and a
/// second one at every reference would only hide it.
pub fn build_catalog(
    docs: Vec<ParsedDoc>,
    unparsed: Vec<(String, String)>,
    options: &LoadOptions,
    locate: Locate,
    out: &mut Vec<Diagnostic>,
) -> Catalog {
    let mut catalog = Catalog::default();
    let mut declared: BTreeSet<(String, String)> = unparsed.into_iter().collect();
    let mut seen: BTreeMap<(String, String), Span> = BTreeMap::new();
    let mut tenant_docs = Vec::new();
    let mut domain_docs = Vec::new();
    let mut zone_docs = Vec::new();
    for doc in docs {
        let (kind, file, name) = match &doc {
            ParsedDoc::Node(f, d) => ("Node", f, &d.metadata.name),
            ParsedDoc::Package(f, d) => ("Package", f, &d.metadata.name),
            ParsedDoc::Tenant(f, d) => ("Tenant", f, &d.metadata.name),
            ParsedDoc::Domain(f, d) => ("Domain", f, &d.metadata.name),
            ParsedDoc::Zone(f, d) => ("Zone", f, &d.metadata.name),
        };
        let span = Span::new(file.clone(), name.line, name.col);
        declared.insert((kind.to_owned(), name.value.clone()));
        let key = (kind.to_owned(), name.value.to_ascii_lowercase());
        if let Some(first) = seen.get(&key) {
            out.push(
                Diagnostic::new(
                    span,
                    format!(
                        "duplicate {kind} {:?}, first declared at {first}",
                        name.value
                    ),
                    "give each resource of a kind a unique metadata.name",
                )
                .resource(format!("{kind}/{}", name.value))
                .field("metadata.name"),
            );
            continue;
        }
        seen.insert(key, span.clone());
        match doc {
            ParsedDoc::Node(f, d) => {
                let cx = Cx::new(&f, "Node", &d.metadata.name.value, locate, out);
                check_labels(&cx, &d);
                name_rule(&cx, &d.metadata.name, check_resource_name);
                check_node_tls(&cx, &d.spec.tls, &d.metadata.name);
                check_node_dns(&cx, &d.spec, &d.metadata.name);
                catalog
                    .nodes
                    .insert(d.metadata.name.value.clone(), resource(span, *d));
            }
            ParsedDoc::Package(f, d) => {
                let cx = Cx::new(&f, "Package", &d.metadata.name.value, locate, out);
                check_labels(&cx, &d);
                name_rule(&cx, &d.metadata.name, check_resource_name);
                if let Some(notes) = &d.spec.notes {
                    cx.string("spec.notes", notes);
                }
                catalog
                    .packages
                    .insert(d.metadata.name.value.clone(), resource(span, d));
            }
            ParsedDoc::Tenant(f, d) => tenant_docs.push((f, span, d)),
            ParsedDoc::Domain(f, d) => domain_docs.push((f, span, d)),
            ParsedDoc::Zone(f, d) => zone_docs.push((f, span, d)),
        }
    }
    for (file, span, doc) in tenant_docs {
        let cx = Cx::new(&file, "Tenant", &doc.metadata.name.value, locate, out);
        if let Some(entry) = check_tenant(&cx, span, doc, &catalog, &declared, options) {
            catalog.tenants.insert(entry.name.clone(), entry);
        }
    }
    let mut hostnames: BTreeMap<DomainName, Span> = BTreeMap::new();
    for (file, span, doc) in domain_docs {
        let cx = Cx::new(&file, "Domain", &doc.metadata.name.value, locate, out);
        if let Some(entry) = check_domain(&cx, span, doc, &catalog, &declared, &mut hostnames) {
            catalog.domains.insert(entry.name.clone(), entry);
        }
    }
    check_package_limits(&catalog, locate, out);
    crate::zones::check_zones(zone_docs, &mut catalog, &declared, locate, out);
    catalog
}

/// Where diagnostics go for one resource.
pub(crate) struct Cx<'a> {
    file: &'a Arc<str>,
    resource: String,
    locate: Locate<'a>,
    out: std::cell::RefCell<&'a mut Vec<Diagnostic>>,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(
        file: &'a Arc<str>,
        kind: &str,
        name: &str,
        locate: Locate<'a>,
        out: &'a mut Vec<Diagnostic>,
    ) -> Cx<'a> {
        Cx {
            file,
            locate,
            // Escaped: an invalid name may hold a newline, a NUL or a carriage return that
            // would split or overwrite the error line on a terminal.
            resource: format!("{kind}/{}", name.escape_debug()),
            out: std::cell::RefCell::new(out),
        }
    }

    pub(crate) fn error<T>(&self, field: &str, at: &Loc<T>, message: String, help: &str) {
        let span = Span::new(self.file.clone(), at.line, at.col);
        let d = Diagnostic::new(span, message, help)
            .resource(&self.resource)
            .field(field);
        self.out.borrow_mut().push(d);
    }

    /// Where `path` is written in the document that holds `near`, else `near` itself.
    pub(crate) fn find<T>(&self, near: &Loc<T>, path: &str, role: Role) -> Loc<()> {
        let (line, col) =
            (self.locate)(self.file, near.line, path, role).unwrap_or((near.line, near.col));
        Loc::new((), line, col)
    }

    pub(crate) fn name_error<T>(&self, field: &str, at: &Loc<T>, e: NameError) {
        self.error(field, at, e.message, e.help);
    }

    /// The config-string grammar; true when the value passed.
    fn string(&self, field: &str, value: &Loc<String>) -> bool {
        match check_config_string(&value.value) {
            Ok(()) => true,
            Err(e) => {
                self.name_error(field, value, e);
                false
            }
        }
    }

    /// A value that must match `ok`, with the help text to show when it does not.
    fn pattern(&self, field: &str, value: &Loc<String>, ok: bool, what: &str) {
        if self.string(field, value) && !ok {
            self.error(
                field,
                value,
                format!("{:?} is not {what}", value.value),
                "see the field's description in schemas/",
            );
        }
    }
}

pub(crate) fn resource<S>(origin: Span, doc: Document<S>) -> Resource<S> {
    Resource {
        name: doc.metadata.name.value,
        origin,
        spec: doc.spec,
    }
}

fn name_rule(cx: &Cx, name: &Loc<String>, rule: fn(&str) -> Result<(), NameError>) {
    if let Err(e) = rule(&name.value) {
        cx.name_error("metadata.name", name, e);
    }
}

pub(crate) fn check_labels<S>(cx: &Cx, doc: &Document<S>) {
    for (key, value) in &doc.metadata.labels {
        let field = format!("metadata.labels.{}", key.escape_debug());
        if let Err(e) = check_config_string(key) {
            let at = cx.find(value, &format!("metadata.labels.{key}"), Role::Key);
            cx.error(
                &field,
                &at,
                e.message.replacen("value", "label key", 1),
                "write label keys without newlines, NUL, bidi controls, ';', '{', '}', quotes, '\\' or '$'",
            );
        }
        cx.string(&field, value);
    }
}

fn check_tenant(
    cx: &Cx,
    span: Span,
    doc: Document<TenantSpec>,
    catalog: &Catalog,
    declared: &BTreeSet<(String, String)>,
    options: &LoadOptions,
) -> Option<TenantEntry> {
    check_labels(cx, &doc);
    let name = match TenantName::parse(&doc.metadata.name.value) {
        Ok(n) if options.system_accounts.contains(n.as_str()) => {
            cx.error(
                "metadata.name",
                &doc.metadata.name,
                format!(
                    "tenant name {:?} is a system account of this node (UID below 1000)",
                    n.as_str()
                ),
                "pick a name that is not an existing system account",
            );
            None
        }
        Ok(n) => Some(n),
        Err(e) => {
            cx.name_error("metadata.name", &doc.metadata.name, e);
            None
        }
    };
    let spec = &doc.spec;
    let package_declared = declared.contains(&("Package".to_owned(), spec.package.value.clone()));
    if !catalog.packages.contains_key(&spec.package.value) && !package_declared {
        cx.error(
            "spec.package",
            &spec.package,
            format!("package {:?} does not exist", spec.package.value),
            "declare a Package with this name or use an existing one",
        );
    }
    if let Some(php) = &spec.php {
        cx.pattern(
            "spec.php.version",
            &php.version,
            is_php_version(&php.version.value),
            "a PHP version like 8.2",
        );
        if let Some(v) = &php.memory_limit {
            cx.pattern(
                "spec.php.memoryLimit",
                v,
                is_size(&v.value),
                "a size like 256M",
            );
        }
        if let Some(v) = &php.upload_max_filesize {
            cx.pattern(
                "spec.php.uploadMaxFilesize",
                v,
                is_size(&v.value),
                "a size like 64M",
            );
        }
        if let Some(c) = &php.max_children {
            if c.value == 0 {
                cx.error(
                    "spec.php.maxChildren",
                    c,
                    "maxChildren must be at least 1".into(),
                    "set maxChildren to 1 or more",
                );
            }
        }
        for (key, value) in &php.ini {
            let field = format!("spec.php.ini.{key}");
            if INI_ALLOWLIST.contains(&key.as_str()) {
                cx.pattern(
                    &field,
                    value,
                    !value.value.contains(char::is_whitespace),
                    "a single word",
                );
            } else {
                cx.error(
                    &field,
                    value,
                    format!("ini setting {key:?} is not on the allowlist"),
                    "use one of the settings listed in docs/resources.md",
                );
            }
        }
    }
    if let Some(shell) = &spec.shell {
        if cx.string("spec.shell", shell) && !SHELL_ALLOWLIST.contains(&shell.value.as_str()) {
            cx.error(
                "spec.shell",
                shell,
                format!("shell {:?} is not allowed", shell.value),
                "use /usr/sbin/nologin, /bin/bash, /bin/sh or /usr/bin/rbash",
            );
        }
    }
    for (i, key) in spec.ssh_keys.iter().enumerate() {
        cx.pattern(
            &format!("spec.sshKeys[{i}]"),
            key,
            is_ssh_key(&key.value),
            "an SSH public key (type, base64 key, optional comment)",
        );
    }
    for (i, job) in spec.cron.iter().enumerate() {
        let field = format!("spec.cron[{i}].schedule");
        if cx.string(&field, &job.schedule) {
            if let Err(why) = check_cron_schedule(&job.schedule.value) {
                cx.error(
                    &field,
                    &job.schedule,
                    format!("schedule {:?}: {why}", job.schedule.value),
                    "write five fields: minute 0-59, hour 0-23, day of month 1-31, month 1-12, \
                     day of week 0-7; each *, N, N-M or a list of them, optionally /STEP (1 or more)",
                );
            }
        }
        let field = format!("spec.cron[{i}].command");
        if !cx.string(&field, &job.command) {
            continue;
        }
        if job.command.value.trim().is_empty() {
            cx.error(
                &field,
                &job.command,
                "the cron command is empty".into(),
                "give the command to run, e.g. php cron.php, or remove the job",
            );
        } else if job.command.value.contains('%') {
            // cron turns `%` into a newline and feeds the rest to the command's stdin.
            cx.error(
                &field,
                &job.command,
                "contains '%', which cron turns into a newline".into(),
                "put the command in a script in the tenant's home and run that",
            );
        }
    }
    let name = name?;
    Some(TenantEntry {
        resource: resource(span, doc),
        name,
    })
}

/// The tenant a resource's `spec.tenant` names; `None` (reported) when there is none, or
/// (not reported again) when it is declared but invalid.
pub(crate) fn tenant_ref(
    cx: &Cx,
    tenant: &Loc<String>,
    catalog: &Catalog,
    declared: &BTreeSet<(String, String)>,
) -> Option<TenantName> {
    match TenantName::parse(&tenant.value) {
        Ok(t) if catalog.tenants.contains_key(&t) => Some(t),
        _ if declared.contains(&("Tenant".to_owned(), tenant.value.clone())) => None,
        _ => {
            cx.error(
                "spec.tenant",
                tenant,
                format!("tenant {:?} does not exist", tenant.value),
                "declare a Tenant with this name or use an existing one",
            );
            None
        }
    }
}

fn check_domain(
    cx: &Cx,
    span: Span,
    doc: Document<DomainSpec>,
    catalog: &Catalog,
    declared: &BTreeSet<(String, String)>,
    hostnames: &mut BTreeMap<DomainName, Span>,
) -> Option<DomainEntry> {
    check_labels(cx, &doc);
    let spec = &doc.spec;
    let mut claim = |field: &str, at: &Loc<String>| -> Option<DomainName> {
        let host = match DomainName::parse(&at.value) {
            Ok(h) => h,
            Err(e) => {
                cx.name_error(field, at, e);
                return None;
            }
        };
        let here = Span::new(cx.file.clone(), at.line, at.col);
        if let Some(first) = hostnames.get(&host) {
            cx.error(
                field,
                at,
                format!("hostname {:?} is already claimed at {first}", host.as_str()),
                "serve each hostname from one Domain only (as its name or an alias)",
            );
            return None;
        }
        hostnames.insert(host.clone(), here);
        Some(host)
    };
    let name = claim("metadata.name", &doc.metadata.name);
    let aliases: Vec<Option<DomainName>> = spec
        .aliases
        .iter()
        .enumerate()
        .map(|(i, a)| claim(&format!("spec.aliases[{i}]"), a))
        .collect();
    let tenant = tenant_ref(cx, &spec.tenant, catalog, declared);
    if let Some(t) = tenant.as_ref().and_then(|t| catalog.tenants.get(t)) {
        if spec.php && t.resource.spec.php.is_none() {
            let at = cx.find(&doc.metadata.name, "spec.php", Role::Value);
            cx.error(
                "spec.php",
                &at,
                format!(
                    "the domain runs PHP but Tenant/{} has no PHP (no spec.php)",
                    t.name
                ),
                "give the tenant `php: {version: \"8.2\"}`, or set `php: false` on the domain",
            );
        }
    }
    if let Some(root) = &spec.document_root {
        cx.pattern(
            "spec.documentRoot",
            root,
            is_relative_path(&root.value),
            "a relative path below the domain's folder (no '..')",
        );
    }
    for (i, r) in spec.redirects.iter().enumerate() {
        cx.pattern(
            &format!("spec.redirects[{i}].from"),
            &r.from,
            // nginx matches the decoded path: a query or an escape there would never match.
            is_url_path(&r.from.value) && !r.from.value.contains(['?', '%']),
            "a path starting with '/', without '?' or '%' (the request's query is kept)",
        );
        cx.pattern(
            &format!("spec.redirects[{i}].to"),
            &r.to,
            (is_url_path(&r.to.value) || is_http_url(&r.to.value)) && !r.to.value.contains('?'),
            "a path or an http(s) URL without '?' (the request's query is appended)",
        );
        if let Some(code) = &r.code {
            if ![301, 302, 307, 308].contains(&code.value) {
                cx.error(
                    &format!("spec.redirects[{i}].code"),
                    code,
                    format!("redirect code {} is not allowed", code.value),
                    "use 301, 302, 307 or 308",
                );
            }
        }
    }
    if let Some(to) = &spec.redirect_to {
        cx.pattern(
            "spec.redirectTo",
            to,
            is_http_url(&to.value) && !to.value.contains('?'),
            "an http(s) URL without '?' (the request's path and query are appended)",
        );
    }
    if let Some(tls) = &spec.tls {
        check_tls(cx, tls, &doc.metadata.name);
    }
    let aliases = aliases.into_iter().collect::<Option<Vec<_>>>()?;
    Some(DomainEntry {
        resource: resource(span, doc),
        name: name?,
        tenant: tenant?,
        aliases,
    })
}

/// A node's `spec.tls`: a CA it can reach over HTTPS, a contact that is an e-mail address,
/// a renewal window shorter than any certificate's life, at least one order per run.
fn check_node_tls(cx: &Cx, tls: &supercp_core::resource::TlsLayout, name: &Loc<String>) {
    let dir = &tls.acme_directory;
    let known = ["letsencrypt", "letsencrypt-staging"].contains(&dir.as_str());
    let url = dir.starts_with("https://")
        && dir.len() > "https://".len()
        && !dir.chars().any(|c| c.is_control() || c.is_whitespace());
    if !known && !url {
        cx.error(
            "spec.tls.acmeDirectory",
            name,
            format!("{dir:?} is not an ACME directory"),
            "use letsencrypt, letsencrypt-staging, or the CA's https:// directory URL",
        );
    }
    if let Some(email) = &tls.acme_email {
        let ok = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        }) && !email
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "<>:,;\"".contains(c));
        if !ok {
            cx.error(
                "spec.tls.acmeEmail",
                name,
                format!("{email:?} is not an e-mail address"),
                "give the address the CA should write to about expiring certificates",
            );
        }
    }
    if tls.renew_days > 60 {
        cx.error(
            "spec.tls.renewDays",
            name,
            format!(
                "renewDays {} is longer than most certificates live",
                tls.renew_days
            ),
            "use 30 (Let's Encrypt's certificates live 90 days, some CAs' less)",
        );
    }
    if tls.max_orders_per_run == 0 {
        cx.error(
            "spec.tls.maxOrdersPerRun",
            name,
            "maxOrdersPerRun 0 would never order a certificate".into(),
            "use 50, or a number your CA's rate limits allow",
        );
    }
}

/// A node's `spec.dns`: an API URL with nothing a request could be
/// steered by (plain HTTP only on loopback: the key travels in a header), an absolute key
/// file, a server id and nameservers in their grammars.
fn check_node_dns(cx: &Cx, spec: &supercp_core::resource::NodeSpec, name: &Loc<String>) {
    // A dns node without the block is refused at render, when the repo has zones for it.
    let Some(dns) = &spec.dns else {
        return;
    };
    if let Err(why) = api_url(&dns.api_url) {
        cx.error(
            "spec.dns.apiUrl",
            name,
            format!("{:?} {why}", dns.api_url),
            "use the API's base URL, like http://127.0.0.1:8081 (https:// for a remote server)",
        );
    }
    if !dns.api_key_file.starts_with('/') && !dns.api_key_file.starts_with("{state}/") {
        cx.error(
            "spec.dns.apiKeyFile",
            name,
            format!("{:?} is not an absolute path", dns.api_key_file),
            "give the absolute path of a root-owned file, mode 0600, holding the API key",
        );
    }
    let id_ok = !dns.server_id.is_empty()
        && dns.server_id.len() <= 63
        && dns
            .server_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !id_ok {
        cx.error(
            "spec.dns.serverId",
            name,
            format!("{:?} is not a server id", dns.server_id),
            "use letters, digits, '.', '_' and '-' (PowerDNS's own server is `localhost`)",
        );
    }
    if dns.nameservers.is_empty() {
        cx.error(
            "spec.dns.nameservers",
            name,
            "no nameservers".into(),
            "name at least one nameserver (two on different networks for a real domain), as an \
             absolute host name like ns1.example.net.",
        );
    }
    let names = dns
        .nameservers
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("spec.dns.nameservers[{i}]"), n))
        .chain(
            dns.hostmaster
                .iter()
                .map(|h| ("spec.dns.hostmaster".to_owned(), h)),
        );
    for (field, host) in names {
        let absolute = host.ends_with('.') && host.len() > 1;
        if let Err(e) = supercp_core::dns::target(host, ".").and_then(|t| {
            if absolute {
                Ok(t)
            } else {
                Err(supercp_core::dns::RecordError {
                    message: format!("{host:?} is not absolute"),
                    help: "end the name with a dot: ns1.example.net.",
                })
            }
        }) {
            cx.error(&field, name, e.message, e.help);
        }
    }
    if !(1..=300).contains(&dns.timeout_seconds) {
        cx.error(
            "spec.dns.timeoutSeconds",
            name,
            format!("timeoutSeconds {} is outside 1 to 300", dns.timeout_seconds),
            "use 10, or up to 300 for a slow remote server",
        );
    }
}

/// Why a DNS API URL is refused: `http(s)://host[:port]` and nothing else, plain HTTP only
/// to a loopback host.
fn api_url(url: &str) -> Result<(), &'static str> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("is not an http:// or https:// URL")?;
    let rest = rest.trim_end_matches('/');
    let host_ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !host_ok {
        return Err("has a path, a query or characters a host and port do not have");
    }
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => rest.split(':').next().unwrap_or(""),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match scheme {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("sends the API key in clear to a host that is not loopback"),
        _ => Err("is not an http:// or https:// URL"),
    }
}

/// `spec.tls`: a bring-your-own certificate names both files, as absolute node paths; an
/// ACME one names neither; HSTS preload needs what browsers' preload lists need.
fn check_tls(cx: &Cx, tls: &supercp_core::resource::Tls, name: &Loc<String>) {
    use supercp_core::resource::CertSource;
    let files = [
        ("spec.tls.certFile", &tls.cert_file),
        ("spec.tls.keyFile", &tls.key_file),
    ];
    match tls.certificate {
        CertSource::Files => {
            for (field, file) in files {
                match file {
                    Some(path) => cx.pattern(
                        field,
                        path,
                        path.value.starts_with('/') && !path.value.split('/').any(|c| c == ".."),
                        "an absolute path on the node (no '..')",
                    ),
                    None => cx.error(
                        field,
                        name,
                        format!("{field} is missing: `certificate: files` needs certFile and keyFile"),
                        "give the paths of the certificate chain and its key on the node, or use `certificate: acme`",
                    ),
                }
            }
        }
        CertSource::Acme => {
            for (field, file) in files {
                if let Some(path) = file {
                    cx.error(
                        field,
                        path,
                        format!("{field} is set but the certificate comes from ACME"),
                        "set `certificate: files` to bring your own, or remove the file paths",
                    );
                }
            }
        }
    }
    if let Some(hsts) = &tls.hsts {
        if hsts.preload && (!hsts.include_sub_domains || hsts.max_age < 31_536_000) {
            cx.error(
                "spec.tls.hsts.preload",
                name,
                "HSTS preload needs includeSubDomains and a maxAge of at least 31536000".into(),
                "set includeSubDomains: true and maxAge: 31536000 or more, or drop preload",
            );
        }
    }
}

fn check_package_limits(catalog: &Catalog, locate: Locate, out: &mut Vec<Diagnostic>) {
    let mut domain_count: BTreeMap<&TenantName, u32> = BTreeMap::new();
    for d in catalog.domains.values() {
        *domain_count.entry(&d.tenant).or_default() += 1;
    }
    for t in catalog.tenants.values() {
        let Some(package) = catalog.packages.get(&t.resource.spec.package.value) else {
            continue;
        };
        let cx = Cx::new(
            &t.resource.origin.file,
            "Tenant",
            t.name.as_str(),
            locate,
            out,
        );
        let used = domain_count.get(&t.name).copied().unwrap_or(0);
        if let Some(max) = &package.spec.max_domains {
            if used > max.value {
                cx.error(
                    "spec.package",
                    &t.resource.spec.package,
                    format!(
                        "tenant has {used} domains but package {:?} allows {}",
                        package.name, max.value
                    ),
                    "raise the package's maxDomains or move domains to another tenant",
                );
            }
        }
        let (Some(max), Some(php)) = (&package.spec.max_php_workers, &t.resource.spec.php) else {
            continue;
        };
        let workers = php.max_children();
        if workers > max.value {
            // Point at maxChildren when it is written, else at the package line.
            let (field, at) = match &php.max_children {
                Some(c) => ("spec.php.maxChildren", Loc::new((), c.line, c.col)),
                None => {
                    let p = &t.resource.spec.package;
                    ("spec.package", Loc::new((), p.line, p.col))
                }
            };
            cx.error(
                field,
                &at,
                format!(
                    "the pool's maxChildren is {workers}{} but package {:?} allows {} PHP workers",
                    if php.max_children.is_none() {
                        " (the default)"
                    } else {
                        ""
                    },
                    package.name,
                    max.value
                ),
                "lower spec.php.maxChildren or raise the package's maxPhpWorkers",
            );
        }
    }
}

fn is_php_version(v: &str) -> bool {
    let mut parts = v.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

fn is_size(v: &str) -> bool {
    let digits = v.trim_end_matches(['K', 'M', 'G']);
    !digits.is_empty() && digits.len() + 1 >= v.len() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn is_ssh_key(v: &str) -> bool {
    let mut parts = v.split(' ');
    let kind = parts.next().unwrap_or("");
    let key = parts.next().unwrap_or("");
    let kinds = [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    kinds.contains(&kind)
        && key.len() >= 16
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// The five numeric fields cron reads (no names, no `@reboot`): each a list of `*`, `N` or
/// `N-M` within the field's range, `*` and ranges optionally stepped by `/STEP` with STEP ≥ 1.
fn check_cron_schedule(v: &str) -> Result<(), String> {
    const FIELDS: [(&str, u32, u32); 5] = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day of month", 1, 31),
        ("month", 1, 12),
        ("day of week", 0, 7),
    ];
    let fields: Vec<&str> = v.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "has {} fields, cron needs 5 (minute hour day-of-month month day-of-week)",
            fields.len()
        ));
    }
    let number = |text: &str, name: &str, min: u32, max: u32| -> Result<u32, String> {
        let n: u32 = text
            .parse()
            .ok()
            .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("{name} {text:?} is not a number"))?;
        if n < min || n > max {
            return Err(format!("{name} {n} is out of range {min}-{max}"));
        }
        Ok(n)
    };
    for (field, (name, min, max)) in fields.iter().zip(FIELDS) {
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            if let Some(step) = step {
                let n: u32 = step
                    .parse()
                    .ok()
                    .filter(|_| step.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("{name} step {step:?} is not a number"))?;
                if n == 0 {
                    return Err(format!("{name} step /0 never advances"));
                }
            }
            match range.split_once('-') {
                _ if range == "*" => {}
                Some((from, to)) => {
                    let (from, to) = (number(from, name, min, max)?, number(to, name, min, max)?);
                    if from > to {
                        return Err(format!("{name} range {from}-{to} runs backwards"));
                    }
                }
                None if step.is_some() => {
                    return Err(format!("{name} {item:?}: a step follows * or a range N-M"));
                }
                None => {
                    number(range, name, min, max)?;
                }
            }
        }
    }
    Ok(())
}

fn is_relative_path(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with('/')
        && v.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

fn is_url_path(v: &str) -> bool {
    v.starts_with('/')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._~%-+=&?:@!,*()".contains(&b))
}

fn is_http_url(v: &str) -> bool {
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let (host, path) = r.split_once('/').map_or((r, ""), |(h, p)| (h, p));
        let host = host.split(':').next().unwrap_or("");
        // A redirect may point at an IPv4 address (only a Domain's own names may not be one).
        let host_ok = DomainName::parse(host).is_ok() || host.parse::<std::net::Ipv4Addr>().is_ok();
        host_ok && is_url_path(&format!("/{path}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_versions_follow_their_grammar() {
        assert!(is_size("256M") && is_size("1024") && !is_size("M") && !is_size("12MB"));
        assert!(is_php_version("8.2") && !is_php_version("8") && !is_php_version("8.2.1"));
    }

    #[test]
    fn cron_fields_out_of_range_zero_steps_and_backward_ranges_are_refused() {
        for ok in [
            "*/5 * * * *",
            "0 3 * * 0-7",
            "0,30 8-18/2 1-31 1-12 *",
            "59 23 31 12 7",
        ] {
            assert_eq!(check_cron_schedule(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("60 * * * *", "minute 60 is out of range 0-59"),
            ("* 24 * * *", "hour 24 is out of range 0-23"),
            ("* * 0 * *", "day of month 0 is out of range 1-31"),
            ("* * * 13 *", "month 13 is out of range 1-12"),
            ("* * * * 8", "day of week 8 is out of range 0-7"),
            ("*/0 * * * *", "minute step /0 never advances"),
            ("5-1 * * * *", "minute range 5-1 runs backwards"),
            (
                "5/10 * * * *",
                "minute \"5/10\": a step follows * or a range N-M",
            ),
            ("1,,2 * * * *", "minute \"\" is not a number"),
            ("* * * *", "has 4 fields, cron needs 5"),
        ] {
            let err = check_cron_schedule(bad).expect_err(bad);
            assert!(err.starts_with(why), "{bad}: {err}");
        }
    }

    #[test]
    fn urls_and_paths_follow_their_grammar() {
        assert!(is_url_path("/old?x=1") && !is_url_path("old") && !is_url_path("/a b"));
        assert!(is_http_url("https://example.com/x") && !is_http_url("ftp://example.com"));
        assert!(
            is_http_url("http://192.0.2.1:8080/x"),
            "a redirect may name an IP"
        );
        assert!(is_relative_path("public_html/web") && !is_relative_path("../etc"));
    }
}
