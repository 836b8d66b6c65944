//! Certificates issued by the node's CA: `fullchain.pem` and `privkey.pem` in a directory per
//! domain below `tls.certDir`, read and written only through `private` (no symlink followed,
//! each file through a temp file and a rename, mode 0600 in a 0700 directory).
//!
//! The driver observes what a chain says (placeholder or not, names, expiry), puts a
//! self-signed stand-in in place of a missing pair (so the vhost that points nginx at it
//! passes `nginx -t` from its first render), writes an issued pair, and removes a pair whose
//! domain no longer takes it from the CA. Ordering from the CA is the commit unit's work
//! (`Unit::Issue`, in the engine): this driver never talks to the network.
//!
//! # Guarantees
//! - A symlink at the chain, the key or the domain's directory is `Blocked`, never read,
//!   written or removed through.
//! - The key is written before the chain: a chain on disk always has its key beside it.

use supercp_core::object::{Cert, CertFacts, CertState, Observed};
use supercp_core::time::now_ms;
use supercp_core::Location;
use supercp_tls::CertInfo;

use crate::fs::DriverError;
use crate::private::{self, Access, PrivateError};

/// The key beside a chain at `at`.
fn key_rel(at: &Location) -> String {
    match at.rel.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/privkey.pem"),
        None => "privkey.pem".to_owned(),
    }
}

/// The domain's directory below the anchor.
fn dir_rel(at: &Location) -> &str {
    at.rel.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// What sits at a certificate's place.
///
/// # Errors
/// `ObserveFailed` when the chain cannot be read (EACCES, EIO): never "missing".
pub fn observe(at: &Location) -> Result<Observed, DriverError> {
    let chain = match private::read(&at.anchor, &at.rel) {
        Ok(chain) => chain,
        Err(PrivateError::SymlinkRefused { path, what }) => {
            return Ok(Observed::Blocked { path, what })
        }
        Err(PrivateError::TooLarge { what, .. }) => {
            return Ok(Observed::Cert(CertState::Unreadable(what)))
        }
        Err(e) => return Err(observe_failed(at, e)),
    };
    let Some(chain) = chain else {
        return Ok(Observed::Cert(CertState::Missing));
    };
    if !private::is_file(&at.anchor, &key_rel(at)) {
        return Ok(Observed::Cert(CertState::Missing));
    }
    Ok(Observed::Cert(
        match CertInfo::parse(&String::from_utf8_lossy(&chain)) {
            Ok(info) => CertState::Present(CertFacts {
                placeholder: info.placeholder,
                names: info.names,
                not_after: info.not_after,
                serial: info.serial,
            }),
            Err(e) => CertState::Unreadable(e.to_string()),
        },
    ))
}

fn observe_failed(at: &Location, e: PrivateError) -> DriverError {
    DriverError::ObserveFailed {
        path: at.path(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Puts a self-signed stand-in in place when there is no pair yet; an existing pair (issued,
/// or a stand-in) stays. The CA's certificate is written by `write_pair`.
///
/// # Errors
/// `Private` when the stand-in cannot be written (a symlink in the way, a full disk).
pub fn apply(cert: &Cert) -> Result<(), DriverError> {
    if private::is_file(&cert.at.anchor, &cert.at.rel)
        && private::is_file(&cert.at.anchor, &key_rel(&cert.at))
    {
        return Ok(());
    }
    let stand_in = supercp_tls::placeholder(&cert.names, now_ms() / 1000).map_err(|e| {
        DriverError::Placeholder {
            path: cert.at.path(),
            detail: e.to_string(),
        }
    })?;
    write_pair(
        &cert.at,
        stand_in.key_pem.as_bytes(),
        stand_in.chain_pem.as_bytes(),
    )
}

/// Writes a key and its chain, the key first.
///
/// # Errors
/// `Private` naming the file that could not be written.
pub fn write_pair(at: &Location, key_pem: &[u8], chain_pem: &[u8]) -> Result<(), DriverError> {
    private::write(&at.anchor, &key_rel(at), key_pem, Access::Private)?;
    private::write(&at.anchor, &at.rel, chain_pem, Access::Private)?;
    Ok(())
}

/// A key and its chain as they were on the node, each if any.
#[derive(Clone, Default)]
pub struct Pair {
    pub key: Option<Vec<u8>>,
    pub chain: Option<Vec<u8>>,
}

impl std::fmt::Debug for Pair {
    /// Never the key's bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("key", &self.key.as_ref().map(|_| "…"))
            .field("chain", &self.chain.as_ref().map(Vec::len))
            .finish()
    }
}

/// The key and the chain as they are now (what a failed check puts back).
///
/// # Errors
/// `Private` when one cannot be read.
pub fn read_pair(at: &Location) -> Result<Pair, DriverError> {
    Ok(Pair {
        key: private::read(&at.anchor, &key_rel(at))?,
        chain: private::read(&at.anchor, &at.rel)?,
    })
}

/// Puts a pair read by `read_pair` back; a pair with either half missing is left as it is.
///
/// # Errors
/// `Private` naming the file that could not be written.
pub fn put_back(at: &Location, pair: &Pair) -> Result<(), DriverError> {
    match (&pair.key, &pair.chain) {
        (Some(key), Some(chain)) => write_pair(at, key, chain),
        _ => Ok(()),
    }
}

/// The chain as it is now, PEM, if any.
///
/// # Errors
/// `Private` when it cannot be read.
pub fn read_chain(at: &Location) -> Result<Option<String>, DriverError> {
    Ok(private::read(&at.anchor, &at.rel)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Removes a pair, its temp files and its directory: a private key must not outlive the site
/// that used it.
///
/// # Errors
/// `Private` naming what could not be removed (a directory with other files in it stays).
pub fn delete(at: &Location) -> Result<(), DriverError> {
    let dir = dir_rel(at);
    for name in [
        "privkey.pem",
        "fullchain.pem",
        ".privkey.pem.supercp-tmp",
        ".fullchain.pem.supercp-tmp",
        // Temp names of earlier versions.
        "privkey.pem.supercp-tmp",
        "fullchain.pem.supercp-tmp",
    ] {
        private::remove_file(&at.anchor, &format!("{dir}/{name}"))?;
    }
    if !dir.is_empty() {
        private::remove_dir(&at.anchor, dir)?;
    }
    Ok(())
}
