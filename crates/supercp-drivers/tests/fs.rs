//! The filesystem driver on a real filesystem, as root where ownership is involved: it must
//! never write, chmod or chown through a symlink, and must converge in one call.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use supercp_core::object::Observed;
use supercp_core::{Location, Object, Owner};
use supercp_drivers::{DriverError, Node};

/// `object` placed at `anchor/rel`.
fn desired(anchor: &std::path::Path, rel: &str, mut object: Object) -> Object {
    if let Object::File { at, .. } | Object::Dir { at, .. } = &mut object {
        *at = Location::new(anchor.display().to_string(), rel);
    }
    object
}

/// A location `desired` replaces.
fn nowhere() -> Location {
    Location::new("", "")
}

fn observe(node: &mut Node, object: &Object) -> Observed {
    node.observe(object.location().expect("a file or directory"))
        .expect("observable")
}

fn observe_at(node: &mut Node, anchor: &str, rel: &str) -> Observed {
    node.observe(&Location::new(anchor, rel))
        .expect("observable")
}

fn nobody() -> Option<Owner> {
    Some(Owner {
        user: "nobody".into(),
        group: "nogroup".into(),
    })
}

#[test]
fn file_is_written_with_its_mode_and_observed_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = desired(
        dir.path(),
        "a/b/c.conf",
        Object::File {
            at: nowhere(),
            content: b"hello\n".to_vec(),
            mode: 0o640,
            owner: None,
        },
    );
    let mut node = Node::new();
    node.apply(&d).expect("apply");
    match observe(&mut node, &d) {
        Observed::File { content, mode, .. } => {
            assert_eq!(content, b"hello\n");
            assert_eq!(mode, 0o640);
        }
        other => panic!("expected a file, got {other:?}"),
    }
    assert!(
        !dir.path().join("a/b/.c.conf.supercp-tmp").exists(),
        "no temp file remains"
    );
}

#[test]
fn owner_is_set_on_a_new_directory_when_running_as_root() {
    if !supercp_testkit::services::is_root() {
        assert!(
            !supercp_testkit::services::in_ci(),
            "CI runs as root: ownership must be tested there"
        );
        eprintln!("SKIPPED owner_is_set_on_a_new_directory_when_running_as_root: needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let d = desired(
        dir.path(),
        "home",
        Object::Dir {
            at: nowhere(),
            mode: 0o750,
            owner: nobody(),
        },
    );
    Node::new().apply(&d).expect("apply");
    let meta = fs::metadata(dir.path().join("home")).expect("meta");
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("lookup")
        .expect("nobody exists");
    assert_eq!(meta.uid(), nobody.uid.as_raw());
    assert_eq!(meta.mode() & 0o7777, 0o750);
}

#[test]
fn symlink_at_a_file_path_is_refused_and_its_target_is_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let outside = tempfile::tempdir().expect("outside");
    let target = outside.path().join("passwd");
    fs::write(&target, "root:x:0:0\n").expect("target");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::symlink(&target, dir.path().join("site.conf")).expect("symlink");
    let d = desired(
        dir.path(),
        "site.conf",
        Object::File {
            at: nowhere(),
            content: b"pwned\n".to_vec(),
            mode: 0o644,
            owner: None,
        },
    );
    let mut node = Node::new();
    assert!(matches!(observe(&mut node, &d), Observed::Blocked { .. }));
    // apply replaces the link itself at worst (rename never follows); the target stays as it was
    let _ = node.apply(&d);
    assert_eq!(fs::read_to_string(&target).expect("target"), "root:x:0:0\n");
    assert_eq!(fs::metadata(&target).expect("meta").mode() & 0o777, 0o600);
}

#[test]
fn symlinked_parent_is_refused_without_chmod_or_chown_of_its_target() {
    let dir = tempfile::tempdir().expect("tmp");
    let outside = tempfile::tempdir().expect("outside");
    let victim = outside.path().join("public_html");
    fs::create_dir(&victim).expect("victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).expect("chmod");
    let before = fs::metadata(&victim).expect("meta");
    fs::create_dir(dir.path().join("t")).expect("t");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("t/domains")).expect("symlink");
    let owner = if supercp_testkit::services::is_root() {
        nobody()
    } else {
        None
    };
    let d = desired(
        dir.path(),
        "t/domains/public_html",
        Object::Dir {
            at: nowhere(),
            mode: 0o755,
            owner,
        },
    );
    let mut node = Node::new();
    match observe(&mut node, &d) {
        Observed::Blocked { path, what } => {
            assert!(path.ends_with("t/domains"), "{path}");
            assert_eq!(what, "a symlink");
        }
        other => panic!("expected blocked, got {other:?}"),
    }
    let err = node.apply(&d).expect_err("refused");
    assert!(matches!(err, DriverError::SymlinkRefused { .. }), "{err}");
    let after = fs::metadata(&victim).expect("meta");
    assert_eq!(after.mode(), before.mode());
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
}

#[test]
fn deleting_a_tree_removes_a_symlink_inside_it_but_never_its_target() {
    let dir = tempfile::tempdir().expect("tmp");
    let outside = tempfile::tempdir().expect("outside");
    fs::write(outside.path().join("keep"), "x").expect("file");
    fs::create_dir_all(dir.path().join("home/t/sub")).expect("tree");
    fs::write(dir.path().join("home/t/sub/file"), "y").expect("file");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("home/t/link")).expect("symlink");
    Node::new()
        .delete(&Location::new(dir.path().display().to_string(), "home/t"))
        .expect("delete");
    assert!(!dir.path().join("home/t").exists());
    assert_eq!(
        fs::read_to_string(outside.path().join("keep")).expect("kept"),
        "x"
    );
}

#[test]
fn apply_after_a_half_finished_write_converges() {
    let dir = tempfile::tempdir().expect("tmp");
    fs::write(dir.path().join(".site.conf.supercp-tmp"), "half").expect("leftover");
    let d = desired(
        dir.path(),
        "site.conf",
        Object::File {
            at: nowhere(),
            content: b"full\n".to_vec(),
            mode: 0o644,
            owner: None,
        },
    );
    let mut node = Node::new();
    node.apply(&d).expect("apply");
    assert_eq!(
        fs::read_to_string(dir.path().join("site.conf")).expect("file"),
        "full\n"
    );
    assert!(!dir.path().join(".site.conf.supercp-tmp").exists());
}

#[test]
fn hard_linked_or_huge_files_are_reported_not_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let anchor = dir.path().display().to_string();
    fs::write(dir.path().join("secret"), "root only\n").expect("write");
    fs::hard_link(dir.path().join("secret"), dir.path().join("keys")).expect("link");
    let mut node = Node::new();
    match observe_at(&mut node, &anchor, "keys") {
        Observed::Blocked { what, .. } => assert!(what.contains("hard links"), "{what}"),
        other => panic!("a hard link is not read: {other:?}"),
    }
    // Sparse: 20 MiB that take no disk, as a tenant's `truncate -s 10T` would.
    let big = fs::File::create(dir.path().join("big")).expect("create");
    big.set_len(20 << 20).expect("set_len");
    match observe_at(&mut node, &anchor, "big") {
        Observed::Blocked { what, .. } => assert!(what.contains("bytes"), "{what}"),
        other => panic!("a huge file is not read: {other:?}"),
    }
}

#[test]
fn deleting_a_file_never_removes_a_directory_in_its_place() {
    let dir = tempfile::tempdir().expect("tmp");
    let anchor = dir.path().display().to_string();
    fs::create_dir_all(dir.path().join("keys/inner")).expect("mkdir");
    let mut node = Node::new();
    let err = node
        .delete_file(&Location::new(anchor.clone(), "keys"))
        .expect_err("refused");
    assert!(matches!(err, DriverError::DeleteFailed { .. }), "{err}");
    assert!(dir.path().join("keys/inner").is_dir(), "left in place");
    fs::write(dir.path().join("plain"), "x").expect("write");
    node.delete_file(&Location::new(anchor.clone(), "plain"))
        .expect("a file is unlinked");
    assert!(!dir.path().join("plain").exists());
}

#[test]
fn deleting_a_tree_deeper_than_the_limit_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let anchor = dir.path().display().to_string();
    let mut deep = dir.path().join("t");
    for _ in 0..300 {
        deep = deep.join("d");
    }
    fs::create_dir_all(&deep).expect("mkdir");
    let mut node = Node::new();
    let err = node
        .delete(&Location::new(anchor.clone(), "t"))
        .expect_err("refused");
    assert!(err.to_string().contains("cannot delete"), "{err}");
    assert!(deep.is_dir(), "the deepest directory is still there");
}

#[test]
fn disk_usage_counts_the_tree_and_never_follows_a_symlink() {
    let dir = tempfile::tempdir().expect("tmp");
    let home = dir.path().join("home");
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir_all(home.join("sub")).expect("mkdir");
    fs::create_dir_all(&elsewhere).expect("mkdir");
    fs::write(home.join("sub/one"), vec![7u8; 1 << 20]).expect("write");
    fs::write(elsewhere.join("four"), vec![7u8; 4 << 20]).expect("write");
    std::os::unix::fs::symlink(&elsewhere, home.join("link")).expect("symlink");
    fs::hard_link(home.join("sub/one"), home.join("again")).expect("link");
    let used = supercp_drivers::fs::disk_usage(&home).expect("a directory");
    assert!(
        (1 << 20..2 << 20).contains(&used),
        "1 MiB counted once, the symlinked 4 MiB not at all: {used}"
    );
    assert_eq!(supercp_drivers::fs::disk_usage(&home.join("link")), None);
}
