//! Many small exchanges (one request, one 4 KiB answer, one ack byte each) on loopback, QUIC
//! and TLS over TCP, to see how many objects per second the transport itself allows.
//!
//! ```text
//! cargo run --release -p plasma-stream-transport --example exchanges -- [count] [in_flight] [answer_bytes]
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use plasma_stream_certs::{Identity, Trust};
use plasma_stream_transport::{Connection, Endpoint, Incoming, TransportConfig, TransportMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let in_flight: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let answer: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(4096);

    let identity = Identity::generate(["bench"])?;
    let config = TransportConfig::default();
    let server = Endpoint::server(
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0),
        &identity,
        &Trust::Insecure,
        config.clone(),
    )
    .await?;
    let addr = server.local_addr().ok_or("no address")?;
    let serving = server.clone();
    let payload = Bytes::from(vec![0x42u8; answer]);
    tokio::spawn(async move {
        while let Some(Incoming::Connection(connection)) = serving.accept().await {
            let payload = payload.clone();
            tokio::spawn(async move {
                while let Ok(Some((mut send, mut recv))) = connection.accept_bi().await {
                    let payload = payload.clone();
                    tokio::spawn(async move {
                        // Request: 8 bytes; answer; then wait for the 1-byte ack.
                        let mut request = [0u8; 8];
                        while recv.read_exact(&mut request).await.is_ok() {
                            if send.write_chunk(payload.clone()).await.is_err() {
                                return;
                            }
                            let _ = send.flush().await;
                            if recv.read_exact(&mut [0u8; 1]).await.is_err() {
                                return;
                            }
                            let _ = send.finish().await;
                        }
                    });
                }
            });
        }
    });

    println!("{count} exchanges of {answer} bytes, {in_flight} in flight");
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
        let limit = Arc::new(Semaphore::new(in_flight));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let permit = limit.clone().acquire_owned().await?;
            let connection = connection.clone();
            tasks.push(tokio::spawn(async move {
                let result = one_exchange(&connection, answer).await;
                drop(permit);
                result
            }));
        }
        for task in tasks {
            task.await??;
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{:>5}: {:.0} exchanges/s ({:.2} s)",
            connection.kind(),
            count as f64 / seconds,
            seconds
        );
        connection.close();
    }
    Ok(())
}

async fn one_exchange(
    connection: &Connection,
    answer: usize,
) -> Result<(), plasma_stream_transport::TransportError> {
    let (mut send, mut recv) = connection.open_bi().await?;
    send.write_all(&[0u8; 8]).await?;
    send.flush().await?;
    let mut received = 0;
    while received < answer {
        match recv.read_chunk(answer - received).await? {
            Some(chunk) => received += chunk.len(),
            None => break,
        }
    }
    send.write_all(&[0x41]).await?;
    send.finish().await?;
    connection.recycle(send, recv);
    Ok(())
}
