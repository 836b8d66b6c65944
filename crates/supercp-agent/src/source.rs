//! The agent's Git source: a clone under the state directory that follows one branch of a
//! remote, checked out commit by commit (git2; no `git` binary, no shell). How the remote is
//! reached (https, ssh, a local path) is `transport.rs`.

use std::path::{Path, PathBuf};

use git2::{FetchOptions, Oid, Repository};

use crate::transport::Transport;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("git source {url}: {what}: {source}")]
    Git {
        url: String,
        what: &'static str,
        source: git2::Error,
    },
    #[error("git source {url}: {why}")]
    Refused { url: String, why: String },
    #[error("git source {url}: branch {branch} does not exist on the remote")]
    NoBranch { url: String, branch: String },
}

/// One commit as the journal records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub id: Oid,
    pub author: String,
    pub message: String,
}

/// A local clone (`dir`) following `branch` of `url`.
pub struct GitCheckout {
    pub url: String,
    pub branch: String,
    pub dir: PathBuf,
    repo: Repository,
    transport: Transport,
}

impl GitCheckout {
    /// Opens the clone in `dir`, or makes an empty one there pointing at `url`.
    ///
    /// # Errors
    /// When the directory cannot be made a repository.
    pub fn open(
        url: &str,
        branch: &str,
        transport: Transport,
        dir: &Path,
    ) -> Result<GitCheckout, SourceError> {
        let err = |what| {
            let url = url.to_owned();
            move |source| SourceError::Git { url, what, source }
        };
        let repo = match Repository::open(dir) {
            Ok(repo) => repo,
            Err(_) => {
                std::fs::create_dir_all(dir).map_err(|e| SourceError::Git {
                    url: url.to_owned(),
                    what: "creating the checkout directory",
                    source: git2::Error::from_str(&e.to_string()),
                })?;
                Repository::init(dir).map_err(err("creating the clone"))?
            }
        };
        // The remote is the node file's: set it again every start, so an edited URL applies.
        if repo.find_remote("origin").is_ok() {
            repo.remote_set_url("origin", url)
                .map_err(err("setting the remote"))?;
        } else {
            repo.remote("origin", url)
                .map_err(err("adding the remote"))?;
        }
        Ok(GitCheckout {
            url: url.to_owned(),
            branch: branch.to_owned(),
            dir: dir.to_path_buf(),
            repo,
            transport,
        })
    }

    /// Fetches the branch and returns the commit it points at on the remote.
    ///
    /// # Errors
    /// When the remote cannot be reached or has no such branch.
    pub fn fetch(&self) -> Result<Oid, SourceError> {
        let err = |what| {
            let url = self.url.clone();
            move |source| SourceError::Git { url, what, source }
        };
        let mut remote = self
            .repo
            .find_remote("origin")
            .map_err(err("finding the remote"))?;
        let refspec = format!("+refs/heads/{b}:refs/remotes/origin/{b}", b = self.branch);
        let mut options = FetchOptions::new();
        options.download_tags(git2::AutotagOption::None);
        options.remote_callbacks(self.transport.callbacks());
        let fetched = remote.fetch(&[refspec.as_str()], Some(&mut options), None);
        if let Some(why) = self.transport.take_refusal() {
            return Err(SourceError::Refused {
                url: self.url.clone(),
                why,
            });
        }
        fetched.map_err(err("fetching"))?;
        let reference = format!("refs/remotes/origin/{}", self.branch);
        self.repo
            .refname_to_id(&reference)
            .map_err(|_| SourceError::NoBranch {
                url: self.url.clone(),
                branch: self.branch.clone(),
            })
    }

    /// Whether `new` is `old` or one of its descendants (a fast-forward).
    ///
    /// # Errors
    /// When either commit is not in the clone.
    pub fn descends(&self, new: Oid, old: Oid) -> Result<bool, SourceError> {
        if new == old {
            return Ok(true);
        }
        self.repo
            .graph_descendant_of(new, old)
            .map_err(|source| SourceError::Git {
                url: self.url.clone(),
                what: "comparing commits",
                source,
            })
    }

    /// Checks `id` out into the work tree (detached HEAD, every file as in the commit, files
    /// the commit does not have removed).
    ///
    /// # Errors
    /// When the commit is missing or the work tree cannot be written.
    pub fn checkout(&self, id: Oid) -> Result<Commit, SourceError> {
        let err = |what| {
            let url = self.url.clone();
            move |source| SourceError::Git { url, what, source }
        };
        let commit = self
            .repo
            .find_commit(id)
            .map_err(err("finding the commit"))?;
        let mut options = git2::build::CheckoutBuilder::new();
        options.force().remove_untracked(true);
        self.repo
            .checkout_tree(commit.as_object(), Some(&mut options))
            .map_err(err("checking out"))?;
        self.repo
            .set_head_detached(id)
            .map_err(err("moving HEAD"))?;
        self.describe(id)
    }

    /// The author and message of a commit in the clone.
    ///
    /// # Errors
    /// When the commit is missing.
    pub fn describe(&self, id: Oid) -> Result<Commit, SourceError> {
        let commit = self
            .repo
            .find_commit(id)
            .map_err(|source| SourceError::Git {
                url: self.url.clone(),
                what: "finding the commit",
                source,
            })?;
        let author = commit.author();
        Ok(Commit {
            id,
            author: format!(
                "{} <{}>",
                author.name().unwrap_or("?"),
                author.email().unwrap_or("?")
            ),
            message: commit.message().unwrap_or("").trim_end().to_owned(),
        })
    }

    /// Checks the signature of the commit to apply. The head's signature vouches for the whole
    /// tree it applies (as Flux and `git verify-commit HEAD` do): commits in between need none.
    ///
    /// # Errors
    /// Why the commit is not signed by one of `signers`.
    pub fn verify_head(
        &self,
        head: Oid,
        signers: &crate::trust::AllowedSigners,
    ) -> Result<crate::trust::Signer, crate::trust::TrustError> {
        crate::trust::verify_commit(&self.repo, head, signers)
    }

    /// The commit checked out now, if any.
    pub fn head(&self) -> Option<Oid> {
        self.repo.head().ok().and_then(|h| h.target())
    }
}
