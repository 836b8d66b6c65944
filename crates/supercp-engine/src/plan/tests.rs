//! Plans from data: observed fixtures in, the plan as text out. No disk (the test that observes a
//! real directory is `tests/observe.rs`).

use supercp_core::object::Account;
use supercp_core::{Kind, Object, Reason, Span};

use super::*;

fn file(anchor: &str, rel: &str, resource: &str, unit: Unit) -> Desired {
    Desired {
        object: Object::File {
            at: Location::new(anchor, rel),
            content: b"listen 80;\n".to_vec(),
            mode: 0o644,
            owner: None,
        },
        resource: ResourceRef::parse(resource).expect("a resource"),
        origin: Span::new("repo/a.yaml".into(), 3, 1),
        unit,
        tenant_data: false,
    }
}

fn dir(anchor: &str, rel: &str, resource: &str) -> Desired {
    Desired {
        object: Object::Dir {
            at: Location::new(anchor, rel),
            mode: 0o750,
            owner: None,
        },
        resource: ResourceRef::parse(resource).expect("a resource"),
        origin: Span::new("repo/t.yaml".into(), 1, 1),
        unit: Unit::Direct,
        tenant_data: true,
    }
}

fn account(name: &str) -> Desired {
    Desired {
        object: Object::Account(Account {
            name: name.into(),
            uid: Some(20000),
            home: format!("/home/{name}"),
            shell: "/usr/sbin/nologin".into(),
            members: vec!["www-data".into()],
            locked: false,
        }),
        resource: ResourceRef::new(ResourceKind::Tenant, name),
        origin: Span::new("repo/t.yaml".into(), 1, 1),
        unit: Unit::Direct,
        tenant_data: true,
    }
}

fn owned(id: &str, resource: &str, anchor: &str, tenant_data: bool) -> OwnedObject {
    OwnedObject {
        object: id.into(),
        resource: resource.into(),
        tenant_data,
        anchor: anchor.into(),
        deletion_policy: tenant_data.then(|| "Retain".to_owned()),
        gate: None,
    }
}

fn seen(observed: Observed) -> Seen {
    Seen {
        observed,
        owner_ids: None,
    }
}

fn same_file() -> Observed {
    Observed::File {
        content: b"listen 80;\n".to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

fn by_id(owned: Vec<OwnedObject>) -> BTreeMap<String, OwnedObject> {
    owned.into_iter().map(|o| (o.object.clone(), o)).collect()
}

/// The observed half for owned objects: each record, typed, with what is in its place.
fn leaving(
    records: &BTreeMap<String, OwnedObject>,
    found: &[(&str, Observed)],
) -> Vec<(Owned, Observed)> {
    found
        .iter()
        .map(|(id, what)| (owned_record(&records[*id]).expect("a record"), what.clone()))
        .collect()
}

/// One line per step: symbol, object, reason, resource, unit.
fn text(plan: &Plan) -> String {
    let line = |prefix: &str, s: &Step| {
        format!(
            "{prefix}{} {} ({}) {} [{}]\n",
            s.action.symbol(),
            s.id,
            s.reason,
            s.resource,
            s.unit
        )
    };
    let mut out: String = plan.steps.iter().map(|s| line("", s)).collect();
    out.extend(plan.retained.iter().map(|s| line("kept ", s)));
    out.extend(plan.gone.iter().map(|id| format!("forget {id}\n")));
    out
}

#[test]
fn steps_run_direct_first_then_each_unit_then_direct_deletes_deepest_first() {
    let nginx = || Unit::Gate("nginx".into());
    let fpm = || Unit::Gate("php-fpm".into());
    let desired = vec![
        dir("/home", "acme", "Tenant/acme"),
        file("/etc/php/pool.d", "acme.conf", "Tenant/acme", fpm()),
        file("/etc/nginx/sites", "a.test.conf", "Domain/a.test", nginx()),
        file("/etc/nginx/sites", "same.conf", "Domain/same.test", nginx()),
        dir("/home", "acme/public_html", "Tenant/acme"),
    ];
    let records = by_id(vec![
        owned("dir:/srv/old", "Domain/old.test", "/srv", false),
        owned("dir:/srv/old/deeper", "Domain/old.test", "/srv", false),
        owned(
            "file:/etc/nginx/sites/old.test.conf",
            "Domain/old.test",
            "/etc/nginx/sites",
            false,
        ),
    ]);
    let mut records = records;
    if let Some(o) = records.get_mut("file:/etc/nginx/sites/old.test.conf") {
        o.gate = Some("nginx".into());
    }
    let seen = Observations {
        desired: vec![
            seen(Observed::Absent),
            seen(Observed::Absent),
            seen(Observed::Absent),
            seen(same_file()),
            seen(Observed::Absent),
        ],
        leaving: leaving(
            &records,
            &[
                (
                    "dir:/srv/old",
                    Observed::Dir {
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                    },
                ),
                (
                    "dir:/srv/old/deeper",
                    Observed::Dir {
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                    },
                ),
                ("file:/etc/nginx/sites/old.test.conf", same_file()),
            ],
        ),
    };
    let options = PlanOptions {
        max_delete_share: 100.0,
        ..PlanOptions::default()
    };
    let (plan, observed) =
        decide(&desired, seen, &records, &Scope::Whole, &options, 7).expect("a plan");
    assert_eq!(
        text(&plan),
        "\
+ dir:/home/acme (missing on the node) Tenant/acme [direct]
+ dir:/home/acme/public_html (missing on the node) Tenant/acme [direct]
+ file:/etc/nginx/sites/a.test.conf (missing on the node) Domain/a.test [gate nginx]
- file:/etc/nginx/sites/old.test.conf (no longer in the repo) Domain/old.test [gate nginx]
+ file:/etc/php/pool.d/acme.conf (missing on the node) Tenant/acme [gate php-fpm]
- dir:/srv/old/deeper (no longer in the repo) Domain/old.test [direct]
- dir:/srv/old (no longer in the repo) Domain/old.test [direct]
"
    );
    assert_eq!(observed.len(), desired.len());
    assert_eq!(
        observed[3].differs, None,
        "the unchanged vhost is as desired"
    );
}

#[test]
fn an_owned_object_gone_from_node_and_repo_is_forgotten_and_tenant_data_is_kept() {
    let records = by_id(vec![
        owned(
            "file:/etc/nginx/sites/gone.conf",
            "Domain/gone.test",
            "/etc/nginx/sites",
            false,
        ),
        owned("dir:/home/old", "Tenant/old", "/home", true),
        owned("user:old", "Tenant/old", "", true),
    ]);
    let found = [
        ("file:/etc/nginx/sites/gone.conf", Observed::Absent),
        (
            "dir:/home/old",
            Observed::Dir {
                mode: 0o750,
                uid: 20001,
                gid: 20001,
            },
        ),
        (
            "user:old",
            Observed::Account {
                uid: 20001,
                gid: 20001,
                home: "/home/old".into(),
                shell: "/bin/sh".into(),
                comment: "SuperCP tenant".into(),
                members: Vec::new(),
                locked: false,
            },
        ),
    ];
    let options = PlanOptions {
        max_delete_share: 100.0,
        ..PlanOptions::default()
    };
    let seen = Observations {
        desired: Vec::new(),
        leaving: leaving(&records, &found),
    };
    let (plan, _) = decide(&[], seen, &records, &Scope::Whole, &options, 7).expect("a plan");
    assert_eq!(
        text(&plan),
        "\
kept - dir:/home/old (no longer in the repo) Tenant/old [direct]
kept - user:old (no longer in the repo) Tenant/old [direct]
forget file:/etc/nginx/sites/gone.conf
"
    );
    assert!(
        plan.is_empty(),
        "kept data and forgotten records are not changes"
    );

    // Deletion policy Delete and --allow-destroy: the data goes, the account with it.
    let mut records = records;
    for o in records.values_mut() {
        if o.tenant_data {
            o.deletion_policy = Some("Delete".into());
        }
    }
    let seen = Observations {
        desired: Vec::new(),
        leaving: leaving(&records, &found),
    };
    let destroy = PlanOptions {
        allow_destroy: true,
        ..options
    };
    let (plan, _) = decide(&[], seen, &records, &Scope::Whole, &destroy, 7).expect("a plan");
    assert_eq!(
        text(&plan),
        "\
- dir:/home/old (no longer in the repo) Tenant/old [direct]
- user:old (no longer in the repo) Tenant/old [direct]
forget file:/etc/nginx/sites/gone.conf
"
    );
}

#[test]
fn a_delete_targets_the_owned_record_not_a_made_up_object() {
    let records = by_id(vec![owned(
        "file:/etc/nginx/sites/old.conf",
        "Domain/old.test",
        "/etc/nginx/sites",
        false,
    )]);
    let seen = Observations {
        desired: Vec::new(),
        leaving: leaving(&records, &[("file:/etc/nginx/sites/old.conf", same_file())]),
    };
    let (plan, _) = decide(
        &[],
        seen,
        &records,
        &Scope::Whole,
        &PlanOptions::default(),
        7,
    )
    .expect("a plan");
    let [step] = plan.steps.as_slice() else {
        panic!("one step: {plan:?}");
    };
    let supercp_core::Target::Remove(target) = &step.target else {
        panic!("a removal: {step:?}");
    };
    assert_eq!(target.id.kind(), Kind::File);
    assert_eq!(
        target.location,
        Some(Location::new("/etc/nginx/sites", "old.conf"))
    );
    assert_eq!(
        step.previous(),
        Some(&b"listen 80;\n"[..]),
        "kept for a rollback"
    );
}

#[test]
fn the_mass_deletion_guard_refuses_more_than_the_share_of_a_kind() {
    let records = by_id(vec![
        owned("user:a", "Tenant/a", "", true),
        owned("user:b", "Tenant/b", "", true),
        owned("user:c", "Tenant/c", "", true),
    ]);
    let desired = vec![account("a")];
    let err = guard(
        &Scope::Whole,
        &desired,
        &[],
        &records,
        &PlanOptions::default(),
    )
    .expect_err("two of three tenants is too many");
    assert_eq!(
        err.to_string(),
        "the plan would delete 2 of 3 Tenant resources (67 %), over the limit of 25 %; \
         check the repo, then pass --max-delete-share 67 to allow it"
    );
    let allowed = PlanOptions {
        max_delete_share: 67.0,
        ..PlanOptions::default()
    };
    guard(&Scope::Whole, &desired, &[], &records, &allowed).expect("allowed at 67 %");
    // One resource alone may always go.
    let two = vec![account("a"), account("b")];
    guard(&Scope::Whole, &two, &[], &records, &PlanOptions::default()).expect("one of three");
}

#[test]
fn an_incremental_plan_past_the_share_of_the_whole_node_is_refused_by_the_engine() {
    let vhost = |n: usize| {
        file(
            "/etc/nginx/sites",
            &format!("d{n}.test.conf"),
            &format!("Domain/d{n}.test"),
            Unit::Gate("nginx".into()),
        )
    };
    let record = |n: usize| OwnedObject {
        gate: Some("nginx".into()),
        ..owned(
            &format!("file:/etc/nginx/sites/d{n}.test.conf"),
            &format!("Domain/d{n}.test"),
            "/etc/nginx/sites",
            false,
        )
    };
    // The node owns the vhosts of ten domains; a commit keeps the first `kept` in the repo.
    // As the agent's incremental reconcile passes it, the part holds no desired object
    // (nothing else changed) and only the records of the vhosts that left; the scope borrows
    // the whole node, its desired objects in slices as the render memory holds them.
    let node = by_id((0..10).map(record).collect());
    let part_plan = |kept: usize| {
        let whole: Vec<Desired> = (0..kept).map(vhost).collect();
        let scope = Scope::Part {
            desired: whole.chunks(3).collect(),
            owned: &node,
        };
        let records = by_id((kept..10).map(record).collect());
        let ids: Vec<String> = records.keys().cloned().collect();
        let found: Vec<(&str, Observed)> =
            ids.iter().map(|id| (id.as_str(), same_file())).collect();
        let seen = Observations {
            desired: Vec::new(),
            leaving: leaving(&records, &found),
        };
        decide(&[], seen, &records, &scope, &PlanOptions::default(), 7)
    };

    // Two of ten (20 %): the share is of the whole node, not of the part (two of two).
    let (plan, _) = part_plan(8).expect("two of ten domains may go");
    assert_eq!(
        text(&plan),
        "\
- file:/etc/nginx/sites/d8.test.conf (no longer in the repo) Domain/d8.test [gate nginx]
- file:/etc/nginx/sites/d9.test.conf (no longer in the repo) Domain/d9.test [gate nginx]
"
    );
    // Eight of ten: refused by the engine, though the caller planned only a part.
    let err = part_plan(2).expect_err("eight of ten domains is too many");
    assert_eq!(
        err.to_string(),
        "the plan would delete 8 of 10 Domain resources (80 %), over the limit of 25 %; \
         check the repo, then pass --max-delete-share 80 to allow it"
    );
}

#[test]
fn a_refused_object_is_a_step_that_names_what_is_in_the_way() {
    let desired = vec![file(
        "/home/acme",
        "public_html",
        "Domain/a.test",
        Unit::Direct,
    )];
    let seen = Observations {
        desired: vec![seen(Observed::Blocked {
            path: "/home/acme/public_html".into(),
            what: "a symlink".into(),
        })],
        leaving: Vec::new(),
    };
    let (plan, observed) = decide(
        &desired,
        seen,
        &BTreeMap::new(),
        &Scope::Whole,
        &PlanOptions::default(),
        7,
    )
    .expect("a plan");
    assert!(matches!(plan.steps[0].reason, Reason::Blocked { .. }));
    assert_eq!(observed[0].found, "blocked");
    assert_eq!(
        observed[0].differs.as_deref(),
        Some("refused: a symlink at /home/acme/public_html")
    );
}

fn unchecked(object: &str, before: Option<&[u8]>) -> Unchecked {
    let (anchor, _) = object
        .trim_start_matches("file:")
        .rsplit_once('/')
        .unwrap_or(("/", ""));
    Unchecked {
        object: object.into(),
        gate: "nginx".into(),
        run: 4,
        resource: "Domain/a.test".into(),
        origin: "repo/a.yaml:3:1".into(),
        anchor: anchor.into(),
        action: "update".into(),
        before_content: before.map(<[u8]>::to_vec),
    }
}

#[test]
fn writes_a_killed_run_never_checked_are_checked_again_with_the_last_good_content() {
    let nginx = || Unit::Gate("nginx".into());
    let desired = vec![
        file("/etc/nginx/sites", "a.test.conf", "Domain/a.test", nginx()),
        file("/etc/nginx/sites", "b.test.conf", "Domain/b.test", nginx()),
    ];
    // a.test's vhost is as desired (the killed run wrote it); b.test's differs again.
    let seen = Observations {
        desired: vec![
            seen(same_file()),
            seen(Observed::File {
                content: b"hand edit\n".to_vec(),
                mode: 0o644,
                uid: 0,
                gid: 0,
            }),
        ],
        leaving: Vec::new(),
    };
    let records = BTreeMap::new();
    let (mut plan, _) = decide(
        &desired,
        seen,
        &records,
        &Scope::Whole,
        &PlanOptions::default(),
        7,
    )
    .expect("a plan");
    let journal = [
        unchecked("file:/etc/nginx/sites/a.test.conf", Some(b"old a\n")),
        unchecked("file:/etc/nginx/sites/b.test.conf", None),
        unchecked("file:/etc/nginx/sites/gone.conf", Some(b"old gone\n")),
    ];
    resume(&mut plan, &journal, &desired, &Scope::Whole).expect("resumed");
    assert_eq!(
        text(&plan),
        "\
~ file:/etc/nginx/sites/b.test.conf (content differs) Domain/b.test [gate nginx]
~ file:/etc/nginx/sites/a.test.conf (written by interrupted run 4 and never checked: check it again) Domain/a.test [gate nginx]
- file:/etc/nginx/sites/gone.conf (written by interrupted run 4 and never checked: check it again) Domain/a.test [gate nginx]
"
    );
    // A failed check puts back what passed the last check, not what the killed run wrote.
    let snapshots: Vec<Option<&[u8]>> = plan.steps.iter().map(Step::previous).collect();
    assert_eq!(
        snapshots,
        [None, Some(&b"old a\n"[..]), Some(&b"old gone\n"[..])]
    );
    assert_eq!(plan.steps[0].snapshot, supercp_core::Snapshot::Absent);
    assert!(!plan.is_empty(), "an unchecked unit is a change to make");
}

#[test]
fn in_a_part_an_unchecked_object_the_node_still_desires_is_checked_again_not_deleted() {
    let nginx = || Unit::Gate("nginx".into());
    // The whole node desires a.test's and b.test's vhosts; a killed run wrote a.test's and a
    // vhost that left the repo. The part (an incremental run) holds neither: nothing changed.
    let whole = vec![
        file("/etc/nginx/sites", "a.test.conf", "Domain/a.test", nginx()),
        file("/etc/nginx/sites", "b.test.conf", "Domain/b.test", nginx()),
    ];
    let owned = BTreeMap::new();
    let scope = Scope::Part {
        desired: vec![whole.as_slice()],
        owned: &owned,
    };
    let seen = Observations {
        desired: Vec::new(),
        leaving: Vec::new(),
    };
    let (mut plan, _) =
        decide(&[], seen, &owned, &scope, &PlanOptions::default(), 7).expect("a plan");
    let journal = [
        unchecked("file:/etc/nginx/sites/a.test.conf", Some(b"old a\n")),
        unchecked("file:/etc/nginx/sites/gone.conf", Some(b"old gone\n")),
    ];
    resume(&mut plan, &journal, &[], &scope).expect("resumed");
    assert_eq!(
        text(&plan),
        "\
~ file:/etc/nginx/sites/a.test.conf (written by interrupted run 4 and never checked: check it again) Domain/a.test [gate nginx]
- file:/etc/nginx/sites/gone.conf (written by interrupted run 4 and never checked: check it again) Domain/a.test [gate nginx]
"
    );
    let snapshots: Vec<Option<&[u8]>> = plan.steps.iter().map(Step::previous).collect();
    assert_eq!(snapshots, [Some(&b"old a\n"[..]), Some(&b"old gone\n"[..])]);
}
