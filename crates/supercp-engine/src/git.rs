//! The Git commit a run applies, when the repo is a Git work tree.

use std::path::Path;

/// Commit, author, message, commit time and dirty flag of the work tree holding `repo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitInfo {
    pub commit: Option<String>,
    pub author: Option<String>,
    /// The commit message, whole.
    pub message: Option<String>,
    /// When the commit was committed (committer time), unix seconds.
    pub time: Option<i64>,
    pub dirty: Option<bool>,
}

/// Reads the head commit of the repository containing `repo`; all `None` outside Git.
pub fn describe(repo: &Path) -> GitInfo {
    let Ok(git) = git2::Repository::discover(repo) else {
        return GitInfo::default();
    };
    let head = git.head().ok().and_then(|h| h.peel_to_commit().ok());
    let commit = head.as_ref().map(|c| c.id().to_string());
    let author = head.as_ref().map(|c| {
        let a = c.author();
        format!("{} <{}>", a.name().unwrap_or("?"), a.email().unwrap_or("?"))
    });
    let message = head
        .as_ref()
        .and_then(|c| c.message().map(|m| m.trim_end().to_owned()));
    let time = head.as_ref().map(|c| c.time().seconds());
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .include_ignored(false)
        .exclude_submodules(true);
    if let (Some(workdir), Ok(abs)) = (git.workdir(), repo.canonicalize()) {
        if let Ok(rel) = abs.strip_prefix(
            workdir
                .canonicalize()
                .unwrap_or_else(|_| workdir.to_path_buf()),
        ) {
            if !rel.as_os_str().is_empty() {
                options.pathspec(rel);
            }
        }
    }
    let dirty = git.statuses(Some(&mut options)).ok().map(|s| !s.is_empty());
    GitInfo {
        commit,
        author,
        message,
        time,
        dirty,
    }
}
