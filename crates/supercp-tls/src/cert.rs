//! Certificates on disk: what a PEM chain says (names, expiry, serial), the self-signed
//! placeholder a TLS site serves until its real certificate exists, and the checks a
//! bring-your-own certificate must pass.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The common name of every placeholder: how SuperCP knows a certificate is its own stand-in.
pub const PLACEHOLDER_CN: &str = "SuperCP placeholder (not yet issued)";

/// The key type of a certificate SuperCP asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256: the default (Mozilla's intermediate profile).
    EcdsaP256,
    /// RSA 2048: for the `old` profile, whose clients may not speak ECDSA.
    Rsa2048,
}

/// A private key and the certificate chain for it, both PEM.
#[derive(Clone, Debug)]
pub struct KeyAndChain {
    pub key_pem: String,
    pub chain_pem: String,
}

/// What the leaf certificate of a PEM chain says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names of the subjectAltName extension, lowercase.
    pub names: Vec<String>,
    /// notBefore and notAfter, unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The serial number, hex.
    pub serial: String,
    /// A SuperCP placeholder (self-signed, `PLACEHOLDER_CN`).
    pub placeholder: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("no PEM certificate in it")]
    NoCertificate,
    #[error("not a readable PEM file: {0}")]
    Pem(String),
    #[error("not a readable X.509 certificate: {0}")]
    X509(String),
    #[error("cannot make a key or certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The DER of every certificate in a PEM text, in order.
fn certificates(pem_text: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let mut certs = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem_text.as_bytes()) {
        let block = block.map_err(|e| CertError::Pem(e.to_string()))?;
        if block.label == "CERTIFICATE" {
            certs.push(block.contents);
        }
    }
    if certs.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(certs)
}

/// The DER of the first certificate (the leaf) of a PEM chain.
///
/// # Errors
/// When the text holds no certificate.
pub fn leaf_der(chain_pem: &str) -> Result<Vec<u8>, CertError> {
    Ok(certificates(chain_pem)?.swap_remove(0))
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| CertError::X509(e.to_string()))
}

fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(n) = name {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    names
}

impl CertInfo {
    /// Reads the leaf (first certificate) of a PEM chain.
    ///
    /// # Errors
    /// When the text holds no certificate or the first one cannot be parsed.
    pub fn parse(chain_pem: &str) -> Result<CertInfo, CertError> {
        let certs = certificates(chain_pem)?;
        let leaf = parse(&certs[0])?;
        let cn = leaf
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or("");
        Ok(CertInfo {
            names: dns_names(&leaf),
            not_before: leaf.validity().not_before.timestamp(),
            not_after: leaf.validity().not_after.timestamp(),
            serial: leaf.raw_serial_as_string().replace(':', ""),
            placeholder: cn == PLACEHOLDER_CN && leaf.subject() == leaf.issuer(),
        })
    }

    /// The names in `wanted` the certificate does not name.
    pub fn missing(&self, wanted: &[String]) -> Vec<String> {
        wanted
            .iter()
            .filter(|w| !self.names.contains(w))
            .cloned()
            .collect()
    }
}

/// A new private key of `kind`.
///
/// # Errors
/// When the crypto library cannot make one.
pub fn new_key(kind: KeyKind) -> Result<KeyPair, CertError> {
    Ok(match kind {
        KeyKind::EcdsaP256 => KeyPair::generate()?,
        KeyKind::Rsa2048 => KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?,
    })
}

/// A self-signed stand-in for `names`, valid for 90 days: enough for `nginx -t` and for an
/// HTTPS answer (which no browser trusts) until the real certificate is issued.
///
/// # Errors
/// When the key or certificate cannot be made.
pub fn placeholder(names: &[String], now_unix: i64) -> Result<KeyAndChain, CertError> {
    let key = new_key(KeyKind::EcdsaP256)?;
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, PLACEHOLDER_CN);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let at = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    params.not_before = at(now_unix - 300);
    params.not_after = at(now_unix + 90 * 86_400);
    let cert = params.self_signed(&key)?;
    Ok(KeyAndChain {
        key_pem: key.serialize_pem(),
        chain_pem: cert.pem(),
    })
}

/// A certificate signing request for `names`, with an empty subject (the names are in the
/// subjectAltName, as ACME wants them), DER.
///
/// # Errors
/// When the request cannot be made.
pub fn csr(names: &[String], key: &KeyPair) -> Result<Vec<u8>, CertError> {
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    Ok(params.serialize_request(key)?.der().to_vec())
}

/// Why a bring-your-own certificate is refused, in words an operator can act on (the caller
/// names the files: `is_about_key` says whether the key file or the certificate file).
#[derive(Debug, thiserror::Error)]
pub enum ByoError {
    #[error("certificate: {0}")]
    Certificate(#[from] CertError),
    #[error(
        "the chain is out of order or incomplete: {subject} is issued by {issuer}, but the next \
         certificate in the file is {next}; put the leaf first, then each intermediate"
    )]
    OutOfOrder {
        subject: String,
        issuer: String,
        next: String,
    },
    #[error(
        "the chain is incomplete: the certificate is issued by {issuer} and the file holds no \
         intermediate; append the CA's intermediate certificate(s) after it"
    )]
    NoIntermediate { issuer: String },
    #[error("key: not a readable PEM private key ({0})")]
    Key(#[source] rcgen::Error),
    #[error(
        "the key does not match the certificate (their public keys differ): check that the key \
         file is the one this certificate was issued for"
    )]
    KeyMismatch,
    #[error(
        "the certificate does not name {} (it names {}); get one that covers every name of the \
         domain",
        .missing.join(", "),
        .names.join(", ")
    )]
    Names {
        missing: Vec<String>,
        names: Vec<String>,
    },
}

impl ByoError {
    /// The key file is at fault, not the certificate file.
    pub fn is_about_key(&self) -> bool {
        matches!(self, ByoError::Key(_) | ByoError::KeyMismatch)
    }
}

/// Checks a bring-your-own certificate: the chain parses, each certificate is issued by the
/// next one in the file (no intermediate missing), the key is the leaf's, and the leaf names
/// every one of `names`.
///
/// # Errors
/// The first thing that is wrong.
pub fn check_byo(chain_pem: &str, key_pem: &str, names: &[String]) -> Result<CertInfo, ByoError> {
    let info = CertInfo::parse(chain_pem)?;
    let ders = certificates(chain_pem)?;
    let certs: Vec<X509Certificate<'_>> =
        ders.iter().map(|d| parse(d)).collect::<Result<_, _>>()?;
    for pair in certs.windows(2) {
        if pair[0].issuer() != pair[1].subject() {
            return Err(ByoError::OutOfOrder {
                subject: pair[0].subject().to_string(),
                issuer: pair[0].issuer().to_string(),
                next: pair[1].subject().to_string(),
            });
        }
    }
    let leaf = &certs[0];
    if certs.len() == 1 && leaf.issuer() != leaf.subject() {
        return Err(ByoError::NoIntermediate {
            issuer: leaf.issuer().to_string(),
        });
    }
    let key = KeyPair::from_pem(key_pem).map_err(ByoError::Key)?;
    if rcgen::PublicKeyData::subject_public_key_info(&key) != leaf.public_key().raw {
        return Err(ByoError::KeyMismatch);
    }
    let missing = info.missing(names);
    if !missing.is_empty() {
        return Err(ByoError::Names {
            missing,
            names: info.names,
        });
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_placeholder_is_recognised_and_names_the_domain() {
        let p = placeholder(&names(&["a.test", "www.a.test"]), 1_700_000_000).unwrap();
        let info = CertInfo::parse(&p.chain_pem).unwrap();
        assert!(info.placeholder);
        assert!(info.missing(&names(&["a.test", "www.a.test"])).is_empty());
        assert_eq!(
            info.missing(&names(&["a.test", "b.test"])),
            names(&["b.test"])
        );
        assert_eq!(info.not_after - info.not_before, 90 * 86_400 + 300);
    }

    #[test]
    fn byo_checks_the_key_the_chain_and_the_names() {
        let p = placeholder(&names(&["a.test"]), 1_700_000_000).unwrap();
        // A self-signed leaf is a chain of one: complete.
        assert!(check_byo(&p.chain_pem, &p.key_pem, &names(&["a.test"])).is_ok());
        let other = placeholder(&names(&["a.test"]), 1_700_000_000).unwrap();
        let err = check_byo(&p.chain_pem, &other.key_pem, &names(&["a.test"])).unwrap_err();
        assert!(
            matches!(err, ByoError::KeyMismatch) && err.is_about_key(),
            "{err}"
        );
        assert!(err.to_string().contains("does not match"), "{err}");
        let err = check_byo(&p.chain_pem, &p.key_pem, &names(&["a.test", "b.test"])).unwrap_err();
        assert!(
            matches!(&err, ByoError::Names { missing, .. } if missing == &names(&["b.test"])),
            "{err}"
        );
        assert!(!err.is_about_key());
        assert!(err.to_string().contains("does not name b.test"), "{err}");
        let err = check_byo(&p.chain_pem, "not a key", &names(&["a.test"])).unwrap_err();
        assert!(
            matches!(err, ByoError::Key(_)) && err.is_about_key(),
            "{err}"
        );
        let err = check_byo("not pem", &p.key_pem, &names(&["a.test"])).unwrap_err();
        assert!(err.to_string().starts_with("certificate:"), "{err}");
        assert!(!err.is_about_key());
    }

    #[test]
    fn byo_refuses_a_leaf_without_its_intermediate() {
        // A CA and a leaf it signs; the file holds the leaf only.
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, "Test CA");
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names(&["a.test"]))
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let err =
            check_byo(&leaf.pem(), &leaf_key.serialize_pem(), &names(&["a.test"])).unwrap_err();
        assert!(matches!(err, ByoError::NoIntermediate { .. }), "{err}");
        // Leaf then CA: complete.
        let chain = format!("{}{}", leaf.pem(), ca_cert.pem());
        assert!(check_byo(&chain, &leaf_key.serialize_pem(), &names(&["a.test"])).is_ok());
        // CA then leaf: out of order.
        let wrong = format!("{}{}", ca_cert.pem(), leaf.pem());
        let err = check_byo(&wrong, &leaf_key.serialize_pem(), &names(&["a.test"])).unwrap_err();
        assert!(
            matches!(err, ByoError::OutOfOrder { .. } | ByoError::KeyMismatch),
            "{err}"
        );
    }
}
