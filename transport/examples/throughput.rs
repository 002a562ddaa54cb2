//! One bulk stream over loopback, QUIC and TLS over TCP, to see what the transport can move.
//!
//! ```text
//! cargo run --release -p plasma-stream-transport --example throughput -- [GiB] [cubic|newreno|bbr] [loopback_mtu] [udp_buffer_MiB]
//! ```
//! The server side sends (as a holder serving COPY does), the client reads with `read_chunk`.
//! Prints GB/s (10^9 bytes per second) per transport.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use plasma_stream_certs::{Identity, Trust};
use plasma_stream_transport::{Endpoint, Incoming, TransportConfig, TransportMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK: usize = 1 << 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let gib: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1.0);
    let congestion = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or_default();
    let mut config = TransportConfig {
        congestion,
        ..TransportConfig::default()
    };
    if let Some(mtu) = args.next() {
        config.loopback_mtu = mtu.parse()?;
    }
    if let Some(mib) = args.next() {
        config.udp_socket_buffer = (mib.parse::<f64>()? * (1u64 << 20) as f64) as usize;
    }
    if let Ok(threshold) = std::env::var("ACK_THRESHOLD") {
        config.ack_eliciting_threshold = Some(threshold.parse()?);
    }
    let total = (gib * (1u64 << 30) as f64) as u64;

    let identity = Identity::generate(["bench"])?;
    let server = Endpoint::server(
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0),
        &identity,
        &Trust::Insecure,
        config.clone(),
    )
    .await?;
    let addr = server.local_addr().ok_or("no address")?;
    let serving = server.clone();
    tokio::spawn(async move {
        let payload = Bytes::from(vec![0xa5u8; CHUNK]);
        while let Some(Incoming::Connection(connection)) = serving.accept().await {
            let payload = payload.clone();
            tokio::spawn(async move {
                while let Ok(Some((mut send, mut recv))) = connection.accept_bi().await {
                    let mut request = [0u8; 8];
                    if recv.read_exact(&mut request).await.is_err() {
                        return;
                    }
                    let mut left = u64::from_le_bytes(request);
                    while left > 0 {
                        let n = left.min(CHUNK as u64) as usize;
                        if send.write_chunk(payload.slice(..n)).await.is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                    let _ = send.finish().await;
                    let _ = send.flush().await;
                    if let Some(quic) = connection.quic_connection() {
                        // Wait for the peer to read everything, then report the sender's view.
                        let _ = recv.read_exact(&mut [0u8; 1]).await;
                        let stats = quic.stats();
                        println!(
                            "  sender: lost {} of {} packets, congestion events {}, path MTU {}, cwnd {} KiB, rtt {:?}",
                            stats.path.lost_packets,
                            stats.path.sent_packets,
                            stats.path.congestion_events,
                            stats.path.current_mtu,
                            stats.path.cwnd >> 10,
                            stats.path.rtt
                        );
                    }
                }
            });
        }
    });

    println!(
        "one stream of {:.2} GiB on loopback, {:?}, windows {}/{}/{} MiB, loopback MTU {}, UDP buffers {} MiB, ACK threshold {:?}",
        gib,
        config.congestion,
        config.stream_receive_window >> 20,
        config.receive_window >> 20,
        config.send_window >> 20,
        config.loopback_mtu,
        config.udp_socket_buffer >> 20,
        config.ack_eliciting_threshold
    );
    for mode in [TransportMode::Quic, TransportMode::Tcp] {
        let client = Endpoint::client(
            &identity,
            &Trust::Insecure,
            TransportConfig {
                mode,
                ..config.clone()
            },
        )
        .await?;
        let connection = client.connect(addr).await?;
        let (mut send, mut recv) = connection.open_bi().await?;
        let started = Instant::now();
        send.write_all(&total.to_le_bytes()).await?;
        send.flush().await?;
        let mut received = 0u64;
        while received < total {
            match recv.read_chunk(CHUNK).await? {
                Some(chunk) => received += chunk.len() as u64,
                None => break,
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let _ = send.write_all(&[1]).await;
        let _ = send.flush().await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        println!(
            "{:>5}: {} bytes in {:.2} s = {:.2} GB/s",
            connection.kind(),
            received,
            seconds,
            received as f64 / seconds / 1e9
        );
        assert_eq!(received, total, "short transfer");
        connection.close();
    }
    Ok(())
}
