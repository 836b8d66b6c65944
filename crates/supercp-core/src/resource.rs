//! The resource kinds of `apiVersion: supercp/v1`, as written in YAML (camelCase). Each spec
//! derives a JSON Schema (schemars) written to `schemas/` by `supercp schema`.
//!
//! Fields that an error may point at are `Loc<T>`: they carry their line and column.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diagnostic::Loc;

pub const API_VERSION: &str = "supercp/v1";

/// The kinds this version knows, in the order they are listed in help texts.
pub const KINDS: &[&str] = &["Node", "Package", "Tenant", "Domain", "Zone"];

/// The envelope every resource shares.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document<S> {
    /// Always `supercp/v1`.
    pub api_version: Loc<String>,
    pub kind: Loc<String>,
    pub metadata: Metadata,
    pub spec: S,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub name: Loc<String>,
    /// Free-form labels; values must pass the config-string grammar.
    #[serde(default)]
    pub labels: BTreeMap<String, Loc<String>>,
}

/// What happens to tenant data (homes, document roots) when its resource leaves the repo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the data on disk; SuperCP stops managing it (the default).
    #[default]
    Retain,
    /// Delete it, but only on an apply with `--allow-destroy`.
    Delete,
}

/// Limits a tenant may use.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PackageSpec {
    /// Domains (sites) a tenant of this package may have; aliases do not count.
    pub max_domains: Option<Loc<u32>>,
    /// Sum of PHP-FPM `pm.max_children` of the tenant's pool.
    pub max_php_workers: Option<Loc<u32>>,
    pub max_mailboxes: Option<Loc<u32>>,
    pub max_databases: Option<Loc<u32>>,
    /// Disk quota in MiB, enforced where the filesystem supports quotas.
    pub disk_quota_mb: Option<Loc<u64>>,
    /// Bandwidth or other notes for humans.
    pub notes: Option<Loc<String>>,
}

/// A hosting customer: a Linux user and group with a home, a PHP pool and limits.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSpec {
    /// Name of a Package resource.
    pub package: Loc<String>,
    #[serde(default)]
    pub php: Option<TenantPhp>,
    #[serde(default)]
    pub suspended: bool,
    /// Login shell; `/usr/sbin/nologin` when unset.
    pub shell: Option<Loc<String>>,
    /// SSH public keys (one per entry) for `authorized_keys`.
    #[serde(default)]
    pub ssh_keys: Vec<Loc<String>>,
    #[serde(default)]
    pub cron: Vec<CronJob>,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// The tenant's PHP-FPM pool.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantPhp {
    /// A PHP version the node has installed, e.g. "8.2".
    pub version: Loc<String>,
    /// PHP-FPM's process manager: `ondemand` (default: no idle workers, best for many small
    /// sites), `dynamic` (keeps a few spare workers warm) or `static` (always `maxChildren`).
    #[serde(default)]
    pub pm: ProcessManager,
    /// `pm.max_children` (default 5).
    pub max_children: Option<Loc<u32>>,
    /// `memory_limit`, e.g. `256M`.
    pub memory_limit: Option<Loc<String>>,
    /// `max_execution_time` in seconds.
    pub max_execution_time: Option<Loc<u32>>,
    /// `upload_max_filesize` and `post_max_size`, e.g. `64M`.
    pub upload_max_filesize: Option<Loc<String>>,
    /// Extra `php_admin_value` settings from the allowlist.
    #[serde(default)]
    pub ini: BTreeMap<String, Loc<String>>,
}

/// See `TenantPhp::pm`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProcessManager {
    #[default]
    Ondemand,
    Dynamic,
    Static,
}

impl ProcessManager {
    /// The word PHP-FPM's `pm` setting takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessManager::Ondemand => "ondemand",
            ProcessManager::Dynamic => "dynamic",
            ProcessManager::Static => "static",
        }
    }
}

impl TenantPhp {
    /// `pm.max_children` when the tenant sets none.
    pub const DEFAULT_MAX_CHILDREN: u32 = 5;

    /// The pool's `pm.max_children`: what counts against a package's `maxPhpWorkers`.
    pub fn max_children(&self) -> u32 {
        self.max_children
            .as_ref()
            .map_or(Self::DEFAULT_MAX_CHILDREN, |c| c.value)
    }
}

/// One line of the tenant's crontab.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJob {
    /// Five cron fields, e.g. `*/5 * * * *`.
    pub schedule: Loc<String>,
    pub command: Loc<String>,
}

/// A site of a tenant.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DomainSpec {
    /// Name of the Tenant resource that owns the site.
    pub tenant: Loc<String>,
    /// Other hostnames served by the same site.
    #[serde(default)]
    pub aliases: Vec<Loc<String>>,
    /// Pass `.php` to the tenant's PHP-FPM pool.
    #[serde(default)]
    pub php: bool,
    /// Document root below `domains/<domain>/` (default `public_html`).
    pub document_root: Option<Loc<String>>,
    /// Path redirects.
    #[serde(default)]
    pub redirects: Vec<Redirect>,
    /// Redirect the whole site to this URL (keeping path and query).
    pub redirect_to: Option<Loc<String>>,
    /// HTTPS for the site. Without it the site answers plain HTTP only (and still serves
    /// ACME challenges, so HTTPS can be turned on without a config change first).
    pub tls: Option<Tls>,
}

/// A DNS zone a tenant owns, served by the node's PowerDNS (role `dns`). SuperCP owns every
/// rrset of it: one changed or added by hand is put back.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZoneSpec {
    /// Name of the Tenant resource that owns the zone.
    pub tenant: Loc<String>,
    /// TTL of every rrset that gives none, seconds (60 to 604800; default 3600).
    pub ttl: Option<Loc<u32>>,
    /// `hosting` (default): records the repo already implies (not yet built: see docs/dns.md);
    /// `none`: only the records written here.
    pub template: Option<Loc<String>>,
    /// Sign the zone (not yet built: see docs/dns.md).
    #[serde(default)]
    pub dnssec: bool,
    /// Secondary servers: who is notified of a change and may transfer the zone.
    pub secondaries: Option<Secondaries>,
    /// The zone's rrsets: each name and type once, with all its values.
    #[serde(default)]
    pub records: Vec<RecordSet>,
    /// What happens to the zone on the DNS server when it leaves the repo: `Retain` (the
    /// default: it keeps being served, unmanaged) or `Delete` (only with `--allow-destroy`).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// One rrset of a Zone.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordSet {
    /// `@` for the zone itself, a name relative to the zone (`www`, `_sip._tcp`, `*.shop`), or
    /// an absolute name inside it ending in a dot.
    pub name: Loc<String>,
    /// A, AAAA, CNAME, MX, TXT, SRV, CAA, NS, PTR, TLSA or SSHFP.
    #[serde(rename = "type")]
    pub record_type: Loc<String>,
    /// Seconds; default the zone's `ttl`.
    pub ttl: Option<Loc<u32>>,
    /// The values, each in the type's usual text form (`10 mail.example.com.` for MX).
    pub values: Vec<Loc<String>>,
}

/// A zone's secondary servers.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secondaries {
    /// `IP` or `IP:PORT` of servers sent a NOTIFY on every change.
    #[serde(default)]
    pub notify: Vec<Loc<String>>,
    /// `IP` or `IP/PREFIX` of servers that may transfer the zone (AXFR).
    #[serde(default)]
    pub allow_transfer: Vec<Loc<String>>,
}

/// A Domain's HTTPS: one certificate for the domain and its aliases, and the site's policies.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    /// `acme` (default: issued and renewed by the node's ACME CA) or `files` (bring your own:
    /// `certFile` and `keyFile`).
    #[serde(default)]
    pub certificate: CertSource,
    /// `files`: the certificate chain (leaf first, then the intermediates), a path on the node.
    pub cert_file: Option<Loc<String>>,
    /// `files`: the private key of the leaf, a path on the node (root-only).
    pub key_file: Option<Loc<String>>,
    /// Answer plain HTTP with a 301 to the same URL over HTTPS (path and query kept; ACME
    /// challenges still answered over HTTP). Default true.
    #[serde(default = "default_true")]
    pub force_https: bool,
    /// Strict-Transport-Security, sent over HTTPS only.
    pub hsts: Option<Hsts>,
    /// HTTP/2 on the HTTPS server. Default true.
    #[serde(default = "default_true")]
    pub http2: bool,
    /// `intermediate` (default: TLS 1.2 and 1.3 with Mozilla's intermediate ciphers, ECDSA key)
    /// or `old` (TLS 1.0 and up with Mozilla's old ciphers, RSA key) for very old clients.
    #[serde(default)]
    pub profile: TlsProfile,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CertSource {
    #[default]
    Acme,
    Files,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsProfile {
    #[default]
    Intermediate,
    Old,
}

/// Strict-Transport-Security.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hsts {
    /// Seconds browsers remember to use HTTPS only. Default 31536000 (a year).
    #[serde(default = "default_hsts_max_age")]
    pub max_age: u64,
    #[serde(default)]
    pub include_sub_domains: bool,
    /// Ask to be preloaded into browsers (needs includeSubDomains and a max-age of a year).
    #[serde(default)]
    pub preload: bool,
}

fn default_hsts_max_age() -> u64 {
    31_536_000
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redirect {
    /// A path on this site, starting with `/`.
    pub from: Loc<String>,
    /// A path or an absolute http(s) URL.
    pub to: Loc<String>,
    /// 301 (default), 302, 307 or 308.
    pub code: Option<Loc<u16>>,
}

/// A machine SuperCP manages and the layout of its services. The sandbox node is one of these,
/// embedded in the binary; a real Debian node is another (`examples/nodes/debian.yaml`).
/// Paths are absolute on the node and prefixed with `root`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// web, mail, dns, db, backup.
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Prefix of every path below (`/` on a real node). `{state}` is the state directory.
    #[serde(default = "default_root")]
    pub root: String,
    /// Set owners (chown) of managed objects; needs root. Off on the sandbox node.
    #[serde(default)]
    pub manage_ownership: bool,
    /// `sqlite:PATH` or `postgres://…`; default `sqlite:{state}/audit.db`.
    pub audit_url: Option<String>,
    /// Directory of Tera templates that override the built-in ones by file name.
    pub template_dir: Option<String>,
    /// Where tenant homes live.
    #[serde(default = "default_home_dir")]
    pub home_dir: String,
    /// Logs that root-run services write for a tenant (nginx's per-site logs, PHP-FPM's slow
    /// log) go to `<logDir>/<tenant>/`: root-owned, readable by the tenant's group. Never below
    /// the tenant's home: nginx's master opens its log files as root and follows symlinks, so a
    /// tenant-writable path would let a tenant aim root's writes at any file.
    #[serde(default = "default_log_dir")]
    pub log_dir: String,
    /// Where the rendered logrotate file for `logDir` goes; none when unset.
    pub logrotate: Option<String>,
    /// The range tenant user and group ids are assigned from (with `manageOwnership`).
    #[serde(default)]
    pub accounts: AccountLayout,
    #[serde(default)]
    pub cron: CronLayout,
    pub web: WebLayout,
    pub php: PhpLayout,
    /// Service checks and reloads, run once per run for all writes they cover.
    #[serde(default)]
    pub gates: Vec<Gate>,
    /// What `supercp agent` follows and how often it looks.
    pub agent: Option<AgentSpec>,
    /// Certificates: the ACME CA, where certificates live, when they are renewed.
    #[serde(default)]
    pub tls: TlsLayout,
    /// The authoritative DNS server this node converges its zones into (role `dns`).
    pub dns: Option<DnsLayout>,
}

/// Where a `dns` node's zones go: a PowerDNS Authoritative server's HTTP API, and what every
/// zone it creates starts with.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsLayout {
    /// The API's base URL: `http://127.0.0.1:8081` (no path; plain HTTP only on loopback).
    pub api_url: String,
    /// A file holding the API key (`api-key` in pdns.conf), mode 0600, owned by root. Read
    /// once per run; the key is never logged or recorded. `{state}` is replaced.
    pub api_key_file: String,
    /// The server id in API paths (`localhost` for a single server).
    #[serde(default = "default_server_id")]
    pub server_id: String,
    /// The zones' nameservers (absolute host names, at least one): the apex NS set of every
    /// zone that declares none, and the SOA's primary.
    pub nameservers: Vec<String>,
    /// The SOA's mailbox, as a name (`hostmaster.example.net.`); default `hostmaster.<zone>`.
    pub hostmaster: Option<String>,
    /// Seconds a client waits for one API request before the run gives up on it. Default 10.
    #[serde(default = "default_dns_timeout")]
    pub timeout_seconds: u32,
}

fn default_server_id() -> String {
    "localhost".to_owned()
}

fn default_dns_timeout() -> u32 {
    10
}

/// Where a node gets certificates and keeps them.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsLayout {
    /// `letsencrypt` (default), `letsencrypt-staging`, or any ACME directory URL (https).
    #[serde(default = "default_acme_directory")]
    pub acme_directory: String,
    /// The ACME account's contact address (expiry mail from the CA).
    pub acme_email: Option<String>,
    /// External account binding, for CAs that need one (ZeroSSL, Google, private CAs).
    pub acme_eab: Option<Eab>,
    /// A PEM CA certificate trusted for the ACME server's own HTTPS instead of the system's
    /// (a private CA). `{state}` is replaced.
    pub acme_ca_file: Option<String>,
    /// Node-wide directory of HTTP-01 answers: every vhost serves it at
    /// `/.well-known/acme-challenge/`. Below `root`.
    #[serde(default = "default_challenge_dir")]
    pub challenge_dir: String,
    /// One root-only directory per domain holding `fullchain.pem` and `privkey.pem`. Below
    /// `root`.
    #[serde(default = "default_cert_dir")]
    pub cert_dir: String,
    /// Renew a certificate this many days before it expires. Default 30.
    #[serde(default = "default_renew_days")]
    pub renew_days: u32,
    /// `listen` values of the HTTPS server blocks (`ssl` is added).
    #[serde(default = "default_tls_listen")]
    pub listen: Vec<String>,
    /// At most this many certificate orders per run (the rest wait for the next run), so a
    /// node with thousands of due certificates never floods its CA. Default 50.
    #[serde(default = "default_max_orders")]
    pub max_orders_per_run: u32,
}

fn default_max_orders() -> u32 {
    50
}

impl Default for TlsLayout {
    fn default() -> Self {
        TlsLayout {
            acme_directory: default_acme_directory(),
            acme_email: None,
            acme_eab: None,
            acme_ca_file: None,
            challenge_dir: default_challenge_dir(),
            cert_dir: default_cert_dir(),
            renew_days: default_renew_days(),
            listen: default_tls_listen(),
            max_orders_per_run: default_max_orders(),
        }
    }
}

/// An ACME external account binding: the key id and a file holding the base64url HMAC key.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Eab {
    pub kid: String,
    /// A file (mode 0600) holding the HMAC key as the CA gives it (base64url).
    pub hmac_key_file: String,
}

fn default_acme_directory() -> String {
    "letsencrypt".to_owned()
}

fn default_challenge_dir() -> String {
    "/var/lib/supercp/acme-challenge".to_owned()
}

fn default_cert_dir() -> String {
    "/etc/supercp/tls".to_owned()
}

fn default_renew_days() -> u32 {
    30
}

fn default_tls_listen() -> Vec<String> {
    vec!["443".to_owned(), "[::]:443".to_owned()]
}

/// `supercp agent`: the Git remote it converges to, commit by commit, and its drift scan.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSpec {
    /// The repo's Git remote. Without one, the agent converges `--repo DIR` as it is.
    pub git: Option<GitSource>,
    /// Seconds between two drift scans (every object observed again and put back). Default 300.
    #[serde(default = "default_drift_scan")]
    pub drift_scan_seconds: u64,
    /// The control socket (JSON-RPC): `/run/supercp/agent.sock` on a real node; default
    /// `<state>/agent.sock`. `{state}` is replaced.
    pub socket: Option<String>,
    /// The group whose members may use the control socket (mode 0660); default none: root and
    /// the agent's own user only.
    pub socket_group: Option<String>,
    /// The status page's address, `127.0.0.1:9490` by default; empty for none. Any address
    /// other than loopback needs `statusTokenFile`; so does loopback unless `statusOpen`.
    #[serde(default = "default_status_bind")]
    pub status_bind: String,
    /// A file holding the bearer token the status page requires (mode 0600 or stricter).
    pub status_token_file: Option<String>,
    /// Serve the status page on loopback without a token. Default: `true` when
    /// `manageOwnership` is off (the sandbox: no tenant accounts), else `false`, since on a
    /// node that hosts tenants every tenant's PHP reaches 127.0.0.1 too. Never opens an address
    /// other than loopback.
    pub status_open: Option<bool>,
}

impl Default for AgentSpec {
    fn default() -> Self {
        AgentSpec {
            git: None,
            drift_scan_seconds: default_drift_scan(),
            socket: None,
            socket_group: None,
            status_bind: default_status_bind(),
            status_token_file: None,
            status_open: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSource {
    /// The remote: `https://[user@]host[:port]/path`, `ssh://[user@]host[:port]/path`,
    /// `user@host:path` (ssh), `file:///srv/hosting.git` or an absolute path. Plain `http://`
    /// and `git://` are refused: nothing on the way would be authenticated.
    pub url: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Seconds between two fetches. Default 30.
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
    /// Apply a new head that does not descend from the last applied commit (a force-push,
    /// rewritten history). Off: such a head is refused and the refusal recorded.
    #[serde(default)]
    pub allow_non_fast_forward: bool,
    /// Apply only commits signed (SSH signatures, as `git commit -S` with `gpg.format=ssh`) by
    /// a key in `allowedSigners`; any other commit is refused and the refusal recorded.
    #[serde(default)]
    pub require_signed_commits: bool,
    /// An allowed_signers file (ssh-keygen(1) format) for `requireSignedCommits`.
    pub allowed_signers: Option<String>,
    /// ssh remotes: the deploy key, an OpenSSH private key without passphrase, readable by
    /// root only (mode 0600 or stricter).
    pub ssh_key: Option<String>,
    /// ssh remotes: a known_hosts file (as `ssh-keyscan` prints it, plain or hashed) listing the
    /// server's host key. Required: a host key it does not list is refused, never learnt.
    pub known_hosts: Option<String>,
    /// https remotes: a file holding the password or access token (mode 0600 or stricter),
    /// sent with the URL's user name (`https://deploy@git.example.com/...`), `git` when the URL
    /// names none.
    pub token_file: Option<String>,
    /// https remotes: a CA certificate file (PEM) trusted in addition to the system's.
    pub ca_file: Option<String>,
}

/// Tenant accounts: ids come from `[uidMin, uidMax]`; each tenant's uid is recorded in the
/// journal and never given to another tenant, even after the first is deleted.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountLayout {
    #[serde(default = "default_uid_min")]
    pub uid_min: u32,
    #[serde(default = "default_uid_max")]
    pub uid_max: u32,
    /// Shell of a tenant that sets none, and of every suspended tenant.
    #[serde(default = "default_nologin")]
    pub nologin: String,
}

impl Default for AccountLayout {
    fn default() -> Self {
        AccountLayout {
            uid_min: default_uid_min(),
            uid_max: default_uid_max(),
            nologin: default_nologin(),
        }
    }
}

/// Where tenant crontabs are installed (Debian's cron spool: one file per user, owned by the
/// user and the `crontab` group, mode 0600, as `crontab -u` leaves it).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronLayout {
    #[serde(default = "default_cron_spool")]
    pub spool_dir: String,
    #[serde(default = "default_cron_group")]
    pub group: String,
}

impl Default for CronLayout {
    fn default() -> Self {
        CronLayout {
            spool_dir: default_cron_spool(),
            group: default_cron_group(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebLayout {
    /// Directory of one vhost file per domain.
    pub sites_dir: String,
    /// When set, SuperCP renders nginx's main config here (sandbox and test prefixes).
    pub main_config: Option<String>,
    /// `listen` values of the HTTP server blocks.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// nginx's worker user.
    #[serde(default = "default_web_user")]
    pub user: String,
    /// nginx's FastCGI parameters file (a path on the node, not below `root`).
    #[serde(default = "default_fastcgi_params")]
    pub fastcgi_params: String,
    /// nginx's MIME types file (a path on the node, not below `root`).
    #[serde(default = "default_mime_types")]
    pub mime_types: String,
    /// Where each site logs: `Domain` (its own access and error log in the domain's `logs/`,
    /// the default) or `Node` (nginx's node-wide logs). nginx holds two descriptors per site
    /// with `Domain`, at every start and every `nginx -t`: a node with thousands of sites needs
    /// its open-files limit raised (systemd `LimitNOFILE`), or `Node` where it cannot be.
    #[serde(default)]
    pub site_logs: SiteLogs,
    /// An http-level file of SuperCP's nginx settings (server_names hash sizes), for a node
    /// whose main config SuperCP does not render (Debian: `/etc/nginx/conf.d/supercp.conf`).
    pub http_config: Option<String>,
    /// Render the catch-all server that answers 444 to unknown hosts (on Debian remove the
    /// package's own `sites-enabled/default`, which also claims `default_server`).
    #[serde(default = "default_true")]
    pub default_server: bool,
}

/// See `WebLayout::site_logs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum SiteLogs {
    #[default]
    Domain,
    Node,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhpLayout {
    /// PHP versions installed on the node.
    pub versions: Vec<String>,
    /// Pool directory; `{version}` is replaced by the tenant's PHP version.
    pub pool_dir: String,
    /// Directory of the pool sockets.
    pub socket_dir: String,
    /// When set, SuperCP renders php-fpm's main config here; `{version}` as above.
    pub main_config: Option<String>,
    /// Run every pool as this existing user instead of the tenant's own. Only for the sandbox
    /// node, which creates no users.
    pub run_as: Option<String>,
    /// The group for `runAs` (default: the same name as the user).
    pub run_as_group: Option<String>,
}

/// A service check and reload, as data: after all writes under `paths`, run `check` once; if it
/// passes run `reload` once; if it fails put the previous files back.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gate {
    /// `nginx` or `php-fpm`: rendered objects name the gate they need.
    pub name: String,
    /// Command and arguments (no shell); `{root}` and `{state}` are replaced.
    pub check: Vec<String>,
    /// Command and arguments run after a passing check; empty for none.
    #[serde(default)]
    pub reload: Vec<String>,
    /// Reload by a signal to the pid in this file instead of a `reload` command (nginx: HUP,
    /// php-fpm: USR2). Faster than `nginx -s reload`, which parses the whole config again, and
    /// needs no systemd. A missing pid file means the service is not running: nothing to reload.
    pub reload_signal: Option<ReloadSignal>,
    /// Skip the gate (with a warning) when the check's program is not installed.
    #[serde(default)]
    pub optional: bool,
    /// Seconds the check or the reload command may take before it is killed and the batch put
    /// back (1 to 3600); unset: 120, or `SUPERCP_COMMAND_TIMEOUT_SECONDS`.
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReloadSignal {
    /// `{root}` and `{state}` are replaced.
    pub pid_file: String,
    pub signal: Signal,
}

/// The signals a reload may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum Signal {
    HUP,
    USR1,
    USR2,
}

fn default_status_bind() -> String {
    "127.0.0.1:9490".to_owned()
}

fn default_drift_scan() -> u64 {
    300
}

fn default_branch() -> String {
    "main".to_owned()
}

fn default_poll() -> u64 {
    30
}

fn default_true() -> bool {
    true
}

fn default_log_dir() -> String {
    "/var/log/supercp".to_owned()
}

fn default_uid_min() -> u32 {
    20_000
}

fn default_uid_max() -> u32 {
    59_999
}

fn default_nologin() -> String {
    "/usr/sbin/nologin".to_owned()
}

fn default_cron_spool() -> String {
    "/var/spool/cron/crontabs".to_owned()
}

fn default_cron_group() -> String {
    "crontab".to_owned()
}

fn default_root() -> String {
    "/".to_owned()
}

fn default_home_dir() -> String {
    "/home".to_owned()
}

fn default_listen() -> Vec<String> {
    vec!["80".to_owned()]
}

fn default_fastcgi_params() -> String {
    "/etc/nginx/fastcgi_params".to_owned()
}

fn default_mime_types() -> String {
    "/etc/nginx/mime.types".to_owned()
}

fn default_web_user() -> String {
    "www-data".to_owned()
}

impl NodeSpec {
    /// The node with `{state}` replaced by the state directory everywhere and `{root}` by the
    /// resolved root in gate commands.
    pub fn resolve(&self, state_dir: &str) -> NodeSpec {
        let mut node = self.clone();
        let sub = |s: &str| s.replace("{state}", state_dir);
        node.root = sub(&node.root);
        let root = node.root.clone();
        let sub_all = |s: &str| sub(s).replace("{root}", root.trim_end_matches('/'));
        node.audit_url = node.audit_url.as_deref().map(sub);
        node.template_dir = node.template_dir.as_deref().map(sub_all);
        for gate in &mut node.gates {
            gate.check = gate.check.iter().map(|a| sub_all(a)).collect();
            gate.reload = gate.reload.iter().map(|a| sub_all(a)).collect();
            if let Some(r) = &mut gate.reload_signal {
                r.pid_file = sub_all(&r.pid_file);
            }
        }
        node.tls.acme_ca_file = node.tls.acme_ca_file.as_deref().map(sub);
        if let Some(eab) = &mut node.tls.acme_eab {
            eab.hmac_key_file = sub(&eab.hmac_key_file);
        }
        if let Some(dns) = &mut node.dns {
            dns.api_key_file = sub(&dns.api_key_file);
        }
        if let Some(agent) = &mut node.agent {
            agent.socket = agent.socket.as_deref().map(sub);
            agent.status_token_file = agent.status_token_file.as_deref().map(sub);
            if let Some(git) = &mut agent.git {
                git.allowed_signers = git.allowed_signers.as_deref().map(sub);
                git.ssh_key = git.ssh_key.as_deref().map(sub);
                git.known_hosts = git.known_hosts.as_deref().map(sub);
                git.token_file = git.token_file.as_deref().map(sub);
                git.ca_file = git.ca_file.as_deref().map(sub);
            }
        }
        node
    }

    /// The directory of one domain's `fullchain.pem` and `privkey.pem`, below `root`.
    pub fn cert_dir_for(&self, domain: &str) -> String {
        format!("{}/{domain}", self.path(&self.tls.cert_dir))
    }

    /// An absolute node path below `root`.
    pub fn path(&self, node_path: &str) -> String {
        crate::object::join(&self.root, node_path)
    }

    /// The pool directory of one PHP version, below `root`.
    pub fn pool_dir(&self, version: &str) -> String {
        self.path(&self.php.pool_dir.replace("{version}", version))
    }
}

/// The JSON Schema of every kind, by file name (`Tenant.json` …), plus `supercp.json` that
/// accepts any of them (for editors: `# yaml-language-server: $schema=…/supercp.json`).
pub fn schemas() -> Vec<(String, serde_json::Value)> {
    fn one<S: JsonSchema>(kind: &str) -> (String, serde_json::Value) {
        let mut value = schemars::schema_for!(Document<S>).to_value();
        value["title"] = serde_json::Value::String(kind.to_owned());
        value["$id"] = serde_json::Value::String(format!("{kind}.json"));
        value["properties"]["kind"] = serde_json::json!({ "const": kind });
        value["properties"]["apiVersion"] = serde_json::json!({ "const": API_VERSION });
        (format!("{kind}.json"), value)
    }
    let mut all = vec![
        one::<NodeSpec>("Node"),
        one::<PackageSpec>("Package"),
        one::<TenantSpec>("Tenant"),
        one::<DomainSpec>("Domain"),
        one::<ZoneSpec>("Zone"),
    ];
    let refs: Vec<serde_json::Value> = KINDS
        .iter()
        .map(|k| serde_json::json!({ "$ref": format!("{k}.json") }))
        .collect();
    all.push((
        "supercp.json".to_owned(),
        serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "supercp.json",
            "title": "SuperCP resource (apiVersion supercp/v1)",
            "anyOf": refs,
        }),
    ));
    all
}
