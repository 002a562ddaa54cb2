//! A private cluster certificate authority (DESIGN.md §5, `--ca`): one CA certificate that
//! every server and client of a cluster trusts, and that issues their certificates, so adding
//! a machine needs no fingerprint exchange.

use std::fs;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::RootCertStore;

use crate::error::{CertsError, Result};
use crate::fingerprint::Fingerprint;
use crate::identity::{
    check_key_permissions, create_private_dir, parse_certs, write_file, Identity, CERT_FILE,
    KEY_FILE,
};

/// File name of the CA certificate kept by [`CertificateAuthority::load_or_generate`].
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key (mode 0600). Keep it off the servers if you can.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// The name every certificate issued by a cluster CA carries (as a DNS subject alternative
/// name) and every client checks in CA mode: the CA vouches for cluster membership, not for a
/// host name, and peers are dialed by IP address.
pub const CLUSTER_SERVER_NAME: &str = "plasma-stream";

/// The CA certificate's subject. It is rebuilt identically when the CA is loaded, so issued
/// certificates name it exactly as its own certificate does.
const CA_COMMON_NAME: &str = "Plasma Stream cluster CA";

/// A cluster CA: its certificate and its signing key.
pub struct CertificateAuthority {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

impl CertificateAuthority {
    /// A new CA (ECDSA P-256, valid until the year 4096 like rcgen's defaults).
    pub fn generate() -> Result<Self> {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        Ok(CertificateAuthority {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            key,
        })
    }

    /// Loads `ca.pem` / `ca-key.pem` from `dir`, or creates a CA there if neither exists (the
    /// directory 0700, the key 0600).
    pub fn load_or_generate(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if cert_path.exists() || key_path.exists() {
            return Self::load_pem(&cert_path, &key_path);
        }
        create_private_dir(dir)?;
        let ca = Self::generate()?;
        write_file(&key_path, ca.key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&cert_path, ca.cert_pem.as_bytes(), 0o644)?;
        tracing::info!(dir = %dir.display(), fingerprint = %ca.fingerprint(), "created a cluster CA");
        Ok(ca)
    }

    /// Loads a CA written by [`CertificateAuthority::load_or_generate`]. A key file readable
    /// by group or others is refused ([`CertsError::KeyPermissions`]).
    pub fn load_pem(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Self> {
        let cert_path = cert_path.as_ref();
        let key_path = key_path.as_ref();
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| CertsError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        check_key_permissions(key_path)?;
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let cert_der = parse_certs(cert_pem.as_bytes(), cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| CertsError::Pem {
                path: cert_path.to_path_buf(),
                reason: "no CERTIFICATE block found".into(),
            })?;
        let key = KeyPair::from_pem(&key_pem).map_err(|err| CertsError::Pem {
            path: key_path.to_path_buf(),
            reason: format!("not a usable private key: {err}"),
        })?;
        Ok(CertificateAuthority {
            cert_der,
            cert_pem,
            key,
        })
    }

    /// SHA-256 of the CA certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_der(&self.cert_der)
    }

    /// The CA certificate (what every member trusts: `Trust::Ca`).
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate in PEM, to hand to members.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The trust of a cluster member: peers whose certificate this CA issued.
    pub fn trust(&self) -> Result<crate::Trust> {
        Ok(crate::Trust::Ca(ClusterCa::from_der(
            self.cert_der.clone(),
        )?))
    }

    /// Issues a certificate for a server or client. `names` (DNS names or IP addresses) are
    /// informative; [`CLUSTER_SERVER_NAME`] is always added, since that is the name clients
    /// check. The certificate is valid for both TLS server and client authentication.
    pub fn issue<I, S>(&self, names: I) -> Result<IssuedCertificate>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
        if !names.iter().any(|name| name == CLUSTER_SERVER_NAME) {
            names.push(CLUSTER_SERVER_NAME.to_string());
        }
        let mut params = CertificateParams::new(names.clone())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let leaf_key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params()?, &self.key);
        let leaf = params.signed_by(&leaf_key, &issuer)?;
        let identity = Identity::from_der(
            vec![leaf.der().clone(), self.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
        Ok(IssuedCertificate {
            identity,
            chain_pem: format!("{}{}", leaf.pem(), self.cert_pem),
            key_pem: leaf_key.serialize_pem(),
        })
    }
}

/// A certificate issued by a [`CertificateAuthority`], in memory and as PEM text.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// Ready to use.
    pub identity: Identity,
    /// Leaf then CA certificate, PEM.
    pub chain_pem: String,
    /// The leaf's private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl IssuedCertificate {
    /// Writes `cert.pem` and `key.pem` (0600) into `dir` (created 0700 if absent), where
    /// `Identity::load_or_generate` finds them; refuses to overwrite existing files.
    pub fn write_to(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        create_private_dir(dir)?;
        write_file(&dir.join(KEY_FILE), self.key_pem.as_bytes(), 0o600)?;
        write_file(&dir.join(CERT_FILE), self.chain_pem.as_bytes(), 0o644)
    }
}

/// The trust anchor of CA mode: the cluster CA's certificate.
#[derive(Clone, Debug)]
pub struct ClusterCa {
    pub(crate) roots: RootCertStore,
    fingerprint: Fingerprint,
    /// Member certificates refused although this CA issued them (see `Trust::with_revoked`).
    pub(crate) revoked: crate::RevocationList,
}

impl ClusterCa {
    /// Trusts the CA certificate given in DER.
    pub fn from_der(cert: CertificateDer<'static>) -> Result<Self> {
        let fingerprint = Fingerprint::of_der(&cert);
        let mut roots = RootCertStore::empty();
        roots.add(cert)?;
        Ok(ClusterCa {
            roots,
            fingerprint,
            revoked: crate::RevocationList::default(),
        })
    }

    /// Trusts the (first) CA certificate of a PEM file (`--ca FILE`).
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let pem = fs::read(path).map_err(|source| CertsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cert = parse_certs(&pem, path)?
            .into_iter()
            .next()
            .ok_or_else(|| CertsError::Pem {
                path: path.to_path_buf(),
                reason: "no CERTIFICATE block found".into(),
            })?;
        Self::from_der(cert)
    }

    /// SHA-256 of the CA certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}
