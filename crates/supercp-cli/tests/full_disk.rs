//! A full disk under the config tree (a small tmpfs): the apply fails with a clear message,
//! puts the batch back whole, leaves no temp file and no run `running`, and the next apply
//! after space is freed works. Needs root (mount).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::Prefix;
use supercp_testkit::services::{in_ci, is_root};

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs at {}", at.display());
        Tmpfs(at.to_path_buf())
    }

    fn available(&self) -> u64 {
        let stat = nix::sys::statvfs::statvfs(&self.0).expect("statvfs");
        stat.blocks_available() * stat.fragment_size()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &path, out);
        } else if !rel.ends_with(".log") && rel != "filler" {
            out.push((rel, fs::read(&path).unwrap_or_default()));
        }
    }
}

#[test]
fn a_full_config_tree_fails_the_run_cleanly_and_the_next_apply_works() {
    if !is_root() {
        assert!(
            !in_ci(),
            "CI runs as root: the full-disk test must run there"
        );
        eprintln!("SKIPPED a_full_config_tree_fails_the_run_cleanly: needs root to mount a tmpfs");
        return;
    }
    let mut p = Prefix::with_example("quickstart");
    let root = p.dir.path().join("root");
    let disk = Tmpfs::mount(&root, "4m");
    let templates = p.dir.path().join("templates");
    let vhost = fs::read_to_string(common::workspace().join("templates/vhost.conf.tera"))
        .expect("template");
    common::write(&templates.join("vhost.conf.tera"), &vhost);
    let node = p.node_with(&format!("  templateDir: {}\n", templates.display()));
    let text = fs::read_to_string(&node).expect("node file").replacen(
        "root: \"{state}/sandbox\"",
        &format!("root: {}", root.display()),
        1,
    );
    fs::write(&node, text).expect("node file");
    p.supercp(&["apply"]).expect_code(0);
    let before = files(&root);
    assert!(
        before.iter().any(|(n, _)| n.ends_with("acme.test.conf")),
        "the sites are on the tmpfs: {:?}",
        before.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );

    // Every vhost grows by 64 KiB; 96 KiB are left: the first fits, a later one does not.
    let pad: String = (0..1024).map(|i| format!("# pad {i:058}\n")).collect();
    common::write(&templates.join("vhost.conf.tera"), &format!("{pad}{vhost}"));
    let filler = root.join("filler");
    let left = 96 * 1024;
    let size = disk.available().saturating_sub(left);
    fs::write(&filler, vec![0u8; usize::try_from(size).expect("size")]).expect("fill the disk");

    let run = p.supercp(&["apply"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("No space left on device"),
        "says what happened\n{}",
        run.described
    );
    let after = files(&root);
    assert!(
        after.iter().all(|(n, _)| !n.ends_with(".supercp-tmp")),
        "no temp file is left\n{}",
        run.described
    );
    assert_eq!(
        after, before,
        "the batch is put back whole: no vhost of the new template is live\n{}",
        run.described
    );
    let runs: serde_json::Value =
        serde_json::from_str(&p.supercp(&["audit", "--format", "json"]).stdout()).expect("json");
    assert_eq!(runs["runs"][0]["outcome"], "failed", "{runs}");

    fs::remove_file(&filler).expect("free the space");
    p.supercp(&["apply"]).expect_code(0);
    let served =
        fs::read_to_string(root.join("etc/nginx/sites-enabled/acme.test.conf")).expect("vhost");
    assert!(served.starts_with("# pad"), "the new template is live");
    p.supercp(&["plan", "--detailed-exitcode"]).expect_code(0);
}
