//! Stable tenant ids: every tenant account gets its uid (and the same gid) once, recorded in the
//! journal, and never another tenant's, even after that tenant is deleted.

use std::collections::{BTreeMap, BTreeSet};

use supercp_core::object::{Observed, ACCOUNT_COMMENT};
use supercp_core::resource::AccountLayout;
use supercp_core::{Desired, Object};
use supercp_drivers::accounts;

use crate::{AccountsError, EngineError};

/// Fills in the uid of every desired account and returns the ones the journal does not hold
/// yet, `(tenant, uid)`, for the caller to record before it creates them.
///
/// - A tenant the journal knows keeps its recorded uid.
/// - A user that already exists keeps its uid, if that uid is inside the tenant range (an
///   account SuperCP made before its journal was lost); one outside the range is someone
///   else's account and is refused.
/// - A new tenant gets the lowest free id above every id the journal ever gave out, skipping
///   ids any user or group of the node holds.
///
/// # Errors
/// `Accounts` naming the tenant when its user exists outside the range or the range is full.
pub fn assign(
    desired: &mut [Desired],
    recorded: &BTreeMap<String, u32>,
    layout: &AccountLayout,
) -> Result<Vec<(String, u32)>, EngineError> {
    let mut taken: BTreeSet<u32> = recorded.values().copied().collect();
    let mut next = recorded
        .values()
        .max()
        .map_or(layout.uid_min, |m| m.saturating_add(1))
        .max(layout.uid_min);
    let mut new = Vec::new();
    for d in desired.iter_mut() {
        let Object::Account(account) = &mut d.object else {
            continue;
        };
        let tenant = account.name.clone();
        let observed = accounts::observe(&tenant).map_err(|source| AccountsError::Observe {
            resource: d.resource.to_string(),
            origin: d.origin.clone(),
            source,
        })?;
        let existing = match observed {
            Observed::Account {
                uid, gid, comment, ..
            } => Some((uid, gid, comment)),
            _ => None,
        };
        let uid = match (recorded.get(&tenant), existing) {
            (Some(&uid), None) => uid,
            (recorded_uid, Some((uid, gid, comment))) => {
                // Only an account SuperCP made is taken on: its comment, its own group, an id
                // in the range that no other tenant was given.
                let ours = comment == ACCOUNT_COMMENT
                    && gid == uid
                    && (layout.uid_min..=layout.uid_max).contains(&uid)
                    && recorded_uid.is_none_or(|r| *r == uid)
                    && !recorded.iter().any(|(t, u)| *u == uid && *t != tenant);
                if !ours {
                    return Err(AccountsError::NotOurs {
                        resource: d.resource.to_string(),
                        tenant,
                        uid,
                        gid,
                        comment,
                        expected: ACCOUNT_COMMENT,
                        min: layout.uid_min,
                        max: layout.uid_max,
                    }
                    .into());
                }
                uid
            }
            (None, None) => {
                while taken.contains(&next) || accounts::id_in_use(next) {
                    next += 1;
                }
                if next > layout.uid_max {
                    return Err(AccountsError::NoFreeUid {
                        resource: d.resource.to_string(),
                        min: layout.uid_min,
                        max: layout.uid_max,
                    }
                    .into());
                }
                next
            }
        };
        taken.insert(uid);
        account.uid = Some(uid);
        if recorded.get(&tenant) != Some(&uid) {
            new.push((tenant, uid));
        }
    }
    Ok(new)
}
