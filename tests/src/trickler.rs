//! A holder that sends slowly: it answers every object request with BEGIN for an object of a
//! given size, then 1 KiB every 250 ms, forever. Tests use it to catch a transfer in the
//! middle (a stall detector, a cancel) without depending on how fast the machine is.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plasma_stream_certs::{Identity, Trust};
use plasma_stream_protocol::wire::{ObjectHeader, StreamRequest};
use plasma_stream_transport::{
    Endpoint, Incoming, MessageReader, ReadBudget, SendStream, TransportConfig, TransportMode,
};

/// A trickling holder on QUIC at `addr`, accepting any client; stopped when dropped.
pub struct Trickler {
    pub addr: SocketAddr,
    requests: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl Trickler {
    /// Starts one that announces objects of `data_size` bytes (no metadata).
    pub async fn start(data_size: u64) -> Trickler {
        let identity = Identity::generate(["trickler"]).expect("generate an identity");
        let config = TransportConfig {
            mode: TransportMode::Quic,
            ..TransportConfig::default()
        };
        let holder = Endpoint::server(
            "127.0.0.1:0".parse().expect("an address"),
            &identity,
            &Trust::Insecure,
            config,
        )
        .await
        .expect("bind the trickler");
        let addr = holder.local_addr().expect("bound");
        let requests = Arc::new(AtomicU32::new(0));
        let counted = requests.clone();
        let task = tokio::spawn(async move {
            while let Some(Incoming::Connection(connection)) = holder.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    while let Ok(Some((send, recv))) = connection.accept_bi().await {
                        let counted = counted.clone();
                        tokio::spawn(async move {
                            let budget = ReadBudget::new(1 << 20);
                            let mut reader =
                                MessageReader::new(recv, Duration::from_secs(30), &budget);
                            let Ok(Some(StreamRequest::Object(request))) =
                                reader.next(StreamRequest::decode).await
                            else {
                                return;
                            };
                            counted.fetch_add(1, Ordering::Relaxed);
                            trickle(send, data_size, request.resume_offset).await;
                        });
                    }
                });
            }
        });
        Trickler {
            addr,
            requests,
            task,
        }
    }

    /// Object requests received so far (attempts and retries each count).
    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Trickler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn trickle(mut send: SendStream, data_size: u64, offset: u64) {
    let mut header = Vec::new();
    let begin = ObjectHeader::Begin {
        data_size,
        metadata_size: 0,
        offset,
    };
    if begin.encode(&mut header).is_err() || send.write_all_bytes(&header).await.is_err() {
        return;
    }
    let piece = [7u8; 1024];
    loop {
        if send.write_all_bytes(&piece).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
