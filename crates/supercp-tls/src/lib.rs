//! TLS for hosted sites: certificates from any ACME CA (instant-acme), the self-signed
//! placeholder a site serves until its certificate exists, and the checks of a
//! bring-your-own certificate. No nginx, no journal and no node I/O here: keys, chains and
//! account credentials go in and out as bytes, challenge answers through a `ChallengeSolver`
//! the caller implements with the file driver; the engine decides when to call it.
//!
//! - `cert`: reading a PEM chain (names, validity, serial), placeholders, CSRs, BYO checks.
//! - `acme`: the account (created once; the caller stores its credentials), orders, the
//!   `ChallengeSolver` trait, and errors with a class (`Class`: transient or permanent) read
//!   from the CA's problem document (`ProblemKind`).

pub mod acme;
pub mod cert;

pub use acme::{
    check_token, directory_url, AcmeClient, AcmeConfig, AcmeError, CaProblem, ChallengeError,
    ChallengeSolver, Class, Opened, ProblemKind, RenewalWindow,
};
pub use cert::{check_byo, placeholder, ByoError, CertInfo, KeyAndChain, KeyKind, PLACEHOLDER_CN};
/// The challenge types a `ChallengeSolver` names (instant-acme's).
pub use instant_acme::ChallengeType;
