//! TLS for hosted sites: certificates from any ACME CA (instant-acme), the self-signed
//! placeholder a site serves until its certificate exists, and the checks of a
//! bring-your-own certificate. No nginx or journal here: the engine decides when to call it.
//!
//! - `cert`: reading a PEM chain (names, validity, serial), placeholders, CSRs, BYO checks.
//! - `acme`: the account (created once, key in the state directory), orders, and the
//!   `ChallengeSolver` trait with HTTP-01 (`Http01`) as its first implementation.

pub mod acme;
pub mod cert;

pub use acme::{
    directory_url, AcmeClient, AcmeConfig, AcmeError, ChallengeSolver, Http01, RenewalWindow,
};
pub use cert::{check_byo, placeholder, CertInfo, KeyAndChain, KeyKind, PLACEHOLDER_CN};
