//! Desired against observed, for one object of each kind: a step, or nothing when they agree.
//! Pure: no I/O. The observation (`Seen`) comes from the registry's `observe`.
//!
//! Files and directories compare content, mode and owner; accounts compare home, shell, group
//! members and the suspension. Something of another kind in the object's place (a symlink, a
//! directory where a file belongs) is a refused step, never written through.

use supercp_core::object::{
    Account, Cert, CertState, Observed, RrsetSource, Zone, ZoneFacts, ZoneRrset, ZoneState,
};
use supercp_core::plan::{FileMeta, Found};
use supercp_core::{Action, Desired, Object, Reason, Snapshot, Step};

use crate::registry::Seen;

/// Compares one desired object with what was seen on the node.
pub fn diff(desired: &Desired, seen: &Seen) -> Option<Step> {
    let observed = &seen.observed;
    if let Observed::Blocked { path, what } = observed {
        return Some(refused(desired, path.clone(), what.clone()));
    }
    match &desired.object {
        Object::File { .. } | Object::Dir { .. } => file_or_dir(desired, seen),
        Object::Account(a) => account(desired, a, observed),
        Object::Cert(c) => cert(desired, c, observed),
        Object::Zone(z) => zone(desired, z, observed),
    }
}

/// A zone with at least this many rrsets is guarded: a plan that would change or remove more
/// than `GUARD_SHARE` percent of them is refused unless forced for that zone.
pub const GUARD_MIN_RRSETS: usize = 10;
pub const GUARD_SHARE: usize = 30;

/// How a zone on the server differs from the desired one, rrset by rrset.
#[derive(Debug, Default)]
pub struct ZoneChanges<'a> {
    pub add: Vec<&'a ZoneRrset>,
    /// (on the server, desired)
    pub change: Vec<(&'a ZoneRrset, &'a ZoneRrset)>,
    pub remove: Vec<&'a ZoneRrset>,
}

impl ZoneChanges<'_> {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.change.is_empty() && self.remove.is_empty()
    }
}

/// The rrsets to add, change and remove to make `found` what `zone` wants (both sorted by
/// name and type, as render and observe leave them). Pure; the driver's PATCH is built from
/// it, so the plan shows exactly what is sent.
pub fn zone_changes<'a>(zone: &'a Zone, found: &'a ZoneFacts) -> ZoneChanges<'a> {
    let key = |r: &'a ZoneRrset| (r.name.as_str(), r.record_type.as_str());
    let have: std::collections::BTreeMap<_, _> = found.rrsets.iter().map(|r| (key(r), r)).collect();
    let want: std::collections::BTreeSet<_> = zone.rrsets.iter().map(key).collect();
    let mut out = ZoneChanges::default();
    for r in &zone.rrsets {
        match have.get(&key(r)) {
            None => out.add.push(r),
            Some(old) if old.ttl != r.ttl || old.contents != r.contents => {
                out.change.push((old, r))
            }
            Some(_) => {}
        }
    }
    out.remove = found
        .rrsets
        .iter()
        .filter(|r| !want.contains(&key(r)))
        .collect();
    out
}

fn zone(desired: &Desired, z: &Zone, observed: &Observed) -> Option<Step> {
    let facts = match observed {
        Observed::Zone(ZoneState::Present(f)) => f,
        Observed::Zone(ZoneState::Missing) => {
            let lines: Vec<String> = z.rrsets.iter().map(|r| rrset_line('+', r)).collect();
            let found = Found {
                before: None,
                diff: Some(lines.join("\n") + "\n"),
                snapshot: Snapshot::Kept,
            };
            return Some(Step::put(desired, Action::Create, Reason::Missing, found));
        }
        _ => {
            return Some(refused(
                desired,
                desired.id().key().to_owned(),
                "an object of another kind".into(),
            ))
        }
    };
    let changes = zone_changes(z, facts);
    let kind = crate::dns::zone_kind(z);
    let set = |v: &[String]| crate::dns::sorted(v.to_vec());
    let notify = set(&z.notify) != facts.notify;
    let transfer = set(&z.allow_transfer) != facts.allow_transfer;
    let same_kind = facts.kind.eq_ignore_ascii_case(kind);
    let signing = z.dnssec != facts.dnssec;
    if changes.is_empty() && same_kind && !notify && !transfer && !signing {
        return None;
    }
    let mut lines = Vec::new();
    if signing {
        lines.push(if z.dnssec {
            "~ dnssec off → on (one CSK, ECDSAP256SHA256; give the DS that `supercp plan` then shows to the registrar)".to_owned()
        } else {
            "~ dnssec on → off (remove the DS at the registrar first)".to_owned()
        });
    }
    for ds in &facts.ds {
        lines.push(format!("  DS {} {ds}", z.name));
    }
    if !same_kind {
        lines.push(format!("~ kind {} → {kind}", facts.kind));
    }
    if notify {
        lines.push(format!(
            "~ also-notify [{}] → [{}]",
            facts.notify.join(" "),
            set(&z.notify).join(" ")
        ));
    }
    if transfer {
        lines.push(format!(
            "~ allow-transfer [{}] → [{}]",
            facts.allow_transfer.join(" "),
            set(&z.allow_transfer).join(" ")
        ));
    }
    for r in &changes.add {
        lines.push(rrset_line('+', r));
    }
    for (old, new) in &changes.change {
        lines.push(rrset_line('-', old));
        lines.push(rrset_line('+', new));
    }
    for r in &changes.remove {
        lines.push(rrset_line('-', r));
    }
    let mut detail = format!(
        "{} rrsets to add, {} to change, {} to remove",
        changes.add.len(),
        changes.change.len(),
        changes.remove.len()
    );
    if !changes.remove.is_empty() {
        detail.push_str(" (not in the repo: drift or a removed record)");
    }
    let reason = Reason::Entries {
        guard: zone_guard(z, facts, &changes),
        detail,
    };
    let found = Found {
        before: None,
        diff: Some(lines.join("\n") + "\n"),
        snapshot: Snapshot::Kept,
    };
    Some(Step::put(desired, Action::Update, reason, found))
}

/// Why a zone's change is too large to make unasked: more than `GUARD_SHARE` % of the rrsets
/// of a zone with at least `GUARD_MIN_RRSETS` changed or removed, or a different apex NS set
/// (a wrong one takes every name of the zone offline). `None` when it may go ahead.
fn zone_guard(z: &Zone, facts: &ZoneFacts, changes: &ZoneChanges<'_>) -> Option<String> {
    if facts.dnssec && !z.dnssec {
        // Whether the parent still serves a DS is not checked yet: always forced.
        return Some(
            "turns DNSSEC off: while the parent zone still serves its DS, resolvers that \
             validate reject every answer of the zone; remove the DS at the registrar, wait \
             out its TTL, then force"
                .to_owned(),
        );
    }
    let apex_ns = |rrsets: &[ZoneRrset]| {
        rrsets
            .iter()
            .find(|r| r.name == z.name && r.record_type == "NS")
            .map(|r| r.contents.clone())
    };
    let (before, after) = (apex_ns(&facts.rrsets), apex_ns(&z.rrsets));
    if before.is_some() && before != after {
        return Some(format!(
            "changes the apex NS set from {} to {}",
            before.unwrap_or_default().join(" "),
            after.map_or_else(|| "none".to_owned(), |a| a.join(" "))
        ));
    }
    let total = facts.rrsets.len();
    let touched = changes.change.len() + changes.remove.len();
    if total >= GUARD_MIN_RRSETS && touched * 100 > GUARD_SHARE * total {
        return Some(format!(
            "changes or removes {touched} of its {total} rrsets ({} %, more than {GUARD_SHARE} %)",
            touched * 100 / total
        ));
    }
    None
}

/// One rrset as a plan shows it: `+ www.a.test. 300 CNAME a.test.  (explicit)`.
fn rrset_line(sign: char, r: &ZoneRrset) -> String {
    let source = match r.source {
        RrsetSource::Explicit => "  (explicit)",
        RrsetSource::Template => "  (template)",
        RrsetSource::Server => "",
    };
    format!(
        "{sign} {} {} {} {}{source}",
        r.name,
        r.ttl,
        r.record_type,
        r.contents.join(" | ")
    )
}

fn refused(desired: &Desired, path: String, what: String) -> Step {
    Step::put(
        desired,
        Action::Update,
        Reason::Blocked { path, what },
        Found::nothing(Snapshot::Kept),
    )
}

fn file_or_dir(desired: &Desired, seen: &Seen) -> Option<Step> {
    let path = desired.id().key().to_owned();
    let managed = desired.object.owner().is_some();
    match (&desired.object, &seen.observed) {
        (Object::File { content, .. }, Observed::Absent) => Some(Step::put(
            desired,
            Action::Create,
            Reason::Missing,
            Found {
                before: None,
                diff: Some(text_diff(&path, b"", content)),
                snapshot: Snapshot::Absent,
            },
        )),
        (Object::Dir { .. }, Observed::Absent) => Some(Step::put(
            desired,
            Action::Create,
            Reason::Missing,
            Found::nothing(Snapshot::Kept),
        )),
        (
            Object::File { content, mode, .. },
            Observed::File {
                content: old,
                mode: old_mode,
                uid,
                gid,
            },
        ) => {
            // Hashed only when there is a step: a no-change plan compares bytes and moves on.
            let found = |diff| Found {
                before: Some(supercp_core::object::digest_bytes(old)),
                diff,
                snapshot: Snapshot::Content {
                    content: old.clone(),
                    meta: Some(FileMeta {
                        mode: *old_mode,
                        uid: *uid,
                        gid: *gid,
                    }),
                },
            };
            if content != old {
                let d = text_diff(&path, old, content);
                return Some(Step::put(
                    desired,
                    Action::Update,
                    Reason::Content,
                    found(Some(d)),
                ));
            }
            metadata_reason(*mode, *old_mode, managed, seen.owner_ids, (*uid, *gid))
                .map(|r| Step::put(desired, Action::Update, r, found(None)))
        }
        (
            Object::Dir { mode, .. },
            Observed::Dir {
                mode: old_mode,
                uid,
                gid,
            },
        ) => metadata_reason(*mode, *old_mode, managed, seen.owner_ids, (*uid, *gid)).map(|r| {
            let found = Found {
                before: Some(desired.object.digest()),
                diff: None,
                snapshot: Snapshot::Kept,
            };
            Step::put(desired, Action::Update, r, found)
        }),
        (Object::File { .. }, Observed::Dir { .. }) => Some(refused(
            desired,
            path,
            "a directory where a file belongs".into(),
        )),
        (Object::Dir { .. }, Observed::File { .. }) => Some(refused(
            desired,
            path,
            "a file where a directory belongs".into(),
        )),
        _ => Some(refused(desired, path, "an object of another kind".into())),
    }
}

fn account(desired: &Desired, a: &Account, observed: &Observed) -> Option<Step> {
    let update = |detail: String| {
        Step::put(
            desired,
            Action::Update,
            Reason::Metadata { detail },
            Found::nothing(Snapshot::Kept),
        )
    };
    match observed {
        Observed::Absent => {
            let detail = format!(
                "new user and group{}, home {}, shell {}, group members {}",
                a.uid.map_or_else(String::new, |u| format!(" {u}")),
                a.home,
                a.shell,
                a.members.join(", ")
            );
            Some(Step::put(
                desired,
                Action::Create,
                Reason::Metadata { detail },
                Found::nothing(Snapshot::Kept),
            ))
        }
        Observed::Account {
            home,
            shell,
            members,
            locked,
            ..
        } => {
            let mut parts = Vec::new();
            if *locked != a.locked {
                parts.push(if a.locked {
                    "expire the account (suspended)".to_owned()
                } else {
                    "lift the expiry (suspension lifted)".to_owned()
                });
            }
            if *home != a.home {
                parts.push(format!("home {home} → {}", a.home));
            }
            if *shell != a.shell {
                parts.push(format!("shell {shell} → {}", a.shell));
            }
            let missing: Vec<&str> = a
                .members
                .iter()
                .filter(|m| !members.contains(m))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                parts.push(format!("add group members {}", missing.join(", ")));
            }
            (!parts.is_empty()).then(|| update(parts.join(", ")))
        }
        _ => Some(refused(
            desired,
            a.name.clone(),
            "an object of another kind".into(),
        )),
    }
}

/// Whether a certificate must be issued now, and why: none yet (or the stand-in), names it
/// lacks, unreadable, past its point in the CA's renewal window (ARI) when the CA gave one,
/// else within `renew_days` of expiry, or asked for.
fn cert(desired: &Desired, c: &Cert, observed: &Observed) -> Option<Step> {
    let r = &c.renewal;
    let (action, why, before) = match observed {
        Observed::Cert(CertState::Missing) => {
            (Action::Create, "no certificate yet".to_owned(), None)
        }
        Observed::Cert(CertState::Unreadable(e)) => (
            Action::Update,
            format!("the certificate cannot be read ({e})"),
            None,
        ),
        Observed::Cert(CertState::Present(facts)) => {
            let before = Some(facts.serial.clone());
            let missing: Vec<&str> = c
                .names
                .iter()
                .filter(|n| !facts.names.contains(n))
                .map(String::as_str)
                .collect();
            let expiring = facts.not_after - r.now < i64::from(r.renew_days) * 86_400;
            if facts.placeholder {
                (
                    Action::Create,
                    "serving the self-signed placeholder".to_owned(),
                    before,
                )
            } else if !missing.is_empty() {
                (
                    Action::Update,
                    format!("the certificate does not name {}", missing.join(", ")),
                    before,
                )
            } else if let Some(from) = r.from.filter(|from| r.now >= *from) {
                (
                    Action::Update,
                    format!(
                        "the CA's renewal window (ARI) says renew from {}",
                        supercp_core::time::utc(from * 1000)
                    ),
                    before,
                )
            } else if r.from.is_none() && expiring {
                let days = (facts.not_after - r.now) / 86_400;
                (Action::Update, format!("expires in {days} days"), before)
            } else if r.asked {
                (Action::Update, "renewal asked for".to_owned(), before)
            } else {
                return None;
            }
        }
        _ => {
            return Some(refused(
                desired,
                desired.id().key().to_owned(),
                "an object of another kind".into(),
            ))
        }
    };
    let found = Found {
        before,
        diff: None,
        snapshot: Snapshot::Kept,
    };
    Some(Step::put(desired, action, Reason::Due { why }, found))
}

fn metadata_reason(
    mode: u32,
    old_mode: u32,
    managed: bool,
    ids: Option<(u32, u32)>,
    old: (u32, u32),
) -> Option<Reason> {
    let mut parts = Vec::new();
    if mode != old_mode {
        parts.push(format!("mode {old_mode:o} → {mode:o}"));
    }
    if managed {
        match ids {
            Some(ids) if ids != old => {
                parts.push(format!("owner {}:{} → {}:{}", old.0, old.1, ids.0, ids.1))
            }
            Some(_) => {}
            None => parts.push("owner does not exist on this node".into()),
        }
    }
    (!parts.is_empty()).then(|| Reason::Metadata {
        detail: parts.join(", "),
    })
}

/// A unified diff of two texts (a note for binary content).
pub fn text_diff(path: &str, old: &[u8], new: &[u8]) -> String {
    match (std::str::from_utf8(old), std::str::from_utf8(new)) {
        (Ok(old), Ok(new)) => similar::TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a{path}"), &format!("b{path}"))
            .to_string(),
        _ => format!("binary content of {path} changes\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use supercp_core::{Location, ResourceKind, ResourceRef, Span, Unit};

    fn file(content: &str) -> Desired {
        Desired {
            object: Object::File {
                at: Location::new("/etc/nginx/sites-enabled", "a.test.conf"),
                content: content.as_bytes().to_vec(),
                mode: 0o644,
                owner: None,
            },
            resource: ResourceRef::new(ResourceKind::Domain, "a.test"),
            origin: Span::new("a.yaml".into(), 3, 1),
            unit: Unit::Gate("nginx".into()),
            tenant_data: false,
        }
    }

    fn seen(observed: Observed) -> Seen {
        Seen {
            observed,
            owner_ids: None,
        }
    }

    #[test]
    fn identical_file_gives_no_step() {
        let observed = Observed::File {
            content: b"x\n".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        assert_eq!(diff(&file("x\n"), &seen(observed)), None);
    }

    #[test]
    fn edited_file_gives_an_update_with_a_unified_diff() {
        let observed = Observed::File {
            content: b"x\nhand edit\n".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let step = diff(&file("x\n"), &seen(observed)).expect("a step");
        assert_eq!(step.action, Action::Update);
        assert_eq!(step.reason, Reason::Content);
        assert!(
            step.diff.as_deref().unwrap_or("").contains("-hand edit"),
            "{:?}",
            step.diff
        );
        assert_eq!(step.previous(), Some(&b"x\nhand edit\n"[..]));
    }

    #[test]
    fn mode_change_alone_is_a_metadata_update() {
        let observed = Observed::File {
            content: b"x\n".to_vec(),
            mode: 0o600,
            uid: 0,
            gid: 0,
        };
        let step = diff(&file("x\n"), &seen(observed)).expect("a step");
        assert!(matches!(step.reason, Reason::Metadata { .. }));
    }

    #[test]
    fn symlink_in_the_way_is_a_refused_step() {
        let observed = Observed::Blocked {
            path: "/x".into(),
            what: "a symlink".into(),
        };
        let step = diff(&file("x\n"), &seen(observed)).expect("a step");
        assert!(matches!(step.reason, Reason::Blocked { .. }));
    }

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    fn cert(renewal: supercp_core::Renewal) -> Desired {
        Desired {
            object: Object::Cert(Cert {
                at: Location::new("/etc/supercp/tls", "a.test/fullchain.pem"),
                names: vec!["a.test".into(), "www.a.test".into()],
                key: supercp_core::KeyType::EcdsaP256,
                renewal,
            }),
            resource: ResourceRef::new(ResourceKind::Domain, "a.test"),
            origin: Span::new("a.yaml".into(), 3, 1),
            unit: Unit::Issue {
                gate: "nginx".into(),
            },
            tenant_data: false,
        }
    }

    fn issued(names: &[&str], days_left: i64, placeholder: bool) -> Observed {
        Observed::Cert(CertState::Present(supercp_core::CertFacts {
            placeholder,
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            not_after: NOW + days_left * DAY,
            serial: "0a1b".into(),
        }))
    }

    /// The step's action and reason, as the plan prints them; `None` when it is not due.
    fn due(renewal: supercp_core::Renewal, observed: Observed) -> Option<(Action, String)> {
        diff(&cert(renewal), &seen(observed)).map(|s| (s.action, s.reason.to_string()))
    }

    #[test]
    fn a_certificate_is_due_when_missing_a_stand_in_lacking_names_or_unreadable() {
        let r = supercp_core::Renewal {
            renew_days: 30,
            now: NOW,
            ..Default::default()
        };
        let both = ["a.test", "www.a.test"];
        let cases = [
            (
                Observed::Cert(CertState::Missing),
                Some((Action::Create, "no certificate yet")),
            ),
            (
                issued(&both, 80, true),
                Some((Action::Create, "serving the self-signed placeholder")),
            ),
            (
                issued(&["a.test"], 80, false),
                Some((Action::Update, "the certificate does not name www.a.test")),
            ),
            (
                Observed::Cert(CertState::Unreadable("no PEM".into())),
                Some((Action::Update, "the certificate cannot be read (no PEM)")),
            ),
            (
                issued(&both, 29, false),
                Some((Action::Update, "expires in 29 days")),
            ),
            (issued(&both, 31, false), None),
        ];
        for (observed, want) in cases {
            let want = want.map(|(a, w)| (a, w.to_owned()));
            assert_eq!(due(r.clone(), observed.clone()), want, "{observed:?}");
        }
        let step = diff(&cert(r), &seen(issued(&both, 10, false))).expect("due");
        assert_eq!(
            step.before.as_deref(),
            Some("0a1b"),
            "the serial it replaces"
        );
        assert_eq!(
            step.unit,
            Unit::Issue {
                gate: "nginx".into()
            }
        );
    }

    #[test]
    fn the_cas_renewal_window_replaces_renew_days_and_asking_renews_a_fresh_one() {
        let both = ["a.test", "www.a.test"];
        let window = |from: i64| supercp_core::Renewal {
            renew_days: 30,
            from: Some(from),
            now: NOW,
            asked: false,
        };
        // Inside the window, past this domain's point: due, whatever renewDays says.
        let (action, why) = due(window(NOW - 60), issued(&both, 60, false)).expect("due");
        assert_eq!(action, Action::Update);
        assert!(
            why.starts_with("the CA's renewal window (ARI) says renew from "),
            "{why}"
        );
        // A window not reached yet: not due, even within renewDays.
        assert_eq!(due(window(NOW + DAY), issued(&both, 5, false)), None);
        let asked = supercp_core::Renewal {
            asked: true,
            ..window(NOW + DAY)
        };
        assert_eq!(
            due(asked, issued(&both, 60, false)),
            Some((Action::Update, "renewal asked for".into()))
        );
    }

    #[test]
    fn a_symlink_at_a_certificate_is_a_refused_step() {
        let blocked = Observed::Blocked {
            path: "/etc/supercp/tls/a.test".into(),
            what: "a symlink".into(),
        };
        let step = diff(&cert(supercp_core::Renewal::default()), &seen(blocked)).expect("a step");
        assert!(
            matches!(step.reason, Reason::Blocked { .. }),
            "{:?}",
            step.reason
        );
    }

    fn acme(locked: bool) -> Desired {
        Desired {
            object: Object::Account(Account {
                name: "acme".into(),
                uid: Some(20001),
                home: "/home/acme".into(),
                shell: "/usr/sbin/nologin".into(),
                members: vec!["www-data".into()],
                locked,
            }),
            resource: ResourceRef::new(ResourceKind::Tenant, "acme"),
            origin: Span::new("acme.yaml".into(), 1, 1),
            unit: Unit::Direct,
            tenant_data: false,
        }
    }

    fn user(home: &str, members: &[&str], locked: bool) -> Observed {
        Observed::Account {
            uid: 20001,
            gid: 20001,
            home: home.into(),
            shell: "/usr/sbin/nologin".into(),
            comment: supercp_core::object::ACCOUNT_COMMENT.into(),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
            locked,
        }
    }

    #[test]
    fn an_account_diff_names_each_difference_and_nothing_when_it_matches() {
        let step =
            |d: &Desired, o: Observed| diff(d, &seen(o)).map(|s| (s.action, s.reason.to_string()));
        assert_eq!(
            step(&acme(false), Observed::Absent),
            Some((
                Action::Create,
                "new user and group 20001, home /home/acme, shell /usr/sbin/nologin, group members www-data".into()
            ))
        );
        assert_eq!(
            step(&acme(false), user("/home/acme", &["www-data"], false)),
            None
        );
        assert_eq!(
            step(&acme(true), user("/srv/acme", &[], false)),
            Some((
                Action::Update,
                "expire the account (suspended), home /srv/acme → /home/acme, add group members www-data".into()
            ))
        );
        assert_eq!(
            step(&acme(false), user("/home/acme", &["www-data"], true)),
            Some((Action::Update, "lift the expiry (suspension lifted)".into()))
        );
        let file = Observed::File {
            content: Vec::new(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        assert!(matches!(
            diff(&acme(false), &seen(file)).map(|s| s.reason),
            Some(Reason::Blocked { .. })
        ));
    }
}
