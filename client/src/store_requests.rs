//! Asking the server about its own store, and putting objects into it: [`Client::list`],
//! [`Client::info`], [`Client::stats`] and [`Client::put`] (`docs/protocol.md` §4.4). The
//! server grants them to identities with the `sync` right.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use plasma_stream_protocol::store_requests::{
    decode_status, encode_stats_request, ListPiece, ListRequest, PutRequest,
};
use plasma_stream_transport::SendStream;
use tokio::io::{AsyncRead, AsyncReadExt};

pub use plasma_stream_protocol::store_requests::{ListedObject, PeerStats, ServerStats};

use crate::{Client, Error, Exchange, ObjectId, Result, Status};

/// Longest reply message read here (a LIST piece is 49 KiB, STATS a few KiB).
const MAX_REPLY: usize = 1 << 20;

/// Bytes of object data read from the source and written at a time by [`Client::put`].
const PUT_CHUNK: usize = 1 << 20;

impl Client {
    /// Every object in the server's store, sealed or not, ordered by ID.
    pub async fn list(&self) -> Result<Vec<ListedObject>> {
        self.list_request(ListRequest::All).await
    }

    /// One object of the server's store; `None` if the store does not hold it.
    pub async fn info(&self, id: ObjectId) -> Result<Option<ListedObject>> {
        Ok(self
            .list_request(ListRequest::One(id))
            .await?
            .into_iter()
            .find(|object| object.id == id))
    }

    async fn list_request(&self, request: ListRequest) -> Result<Vec<ListedObject>> {
        let mut bytes = Vec::new();
        request.encode(&mut bytes);
        let mut exchange = self.open_exchange(&bytes, MAX_REPLY).await?;
        self.expect_success(&mut exchange, "LIST").await?;
        let mut objects = Vec::new();
        loop {
            let ListPiece(piece) = self.read_reply(&mut exchange, ListPiece::decode).await?;
            if piece.is_empty() {
                break;
            }
            objects.extend(piece);
        }
        self.end_exchange(exchange).await;
        Ok(objects)
    }

    /// The server's counters since it started: bytes and objects in and out (per peer too),
    /// failures, transfers in flight, its store's capacity and use.
    pub async fn stats(&self) -> Result<ServerStats> {
        let mut bytes = Vec::new();
        encode_stats_request(&mut bytes);
        let mut exchange = self.open_exchange(&bytes, MAX_REPLY).await?;
        self.expect_success(&mut exchange, "STATS").await?;
        let stats = self.read_reply(&mut exchange, ServerStats::decode).await?;
        self.end_exchange(exchange).await;
        Ok(stats)
    }

    /// Stores an object in the server's store: `data_size` bytes read from `data`, with
    /// `metadata`. Returns once the server sealed it. [`Error::Object`] with the server's
    /// status if it refused (0x81 already there, 0x64 no room, 0x63 not permitted, ...): then
    /// no data was sent. If `data` ends early the exchange is abandoned and the server
    /// aborts the object.
    pub async fn put(
        &self,
        id: ObjectId,
        metadata: Bytes,
        data_size: u64,
        mut data: impl AsyncRead + Unpin,
    ) -> Result<()> {
        let request = PutRequest {
            id,
            data_size,
            metadata_size: metadata.len() as u64,
        };
        let mut bytes = Vec::with_capacity(PutRequest::ENCODED_LEN);
        request.encode(&mut bytes)?;
        let mut exchange = self.open_exchange(&bytes, MAX_REPLY).await?;
        match self.read_reply(&mut exchange, decode_status).await? {
            Status::Begin => {}
            status => {
                self.end_exchange(exchange).await;
                return Err(Error::Object { id, status });
            }
        }
        if let Err(error) = send_object(
            &mut exchange.send,
            metadata,
            data_size,
            &mut data,
            self.timeout,
        )
        .await
        {
            let _ = exchange.send.reset(1).await;
            return Err(error);
        }
        let status = self.read_reply(&mut exchange, decode_status).await?;
        self.end_exchange(exchange).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(Error::Object { id, status })
        }
    }

    /// [`Client::put`] of bytes in memory.
    pub async fn put_bytes(&self, id: ObjectId, data: Bytes, metadata: Bytes) -> Result<()> {
        let size = data.len() as u64;
        self.put(id, metadata, size, &data[..]).await
    }

    /// The reply's first byte: 0x41, or a refusal as [`Error::Refused`].
    async fn expect_success(&self, exchange: &mut Exchange, what: &'static str) -> Result<()> {
        match self.read_reply(exchange, decode_status).await? {
            Status::Success => Ok(()),
            status => Err(Error::Refused { what, status }),
        }
    }

    /// One reply message, within the client's timeout.
    async fn read_reply<T>(
        &self,
        exchange: &mut Exchange,
        decode: impl FnMut(
            &[u8],
        ) -> std::result::Result<
            Option<(T, usize)>,
            plasma_stream_protocol::DecodeError,
        >,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, exchange.reader.expect(decode)).await {
            Ok(reply) => Ok(reply?),
            Err(_) => Err(Error::Timeout(self.timeout)),
        }
    }
}

/// The metadata, then exactly `data_size` bytes of `data`, then a flush.
async fn send_object(
    send: &mut SendStream,
    metadata: Bytes,
    data_size: u64,
    data: &mut (impl AsyncRead + Unpin),
    timeout: Duration,
) -> Result<()> {
    if !metadata.is_empty() {
        send.write_bytes(metadata, timeout).await?;
    }
    let mut left = data_size;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(PUT_CHUNK);
        let mut chunk = BytesMut::with_capacity(want);
        let read = (&mut *data).take(want as u64).read_buf(&mut chunk).await?;
        if read == 0 {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the object's data ended {left} bytes before its declared size of {data_size}"
                ),
            )));
        }
        left -= read as u64;
        send.write_bytes(chunk.freeze(), timeout).await?;
    }
    send.flush_all().await?;
    Ok(())
}
