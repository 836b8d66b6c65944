//! DNS records as a Zone resource writes them, checked and made canonical before anything
//! reaches PowerDNS: owner names (`@`, a relative name, or an absolute one inside the zone),
//! the record types SuperCP manages and each type's value grammar. Pure.
//!
//! Canonical forms are PowerDNS's content strings: names absolute and lowercase with their
//! trailing dot, TXT as quoted strings of at most 255 bytes each, numbers without leading
//! zeros. Two values that mean the same are the same string, so a plan never shows a change
//! that is only spelling.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The record types a Zone may declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordType {
    A,
    Aaaa,
    Cname,
    Mx,
    Txt,
    Srv,
    Caa,
    Ns,
    Ptr,
    Tlsa,
    Sshfp,
}

/// Shortest and longest TTL a record may have, in seconds (one minute, one week).
pub const TTL_MIN: u32 = 60;
pub const TTL_MAX: u32 = 604_800;

/// Why a name or a value was refused: what is wrong and how to write it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub message: String,
    pub help: &'static str,
}

impl RecordType {
    pub const ALL: [RecordType; 11] = [
        RecordType::A,
        RecordType::Aaaa,
        RecordType::Cname,
        RecordType::Mx,
        RecordType::Txt,
        RecordType::Srv,
        RecordType::Caa,
        RecordType::Ns,
        RecordType::Ptr,
        RecordType::Tlsa,
        RecordType::Sshfp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Srv => "SRV",
            RecordType::Caa => "CAA",
            RecordType::Ns => "NS",
            RecordType::Ptr => "PTR",
            RecordType::Tlsa => "TLSA",
            RecordType::Sshfp => "SSHFP",
        }
    }

    /// The type written in a Zone (upper case).
    pub fn parse(text: &str) -> Option<RecordType> {
        RecordType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Whether a value of this type names a host SuperCP can look for in the repo (MX, NS,
    /// SRV, CNAME and PTR targets).
    pub fn has_target(self) -> bool {
        matches!(
            self,
            RecordType::Cname | RecordType::Mx | RecordType::Ns | RecordType::Srv | RecordType::Ptr
        )
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn refused(message: String, help: &'static str) -> RecordError {
    RecordError { message, help }
}

/// The zone's own name, absolute: `acme.test.`.
pub fn zone_fqdn(zone: &str) -> String {
    format!("{}.", zone.trim_end_matches('.').to_ascii_lowercase())
}

/// An owner name as written (`@`, `www`, `_sip._tcp`, `*.shop`, or `www.acme.test.`), made
/// absolute inside `zone`.
///
/// # Errors
/// A label that is not letters, digits, `-` or `_` (a `*` only as the whole first label),
/// too long a name, or an absolute name outside the zone.
pub fn owner(name: &str, zone: &str) -> Result<String, RecordError> {
    let apex = zone_fqdn(zone);
    if name == "@" {
        return Ok(apex);
    }
    let absolute = if let Some(stripped) = name.strip_suffix('.') {
        let lower = format!("{}.", stripped.to_ascii_lowercase());
        if lower != apex && !lower.ends_with(&format!(".{apex}")) {
            return Err(refused(
                format!("{name:?} is outside the zone {apex}"),
                "write names relative to the zone (`www`, `@` for the zone itself) or absolute \
                 names that end in the zone's name and a dot",
            ));
        }
        lower
    } else {
        format!("{}.{apex}", name.to_ascii_lowercase())
    };
    check_labels(name, &absolute, true)?;
    Ok(absolute)
}

/// A host name a value points at (`mail.acme.test.` absolute, or `mail` relative to the
/// zone), absolute.
///
/// # Errors
/// As for `owner`, without wildcards; any zone is allowed for an absolute target.
pub fn target(name: &str, zone: &str) -> Result<String, RecordError> {
    let absolute = match name.strip_suffix('.') {
        Some(stripped) => format!("{}.", stripped.to_ascii_lowercase()),
        None if name == "@" => zone_fqdn(zone),
        None => format!("{}.{}", name.to_ascii_lowercase(), zone_fqdn(zone)),
    };
    check_labels(name, &absolute, false)?;
    Ok(absolute)
}

fn check_labels(written: &str, absolute: &str, wildcard: bool) -> Result<(), RecordError> {
    let bad = |why: &str| {
        refused(
            format!("name {written:?} {why}"),
            "use dot-separated labels of letters, digits, '-' and '_' (a '*' only as the whole \
             first label of an owner name), 1 to 63 characters each",
        )
    };
    if absolute.len() > 254 {
        return Err(bad("is longer than 253 characters"));
    }
    let labels: Vec<&str> = absolute.trim_end_matches('.').split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("has an empty label or one over 63 characters"));
        }
        if *label == "*" {
            if wildcard && i == 0 {
                continue;
            }
            return Err(bad("has a '*' that is not the whole first label"));
        }
        let ok = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok || label.starts_with('-') || label.ends_with('-') {
            return Err(bad("has a label with a character outside [a-z0-9_-]"));
        }
    }
    Ok(())
}

/// One value of a record of type `t`, checked and made canonical (PowerDNS's content).
///
/// # Errors
/// What is wrong with the value, and how to write one.
pub fn value(t: RecordType, text: &str, zone: &str) -> Result<String, RecordError> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let number = |field: &str, max: u64, what: &str| -> Result<u64, RecordError> {
        field
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                refused(
                    format!("{t} {text:?}: {what} {field:?} is not a number from 0 to {max}"),
                    "see docs/dns.md for the form of each record type",
                )
            })
    };
    let arity = |n: usize, form: &'static str| -> Result<(), RecordError> {
        if fields.len() == n {
            Ok(())
        } else {
            Err(refused(
                format!("{t} {text:?} is not of the form {form}"),
                "see docs/dns.md for the form of each record type",
            ))
        }
    };
    let hex = |field: &str| -> Result<String, RecordError> {
        if !field.is_empty()
            && field.len().is_multiple_of(2)
            && field.bytes().all(|b| b.is_ascii_hexdigit())
        {
            Ok(field.to_ascii_lowercase())
        } else {
            Err(refused(
                format!("{t} {text:?}: {field:?} is not hex"),
                "give the digest as hexadecimal digits",
            ))
        }
    };
    match t {
        RecordType::A => text
            .parse::<Ipv4Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| {
                refused(
                    format!("A {text:?} is not an IPv4 address"),
                    "write an address like 192.0.2.10",
                )
            }),
        RecordType::Aaaa => text
            .parse::<Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| {
                refused(
                    format!("AAAA {text:?} is not an IPv6 address"),
                    "write an address like 2001:db8::10",
                )
            }),
        RecordType::Cname | RecordType::Ns | RecordType::Ptr => {
            arity(1, "a host name")?;
            target(fields[0], zone)
        }
        RecordType::Mx => {
            arity(2, "PREFERENCE HOST (`10 mail.example.com.`)")?;
            let pref = number(fields[0], 65_535, "preference")?;
            Ok(format!("{pref} {}", target(fields[1], zone)?))
        }
        RecordType::Srv => {
            arity(
                4,
                "PRIORITY WEIGHT PORT HOST (`10 60 5060 sip.example.com.`)",
            )?;
            let prio = number(fields[0], 65_535, "priority")?;
            let weight = number(fields[1], 65_535, "weight")?;
            let port = number(fields[2], 65_535, "port")?;
            Ok(format!(
                "{prio} {weight} {port} {}",
                target(fields[3], zone)?
            ))
        }
        RecordType::Caa => caa(text),
        RecordType::Txt => txt(text),
        RecordType::Tlsa => {
            arity(4, "USAGE SELECTOR TYPE DIGEST (`3 1 1 abcd…`)")?;
            let usage = number(fields[0], 3, "usage")?;
            let selector = number(fields[1], 1, "selector")?;
            let kind = number(fields[2], 2, "matching type")?;
            Ok(format!("{usage} {selector} {kind} {}", hex(fields[3])?))
        }
        RecordType::Sshfp => {
            arity(3, "ALGORITHM TYPE FINGERPRINT (`4 2 abcd…`)")?;
            let algorithm = number(fields[0], 6, "algorithm")?;
            let kind = number(fields[1], 2, "fingerprint type")?;
            Ok(format!("{algorithm} {kind} {}", hex(fields[2])?))
        }
    }
}

/// `FLAGS TAG "VALUE"` with tag `issue`, `issuewild` or `iodef`.
fn caa(text: &str) -> Result<String, RecordError> {
    let bad = || {
        refused(
            format!("CAA {text:?} is not of the form FLAGS TAG \"VALUE\""),
            "write e.g. 0 issue \"letsencrypt.org\" (tags: issue, issuewild, iodef)",
        )
    };
    let mut parts = text.splitn(3, ' ');
    let (Some(flags), Some(tag), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let flags: u8 = flags.parse().map_err(|_| bad())?;
    if !matches!(tag, "issue" | "issuewild" | "iodef") {
        return Err(bad());
    }
    let inner = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(bad)?;
    if inner.contains('"') || !inner.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad());
    }
    Ok(format!("{flags} {tag} \"{inner}\""))
}

/// A TXT value as text (quotes optional around the whole value), as PowerDNS's content: quoted
/// strings of at most 255 bytes each.
fn txt(text: &str) -> Result<String, RecordError> {
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if inner.is_empty() || inner.len() > 4000 {
        return Err(refused(
            format!("TXT value of {} bytes", inner.len()),
            "give 1 to 4000 bytes of text (split into 255-byte strings for you)",
        ));
    }
    if !inner.bytes().all(|b| (0x20..0x7f).contains(&b))
        || inner.contains('"')
        || inner.contains('\\')
    {
        return Err(refused(
            format!("TXT {text:?} holds a character other than printable ASCII, or a quote or backslash"),
            "write printable ASCII text without quotes or backslashes inside",
        ));
    }
    let strings: Vec<String> = inner
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    Ok(strings.join(" "))
}

/// The text of a TXT value as written, without the quotes around the whole value.
pub fn txt_text(written: &str) -> &str {
    written
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(written)
}

/// What an SPF record (RFC 7208) asks of a receiver: the DNS lookups its own terms cost
/// (`include`, `a`, `mx`, `ptr`, `exists`, `redirect`: one each) and the domains whose SPF
/// records it pulls in (`include:` and `redirect=`), whose lookups count too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spf {
    pub lookups: u32,
    pub pulls: Vec<String>,
}

/// The most DNS lookups an SPF evaluation may need (RFC 7208 4.6.4).
pub const SPF_MAX_LOOKUPS: u32 = 10;

/// Parses an SPF record (`v=spf1 …`).
///
/// # Errors
/// A term that is not an SPF mechanism or modifier, with how to write one.
pub fn spf(text: &str) -> Result<Spf, RecordError> {
    let bad = |term: &str, why: &str| {
        refused(
            format!("SPF {text:?}: {term:?} {why}"),
            "write `v=spf1` then mechanisms (all, include:D, a[:D][/N], mx[:D][/N], ptr[:D],              ip4:A[/N], ip6:A[/N], exists:D, each optionally after + - ~ ?) and modifiers              (redirect=D, exp=D), separated by spaces",
        )
    };
    let mut terms = text.split(' ').filter(|t| !t.is_empty());
    if terms.next() != Some("v=spf1") {
        return Err(bad(text, "does not start with v=spf1"));
    }
    let mut out = Spf::default();
    let mut redirects = 0;
    for term in terms {
        if let Some((name, value)) = term.split_once('=') {
            match name.to_ascii_lowercase().as_str() {
                "redirect" => {
                    redirects += 1;
                    out.lookups += 1;
                    out.pulls
                        .push(spf_domain(value).ok_or_else(|| bad(term, "names no domain"))?);
                }
                "exp" => {
                    spf_domain(value).ok_or_else(|| bad(term, "names no domain"))?;
                }
                n if !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && n.as_bytes()[0].is_ascii_alphabetic() => {}
                _ => return Err(bad(term, "is not a modifier")),
            }
            continue;
        }
        let mechanism = term.trim_start_matches(['+', '-', '~', '?']);
        if mechanism.len() + 1 < term.len() {
            return Err(bad(term, "has more than one qualifier"));
        }
        let (name, arg) = match mechanism.split_once([':', '/']) {
            Some((n, _)) => (n, Some(&mechanism[n.len()..])),
            None => (mechanism, None),
        };
        match (name.to_ascii_lowercase().as_str(), arg) {
            ("all", None) => {}
            ("include" | "exists", Some(arg)) if arg.starts_with(':') => {
                out.lookups += 1;
                let domain = spf_domain(&arg[1..]).ok_or_else(|| bad(term, "names no domain"))?;
                if name.eq_ignore_ascii_case("include") {
                    out.pulls.push(domain);
                }
            }
            ("a" | "mx", arg) => {
                out.lookups += 1;
                if let Some(arg) = arg {
                    let (domain, cidr) = match arg.strip_prefix(':') {
                        Some(rest) => match rest.split_once('/') {
                            Some((d, c)) => (Some(d), Some(c)),
                            None => (Some(rest), None),
                        },
                        None => (None, arg.strip_prefix('/')),
                    };
                    if domain.is_some_and(|d| spf_domain(d).is_none()) {
                        return Err(bad(term, "names no domain"));
                    }
                    if cidr.is_some_and(|c| {
                        !c.split("//")
                            .all(|n| n.parse::<u8>().is_ok_and(|n| n <= 128))
                    }) {
                        return Err(bad(term, "has a prefix length that is not a number"));
                    }
                }
            }
            ("ptr", arg) => {
                out.lookups += 1;
                if let Some(arg) = arg {
                    let d = arg
                        .strip_prefix(':')
                        .ok_or_else(|| bad(term, "is not ptr:DOMAIN"))?;
                    spf_domain(d).ok_or_else(|| bad(term, "names no domain"))?;
                }
            }
            ("ip4", Some(arg)) if arg.starts_with(':') => {
                let (ip, cidr) = split_cidr(&arg[1..]);
                if ip.parse::<Ipv4Addr>().is_err() || cidr.is_some_and(|c| c > 32) {
                    return Err(bad(term, "is not ip4:ADDRESS[/0-32]"));
                }
            }
            ("ip6", Some(arg)) if arg.starts_with(':') => {
                let (ip, cidr) = split_cidr(&arg[1..]);
                if ip.parse::<Ipv6Addr>().is_err() || cidr.is_some_and(|c| c > 128) {
                    return Err(bad(term, "is not ip6:ADDRESS[/0-128]"));
                }
            }
            _ => return Err(bad(term, "is not an SPF mechanism")),
        }
    }
    if redirects > 1 {
        return Err(bad("redirect=", "appears more than once"));
    }
    Ok(out)
}

/// `ADDRESS/N` → (address, N); a prefix that is not a number gives `Some(255)`.
fn split_cidr(text: &str) -> (&str, Option<u8>) {
    match text.split_once('/') {
        Some((ip, n)) => (ip, Some(n.parse().unwrap_or(255))),
        None => (text, None),
    }
}

/// An SPF domain-spec, absolute and lower case; `None` when it is not a name (macros such as
/// `%{i}` are accepted as written, lookups counted the same).
fn spf_domain(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    if text.contains('%') {
        return Some(text.to_owned());
    }
    target(&format!("{}.", text.trim_end_matches('.')), "").ok()
}

/// Checks a DMARC record (RFC 7489): `v=DMARC1` first, a policy `p=`, and every known tag's
/// value.
///
/// # Errors
/// The tag that is wrong, and how to write one.
pub fn dmarc(text: &str) -> Result<(), RecordError> {
    let bad = |why: String| {
        refused(
            format!("DMARC {text:?}: {why}"),
            "write e.g. v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com (tags separated by              `;`: p and sp none, quarantine or reject; adkim and aspf r or s; pct 0-100; rua and              ruf mailto: URIs)",
        )
    };
    let tags: Vec<(&str, &str)> = text
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or(t)
        })
        .collect::<Result<_, _>>()
        .map_err(|t| bad(format!("{t:?} is not TAG=VALUE")))?;
    if tags.first() != Some(&("v", "DMARC1")) {
        return Err(bad("does not start with v=DMARC1".into()));
    }
    if !tags.iter().any(|(k, _)| *k == "p") {
        return Err(bad("has no policy (p=none, quarantine or reject)".into()));
    }
    for (key, value) in &tags[1..] {
        let ok = match *key {
            "p" | "sp" => matches!(*value, "none" | "quarantine" | "reject"),
            "adkim" | "aspf" => matches!(*value, "r" | "s"),
            "pct" => value.parse::<u8>().is_ok_and(|n| n <= 100),
            "ri" => value.parse::<u32>().is_ok(),
            "fo" => value.split(':').all(|o| matches!(o, "0" | "1" | "d" | "s")),
            "rf" => value.split(':').all(|f| f == "afrf"),
            "rua" | "ruf" => value.split(',').all(|uri| {
                uri.trim()
                    .strip_prefix("mailto:")
                    .and_then(|a| a.split('!').next())
                    .is_some_and(|a| {
                        a.split_once('@').is_some_and(|(l, d)| {
                            !l.is_empty() && target(&format!("{d}."), "").is_ok()
                        })
                    })
            }),
            "v" => false,
            _ => return Err(bad(format!("unknown tag {key:?}"))),
        };
        if !ok {
            return Err(bad(format!("{key}={value:?} is not a valid value")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_are_absolute_inside_the_zone() {
        assert_eq!(owner("@", "acme.test").unwrap(), "acme.test.");
        assert_eq!(owner("www", "acme.test").unwrap(), "www.acme.test.");
        assert_eq!(
            owner("_sip._tcp", "acme.test").unwrap(),
            "_sip._tcp.acme.test."
        );
        assert_eq!(owner("*.shop", "acme.test").unwrap(), "*.shop.acme.test.");
        assert_eq!(
            owner("WWW.Acme.Test.", "acme.test").unwrap(),
            "www.acme.test."
        );
        assert!(owner("www.other.test.", "acme.test").is_err());
        assert!(owner("evilacme.test.", "acme.test").is_err());
        assert!(owner("a.*", "acme.test").is_err());
        assert!(owner("bad label", "acme.test").is_err());
        assert!(owner("-x", "acme.test").is_err());
        assert!(owner(&"a".repeat(64), "acme.test").is_err());
    }

    #[test]
    fn values_are_checked_and_canonical() {
        let z = "acme.test";
        let ok = |t, v: &str| value(t, v, z).unwrap();
        assert_eq!(ok(RecordType::A, "192.0.2.10"), "192.0.2.10");
        assert!(value(RecordType::A, "192.0.2.300", z).is_err());
        assert!(value(RecordType::A, "2001:db8::1", z).is_err());
        assert_eq!(ok(RecordType::Aaaa, "2001:DB8:0::10"), "2001:db8::10");
        assert_eq!(ok(RecordType::Cname, "acme.test."), "acme.test.");
        assert_eq!(ok(RecordType::Cname, "www"), "www.acme.test.");
        assert_eq!(
            ok(RecordType::Mx, "10 mail.acme.test."),
            "10 mail.acme.test."
        );
        assert!(value(RecordType::Mx, "mail.acme.test.", z).is_err());
        assert!(value(RecordType::Mx, "70000 mail.", z).is_err());
        assert_eq!(
            ok(RecordType::Srv, "10 60 5060 sip.acme.test."),
            "10 60 5060 sip.acme.test."
        );
        assert_eq!(
            ok(RecordType::Caa, "0 issue \"letsencrypt.org\""),
            "0 issue \"letsencrypt.org\""
        );
        assert!(value(RecordType::Caa, "0 bogus \"x\"", z).is_err());
        assert_eq!(ok(RecordType::Txt, "v=spf1 mx -all"), "\"v=spf1 mx -all\"");
        assert_eq!(
            ok(RecordType::Txt, "\"v=spf1 mx -all\""),
            "\"v=spf1 mx -all\""
        );
        let long = "k".repeat(300);
        assert_eq!(
            ok(RecordType::Txt, &long),
            format!("\"{}\" \"{}\"", "k".repeat(255), "k".repeat(45)),
            "long values split into 255-byte strings"
        );
        assert!(value(RecordType::Txt, "a\"b", z).is_err());
        assert!(value(RecordType::Txt, "new\nline", z).is_err());
        assert_eq!(ok(RecordType::Tlsa, "3 1 1 ABCD"), "3 1 1 abcd");
        assert!(value(RecordType::Tlsa, "3 1 1 xyz", z).is_err());
        assert_eq!(ok(RecordType::Sshfp, "4 2 00ff"), "4 2 00ff");
    }

    #[test]
    fn spf_records_parse_and_count_their_lookups() {
        let spf = |t: &str| super::spf(t);
        assert_eq!(spf("v=spf1 mx -all").unwrap().lookups, 1);
        assert_eq!(
            spf("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a:mail.acme.test mx/24 ~all")
                .unwrap()
                .lookups,
            2
        );
        let inc = spf("v=spf1 include:_spf.example.net redirect=spf.acme.test").unwrap();
        assert_eq!(inc.lookups, 2);
        assert_eq!(inc.pulls, ["_spf.example.net.", "spf.acme.test."]);
        for broken in [
            "spf1 -all",
            "v=spf1 bogus",
            "v=spf1 ip4:300.1.1.1",
            "v=spf1 include:",
            "v=spf1 redirect=a.test redirect=b.test",
            "v=spf1 +-all",
        ] {
            assert!(spf(broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn dmarc_records_are_checked_tag_by_tag() {
        assert!(dmarc("v=DMARC1; p=quarantine; rua=mailto:dmarc@acme.test; pct=50").is_ok());
        assert!(dmarc("v=DMARC1;p=none").is_ok());
        for broken in [
            "p=none; v=DMARC1",
            "v=DMARC1; rua=mailto:a@acme.test",
            "v=DMARC1; p=maybe",
            "v=DMARC1; p=none; pct=101",
            "v=DMARC1; p=none; rua=dmarc@acme.test",
            "v=DMARC1; p=none; colour=blue",
            "v=DMARC1; p",
        ] {
            assert!(dmarc(broken).is_err(), "{broken}");
        }
    }
}
