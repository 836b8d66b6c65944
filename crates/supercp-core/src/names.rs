//! Validated names and the strict grammar for strings that reach a config file.
//!
//! A name is checked once, when the loader builds the catalog; later code takes `TenantName` or
//! `DomainName`, never a bare `&str`, so a rendered config can only hold a checked name.

use std::fmt;

/// Why a name or config string was refused; `help` says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameError {
    pub message: String,
    pub help: &'static str,
}

/// A tenant: a Linux user and group, so `[a-z][a-z0-9-]{0,30}` and not a system account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantName(String);

/// A hostname in ASCII (IDN stored as punycode), lowercase, RFC 1123 labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName(String);

/// Accounts a tenant may never be named after: Debian's base system users and the users of
/// every service SuperCP drives. The loader also refuses any account the node reports below
/// UID 1000.
pub const RESERVED_TENANT_NAMES: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "nogroup",
    "admin",
    "adm",
    "sudo",
    "staff",
    "users",
    "systemd-network",
    "systemd-resolve",
    "systemd-timesync",
    "messagebus",
    "sshd",
    "nginx",
    "postfix",
    "postdrop",
    "dovecot",
    "dovenull",
    "vmail",
    "mysql",
    "postgres",
    "pdns",
    "_rspamd",
    "rspamd",
    "redis",
    "supercp",
    "ftp",
    "pure-ftpd",
    "tss",
    "polkitd",
    "avahi",
    "ntp",
    "_apt",
    "opendkim",
    "clamav",
    "debian-exim",
    "bind",
    // Groups that grant rights (a tenant's group is named after it).
    "shadow",
    "disk",
    "kmem",
    "tty",
    "utmp",
    "crontab",
    "ssl-cert",
    "docker",
    "lxd",
    "kvm",
    "systemd-journal",
    // Debian's own PHP-FPM pool is pool.d/www.conf.
    "www",
];

impl TenantName {
    /// Checks the tenant grammar and the reserved list.
    ///
    /// # Errors
    /// A message and help naming the rule that was broken.
    pub fn parse(name: &str) -> Result<TenantName, NameError> {
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !first_ok || !rest_ok || name.len() > 31 {
            return Err(NameError {
                message: format!("tenant name {name:?} does not match [a-z][a-z0-9-]{{0,30}}"),
                help: "use a lowercase letter, then up to 30 lowercase letters, digits or '-'",
            });
        }
        if RESERVED_TENANT_NAMES.contains(&name) {
            return Err(NameError {
                message: format!("tenant name {name:?} is a reserved system account"),
                help: "pick a name that is not a system or service account",
            });
        }
        Ok(TenantName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl DomainName {
    /// Checks RFC 1123 labels; an internationalised name is converted to punycode first.
    ///
    /// # Errors
    /// A message and help naming the rule that was broken.
    pub fn parse(name: &str) -> Result<DomainName, NameError> {
        check_config_string(name)?;
        if name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::Ipv6Addr>()
            .is_ok()
        {
            return Err(NameError {
                message: format!("domain {name:?} is an IP address, not a domain name"),
                help: "a Domain serves a DNS name like example.com: requests to the node's IP \
                       addresses stay with the node's default server",
            });
        }
        let ascii = if name.is_ascii() {
            name.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(name).map_err(|_| NameError {
                message: format!("{name:?} is not a valid internationalised domain name"),
                help: "write the domain in punycode (xn--…) or as valid Unicode",
            })?
        };
        let bad = |why: &str| NameError {
            message: format!("domain {name:?} {why}"),
            help:
                "use dot-separated labels of letters, digits and '-' (RFC 1123), e.g. example.com",
        };
        if let Some(why) = not_a_public_name(&ascii) {
            return Err(NameError {
                message: format!("domain {name:?} {why}"),
                help: "a Domain serves a DNS name like example.com: requests to the node's IP \
                       addresses and to localhost stay with the node's default server",
            });
        }
        if ascii.is_empty() || ascii.len() > 253 {
            return Err(bad("must be 1 to 253 characters long"));
        }
        if !ascii.contains('.') {
            return Err(bad("needs at least two labels"));
        }
        for label in ascii.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(bad("has an empty label or one longer than 63 characters"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(bad("has a label that starts or ends with '-'"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(bad(
                    "has a character other than a letter, digit, '-' or '.'",
                ));
            }
        }
        // Every label as a reader sees it, whether written in Unicode or as punycode (xn--).
        let (unicode, _) = idna::domain_to_unicode(&ascii);
        for label in unicode.split('.') {
            if let Some(scripts) = mixed_scripts(label) {
                return Err(NameError {
                    message: format!(
                        "domain {name:?} mixes {scripts} in the label {label:?}, which can imitate another name"
                    ),
                    help: "write each label in one script (Latin may be mixed only with Han, \
                           Hiragana, Katakana, Bopomofo or Hangul)",
                });
            }
        }
        Ok(DomainName(ascii))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a syntactically valid ASCII hostname must still not be a Domain: an IPv4 address in any
/// form a resolver or a browser accepts (`127.1`, `0x7f000001`, `0177.0.0.1`), or a name that
/// means this machine (`localhost`, `*.localhost`, `localhost.localdomain`). nginx would take a
/// site of that name for requests to the IP or to loopback, away from the default server.
fn not_a_public_name(ascii: &str) -> Option<&'static str> {
    let labels: Vec<&str> = ascii.split('.').collect();
    let numeric = |l: &str| {
        let hex = l.strip_prefix("0x");
        match hex {
            Some(h) => h.bytes().all(|b| b.is_ascii_hexdigit()),
            None => !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()),
        }
    };
    if labels.len() <= 4 && labels.iter().all(|l| numeric(l)) {
        return Some("is an IP address, not a domain name");
    }
    // No top-level domain starts with a digit: `1.2.3.4.5` or `10.0.0.0x1` is no DNS name.
    if labels
        .last()
        .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_digit()))
    {
        return Some("ends in a numeric label, as an IP address does, not a top-level domain");
    }
    let local = ["localhost", "localdomain", "ip6-localhost", "ip6-loopback"];
    if labels.first().is_some_and(|l| local.contains(l))
        || labels.last().is_some_and(|l| local.contains(l))
    {
        return Some("names this machine (localhost), not a public site");
    }
    None
}

/// The writing systems of a label, when it mixes them in a way UTS #39's "highly restrictive"
/// profile refuses: one script, or Latin with the scripts East Asian names combine (Han with
/// Hiragana and Katakana, with Bopomofo, or with Hangul). Digits and '-' belong to every script.
/// Scripts are told apart by Unicode block, which is exact for the scripts homographs use
/// (Latin, Greek, Cyrillic, Armenian…) and coarse for the rest (one block, one script).
fn mixed_scripts(label: &str) -> Option<String> {
    let mut scripts: Vec<Script> = Vec::new();
    for c in label.chars() {
        if let Some(script) = script_of(c) {
            if !scripts.contains(&script) {
                scripts.push(script);
            }
        }
    }
    use Script::{Bopomofo, Han, Hangul, Hiragana, Katakana, Latin};
    let allowed: [&[Script]; 3] = [
        &[Latin, Han, Hiragana, Katakana],
        &[Latin, Han, Bopomofo],
        &[Latin, Han, Hangul],
    ];
    if scripts.len() <= 1
        || allowed
            .iter()
            .any(|set| scripts.iter().all(|s| set.contains(s)))
    {
        return None;
    }
    let names: Vec<String> = scripts.iter().map(Script::name).collect();
    Some(names.join(" and "))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
    Armenian,
    Hebrew,
    Arabic,
    Georgian,
    Han,
    Hiragana,
    Katakana,
    Bopomofo,
    Hangul,
    /// Any other script, by the 128-code-point block it is written in.
    Block(u32),
}

impl Script {
    fn name(&self) -> String {
        match self {
            Script::Block(b) => format!("the script of U+{:04X}", b << 7),
            other => format!("{other:?}"),
        }
    }
}

/// `None` for characters of every script (digits, '-', combining marks, the kana length mark).
fn script_of(c: char) -> Option<Script> {
    let u = c as u32;
    Some(match u {
        0x30..=0x39 | 0x2D | 0x300..=0x36F | 0x30FC | 0x3005 => return None,
        0x41..=0x5A | 0x61..=0x7A | 0xC0..=0x24F | 0x250..=0x2AF | 0x1E00..=0x1EFF => Script::Latin,
        0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xAB30..=0xAB6F => Script::Latin,
        0x370..=0x3FF | 0x1F00..=0x1FFF => Script::Greek,
        0x400..=0x52F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => Script::Cyrillic,
        0x530..=0x58F => Script::Armenian,
        0x590..=0x5FF => Script::Hebrew,
        0x600..=0x6FF | 0x750..=0x77F | 0x8A0..=0x8FF => Script::Arabic,
        0x10A0..=0x10FF | 0x2D00..=0x2D2F => Script::Georgian,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3FFFF => Script::Han,
        0x3040..=0x309F => Script::Hiragana,
        0x30A0..=0x30FF | 0x31F0..=0x31FF => Script::Katakana,
        0x3100..=0x312F | 0x31A0..=0x31BF => Script::Bopomofo,
        0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF => Script::Hangul,
        _ => Script::Block(u >> 7),
    })
}

/// The generic resource-name grammar (packages, nodes): lowercase DNS label characters.
///
/// # Errors
/// When the name is empty, too long, or has other characters.
pub fn check_resource_name(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(NameError {
            message: format!("name {name:?} does not match [a-z0-9][a-z0-9.-]{{0,62}}"),
            help: "use lowercase letters, digits, '-' and '.'",
        })
    }
}

/// The grammar every free-form string must pass before it may reach a config file: no control
/// character (newline, NUL …), no bidirectional control (which makes text read differently
/// from what it is: "Trojan Source"), no `;`, `{`, `}`, quote, backslash or `$`, so it can never end a
/// directive, open a block or expand a variable in nginx, PHP-FPM or a crontab.
///
/// # Errors
/// Names the first forbidden character.
pub fn check_config_string(value: &str) -> Result<(), NameError> {
    if let Some(c) = value.chars().find(|c| {
        c.is_control()
            || is_bidi_control(*c)
            || matches!(c, ';' | '{' | '}' | '"' | '\'' | '`' | '\\' | '$')
    }) {
        let why = if is_bidi_control(c) {
            "a bidi control, which makes text read differently from what it is"
        } else {
            "which could break out of a config file"
        };
        return Err(NameError {
            message: format!("value {value:?} contains {c:?}, {why}"),
            help: "remove newlines, NUL, bidi controls, ';', '{', '}', quotes, '\\' and '$' from the value",
        });
    }
    Ok(())
}

/// Unicode's explicit bidirectional formatting characters (embeddings, overrides, isolates and
/// marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uppercase_tenant_name_is_rejected() {
        assert!(TenantName::parse("Acme").is_err());
        assert!(TenantName::parse("acme-2").is_ok());
    }

    #[test]
    fn reserved_tenant_name_is_rejected() {
        let err = TenantName::parse("www-data").unwrap_err();
        assert!(err.message.contains("reserved"), "{}", err.message);
    }

    #[test]
    fn tenant_name_longer_than_31_is_rejected() {
        assert!(TenantName::parse(&"a".repeat(31)).is_ok());
        assert!(TenantName::parse(&"a".repeat(32)).is_err());
    }

    #[test]
    fn idn_domain_is_stored_as_punycode() {
        assert_eq!(
            DomainName::parse("bücher.example").unwrap().as_str(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn domain_with_bad_label_is_rejected() {
        for bad in [
            "-a.test",
            "a..test",
            "a_b.test",
            "localhost",
            "a.test;",
            "a.test\n",
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad} must be refused");
        }
        assert_eq!(
            DomainName::parse("WWW.Acme.Test").unwrap().as_str(),
            "www.acme.test"
        );
    }

    #[test]
    fn ip_addresses_in_every_form_are_refused_as_domains() {
        for ip in [
            "192.168.1.1",
            "127.1",
            "0x7f000001",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "1.2.3.4.5",
            "::1",
            "[::1]",
            "fe80::1",
            "１２７.０.０.１",
        ] {
            let err = DomainName::parse(ip).expect_err(ip);
            assert!(
                err.message.contains("IP address") || err.message.contains("two labels"),
                "{ip}: {}",
                err.message
            );
        }
        assert!(DomainName::parse("1password.example").is_ok());
        assert!(DomainName::parse("a.b2b").is_ok());
        assert!(
            DomainName::parse("a.2b").is_err(),
            "no top-level domain starts with a digit"
        );
    }

    #[test]
    fn localhost_like_names_are_refused_as_domains() {
        for name in [
            "localhost",
            "app.localhost",
            "localhost.localdomain",
            "localhost.example.com",
            "ip6-localhost.test",
        ] {
            let err = DomainName::parse(name).expect_err(name);
            assert!(
                err.message.contains("localhost") || err.message.contains("two labels"),
                "{name}: {}",
                err.message
            );
        }
        assert!(DomainName::parse("mylocalhost.example").is_ok());
    }

    #[test]
    fn a_label_mixing_latin_and_cyrillic_is_refused() {
        // "pаypal" with a Cyrillic а, written in Unicode and as punycode.
        for name in ["p\u{0430}ypal.example", "xn--pypal-4ve.example"] {
            let err = DomainName::parse(name).expect_err(name);
            assert!(
                err.message.contains("Latin and Cyrillic"),
                "{}",
                err.message
            );
        }
        assert!(
            DomainName::parse("пример.example").is_ok(),
            "one script per label"
        );
        assert!(DomainName::parse("bücher.example").is_ok());
        assert!(
            DomainName::parse("東京タワー.example").is_ok(),
            "Han with Katakana"
        );
    }

    #[test]
    fn bidi_controls_are_refused_in_config_strings_and_domains() {
        for bad in ["a\u{202E}b", "x\u{2066}y", "\u{200F}z"] {
            assert!(check_config_string(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(DomainName::parse("acme\u{202E}.test").is_err());
    }

    #[test]
    fn config_string_with_injection_characters_is_rejected() {
        for bad in ["a\nb", "a;b", "a{b", "a}b", "a\"b", "a'b", "a\0b", "a$b"] {
            assert!(check_config_string(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(check_config_string("/new/path?x=1").is_ok());
    }
}
