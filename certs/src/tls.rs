//! rustls configurations for each trust mode.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ServerConfig};

use crate::error::{CertsError, Result};
use crate::identity::Identity;
use crate::shared::{ReloadingClientVerifier, ReloadingServerVerifier};
use crate::trust::Trust;
use crate::verifier::{CaClientVerifier, CaServerVerifier, FingerprintVerifier};

/// The crypto provider every config of this crate uses: rustls's `ring` backend (no aws-lc).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server side of mutual TLS: presents `identity`, asks every client for a certificate and
/// judges it by `trust` (required in pinned mode). TLS 1.3 only (QUIC needs it, and the TCP
/// fallback gains nothing from 1.2). ALPN is left empty for the transport to set.
pub fn server_config(identity: &Identity, trust: &Trust) -> Result<ServerConfig> {
    let provider = crypto_provider();
    let verifier = client_cert_verifier(trust, &provider)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            identity.cert_chain().to_vec(),
            identity.private_key().clone_key(),
        )?;
    if matches!(trust, Trust::Shared(_)) {
        // A resumed session skips the certificate check: a client removed from the trust
        // (or revoked) by a reload could come back on a ticket the old trust issued.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(config)
}

/// How a server judges its clients under `trust`.
pub(crate) fn client_cert_verifier(
    trust: &Trust,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    Ok(match trust {
        Trust::Ca(ca) => Arc::new(CaClientVerifier {
            inner: rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(ca.roots.clone()),
                provider.clone(),
            )
            .build()
            .map_err(|err| CertsError::Verifier(err.to_string()))?,
            ca: ca.fingerprint(),
            revoked: ca.revoked.clone(),
        }),
        Trust::Shared(shared) => Arc::new(ReloadingClientVerifier(shared.clone())),
        _ => FingerprintVerifier::new(trust, provider),
    })
}

/// How a client judges the server it dials under `trust`.
pub(crate) fn server_cert_verifier(
    trust: &Trust,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::client::danger::ServerCertVerifier>> {
    Ok(match trust {
        Trust::Ca(ca) => Arc::new(CaServerVerifier {
            inner: rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(ca.roots.clone()),
                provider.clone(),
            )
            .build()
            .map_err(|err| CertsError::Verifier(err.to_string()))?,
            ca: ca.fingerprint(),
            revoked: ca.revoked.clone(),
        }),
        Trust::Shared(shared) => Arc::new(ReloadingServerVerifier(shared.clone())),
        _ => FingerprintVerifier::new(trust, provider),
    })
}

/// Client side of mutual TLS: presents `identity` (in every mode, so servers can pin it) and
/// judges the server's certificate by `trust`. In pinned and insecure modes server names are not
/// checked (the fingerprint is the identity); in CA mode the server's certificate must carry
/// [`crate::CLUSTER_SERVER_NAME`], which is the name callers should send.
pub fn client_config(identity: &Identity, trust: &Trust) -> Result<ClientConfig> {
    let provider = crypto_provider();
    let verifier = server_cert_verifier(trust, &provider)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(
            identity.cert_chain().to_vec(),
            identity.private_key().clone_key(),
        )?;
    if matches!(trust, Trust::Shared(_)) {
        // Resuming skips the check of the server's certificate: after a reload every dial
        // must be judged by the trust in force.
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Fingerprint, TrustedFingerprints};
    use rustls::{ClientConnection, ServerConnection};

    /// Which side's rustls failed, with its error text.
    #[derive(Debug)]
    enum Failure {
        Client(String),
        Server(String),
    }

    /// Runs a TLS handshake in memory; on success returns the fingerprints each side saw.
    fn handshake(
        client: ClientConfig,
        server: ServerConfig,
    ) -> Result<(Option<Fingerprint>, Option<Fingerprint>), Failure> {
        let name = "plasma-stream".try_into().unwrap();
        let mut c = ClientConnection::new(Arc::new(client), name).unwrap();
        let mut s = ServerConnection::new(Arc::new(server)).unwrap();
        for _ in 0..10 {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            s.read_tls(&mut &wire[..]).unwrap();
            s.process_new_packets()
                .map_err(|e| Failure::Server(e.to_string()))?;
            let mut wire = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut wire).unwrap();
            }
            c.read_tls(&mut &wire[..]).unwrap();
            c.process_new_packets()
                .map_err(|e| Failure::Client(e.to_string()))?;
            if !c.is_handshaking() && !s.is_handshaking() {
                let leaf = |certs: Option<&[rustls::pki_types::CertificateDer<'_>]>| {
                    certs
                        .and_then(|c| c.first())
                        .map(|d| Fingerprint::of_der(d))
                };
                return Ok((leaf(c.peer_certificates()), leaf(s.peer_certificates())));
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn cluster_ca_members_trust_each_other_and_refuse_outsiders() {
        let ca = crate::CertificateAuthority::generate().unwrap();
        let server = ca.issue(["server.example"]).unwrap().identity;
        let client = ca.issue(["client.example"]).unwrap().identity;
        let trust = ca.trust().unwrap();
        let (seen_by_client, seen_by_server) = handshake(
            client_config(&client, &trust).unwrap(),
            server_config(&server, &trust).unwrap(),
        )
        .unwrap();
        assert_eq!(seen_by_client, Some(server.fingerprint()));
        assert_eq!(seen_by_server, Some(client.fingerprint()));

        // A self-signed outsider, and a member of another cluster, are refused both ways,
        // with a hint that fits CA mode: a CA-issued certificate, not a fingerprint to trust.
        let other_ca = crate::CertificateAuthority::generate().unwrap();
        for outsider in [
            Identity::generate(["outsider"]).unwrap(),
            other_ca.issue(["other"]).unwrap().identity,
        ] {
            let err = handshake(
                client_config(&client, &trust).unwrap(),
                server_config(&outsider, &Trust::Insecure).unwrap(),
            )
            .unwrap_err();
            let Failure::Client(message) = err else {
                panic!("expected the client to refuse: {err:?}")
            };
            let message = crate::tidy_tls_error(&message);
            let expected = format!(
                "server certificate sha256:{} was not issued by this cluster's CA (sha256:{}",
                outsider.fingerprint(),
                ca.fingerprint()
            );
            assert!(message.starts_with(&expected), "{message}");
            assert!(message.contains("--issue-cert"), "{message}");
            assert!(!message.contains("--trust"), "{message}");

            let err = handshake(
                client_config(&outsider, &Trust::Insecure).unwrap(),
                server_config(&server, &trust).unwrap(),
            )
            .unwrap_err();
            let Failure::Server(message) = err else {
                panic!("expected the server to refuse: {err:?}")
            };
            let message = crate::tidy_tls_error(&message);
            assert!(
                message.starts_with(&format!(
                    "client certificate sha256:{} was not issued by this cluster's CA",
                    outsider.fingerprint()
                )),
                "{message}"
            );
            assert!(message.contains("--issue-cert"), "{message}");
        }
    }

    /// A revocation list naming `revoked` by fingerprint or by serial.
    fn revoking(revoked: &Identity, by_serial: bool) -> crate::RevocationList {
        let mut list = crate::RevocationList::new();
        let leaf = &revoked.cert_chain()[0];
        if by_serial {
            list.revoke_serial(crate::revocation::serial_of(leaf).unwrap());
        } else {
            list.revoke_fingerprint(revoked.fingerprint());
        }
        // Unrelated entries must not matter.
        list.revoke_fingerprint(Fingerprint([7; 32]));
        list.revoke_serial(&[1, 2, 3]);
        list
    }

    fn assert_revoked(failure: Failure, role: &str, id: &Identity) {
        let message = match (&failure, role) {
            (Failure::Client(m), "server") | (Failure::Server(m), "client") => {
                crate::tidy_tls_error(m)
            }
            _ => panic!("the wrong side refused: {failure:?}"),
        };
        let expected = format!(
            "{role} certificate sha256:{} is revoked (",
            id.fingerprint()
        );
        assert!(message.starts_with(&expected), "{message}");
    }

    #[test]
    fn revoked_certificates_are_refused_in_pinned_mode_even_if_pinned() {
        let server_id = Identity::generate(["server"]).unwrap();
        let client_id = Identity::generate(["client"]).unwrap();
        let other = Identity::generate(["other"]).unwrap();
        for by_serial in [false, true] {
            // The server refuses a pinned but revoked client.
            let server_trust = pinned(&[&client_id]).with_revoked(revoking(&client_id, by_serial));
            let err = handshake(
                client_config(&client_id, &pinned(&[&server_id])).unwrap(),
                server_config(&server_id, &server_trust).unwrap(),
            )
            .unwrap_err();
            assert_revoked(err, "client", &client_id);
            // The client refuses a pinned but revoked server.
            let client_trust = pinned(&[&server_id]).with_revoked(revoking(&server_id, by_serial));
            let err = handshake(
                client_config(&client_id, &client_trust).unwrap(),
                server_config(&server_id, &pinned(&[&client_id])).unwrap(),
            )
            .unwrap_err();
            assert_revoked(err, "server", &server_id);
            // With someone else revoked, both are accepted.
            let (seen_by_client, seen_by_server) = handshake(
                client_config(
                    &client_id,
                    &pinned(&[&server_id]).with_revoked(revoking(&other, by_serial)),
                )
                .unwrap(),
                server_config(
                    &server_id,
                    &pinned(&[&client_id]).with_revoked(revoking(&other, by_serial)),
                )
                .unwrap(),
            )
            .unwrap();
            assert_eq!(seen_by_client, Some(server_id.fingerprint()));
            assert_eq!(seen_by_server, Some(client_id.fingerprint()));
        }
    }

    #[test]
    fn revoked_members_are_refused_in_ca_mode_and_others_accepted() {
        let ca = crate::CertificateAuthority::generate().unwrap();
        let server = ca.issue(["server"]).unwrap().identity;
        let lost = ca.issue(["lost-laptop"]).unwrap().identity;
        let kept = ca.issue(["kept"]).unwrap().identity;
        for by_serial in [false, true] {
            let trust = ca.trust().unwrap().with_revoked(revoking(&lost, by_serial));
            let err = handshake(
                client_config(&lost, &ca.trust().unwrap()).unwrap(),
                server_config(&server, &trust).unwrap(),
            )
            .unwrap_err();
            assert_revoked(err, "client", &lost);
            let (_, seen_by_server) = handshake(
                client_config(&kept, &ca.trust().unwrap()).unwrap(),
                server_config(&server, &trust).unwrap(),
            )
            .unwrap();
            assert_eq!(seen_by_server, Some(kept.fingerprint()));
            // A client refuses a revoked server too.
            let err = handshake(
                client_config(&kept, &trust).unwrap(),
                server_config(&lost, &ca.trust().unwrap()).unwrap(),
            )
            .unwrap_err();
            assert_revoked(err, "server", &lost);
        }
        assert!(Trust::Insecure
            .with_revoked(revoking(&lost, false))
            .revoked()
            .is_none());
    }

    #[test]
    fn cluster_ca_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::CertificateAuthority::load_or_generate(dir.path()).unwrap();
        let issued = ca.issue(["server"]).unwrap();
        issued.write_to(dir.path().join("server")).unwrap();
        let reloaded = crate::CertificateAuthority::load_or_generate(dir.path()).unwrap();
        assert_eq!(reloaded.fingerprint(), ca.fingerprint());
        // Certificates issued after the reload still chain to the same CA.
        let client = reloaded.issue(["client"]).unwrap().identity;
        let server = Identity::load_or_generate(dir.path().join("server")).unwrap();
        assert_eq!(server.fingerprint(), issued.identity.fingerprint());
        let trust = Trust::Ca(
            crate::ClusterCa::from_pem_file(dir.path().join(crate::CA_CERT_FILE)).unwrap(),
        );
        handshake(
            client_config(&client, &trust).unwrap(),
            server_config(&server, &trust).unwrap(),
        )
        .unwrap();
    }

    fn pinned(ids: &[&Identity]) -> Trust {
        Trust::Pinned(
            ids.iter()
                .map(|id| id.fingerprint())
                .collect::<TrustedFingerprints>(),
        )
    }

    #[test]
    fn pinned_both_ways_is_accepted_and_each_side_sees_the_other() {
        let server_id = Identity::generate(["server"]).unwrap();
        let client_id = Identity::generate(["client"]).unwrap();
        let (seen_by_client, seen_by_server) = handshake(
            client_config(&client_id, &pinned(&[&server_id])).unwrap(),
            server_config(&server_id, &pinned(&[&client_id])).unwrap(),
        )
        .unwrap();
        assert_eq!(seen_by_client, Some(server_id.fingerprint()));
        assert_eq!(seen_by_server, Some(client_id.fingerprint()));
    }

    #[test]
    fn client_refuses_an_unpinned_server_and_says_how_to_trust_it() {
        let server_id = Identity::generate(["server"]).unwrap();
        let client_id = Identity::generate(["client"]).unwrap();
        let other = Identity::generate(["other"]).unwrap();
        let err = handshake(
            client_config(&client_id, &pinned(&[&other])).unwrap(),
            server_config(&server_id, &Trust::Insecure).unwrap(),
        )
        .unwrap_err();
        let Failure::Client(message) = err else {
            panic!("expected the client to refuse: {err:?}")
        };
        let fp = server_id.fingerprint().to_string();
        assert!(message.contains(&format!("--trust {fp}")), "{message}");
        assert!(message.contains("trust file"), "{message}");
        assert_eq!(
            crate::tidy_tls_error(&message),
            format!("server certificate sha256:{fp} is not trusted: pass --trust {fp} or add it to the trust file")
        );
    }

    #[test]
    fn server_refuses_an_unpinned_client() {
        let server_id = Identity::generate(["server"]).unwrap();
        let client_id = Identity::generate(["client"]).unwrap();
        let err = handshake(
            client_config(&client_id, &pinned(&[&server_id])).unwrap(),
            server_config(&server_id, &pinned(&[&server_id])).unwrap(),
        )
        .unwrap_err();
        let Failure::Server(message) = err else {
            panic!("expected the server to refuse: {err:?}")
        };
        assert!(
            message.contains(&client_id.fingerprint().to_string()),
            "{message}"
        );
    }

    #[test]
    fn insecure_accepts_anyone_and_still_sees_the_client_certificate() {
        let server_id = Identity::generate(["server"]).unwrap();
        let client_id = Identity::generate(["client"]).unwrap();
        let (seen_by_client, seen_by_server) = handshake(
            client_config(&client_id, &Trust::Insecure).unwrap(),
            server_config(&server_id, &Trust::Insecure).unwrap(),
        )
        .unwrap();
        assert_eq!(seen_by_client, Some(server_id.fingerprint()));
        assert_eq!(seen_by_server, Some(client_id.fingerprint()));
    }

    #[test]
    fn a_key_that_does_not_match_its_certificate_is_refused() {
        let a = Identity::generate(["a"]).unwrap();
        let b = Identity::generate(["b"]).unwrap();
        let franken =
            Identity::from_der(a.cert_chain().to_vec(), b.private_key().clone_key()).unwrap();
        // rustls checks key/cert consistency at config time where it can; if it does not, the
        // peer's signature check must fail the handshake.
        match server_config(&franken, &Trust::Insecure) {
            Err(_) => {}
            Ok(server) => {
                let client = client_config(&b, &pinned(&[&a])).unwrap();
                assert!(handshake(client, server).is_err());
            }
        }
    }
}
