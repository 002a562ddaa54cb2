//! rustls certificate verifiers for pinned and insecure trust.
//!
//! One type serves both directions ([`rustls::client::danger::ServerCertVerifier`] on the
//! client, [`rustls::server::danger::ClientCertVerifier`] on the server): it accepts a peer
//! whose leaf fingerprint is trusted (or anyone in insecure mode) and always checks the
//! handshake signature against the certificate's public key with the ring provider.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};

use crate::fingerprint::Fingerprint;
use crate::trust::Trust;

/// Which side of the handshake the refused peer was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// We connected to it.
    Server,
    /// It connected to us.
    Client,
}

/// The error a verifier raises for a certificate it does not trust. It travels inside
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))`, so its text reaches the
/// log of whoever refused, telling the operator exactly how to trust that peer.
#[derive(Clone, PartialEq, Eq)]
pub struct UntrustedPeer {
    /// The fingerprint the peer presented.
    pub fingerprint: Fingerprint,
    /// Whether the peer was the server or the client of the handshake.
    pub role: PeerRole,
}

impl fmt::Display for UntrustedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.role {
            PeerRole::Server => "server",
            PeerRole::Client => "client",
        };
        write!(
            f,
            "{who} certificate sha256:{fp} is not trusted: pass --trust {fp} or add it to the trust file",
            fp = self.fingerprint
        )
    }
}

/// Same text as Display: rustls formats `CertificateError::Other` with `Debug`, and this text
/// is what an operator must see.
impl fmt::Debug for UntrustedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for UntrustedPeer {}

/// Rewrites a rustls error text so a refusal reads as one sentence: rustls prints
/// `invalid peer certificate: Other(OtherError(<our message>))`; this returns `<our message>`
/// for such texts and the input unchanged otherwise.
pub fn tidy_tls_error(text: &str) -> String {
    const WRAPPER: &str = "Other(OtherError(";
    match text.find(WRAPPER) {
        Some(start) => {
            let inner = &text[start + WRAPPER.len()..];
            inner.strip_suffix("))").unwrap_or(inner).to_string()
        }
        None => text.to_string(),
    }
}

/// Verifies peers by fingerprint (or not at all in insecure mode), signatures always.
pub(crate) struct FingerprintVerifier {
    trust: Trust,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for FingerprintVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FingerprintVerifier")
            .field("trust", &self.trust)
            .finish()
    }
}

impl FingerprintVerifier {
    pub(crate) fn new(trust: &Trust, provider: &rustls::crypto::CryptoProvider) -> Arc<Self> {
        Arc::new(FingerprintVerifier {
            trust: trust.clone(),
            algorithms: provider.signature_verification_algorithms,
        })
    }

    fn check(&self, end_entity: &CertificateDer<'_>, role: PeerRole) -> Result<(), rustls::Error> {
        let fingerprint = Fingerprint::of_der(end_entity);
        match &self.trust {
            Trust::Insecure => Ok(()),
            // CA mode uses rustls's WebPKI verifiers, never this one.
            Trust::Ca(_) => Err(rustls::Error::General(
                "CA trust needs the WebPKI verifier".into(),
            )),
            Trust::Pinned(trusted) if trusted.contains(&fingerprint) => Ok(()),
            Trust::Pinned(_) => {
                let refusal = UntrustedPeer { fingerprint, role };
                tracing::warn!("{refusal}");
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(refusal)),
                )))
            }
        }
    }
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, PeerRole::Server)
            .map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for FingerprintVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// Pinned mode requires a client certificate; insecure mode asks for one (so the server can
    /// log who connected) but accepts a client without.
    fn client_auth_mandatory(&self) -> bool {
        !self.trust.is_insecure()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, PeerRole::Client)
            .map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
