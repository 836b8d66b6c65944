//! Root's key, certificate and account files on a real filesystem: written through a temp file
//! and a rename with their mode from the start, never read, written or removed through a
//! symlink at the path or at a directory on the way.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use supercp_drivers::private::{self, Access, PrivateError};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

fn anchor(dir: &tempfile::TempDir) -> String {
    dir.path().join("certs").display().to_string()
}

#[test]
fn a_private_file_is_0600_in_a_0700_directory_and_no_temp_file_remains() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = anchor(&dir);
    private::write(&certs, "a.test/privkey.pem", b"key 1", Access::Private).expect("write");
    let key = dir.path().join("certs/a.test/privkey.pem");
    assert_eq!(fs::read(&key).expect("read"), b"key 1");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&dir.path().join("certs/a.test")), 0o700);
    // An existing directory others could read is closed again; the file is replaced whole.
    fs::set_permissions(
        dir.path().join("certs/a.test"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    private::write(&certs, "a.test/privkey.pem", b"key 2", Access::Private).expect("write");
    assert_eq!(mode(&dir.path().join("certs/a.test")), 0o700);
    assert_eq!(
        private::read(&certs, "a.test/privkey.pem").expect("read"),
        Some(b"key 2".to_vec())
    );
    let names: Vec<String> = fs::read_dir(dir.path().join("certs/a.test"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["privkey.pem"], "no temp file remains");
    // Missing directories of an account path are all made 0700.
    private::write(&certs, "acme/ca/account.json", b"{}", Access::Private).expect("write");
    assert_eq!(mode(&dir.path().join("certs/acme")), 0o700);
    assert_eq!(mode(&dir.path().join("certs/acme/ca")), 0o700);
}

#[test]
fn a_public_file_is_world_readable() {
    let dir = tempfile::tempdir().expect("tmp");
    let challenges = anchor(&dir);
    private::write(&challenges, "tok_1", b"tok_1.thumb", Access::Public).expect("write");
    assert_eq!(mode(&dir.path().join("certs/tok_1")), 0o644);
    private::remove_file(&challenges, "tok_1").expect("remove");
    assert!(!dir.path().join("certs/tok_1").exists());
    private::remove_file(&challenges, "tok_1").expect("gone already is fine");
}

#[test]
fn a_symlink_at_the_key_path_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = anchor(&dir);
    fs::create_dir_all(dir.path().join("certs/a.test")).expect("mkdir");
    let target = dir.path().join("elsewhere");
    fs::write(&target, "precious").expect("write");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).expect("chmod");
    let link = dir.path().join("certs/a.test/privkey.pem");
    symlink(&target, &link).expect("symlink");
    let err =
        private::write(&certs, "a.test/privkey.pem", b"key", Access::Private).expect_err("refused");
    assert!(
        matches!(&err, PrivateError::SymlinkRefused { what, .. } if what == "a symlink"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&target).expect("read"), "precious");
    assert_eq!(mode(&target), 0o644, "not chmodded through the link");
    assert!(fs::symlink_metadata(&link).expect("stat").is_symlink());
    assert!(
        !dir.path()
            .join("certs/a.test/.privkey.pem.supercp-tmp")
            .exists(),
        "no temp file is left"
    );
    // Reading through it is refused too, and it is not a file.
    assert!(matches!(
        private::read(&certs, "a.test/privkey.pem"),
        Err(PrivateError::SymlinkRefused { .. })
    ));
    assert!(!private::is_file(&certs, "a.test/privkey.pem"));
    // Removing unlinks the link, never its target.
    private::remove_file(&certs, "a.test/privkey.pem").expect("remove");
    assert!(fs::symlink_metadata(&link).is_err());
    assert_eq!(fs::read_to_string(&target).expect("read"), "precious");
}

#[test]
fn a_symlinked_key_directory_is_refused_and_nothing_is_written_through_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = anchor(&dir);
    fs::create_dir_all(dir.path().join("certs")).expect("mkdir");
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).expect("mkdir");
    fs::write(outside.join("privkey.pem"), "theirs").expect("write");
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).expect("chmod");
    symlink(&outside, dir.path().join("certs/a.test")).expect("symlink");
    // Also an account directory of the state dir.
    symlink(&outside, dir.path().join("certs/acme")).expect("symlink");
    for rel in [
        "a.test/privkey.pem",
        "a.test/fullchain.pem",
        "acme/ca/account.json",
    ] {
        let err = private::write(&certs, rel, b"new", Access::Private).expect_err(rel);
        assert!(
            matches!(&err, PrivateError::SymlinkRefused { path, what }
                if what == "a symlink" && !path.ends_with(".pem") && !path.ends_with(".json")),
            "{rel}: {err}"
        );
        assert!(matches!(
            private::read(&certs, rel),
            Err(PrivateError::SymlinkRefused { .. })
        ));
        assert!(!private::is_file(&certs, rel));
        assert!(matches!(
            private::remove_file(&certs, rel),
            Err(PrivateError::SymlinkRefused { .. })
        ));
    }
    let mut names: Vec<String> = fs::read_dir(&outside)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["privkey.pem"],
        "nothing written or removed through the link"
    );
    assert_eq!(
        fs::read_to_string(outside.join("privkey.pem")).expect("read"),
        "theirs"
    );
    assert_eq!(mode(&outside), 0o755, "not chmodded through the link");
    assert!(matches!(
        private::remove_dir(&certs, "a.test"),
        Err(PrivateError::SymlinkRefused { .. })
    ));
    assert!(outside.is_dir());
    assert_eq!(
        private::dirs(&certs).expect("dirs"),
        Vec::<String>::new(),
        "a symlink to a directory is not one of the anchor's directories"
    );
}

#[test]
fn a_directory_in_a_files_place_is_refused_and_an_empty_directory_removed() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = anchor(&dir);
    fs::create_dir_all(dir.path().join("certs/a.test/privkey.pem")).expect("mkdir");
    assert!(matches!(
        private::write(&certs, "a.test/privkey.pem", b"k", Access::Private),
        Err(PrivateError::SymlinkRefused { what, .. }) if what == "a directory"
    ));
    assert!(private::remove_file(&certs, "a.test/privkey.pem").is_err());
    assert!(dir.path().join("certs/a.test/privkey.pem").is_dir());
    assert_eq!(private::dirs(&certs).expect("dirs"), ["a.test"]);
    assert!(
        private::remove_dir(&certs, "a.test").is_err(),
        "not empty: stays"
    );
    private::remove_dir(&certs, "a.test/privkey.pem").expect("rmdir");
    private::remove_dir(&certs, "a.test").expect("rmdir");
    assert!(!dir.path().join("certs/a.test").exists());
    assert_eq!(
        private::read(&certs, "a.test/privkey.pem").expect("read"),
        None
    );
    assert_eq!(
        private::read(&dir.path().join("nowhere").display().to_string(), "x").expect("read"),
        None,
        "a missing anchor holds nothing"
    );
}

#[test]
fn a_leftover_temp_file_or_a_link_under_its_name_is_replaced_not_followed() {
    let dir = tempfile::tempdir().expect("tmp");
    let certs = anchor(&dir);
    fs::create_dir_all(dir.path().join("certs/a.test")).expect("mkdir");
    let target = dir.path().join("elsewhere");
    fs::write(&target, "precious").expect("write");
    symlink(
        &target,
        dir.path().join("certs/a.test/.privkey.pem.supercp-tmp"),
    )
    .expect("symlink");
    private::write(&certs, "a.test/privkey.pem", b"key", Access::Private).expect("write");
    assert_eq!(fs::read_to_string(&target).expect("read"), "precious");
    assert_eq!(
        fs::read(dir.path().join("certs/a.test/privkey.pem")).expect("read"),
        b"key"
    );
}
