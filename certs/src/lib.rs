//! Certificates and trust for Plasma Stream.
//!
//! This crate answers two questions for the transport: *who am I* ([`Identity`]: a certificate
//! chain and its private key, self-signed with rcgen at startup or loaded from PEM files) and
//! *whom do I believe* ([`Trust`]: nobody checked in `--insecure` dev mode, or a set of pinned
//! SHA-256 [`Fingerprint`]s, or a private cluster [`CertificateAuthority`]), minus the
//! certificates of a [`RevocationList`] ([`Trust::with_revoked`]). From those it builds the rustls client and server configurations
//! ([`server_config`], [`client_config`]) for mutual TLS: in pinned mode both sides present a
//! certificate and each checks the other's fingerprint, and the handshake signatures are always
//! verified with the `ring` provider, so a peer cannot claim a certificate whose key it lacks.
//!
//! It knows nothing of sockets, QUIC or objects; ALPN is left to the transport.

mod ca;
mod error;
mod fingerprint;
mod identity;
mod revocation;
mod shared;
mod tls;
mod trust;
mod verifier;

pub use ca::{
    certificate_names, CertificateAuthority, ClusterCa, IssuedCertificate, CA_CERT_FILE,
    CA_KEY_FILE, CLUSTER_SERVER_NAME, DEFAULT_VALIDITY_DAYS, MAX_VALIDITY_DAYS,
};
pub use error::{CertsError, Result};
pub use fingerprint::Fingerprint;
pub use identity::{Identity, CERT_FILE, KEY_FILE};
pub use revocation::{RevocationList, Revoked};
pub use shared::SharedTrust;
pub use tls::{client_config, crypto_provider, server_config};
pub use trust::{Trust, TrustedFingerprints};
pub use verifier::{
    tidy_tls_error, CaProblem, ClusterCaRefusal, PeerRole, RevokedPeer, UntrustedPeer,
};

/// Re-exported so callers name the same rustls this crate was built with.
pub use rustls;
