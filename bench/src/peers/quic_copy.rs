//! The QUIC copy-limit peer: the same objects over one bare quinn connection, one
//! stream per object (bidirectional, as the product's, whose settings allow no other kind), with the framing of the TCP copy peers (`u64 LE size`,
//! then the bytes) and nothing else: no store, no digest, no exchange.
//!
//! quinn runs with the product's own settings (the transport's windows, congestion
//! controller, datagram sizes and GSO: [`TransportConfig::dialer_quinn_transport`]), the
//! same UDP socket buffers and TLS 1.3 AES-128-GCM on ring, one runtime thread per side (as
//! the bench's servers run with `--worker-threads 1`). So this row is what quinn itself can do
//! on the path: the gap from it to `plasma-stream QUIC` is ours, the gap from it to the TLS
//! copy over TCP is quinn's (per-datagram work where TCP moves 64 KiB segments).
//!
//! Like the TCP peers, the holder sends zero-copy slices of a memfd mapping and the puller
//! copies each chunk into a pre-faulted one (a store's shared memory stand-in).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use plasma_stream_transport::TransportConfig;

use crate::peers::copy::{crypto_provider, fill_pattern, object_slot, CopySpec, PullResult};
use crate::shm::SharedRegion;
use crate::BenchError;

const ALPN: &[u8] = b"plasma-stream-bench/quic-copy";
/// The holder hands quinn pieces of this size, as the product's holder does.
const SEND_PIECE: usize = 4 << 20;

fn tls_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Tls(e.to_string())
}

fn quic_error(e: impl std::fmt::Display) -> BenchError {
    BenchError::Peer(format!("quic: {e}"))
}

fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A UDP socket as the product binds one, with its kernel buffers.
fn udp_socket(addr: SocketAddr) -> Result<std::net::UdpSocket, BenchError> {
    let buffer = TransportConfig::default().udp_socket_buffer;
    plasma_stream_transport::udp_socket(addr, buffer).map_err(quic_error)
}

fn endpoint(
    socket: std::net::UdpSocket,
    server: Option<quinn::ServerConfig>,
) -> Result<quinn::Endpoint, BenchError> {
    let config = TransportConfig::default().quinn_endpoint();
    Ok(quinn::Endpoint::new(
        config,
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )?)
}

/// `peer hold --quic`: listens, prints `ready ADDR CERT`, sends every object to the one
/// puller on its own stream, and exits once the puller has closed the connection.
pub fn hold(listen: SocketAddr, spec: &CopySpec) -> Result<(), BenchError> {
    let mut source = SharedRegion::new(spec.object_size.max(1) as usize)?;
    fill_pattern(source.as_mut_slice());
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).map_err(tls_error)?;
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let mut tls = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .map_err(tls_error)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(tls_error)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(
        TransportConfig::default().dialer_quinn_transport(listen.ip().is_loopback()),
    );

    runtime()?.block_on(async {
        let endpoint = endpoint(udp_socket(listen)?, Some(server))?;
        println!(
            "ready {} {}",
            endpoint.local_addr()?,
            hex::encode(cert.as_ref())
        );
        io::stdout().flush()?;
        let incoming = endpoint
            .accept()
            .await
            .ok_or_else(|| quic_error("endpoint closed before a puller came"))?;
        let connection = incoming.await.map_err(quic_error)?;
        // Zero-copy pieces of the mapping, which lives as long as the last piece quinn holds.
        let data = Bytes::from_owner(source).slice(..spec.object_size as usize);
        let header = Bytes::copy_from_slice(&spec.object_size.to_le_bytes());
        let sent: Result<(), BenchError> = async {
            for _ in 0..spec.objects {
                let (mut stream, _) = connection.open_bi().await.map_err(quic_error)?;
                stream
                    .write_chunk(header.clone())
                    .await
                    .map_err(quic_error)?;
                let mut start = 0;
                while start < data.len() {
                    let end = (start + SEND_PIECE).min(data.len());
                    stream
                        .write_chunk(data.slice(start..end))
                        .await
                        .map_err(quic_error)?;
                    start = end;
                }
                stream.finish().map_err(quic_error)?;
            }
            Ok(())
        }
        .await;
        // A puller that stops at its deadline closes the connection: not an error here.
        let _ = sent;
        connection.closed().await;
        endpoint.wait_idle().await;
        Ok::<(), BenchError>(())
    })
}

/// `peer pull --quic`: dials the holder, copies every object into shared memory and returns
/// the [`PullResult`]. `cert_hex` is the holder's certificate.
pub fn pull(
    connect: SocketAddr,
    spec: &CopySpec,
    cert_hex: Option<&str>,
    deadline: Duration,
) -> Result<PullResult, BenchError> {
    let total = (spec.objects * spec.object_size).max(1) as usize;
    // Pre-faulted, so the peer measures the network copy, not first-touch page faults.
    let mut dest = SharedRegion::new_populated(total)?;
    let cert = hex::decode(cert_hex.unwrap_or_default())
        .map_err(|e| BenchError::Tls(format!("bad certificate hex: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert))
        .map_err(tls_error)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(tls_error)?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(
        TransportConfig::default().dialer_quinn_transport(connect.ip().is_loopback()),
    );
    let bind: SocketAddr = if connect.is_ipv4() {
        "0.0.0.0:0".parse().map_err(quic_error)?
    } else {
        "[::]:0".parse().map_err(quic_error)?
    };

    let me = std::process::id();
    let cpu_before = crate::procs::cpu_secs(me);
    let rt = runtime()?;
    let mut result = rt.block_on(async {
        let endpoint = endpoint(udp_socket(bind)?, None)?;
        let start = Instant::now();
        let connection = endpoint
            .connect_with(client, connect, "localhost")
            .map_err(quic_error)?
            .await
            .map_err(quic_error)?;
        let mut result = PullResult::default();
        let received = tokio::time::timeout_at(
            tokio::time::Instant::from_std(start + deadline),
            receive_objects(&connection, spec, dest.as_mut_slice(), start, &mut result),
        )
        .await;
        match received {
            Ok(done) => done?,
            // What arrived counts (objects/s counts only whole objects).
            Err(_) => {
                result.secs = deadline.as_secs_f64();
                result.timed_out = true;
            }
        }
        connection.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        Ok::<PullResult, BenchError>(result)
    })?;
    result.cpu_secs = cpu_before
        .zip(crate::procs::cpu_secs(me))
        .map(|(a, b)| b - a);
    Ok(result)
}

/// Accepts one stream per object and copies it into `dest`, object after object, counting
/// into `result` as bytes arrive (so a deadline that drops this future leaves the count).
async fn receive_objects(
    connection: &quinn::Connection,
    spec: &CopySpec,
    dest: &mut [u8],
    start: Instant,
    result: &mut PullResult,
) -> Result<(), BenchError> {
    let half = spec.objects.div_ceil(2).max(1);
    let mut offset = 0usize;
    for _ in 0..spec.objects {
        let (_, mut stream) = connection.accept_bi().await.map_err(quic_error)?;
        let mut header = [0u8; 8];
        stream.read_exact(&mut header).await.map_err(quic_error)?;
        let (slot, end) = object_slot(spec, header, dest, offset)?;
        let mut filled = 0;
        while filled < slot.len() {
            let chunk = stream
                .read_chunk(slot.len() - filled, true)
                .await
                .map_err(quic_error)?
                .ok_or_else(|| BenchError::Protocol("stream ended inside an object".into()))?;
            let to = slot
                .get_mut(filled..filled + chunk.bytes.len())
                .ok_or_else(|| BenchError::Protocol("chunk past the object".into()))?;
            to.copy_from_slice(&chunk.bytes);
            filled += chunk.bytes.len();
            result.bytes += chunk.bytes.len() as u64;
        }
        offset = end;
        result.objects += 1;
        if result.objects == half {
            result.half_secs = Some(start.elapsed().as_secs_f64());
        }
    }
    result.secs = start.elapsed().as_secs_f64();
    Ok(())
}
