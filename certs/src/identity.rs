//! Who this process is on the wire: a certificate chain and its private key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{CertsError, Result};
use crate::fingerprint::Fingerprint;

/// File name of the certificate kept by [`Identity::load_or_generate`].
pub const CERT_FILE: &str = "cert.pem";
/// File name of the private key kept by [`Identity::load_or_generate`] (mode 0600).
pub const KEY_FILE: &str = "key.pem";

/// Names put in a generated certificate when the caller gives none. Pinned trust ignores names
/// (peers are known by fingerprint), so these only make the certificate readable.
const DEFAULT_NAMES: [&str; 2] = ["plasma-stream", "localhost"];

/// A certificate chain (leaf first) and the private key of the leaf.
///
/// Peers identify this process by [`Identity::fingerprint`], the SHA-256 of the leaf, so a
/// server that wants a stable identity across restarts keeps its files with
/// [`Identity::load_or_generate`].
pub struct Identity {
    cert_chain: Vec<CertificateDer<'static>>,
    private_key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            cert_chain: self.cert_chain.clone(),
            private_key: self.private_key.clone_key(),
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint())
            .field("chain_len", &self.cert_chain.len())
            .finish()
    }
}

impl Identity {
    /// A fresh self-signed certificate (ECDSA P-256) for the given subject alternative names
    /// (DNS names or IP addresses as text). An empty list uses `plasma-stream` and `localhost`.
    pub fn generate<I, S>(subject_alt_names: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let (cert_pem, key_pem) = generate_pem(subject_alt_names)?;
        Self::from_pem_text(&cert_pem, &key_pem, Path::new("<generated>"))
    }

    /// Loads `cert.pem` and `key.pem` from `dir`, or, if neither exists, generates a
    /// self-signed identity and stores it there (creating `dir`; the key file is mode 0600), so
    /// the fingerprint peers pinned stays the same across restarts. If only one of the two
    /// files exists the state is ambiguous and this refuses rather than overwrite it.
    pub fn load_or_generate(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => return Self::load_pem(&cert_path, &key_path),
            (false, false) => {}
            (true, false) => {
                return Err(CertsError::Pem {
                    path: key_path,
                    reason: format!(
                        "missing while {} exists; restore it or remove both",
                        CERT_FILE
                    ),
                })
            }
            (false, true) => {
                return Err(CertsError::Pem {
                    path: cert_path,
                    reason: format!(
                        "missing while {} exists; restore it or remove both",
                        KEY_FILE
                    ),
                })
            }
        }
        fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
        let (cert_pem, key_pem) = generate_pem(DEFAULT_NAMES)?;
        write_file(&key_path, key_pem.as_bytes(), 0o600)?;
        write_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
        tracing::info!(dir = %dir.display(), "generated a new self-signed certificate");
        Self::from_pem_text(&cert_pem, &key_pem, &cert_path)
    }

    /// Loads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn load_pem(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Self> {
        let cert_path = cert_path.as_ref();
        let key_path = key_path.as_ref();
        let cert_pem = fs::read(cert_path).map_err(|source| io_error(cert_path, source))?;
        let key_pem = fs::read(key_path).map_err(|source| io_error(key_path, source))?;
        let cert_chain = parse_certs(&cert_pem, cert_path)?;
        let private_key = parse_key(&key_pem, key_path)?;
        Ok(Identity {
            cert_chain,
            private_key,
        })
    }

    /// Builds an identity from DER parts already in memory (e.g. issued by a cluster CA).
    pub fn from_der(
        cert_chain: Vec<CertificateDer<'static>>,
        private_key: PrivateKeyDer<'static>,
    ) -> Result<Self> {
        if cert_chain.is_empty() {
            return Err(CertsError::Pem {
                path: PathBuf::from("<memory>"),
                reason: "empty certificate chain".into(),
            });
        }
        Ok(Identity {
            cert_chain,
            private_key,
        })
    }

    /// SHA-256 of the leaf certificate: the name peers pin.
    pub fn fingerprint(&self) -> Fingerprint {
        // Invariant: every constructor refuses an empty chain.
        self.cert_chain
            .first()
            .map(|leaf| Fingerprint::of_der(leaf))
            .unwrap_or(Fingerprint([0; 32]))
    }

    /// The certificate chain, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.cert_chain
    }

    /// The leaf's private key.
    pub fn private_key(&self) -> &PrivateKeyDer<'static> {
        &self.private_key
    }

    fn from_pem_text(cert_pem: &str, key_pem: &str, path: &Path) -> Result<Self> {
        Ok(Identity {
            cert_chain: parse_certs(cert_pem.as_bytes(), path)?,
            private_key: parse_key(key_pem.as_bytes(), path)?,
        })
    }
}

fn generate_pem<I, S>(subject_alt_names: I) -> Result<(String, String)>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut names: Vec<String> = subject_alt_names.into_iter().map(Into::into).collect();
    if names.is_empty() {
        names = DEFAULT_NAMES.iter().map(|name| name.to_string()).collect();
    }
    let certified = rcgen::generate_simple_self_signed(names)?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

pub(crate) fn parse_certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| CertsError::Pem {
            path: path.to_path_buf(),
            reason: format!("unreadable PEM: {err}"),
        })?;
    if certs.is_empty() {
        return Err(CertsError::Pem {
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn parse_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>> {
    match rustls_pemfile::private_key(&mut &pem[..]) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(CertsError::Pem {
            path: path.to_path_buf(),
            reason: "no PRIVATE KEY block found".into(),
        }),
        Err(err) => Err(CertsError::Pem {
            path: path.to_path_buf(),
            reason: format!("unreadable PEM: {err}"),
        }),
    }
}

/// Writes a new file with the given Unix mode (the key must not be world-readable).
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| io_error(path, source))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> CertsError {
    CertsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_across_load_or_generate() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = Identity::load_or_generate(&state).unwrap();
        let second = Identity::load_or_generate(&state).unwrap();
        assert_eq!(first.fingerprint(), second.fingerprint());
        let loaded = Identity::load_pem(state.join(CERT_FILE), state.join(KEY_FILE)).unwrap();
        assert_eq!(loaded.fingerprint(), first.fingerprint());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(state.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
    }

    #[test]
    fn generated_identities_differ() {
        let a = Identity::generate(["a.example"]).unwrap();
        let b = Identity::generate(Vec::<String>::new()).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.cert_chain().len(), 1);
    }

    #[test]
    fn half_a_state_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Identity::load_or_generate(dir.path()).unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let err = Identity::load_or_generate(dir.path()).unwrap_err();
        assert!(err.to_string().contains("key.pem"), "{err}");
    }

    #[test]
    fn garbage_pem_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        fs::write(&cert, "hello").unwrap();
        fs::write(&key, "hello").unwrap();
        let err = Identity::load_pem(&cert, &key).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    }
}
