//! Tenant accounts: a Linux user and the group of the same name, changed only through the
//! system's own tools (`groupadd`, `useradd`, `usermod`, `gpasswd`, `userdel`, `groupdel`), each
//! run with separate arguments: no shell string is ever built.
//!
//! # Guarantees
//! `observe` reads the account databases only. `apply` never changes a uid or gid (they are the
//! journal's, assigned once) and never creates the home: the home is a directory object of its
//! own, created with its mode and owner by the file driver. `delete` never removes files.

use std::time::Duration;

use nix::unistd::{Gid, Group, Uid, User};
use supercp_core::object::{Account, Observed, ACCOUNT_COMMENT};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("account {name}: `{command}` failed: {output}")]
    Tool {
        name: String,
        command: String,
        output: String,
    },
    #[error("account {name}: cannot run `{program}`: {source}")]
    Spawn {
        name: String,
        program: String,
        source: std::io::Error,
    },
    #[error("account {name}: cannot read the account databases: {source}; nothing is planned for what cannot be seen (run as root)")]
    Observe {
        name: String,
        source: std::io::Error,
    },
    #[error("account {name}: `{command}` did not finish within {limit}; its process group was killed (find what it waits for, e.g. a locked account database or a slow name service, or raise SUPERCP_COMMAND_TIMEOUT_SECONDS)")]
    TimedOut {
        name: String,
        command: String,
        limit: String,
    },
    #[error("account {name}: no uid was assigned (a bug)")]
    NoUid { name: String },
    #[error("account {name}: a group {name} (gid {gid}) already exists and is not a SuperCP tenant's; rename the tenant")]
    ForeignGroup { name: String, gid: u32 },
}

/// The user `name`, its ids, home, shell and the members of its group; `Absent` when there is
/// no such user.
///
/// # Errors
/// `Observe` when the account databases cannot be read (`/etc/shadow` too, which says
/// whether the account is suspended: a plan as a user other than root cannot see it).
pub fn observe(name: &str) -> Result<Observed, AccountError> {
    let failed = |source: std::io::Error| AccountError::Observe {
        name: name.to_owned(),
        source,
    };
    let Some(user) = User::from_name(name).map_err(|e| failed(e.into()))? else {
        return Ok(Observed::Absent);
    };
    let members = match Group::from_name(name).map_err(|e| failed(e.into()))? {
        Some(group) => group.mem,
        None => Vec::new(),
    };
    Ok(Observed::Account {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir.to_string_lossy().into_owned(),
        shell: user.shell.to_string_lossy().into_owned(),
        comment: user.gecos.to_string_lossy().into_owned(),
        members,
        locked: expired(name).map_err(failed)?,
    })
}

/// Whether the account has an expiry date (`usermod -e`), from `/etc/shadow` (a node without
/// one has no expiry dates).
fn expired(name: &str) -> Result<bool, std::io::Error> {
    let shadow = match std::fs::read_to_string("/etc/shadow") {
        Ok(shadow) => shadow,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(shadow
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(user, _)| *user == name)
        .and_then(|(_, rest)| rest.split(':').nth(6))
        .is_some_and(|expire| !expire.is_empty()))
}

/// Whether a user or a group already holds this id (on this node, outside the journal).
pub fn id_in_use(id: u32) -> bool {
    matches!(User::from_uid(Uid::from_raw(id)), Ok(Some(_)))
        || matches!(Group::from_gid(Gid::from_raw(id)), Ok(Some(_)))
}

/// Creates or changes the account so it matches `want`. Group members are only added: a member
/// an operator added by hand stays.
///
/// # Errors
/// The tool's own message when one of them fails.
pub fn apply(want: &Account) -> Result<(), AccountError> {
    let name = want.name.as_str();
    let account = match observe(name)? {
        Observed::Account {
            home,
            shell,
            members,
            locked,
            ..
        } => {
            if home != want.home {
                tool(name, "usermod", &["-d", &want.home, name])?;
            }
            if shell != want.shell {
                tool(name, "usermod", &["-s", &want.shell, name])?;
            }
            add_members(name, want, &members)?;
            locked
        }
        _ => {
            let uid = want.uid.ok_or_else(|| AccountError::NoUid {
                name: name.to_owned(),
            })?;
            let id = uid.to_string();
            match Group::from_name(name) {
                Ok(Some(group)) if group.gid.as_raw() != uid => {
                    // Someone else's group (a package's, an operator's): joining it could hand
                    // the tenant that group's rights.
                    return Err(AccountError::ForeignGroup {
                        name: name.to_owned(),
                        gid: group.gid.as_raw(),
                    });
                }
                Ok(Some(_)) => {} // made by an earlier, interrupted apply
                _ => tool(name, "groupadd", &["-g", &id, name])?,
            }
            tool(
                name,
                "useradd",
                &[
                    "-u",
                    &id,
                    "-g",
                    name,
                    "-d",
                    &want.home,
                    "-M",
                    "-s",
                    &want.shell,
                    "-c",
                    ACCOUNT_COMMENT,
                    name,
                ],
            )?;
            let members = match Group::from_name(name) {
                Ok(Some(group)) => group.mem,
                _ => Vec::new(),
            };
            add_members(name, want, &members)?;
            false
        }
    };
    match (account, want.locked) {
        // An expired account: PAM refuses SSH (keys too) and cron runs none of its jobs.
        (false, true) => tool(name, "usermod", &["-e", "1", name]),
        (true, false) => tool(name, "usermod", &["-e", "", name]),
        _ => Ok(()),
    }
}

/// Removes the user and its group; files stay (they are objects of their own).
///
/// # Errors
/// The tool's own message when one of them fails.
pub fn delete(name: &str) -> Result<(), AccountError> {
    let uid = match User::from_name(name) {
        Ok(Some(user)) => {
            tool(name, "userdel", &[name])?;
            Some(user.uid.as_raw())
        }
        _ => None,
    };
    // Only the group SuperCP made with the user (gid = uid) goes with it.
    if let (Ok(Some(group)), Some(uid)) = (Group::from_name(name), uid) {
        if group.gid.as_raw() == uid {
            tool(name, "groupdel", &[name])?;
        }
    }
    Ok(())
}

fn add_members(name: &str, want: &Account, present: &[String]) -> Result<(), AccountError> {
    for member in &want.members {
        if !present.contains(member) {
            tool(name, "gpasswd", &["-a", member, name])?;
        }
    }
    Ok(())
}

/// Runs one tool, at most [`crate::gate::command_timeout`]. The account databases are locked
/// while another tool writes them (another apply, an operator's `adduser`): a lock failure is
/// retried for a few seconds.
fn tool(name: &str, program: &str, args: &[&str]) -> Result<(), AccountError> {
    tool_within(name, program, args, crate::gate::command_timeout())
}

fn tool_within(
    name: &str,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<(), AccountError> {
    let command = || format!("{program} {}", args.join(" "));
    let mut attempt = 0;
    loop {
        let output = crate::gate::run_bounded(program, args, timeout).map_err(|source| {
            AccountError::Spawn {
                name: name.to_owned(),
                program: program.to_owned(),
                source,
            }
        })?;
        if output.status.is_none() {
            return Err(AccountError::TimedOut {
                name: name.to_owned(),
                command: command(),
                limit: crate::gate::limit(timeout),
            });
        }
        if output.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        attempt += 1;
        if attempt < 20 && text.contains("lock") {
            std::thread::sleep(Duration::from_millis(250));
            continue;
        }
        return Err(AccountError::Tool {
            name: name.to_owned(),
            command: command(),
            output: text.trim().to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_that_hangs_is_killed_at_its_limit_and_named() {
        let started = std::time::Instant::now();
        let err = tool_within("acme", "sleep", &["30"], Duration::from_millis(300)).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            err.to_string().split(';').next(),
            Some("account acme: `sleep 30` did not finish within 300 ms"),
            "{err}"
        );
    }

    #[test]
    fn a_tool_that_fails_gives_its_own_message() {
        let err = tool_within(
            "acme",
            "sh",
            &["-c", "echo no such user >&2; exit 6"],
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "account acme: `sh -c echo no such user >&2; exit 6` failed: no such user"
        );
    }
}
