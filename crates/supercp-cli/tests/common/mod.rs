//! Runs the real `supercp` binary in a per-test temp prefix and explains failures: the
//! command, its cwd, the prefix listing, stdout and stderr.

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod agent;
pub mod tls;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Prefix {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub state: PathBuf,
    /// Extra environment for every command (the crash test's pause hook).
    pub env: Vec<(String, String)>,
    pub node: Option<PathBuf>,
}

pub struct Run {
    pub output: Output,
    pub described: String,
}

impl Prefix {
    /// A prefix with a copy of `examples/<example>` as the repo.
    pub fn with_example(example: &str) -> Prefix {
        let p = Prefix::empty();
        copy_dir(&workspace().join("examples").join(example), &p.repo);
        p
    }

    /// A prefix whose repo holds the given files.
    pub fn with_files(files: &[(&str, &str)]) -> Prefix {
        let p = Prefix::empty();
        fs::create_dir_all(&p.repo).expect("repo dir");
        for (name, text) in files {
            write(&p.repo.join(name), text);
        }
        p
    }

    /// A temp prefix; `repo` and `state` are paths inside it that do not exist yet.
    pub fn empty() -> Prefix {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        let state = dir.path().join("state");
        Prefix {
            dir,
            repo,
            state,
            env: Vec::new(),
            node: None,
        }
    }

    pub fn sandbox(&self) -> PathBuf {
        self.state.join("sandbox")
    }

    /// `supercp --state STATE <args> --repo REPO [--node NODE]`.
    pub fn supercp(&self, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        let output = cmd.output().expect("the supercp binary runs");
        let described = describe(&cmd, &output, self.dir.path());
        Run { output, described }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_supercp"));
        cmd.arg("--state").arg(&self.state).args(args);
        let repo_command = matches!(args.first(), Some(&"validate" | &"plan" | &"apply"));
        if repo_command {
            cmd.arg("--repo").arg(&self.repo);
            if let Some(node) = &self.node {
                cmd.arg("--node").arg(node);
            }
        }
        if args.first() == Some(&"audit") {
            if let Some(node) = &self.node {
                cmd.arg("--node").arg(node);
            }
        }
        cmd.current_dir(self.dir.path());
        cmd.env_remove("SUPERCP_TEST_PAUSE_BEFORE_STEP");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Writes a node file: the sandbox node with `extra` lines appended under `spec:`.
    pub fn node_with(&mut self, extra_spec: &str) -> PathBuf {
        let sandbox = fs::read_to_string(workspace().join("examples/nodes/sandbox.yaml"))
            .expect("sandbox node");
        let text = sandbox.replacen("spec:\n", &format!("spec:\n{extra_spec}"), 1);
        let path = self.dir.path().join("node.yaml");
        write(&path, &text);
        self.node = Some(path.clone());
        path
    }

    /// Points the journal at `url` (a node file: the sandbox node with that `auditUrl`).
    pub fn journal_at(&mut self, url: &str) {
        let node = self.node_with("");
        let text = fs::read_to_string(&node)
            .expect("node file")
            .replace("sqlite:{state}/audit.db", url);
        fs::write(&node, text).expect("node file");
    }

    /// Every file under the sandbox with its content, sorted (for byte-for-byte comparisons).
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        walk(&self.sandbox(), &self.sandbox(), &mut files);
        files.sort();
        files
    }
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code\n{}",
            self.described
        );
        self
    }
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

pub fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("create dirs");
    fs::write(path, text).expect("write file");
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            out.push((format!("{rel}/"), Vec::new()));
            walk(root, &path, out);
        } else if kind.is_symlink() {
            out.push((
                rel,
                format!("-> {:?}", fs::read_link(&path).ok()).into_bytes(),
            ));
        } else {
            out.push((rel, fs::read(&path).unwrap_or_default()));
        }
    }
}

pub fn describe(cmd: &Command, output: &Output, prefix: &Path) -> String {
    let mut listing = Vec::new();
    walk(prefix, prefix, &mut listing);
    let names: Vec<String> = listing
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !n.contains("/var/lib/nginx/"))
        .collect();
    format!(
        "command: {:?}\ncwd: {:?}\nexit: {:?}\n--- prefix ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        cmd,
        cmd.get_current_dir(),
        output.status.code(),
        names.join("\n"),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
