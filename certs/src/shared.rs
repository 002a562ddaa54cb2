//! Trust that can be replaced while a server runs (SIGHUP re-reads `--trust-file`, `--ca` and
//! `--revoked`).
//!
//! rustls keeps its verifier inside a config that the transport builds once; rebuilding every
//! config (and the QUIC endpoint holding it) on a reload would be invasive and racy. Instead
//! the config holds a verifier that, at each handshake, asks this handle which verifiers are
//! in force now. A replacement is one pointer swap under a lock held for nanoseconds, so a
//! handshake sees either the whole old set or the whole new one, and a connection already
//! established never looks again: transfers in flight are unaffected by a reload.

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::error::{CertsError, Result};
use crate::tls::{client_cert_verifier, server_cert_verifier};
use crate::trust::Trust;

/// One generation of trust: the [`Trust`] and the verifiers built from it (built once per
/// reload, not per handshake).
struct Generation {
    trust: Trust,
    clients: Arc<dyn ClientCertVerifier>,
    servers: Arc<dyn ServerCertVerifier>,
}

/// A handle on the trust in force; clones share it. Wrap it in [`Trust::Shared`] to build
/// configs whose verifiers follow [`SharedTrust::replace`].
#[derive(Clone)]
pub struct SharedTrust {
    current: Arc<RwLock<Arc<Generation>>>,
}

impl fmt::Debug for SharedTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTrust")
            .field("trust", &self.generation().trust)
            .finish()
    }
}

impl SharedTrust {
    /// Starts with `trust`. Insecure trust is refused: there is nothing to reload, and a
    /// reload must never be able to switch verification off (or on) behind the operator.
    pub fn new(trust: Trust) -> Result<Self> {
        let generation = Generation::build(trust)?;
        Ok(SharedTrust {
            current: Arc::new(RwLock::new(Arc::new(generation))),
        })
    }

    /// Puts `trust` in force for every handshake from now on; on error the previous trust
    /// stays in force. Returns the trust it replaced.
    pub fn replace(&self, trust: Trust) -> Result<Trust> {
        let generation = Arc::new(Generation::build(trust)?);
        // A poisoned lock only means a panic elsewhere while swapping a pointer: the pointer
        // itself is always whole, so go on with it.
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let previous = std::mem::replace(&mut *current, generation);
        Ok(previous.trust.clone())
    }

    /// The trust in force now.
    pub fn current(&self) -> Trust {
        self.generation().trust.clone()
    }

    fn generation(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Generation {
    fn build(trust: Trust) -> Result<Self> {
        match trust {
            Trust::Insecure => Err(CertsError::Verifier(
                "insecure trust cannot be reloaded (it checks nothing)".into(),
            )),
            Trust::Shared(_) => Err(CertsError::Verifier(
                "a shared trust cannot hold another shared trust".into(),
            )),
            trust => {
                let provider = crate::tls::crypto_provider();
                Ok(Generation {
                    clients: client_cert_verifier(&trust, &provider)?,
                    servers: server_cert_verifier(&trust, &provider)?,
                    trust,
                })
            }
        }
    }
}

/// The client-certificate verifier of a server config built from [`Trust::Shared`].
#[derive(Debug)]
pub(crate) struct ReloadingClientVerifier(pub(crate) SharedTrust);

impl ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // Never insecure (see SharedTrust::new): every mode it holds requires a certificate.
        true
    }

    /// No hints: they would have to borrow from one generation, which a reload may drop. Our
    /// clients present their one certificate whatever the hints say.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        self.0
            .generation()
            .clients
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .generation()
            .clients
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .generation()
            .clients
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.generation().clients.supported_verify_schemes()
    }
}

/// The server-certificate verifier of a client config built from [`Trust::Shared`] (a
/// server dialing its peers).
#[derive(Debug)]
pub(crate) struct ReloadingServerVerifier(pub(crate) SharedTrust);

impl ServerCertVerifier for ReloadingServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.0.generation().servers.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .generation()
            .servers
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .generation()
            .servers
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.generation().servers.supported_verify_schemes()
    }
}
