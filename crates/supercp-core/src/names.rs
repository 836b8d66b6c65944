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
        Ok(DomainName(ascii))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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
/// character (newline, NUL …), no `;`, `{`, `}`, quote, backslash or `$`, so it can never end a
/// directive, open a block or expand a variable in nginx, PHP-FPM or a crontab.
///
/// # Errors
/// Names the first forbidden character.
pub fn check_config_string(value: &str) -> Result<(), NameError> {
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '`' | '\\' | '$'))
    {
        return Err(NameError {
            message: format!(
                "value {value:?} contains {c:?}, which could break out of a config file"
            ),
            help: "remove newlines, NUL, ';', '{', '}', quotes, '\\' and '$' from the value",
        });
    }
    Ok(())
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
    fn config_string_with_injection_characters_is_rejected() {
        for bad in ["a\nb", "a;b", "a{b", "a}b", "a\"b", "a'b", "a\0b", "a$b"] {
            assert!(check_config_string(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(check_config_string("/new/path?x=1").is_ok());
    }
}
