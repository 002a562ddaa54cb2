//! rustls certificate verifiers for each trust mode.
//!
//! Pinned and insecure trust: one type serves both directions
//! ([`rustls::client::danger::ServerCertVerifier`] on the client,
//! [`rustls::server::danger::ClientCertVerifier`] on the server): it accepts a peer whose leaf
//! fingerprint is trusted (or anyone in insecure mode) and always checks the handshake
//! signature against the certificate's public key with the ring provider.
//!
//! CA trust: rustls's WebPKI verifiers do the chain, date and name checks; thin wrappers
//! around them first refuse revoked certificates and turn their terse refusals
//! ("BadSignature", "UnknownIssuer") into sentences that say what to do *in CA mode*.
//!
//! Every refusal travels as `CertificateError::Other` carrying one of this module's error
//! types, whose text is what [`tidy_tls_error`] extracts for the operator.

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
use crate::revocation::{RevocationList, Revoked};
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

impl PeerRole {
    fn name(self) -> &'static str {
        match self {
            PeerRole::Server => "server",
            PeerRole::Client => "client",
        }
    }
}

/// The error a verifier raises for a revoked certificate, in every trust mode (it is checked
/// before the pin or the CA).
#[derive(Clone, PartialEq, Eq)]
pub struct RevokedPeer {
    /// The fingerprint the peer presented.
    pub fingerprint: Fingerprint,
    /// Whether the peer was the server or the client of the handshake.
    pub role: PeerRole,
    /// Which entry of the revocation list matched.
    pub revoked: Revoked,
}

impl fmt::Display for RevokedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = self.role.name();
        write!(
            f,
            "{who} certificate sha256:{fp} is revoked ({why}): it is refused even if pinned or \
             issued by the cluster CA; the {who} needs a new certificate",
            fp = self.fingerprint,
            why = self.revoked,
        )
    }
}

/// Same text as Display (rustls formats `CertificateError::Other` with `Debug`).
impl fmt::Debug for RevokedPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for RevokedPeer {}

/// What the cluster-CA check found wrong with a peer's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaProblem {
    /// Not signed by this cluster's CA: another cluster's member, or self-signed (rustls's
    /// `UnknownIssuer` or `BadSignature`).
    NotIssuedByThisCa(String),
    /// Expired or not valid yet (its own dates or its CA's).
    OutsideValidity(String),
    /// Issued by the CA but without the cluster name [`crate::CLUSTER_SERVER_NAME`].
    WrongName(String),
}

/// The error the CA-mode verifiers raise for a certificate the cluster CA does not vouch for,
/// with a hint that fits CA mode (fingerprints are no remedy there).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterCaRefusal {
    /// The fingerprint the peer presented.
    pub fingerprint: Fingerprint,
    /// Whether the peer was the server or the client of the handshake.
    pub role: PeerRole,
    /// The fingerprint of the CA this side trusts (`--ca`).
    pub ca: Fingerprint,
    pub problem: CaProblem,
}

impl fmt::Display for ClusterCaRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = self.role.name();
        let fp = self.fingerprint;
        match &self.problem {
            CaProblem::NotIssuedByThisCa(detail) => write!(
                f,
                "{who} certificate sha256:{fp} was not issued by this cluster's CA \
                 (sha256:{ca}; {detail}): it is self-signed or from another cluster's CA. \
                 In CA mode fingerprints do not help: give the {who} a certificate from this \
                 CA (plasma-stream-cli --issue-cert DIR --ca-dir CA_DIR), or make --ca name \
                 the ca.pem that issued it, the same on both sides",
                ca = self.ca
            ),
            CaProblem::OutsideValidity(detail) => write!(
                f,
                "{who} certificate sha256:{fp} is outside its validity ({detail}): issue the \
                 {who} a new certificate from the cluster CA (plasma-stream-cli --issue-cert \
                 DIR --ca-dir CA_DIR --days N; a new CA if the CA itself expired), and check \
                 both machines' clocks"
            ),
            CaProblem::WrongName(detail) => write!(
                f,
                "{who} certificate sha256:{fp} does not carry the cluster name {name} \
                 ({detail}): issue it with plasma-stream-cli --issue-cert, which adds that name",
                name = crate::CLUSTER_SERVER_NAME
            ),
        }
    }
}

/// Same text as Display (rustls formats `CertificateError::Other` with `Debug`).
impl fmt::Debug for ClusterCaRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ClusterCaRefusal {}

/// Logs a refusal where it happens and wraps it for rustls.
fn refuse<E: std::error::Error + Send + Sync + 'static>(refusal: E) -> rustls::Error {
    tracing::warn!("{refusal}");
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(refusal))))
}

/// Refuses a revoked leaf certificate.
fn check_revoked(
    revoked: &RevocationList,
    end_entity: &CertificateDer<'_>,
    role: PeerRole,
) -> Result<(), rustls::Error> {
    match revoked.check(end_entity) {
        None => Ok(()),
        Some(revoked) => Err(refuse(RevokedPeer {
            fingerprint: Fingerprint::of_der(end_entity),
            role,
            revoked,
        })),
    }
}

/// Rewrites a WebPKI refusal into a [`ClusterCaRefusal`] where there is a CA-mode remedy to
/// name; other errors pass unchanged.
fn explain_ca_refusal(
    error: rustls::Error,
    end_entity: &CertificateDer<'_>,
    role: PeerRole,
    ca: Fingerprint,
) -> rustls::Error {
    use CertificateError as E;
    let rustls::Error::InvalidCertificate(cert_error) = &error else {
        return error;
    };
    let detail = cert_error.to_string();
    let problem = match cert_error {
        E::BadSignature | E::UnknownIssuer => CaProblem::NotIssuedByThisCa(detail),
        E::Expired | E::ExpiredContext { .. } | E::NotValidYet | E::NotValidYetContext { .. } => {
            CaProblem::OutsideValidity(detail)
        }
        E::NotValidForName | E::NotValidForNameContext { .. } => CaProblem::WrongName(detail),
        _ => return error,
    };
    refuse(ClusterCaRefusal {
        fingerprint: Fingerprint::of_der(end_entity),
        role,
        ca,
        problem,
    })
}

/// CA mode on the client: rustls's WebPKI server verifier behind the revocation list.
#[derive(Debug)]
pub(crate) struct CaServerVerifier {
    pub(crate) inner: Arc<rustls::client::WebPkiServerVerifier>,
    pub(crate) ca: Fingerprint,
    pub(crate) revoked: RevocationList,
}

impl ServerCertVerifier for CaServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        check_revoked(&self.revoked, end_entity, PeerRole::Server)?;
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| explain_ca_refusal(e, end_entity, PeerRole::Server, self.ca))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// CA mode on the server: rustls's WebPKI client verifier behind the revocation list.
#[derive(Debug)]
pub(crate) struct CaClientVerifier {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) ca: Fingerprint,
    pub(crate) revoked: RevocationList,
}

impl ClientCertVerifier for CaClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_revoked(&self.revoked, end_entity, PeerRole::Client)?;
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| explain_ca_refusal(e, end_entity, PeerRole::Client, self.ca))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

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
        if let Some(revoked) = self.trust.revoked() {
            check_revoked(revoked, end_entity, role)?;
        }
        let fingerprint = Fingerprint::of_der(end_entity);
        match &self.trust {
            Trust::Insecure => Ok(()),
            // CA mode uses rustls's WebPKI verifiers, never this one.
            Trust::Ca(_) | Trust::Shared(_) => Err(rustls::Error::General(
                "CA and shared trust need their own verifiers".into(),
            )),
            Trust::Pinned(trusted) if trusted.contains(&fingerprint) => Ok(()),
            Trust::Pinned(_) => Err(refuse(UntrustedPeer { fingerprint, role })),
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
