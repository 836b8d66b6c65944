//! `plan` on a real directory: every desired object is observed, in order, and summarised for
//! the status page.

use std::os::unix::fs::PermissionsExt;

use supercp_core::{Desired, Location, Object, ResourceRef, Span, Unit};
use supercp_engine::{plan, PlanOptions, Scope};

fn file(anchor: &str, rel: &str) -> Desired {
    Desired {
        object: Object::File {
            at: Location::new(anchor, rel),
            content: b"listen 80;\n".to_vec(),
            mode: 0o644,
            owner: None,
        },
        resource: ResourceRef::parse("Domain/a.test").expect("a resource"),
        origin: Span::new("repo/a.yaml".into(), 3, 1),
        unit: Unit::Direct,
        tenant_data: false,
    }
}

#[test]
fn every_desired_object_is_observed_in_order() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let same = dir.path().join("same.conf");
    std::fs::write(&same, "listen 80;\n").expect("write a file");
    std::fs::set_permissions(&same, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let anchor = dir.path().display().to_string();
    let planned = plan(
        vec![file(&anchor, "same.conf"), file(&anchor, "missing.conf")],
        Vec::new(),
        &Scope::Whole,
        &[],
        &supercp_engine::certs::Policy::default(),
        &supercp_engine::Settings::default(),
        &PlanOptions::default(),
    )
    .expect("a plan");
    assert_eq!(planned.plan.steps.len(), 1);
    let [same, missing] = planned.observed.as_slice() else {
        panic!("two observations: {:?}", planned.observed);
    };
    assert_eq!(
        (
            same.found,
            same.mode,
            same.content_matches,
            same.differs.as_deref()
        ),
        ("file", Some(0o644), Some(true), None)
    );
    assert_eq!(
        (missing.found, missing.differs.as_deref()),
        ("absent", Some("missing on the node"))
    );
}
