//! Whom this process believes: the trust modes of `docs/design.md` §4.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use crate::error::{CertsError, Result};
use crate::fingerprint::Fingerprint;
use crate::revocation::RevocationList;

/// How the peer's certificate is judged.
///
/// Whatever the mode, traffic is encrypted and the handshake signature is verified (the peer
/// holds the key of the certificate it shows); the mode only decides *which* certificates are
/// acceptable.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Trust {
    /// Dev mode (`--insecure`): any certificate is accepted, and a client without one too.
    /// Callers should warn loudly when they choose it.
    Insecure,
    /// Only peers whose leaf certificate has one of these SHA-256 fingerprints. Both sides of a
    /// connection present certificates (mutual TLS). Names and validity dates are not checked:
    /// the fingerprint is the identity, as with SSH host keys.
    Pinned(TrustedFingerprints),
    /// Peers whose certificate chain leads to the cluster CA (`--ca`), checked the standard
    /// way (signatures, validity dates, key usage) with the name [`crate::CLUSTER_SERVER_NAME`].
    /// Both sides present certificates.
    Ca(crate::ClusterCa),
    /// Whatever a [`crate::SharedTrust`] holds at each handshake: a server's trust that
    /// SIGHUP replaces (never insecure).
    Shared(crate::SharedTrust),
}

impl Trust {
    /// True for [`Trust::Insecure`].
    pub fn is_insecure(&self) -> bool {
        matches!(self, Trust::Insecure)
    }

    /// The same trust, refusing the certificates of `revoked` even when their fingerprint is
    /// pinned or the cluster CA issued them (replacing any list set before). Insecure mode
    /// checks nothing and is returned unchanged: callers should refuse to combine the two
    /// (the CLIs make `--insecure` conflict with `--revoked`).
    pub fn with_revoked(self, revoked: RevocationList) -> Trust {
        match self {
            Trust::Insecure => Trust::Insecure,
            Trust::Pinned(mut trusted) => {
                trusted.revoked = revoked;
                Trust::Pinned(trusted)
            }
            Trust::Ca(mut ca) => {
                ca.revoked = revoked;
                Trust::Ca(ca)
            }
            // A shared trust changes only through SharedTrust::replace, so that every
            // holder of the handle sees one change at one moment.
            Trust::Shared(shared) => Trust::Shared(shared),
        }
    }

    /// The revocation list the verifiers check (`None` in insecure mode and for a shared
    /// trust, whose list may change under the caller: ask [`crate::SharedTrust::current`]).
    pub fn revoked(&self) -> Option<&RevocationList> {
        match self {
            Trust::Insecure | Trust::Shared(_) => None,
            Trust::Pinned(trusted) => Some(&trusted.revoked),
            Trust::Ca(ca) => Some(&ca.revoked),
        }
    }

    /// The pinned fingerprints (empty unless pinned), to report what a reload changed.
    pub fn pinned(&self) -> Option<&TrustedFingerprints> {
        match self {
            Trust::Pinned(trusted) => Some(trusted),
            _ => None,
        }
    }
}

/// A set of trusted certificate fingerprints.
///
/// The file format ([`TrustedFingerprints::from_file`]) is one fingerprint per line in any form
/// [`Fingerprint`] parses; `#` starts a comment (whole line or after the value); blank lines
/// are ignored. Text after the fingerprint on the same line (separated by whitespace) is a free
/// label, e.g. `3f9a…c2  store-b.example`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedFingerprints {
    set: BTreeSet<Fingerprint>,
    /// Refused even if listed in `set` (see [`Trust::with_revoked`]).
    revoked: RevocationList,
}

impl TrustedFingerprints {
    /// An empty set (trusts nobody until something is added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a trust file (format above). Errors name the file, the line and the bad token.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| CertsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut trusted = Self::new();
        trusted
            .extend_from_text(&text)
            .map_err(|(line, err)| CertsError::TrustFile {
                path: path.to_path_buf(),
                line,
                source: Box::new(err),
            })?;
        Ok(trusted)
    }

    /// Adds the fingerprints of a trust-file text; on error returns the 1-based line number.
    pub fn extend_from_text(&mut self, text: &str) -> Result<(), (usize, CertsError)> {
        for (index, line) in text.lines().enumerate() {
            let content = line.split('#').next().unwrap_or("");
            let Some(token) = content.split_whitespace().next() else {
                continue;
            };
            let fingerprint = token.parse().map_err(|err| (index + 1, err))?;
            self.add(fingerprint);
        }
        Ok(())
    }

    /// Appends one fingerprint (with an optional label, e.g. the peer's address) to a trust
    /// file, creating it if needed: the "trust on first use" step of a CLI, as SSH records
    /// host keys. Returns false, writing nothing, if the file already trusts it.
    pub fn append_to_file(
        path: impl AsRef<Path>,
        fingerprint: &Fingerprint,
        label: Option<&str>,
    ) -> Result<bool> {
        use std::io::Write;
        let path = path.as_ref();
        if path.exists() && Self::from_file(path)?.contains(fingerprint) {
            return Ok(false);
        }
        let io_error = |source| CertsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_error)?;
        // A label must not break the line format: keep it on one line, without '#'.
        let label: String = label
            .unwrap_or("")
            .chars()
            .map(|c| {
                if c == '\n' || c == '\r' || c == '#' {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let line = match label.trim() {
            "" => format!("{fingerprint}\n"),
            label => format!("{fingerprint}  {label}\n"),
        };
        file.write_all(line.as_bytes()).map_err(io_error)?;
        Ok(true)
    }

    /// Trusts one more fingerprint; returns false if it was already trusted.
    pub fn add(&mut self, fingerprint: Fingerprint) -> bool {
        self.set.insert(fingerprint)
    }

    /// Whether this fingerprint is trusted.
    pub fn contains(&self, fingerprint: &Fingerprint) -> bool {
        self.set.contains(fingerprint)
    }

    /// The trusted fingerprints, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Fingerprint> {
        self.set.iter()
    }

    /// How many fingerprints are trusted.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True when nobody is trusted.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

impl FromIterator<Fingerprint> for TrustedFingerprints {
    fn from_iter<T: IntoIterator<Item = Fingerprint>>(iter: T) -> Self {
        TrustedFingerprints {
            set: iter.into_iter().collect(),
            revoked: RevocationList::default(),
        }
    }
}

impl Extend<Fingerprint> for TrustedFingerprints {
    fn extend<T: IntoIterator<Item = Fingerprint>>(&mut self, iter: T) {
        self.set.extend(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const B: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    #[test]
    fn trust_file_with_comments_labels_and_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted");
        fs::write(
            &path,
            format!("# peers\n\n{A}  store-a # first\n   sha256:{B}\n{A}\n"),
        )
        .unwrap();
        let trusted = TrustedFingerprints::from_file(&path).unwrap();
        assert_eq!(trusted.len(), 2);
        assert!(trusted.contains(&A.parse().unwrap()));
        assert!(trusted.contains(&B.parse().unwrap()));
    }

    #[test]
    fn trust_file_errors_name_line_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted");
        fs::write(&path, format!("{A}\n# ok\nnot-a-fingerprint\n")).unwrap();
        let message = TrustedFingerprints::from_file(&path)
            .unwrap_err()
            .to_string();
        assert!(message.contains(":3:"), "{message}");
        assert!(message.contains("not-a-fingerprint"), "{message}");
    }

    #[test]
    fn append_to_file_creates_appends_and_skips_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_peers");
        let a: Fingerprint = A.parse().unwrap();
        let b: Fingerprint = B.parse().unwrap();
        assert!(TrustedFingerprints::append_to_file(&path, &a, Some("10.0.0.1:2021")).unwrap());
        assert!(!TrustedFingerprints::append_to_file(&path, &a, None).unwrap());
        assert!(TrustedFingerprints::append_to_file(&path, &b, Some("evil\n# label")).unwrap());
        let trusted = TrustedFingerprints::from_file(&path).unwrap();
        assert_eq!(trusted.len(), 2);
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 2);
    }

    #[test]
    fn missing_trust_file_names_the_path() {
        let message = TrustedFingerprints::from_file("/nonexistent/trust")
            .unwrap_err()
            .to_string();
        assert!(message.contains("/nonexistent/trust"), "{message}");
    }
}
