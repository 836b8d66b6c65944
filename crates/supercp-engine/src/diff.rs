//! Desired against observed, for one object: a step, or nothing when they agree. Pure.

use supercp_core::object::Observed;
use supercp_core::{Action, Desired, Object, Reason, Step};

/// Compares one desired object with what is on the node. `owner_ids` are the uid and gid the
/// desired owner maps to on this node (`None` when no owner is managed or it does not exist).
pub fn diff(desired: &Desired, observed: &Observed, owner_ids: Option<(u32, u32)>) -> Option<Step> {
    let step = |action,
                reason,
                before: Option<String>,
                diff: Option<String>,
                previous: Option<Vec<u8>>| Step {
        id: desired.id(),
        action,
        reason,
        resource: desired.resource.clone(),
        origin: desired.origin.clone(),
        before,
        after: Some(desired.object.digest()),
        diff,
        desired: Some(desired.clone()),
        previous,
        gate: desired.gate.clone(),
        tenant_data: desired.tenant_data,
    };
    let path = desired.path();
    match (&desired.object, observed) {
        (_, Observed::Blocked { path, what }) => Some(step(
            Action::Update,
            Reason::Blocked {
                path: path.clone(),
                what: what.clone(),
            },
            None,
            None,
            None,
        )),
        (Object::File { content, .. }, Observed::Absent) => Some(step(
            Action::Create,
            Reason::Missing,
            None,
            Some(text_diff(&path, b"", content)),
            None,
        )),
        (Object::Dir { .. }, Observed::Absent) => {
            Some(step(Action::Create, Reason::Missing, None, None, None))
        }
        (
            Object::File {
                content,
                mode,
                owner,
            },
            Observed::File {
                content: old,
                mode: old_mode,
                uid,
                gid,
            },
        ) => {
            // Hashed only when there is a step: a no-change plan compares bytes and moves on.
            let before = || Some(supercp_core::object::digest_bytes(old));
            if content != old {
                let d = text_diff(&path, old, content);
                return Some(step(
                    Action::Update,
                    Reason::Content,
                    before(),
                    Some(d),
                    Some(old.clone()),
                ));
            }
            metadata_reason(*mode, *old_mode, owner.is_some(), owner_ids, (*uid, *gid))
                .map(|r| step(Action::Update, r, before(), None, Some(old.clone())))
        }
        (
            Object::Dir { mode, owner },
            Observed::Dir {
                mode: old_mode,
                uid,
                gid,
            },
        ) => metadata_reason(*mode, *old_mode, owner.is_some(), owner_ids, (*uid, *gid))
            .map(|r| step(Action::Update, r, Some(desired.object.digest()), None, None)),
        (Object::Account(a), Observed::Absent) => {
            let detail = format!(
                "new user and group{}, home {}, shell {}, group members {}",
                a.uid.map_or_else(String::new, |u| format!(" {u}")),
                a.home,
                a.shell,
                a.members.join(", ")
            );
            Some(step(
                Action::Create,
                Reason::Metadata { detail },
                None,
                None,
                None,
            ))
        }
        (
            Object::Account(a),
            Observed::Account {
                home,
                shell,
                members,
                locked,
                ..
            },
        ) => {
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
            (!parts.is_empty()).then(|| {
                step(
                    Action::Update,
                    Reason::Metadata {
                        detail: parts.join(", "),
                    },
                    None,
                    None,
                    None,
                )
            })
        }
        (Object::Account(_), _) | (_, Observed::Account { .. }) => Some(step(
            Action::Update,
            Reason::Blocked {
                path,
                what: "an object of another kind".into(),
            },
            None,
            None,
            None,
        )),
        (Object::File { .. }, Observed::Dir { .. }) => Some(step(
            Action::Update,
            Reason::Blocked {
                path,
                what: "a directory where a file belongs".into(),
            },
            None,
            None,
            None,
        )),
        (Object::Dir { .. }, Observed::File { .. }) => Some(step(
            Action::Update,
            Reason::Blocked {
                path,
                what: "a file where a directory belongs".into(),
            },
            None,
            None,
            None,
        )),
    }
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
    use supercp_core::Span;

    fn file(content: &str) -> Desired {
        Desired {
            anchor: "/etc/nginx/sites-enabled".into(),
            rel: "a.test.conf".into(),
            object: Object::File {
                content: content.as_bytes().to_vec(),
                mode: 0o644,
                owner: None,
            },
            resource: "Domain/a.test".into(),
            origin: Span::new("a.yaml".into(), 3, 1),
            gate: Some("nginx".into()),
            tenant_data: false,
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
        assert_eq!(diff(&file("x\n"), &observed, None), None);
    }

    #[test]
    fn edited_file_gives_an_update_with_a_unified_diff() {
        let observed = Observed::File {
            content: b"x\nhand edit\n".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
        };
        let step = diff(&file("x\n"), &observed, None).expect("a step");
        assert_eq!(step.action, Action::Update);
        assert_eq!(step.reason, Reason::Content);
        assert!(
            step.diff.as_deref().unwrap_or("").contains("-hand edit"),
            "{:?}",
            step.diff
        );
        assert_eq!(step.previous.as_deref(), Some(&b"x\nhand edit\n"[..]));
    }

    #[test]
    fn mode_change_alone_is_a_metadata_update() {
        let observed = Observed::File {
            content: b"x\n".to_vec(),
            mode: 0o600,
            uid: 0,
            gid: 0,
        };
        let step = diff(&file("x\n"), &observed, None).expect("a step");
        assert!(matches!(step.reason, Reason::Metadata { .. }));
    }

    #[test]
    fn symlink_in_the_way_is_a_refused_step() {
        let observed = Observed::Blocked {
            path: "/x".into(),
            what: "a symlink".into(),
        };
        let step = diff(&file("x\n"), &observed, None).expect("a step");
        assert!(matches!(step.reason, Reason::Blocked { .. }));
    }
}
