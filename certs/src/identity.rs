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
    /// self-signed identity and stores it there (creating `dir` mode 0700; the key file is
    /// mode 0600 whatever the umask), so
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
        create_private_dir(dir)?;
        let (cert_pem, key_pem) = generate_pem(DEFAULT_NAMES)?;
        write_file(&key_path, key_pem.as_bytes(), 0o600)?;
        write_file(&cert_path, cert_pem.as_bytes(), 0o644)?;
        tracing::info!(dir = %dir.display(), "generated a new self-signed certificate");
        Self::from_pem_text(&cert_pem, &key_pem, &cert_path)
    }

    /// Loads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    /// A key file that group or others may read or write is refused
    /// ([`CertsError::KeyPermissions`], like OpenSSH): whoever can read it can be this peer.
    pub fn load_pem(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Self> {
        let cert_path = cert_path.as_ref();
        let key_path = key_path.as_ref();
        check_key_permissions(key_path)?;
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

/// Writes a new file with exactly the given Unix mode (the key must not be readable by
/// others). The mode is set again on the open file after creating it: the creation mode is
/// only an upper bound filtered by the umask, and a file must never be readable by others
/// even briefly, so it is created with at most `mode` and before any byte is written.
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| io_error(path, source))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|()| file.write_all(contents))
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error(path, source))
}

/// Creates a directory for certificates and keys (and any missing parents). A directory
/// created here is mode 0700, set explicitly so the umask cannot widen it; an existing one
/// keeps its mode (it may be shared on purpose), since the key files in it are 0600 anyway.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| io_error(parent, source))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        // Created by someone else meanwhile: theirs, keep its mode.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(source) => return Err(io_error(dir, source)),
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|source| io_error(dir, source))
}

/// Refuses a private key file that group or others may access (mode bits 0o077), as OpenSSH
/// refuses such a key: it may already have been read by someone else.
pub(crate) fn check_key_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|source| io_error(path, source))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CertsError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
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
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        fs::write(&cert, "hello").unwrap();
        fs::write(&key, "hello").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        let err = Identity::load_pem(&cert, &key).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    }

    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_key_readable_by_others_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        Identity::load_or_generate(&state).unwrap();
        let key = state.join(KEY_FILE);
        for mode in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
            let err = Identity::load_or_generate(&state).unwrap_err();
            assert!(
                matches!(&err, CertsError::KeyPermissions { path, mode: m } if *path == key && *m == mode),
                "{err}"
            );
            let message = err.to_string();
            assert!(
                message.contains(&format!("permissions {mode:04o} for {}", key.display())),
                "{message}"
            );
            assert!(message.contains("too open"), "{message}");
            assert!(
                message.contains(&format!("chmod 600 {}", key.display())),
                "{message}"
            );
        }
        // Owner-only modes load.
        for mode in [0o600, 0o400] {
            fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
            Identity::load_or_generate(&state).unwrap();
        }
    }

    /// Env var telling a re-executed test binary that it is the umask-000 child.
    const UMASK_CHILD: &str = "PLASMA_STREAM_CERTS_UMASK_CHILD";

    /// Key files come out 0600, directories 0700 and certificates 0644 even when the process
    /// umask is 000 (which would leave files created 0666 world-writable). The umask is per
    /// process, so this test re-runs itself in a child started by `sh -c 'umask 000; exec ..'`
    /// rather than change it under the other tests' threads.
    #[test]
    fn files_and_dirs_are_private_under_umask_000() {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = std::env::var_os(UMASK_CHILD) {
            let dir = PathBuf::from(dir);
            // Prove the umask really is 000 here: a file asked for 0666 gets 0666.
            let probe = dir.join("probe");
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o666)
                .open(&probe)
                .unwrap();
            assert_eq!(mode_of(&probe), 0o666, "the child's umask is not 000");
            let state = dir.join("identity").join("nested");
            Identity::load_or_generate(&state).unwrap();
            let ca_dir = dir.join("ca");
            let ca = crate::CertificateAuthority::load_or_generate(&ca_dir).unwrap();
            ca.issue(["member"])
                .unwrap()
                .write_to(dir.join("member"))
                .unwrap();
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let test = "identity::tests::files_and_dirs_are_private_under_umask_000";
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 000 && exec \"$0\" --exact \"$1\" --test-threads 1")
            .arg(std::env::current_exe().unwrap())
            .arg(test)
            .env(UMASK_CHILD, dir.path())
            .output()
            .unwrap();
        assert!(
            child.status.success(),
            "umask-000 child failed: {}\n{}{}",
            child.status,
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        assert_eq!(
            mode_of(&dir.path().join("probe")),
            0o666,
            "child did not run"
        );
        let state = dir.path().join("identity").join("nested");
        assert_eq!(mode_of(&state), 0o700);
        assert_eq!(mode_of(&state.join(KEY_FILE)), 0o600);
        assert_eq!(mode_of(&state.join(CERT_FILE)), 0o644);
        let ca_dir = dir.path().join("ca");
        assert_eq!(mode_of(&ca_dir), 0o700);
        assert_eq!(mode_of(&ca_dir.join(crate::CA_KEY_FILE)), 0o600);
        assert_eq!(mode_of(&ca_dir.join(crate::CA_CERT_FILE)), 0o644);
        let member = dir.path().join("member");
        assert_eq!(mode_of(&member), 0o700);
        assert_eq!(mode_of(&member.join(KEY_FILE)), 0o600);
    }
}
