//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while creating, loading or trusting certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// rcgen could not create a key pair or a certificate.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A PEM file did not hold what it should (no certificate, no key, bad base64).
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },

    /// A fingerprint string could not be parsed; `token` is the offending input.
    #[error("bad fingerprint {token:?}: {reason}")]
    BadFingerprint { token: String, reason: &'static str },

    /// A revocation-list entry could not be parsed; `token` is the offending input.
    #[error("bad revocation entry {token:?}: {reason}")]
    BadRevocationEntry { token: String, reason: &'static str },

    /// A private key file is readable or writable by group or others (like OpenSSH, the key
    /// is refused rather than used).
    #[error(
        "permissions {mode:04o} for {} are too open: a private key must be accessible by its owner only; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },

    /// A certificate validity that cannot be used (zero days, or beyond what X.509 dates hold
    /// sensibly).
    #[error("bad certificate validity of {days} days: expected 1 to {max} days")]
    BadValidity { days: u32, max: u32 },

    /// A line of a trust file (or revocation list) could not be parsed.
    #[error("{path}:{line}: {source}")]
    TrustFile {
        path: PathBuf,
        line: usize,
        #[source]
        source: Box<CertsError>,
    },

    /// rustls could not build a certificate verifier (e.g. an unusable CA certificate).
    #[error("certificate verifier: {0}")]
    Verifier(String),

    /// rustls refused the configuration (e.g. the private key does not match its certificate).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Result alias for this crate.
pub type Result<T, E = CertsError> = std::result::Result<T, E>;
