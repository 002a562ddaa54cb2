//! The puller's side of an OBJECT exchange: ask a holder for one object, write the bytes into
//! a newly created object of the local store as they arrive (one copy, hashing on the way),
//! seal it, and acknowledge. Never holds a whole object in process memory.
//!
//! Any failure after the object was created aborts it: nothing half-written stays in the store.

use std::time::Duration;

use plasma_store::digest::Digester;
use plasma_store::{NewObject, ObjectStore};
use plasma_stream_protocol::wire::{Ack, DeleteResult, ObjectHeader, ObjectOutcome, ObjectRequest};
use plasma_stream_protocol::{ObjectId, Status, TransferKind};
use plasma_stream_transport::{Connection, RecvStream, SendStream};
use tracing::{debug, warn};

use crate::error::{local_store_status, ExchangeError};
use crate::framing::{read_exact, read_into, write_message};
use crate::node::{store_id, Node};
use crate::shutdown::Phase;

/// Pulls one object from `connection` into the local store. Always returns the object's
/// outcome (the documented status and the bytes written into the store).
pub async fn pull_object<S: ObjectStore>(
    node: &Node<S>,
    connection: &Connection,
    kind: TransferKind,
    id: ObjectId,
) -> ObjectOutcome {
    let _transfer = node.shutdown.transfer();
    let started = std::time::Instant::now();
    let outcome = tokio::select! {
        outcome = exchange(node, connection, kind, id) => outcome,
        // Abort phase: dropping the exchange drops (and so aborts) any unsealed object.
        _ = node.shutdown.reached(Phase::Aborting) => {
            ObjectOutcome { id, status: Status::PeerRequestFailed, bytes_moved: 0 }
        }
    };
    debug!(object = %id, %kind, peer = %connection.remote_addr(), status = %outcome.status,
        bytes = outcome.bytes_moved, elapsed_ms = started.elapsed().as_millis() as u64, "pulled");
    outcome
}

async fn exchange<S: ObjectStore>(
    node: &Node<S>,
    connection: &Connection,
    kind: TransferKind,
    id: ObjectId,
) -> ObjectOutcome {
    let timeout = node.idle_timeout;
    let failed = |status| ObjectOutcome {
        id,
        status,
        bytes_moved: 0,
    };
    let (mut send, mut recv) = match tokio::time::timeout(timeout, connection.open_bi()).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(error)) => {
            warn!(object = %id, peer = %connection.remote_addr(), %error, "cannot open a stream");
            return failed(Status::PeerConnectionFailed);
        }
        Err(_) => return failed(Status::PeerConnectionFailed),
    };
    let header = match request_header(&mut send, &mut recv, kind, id, timeout).await {
        Ok(header) => header,
        Err(error) => {
            warn!(object = %id, peer = %connection.remote_addr(), %error, "object request failed");
            return failed(error.pull_status());
        }
    };
    let (data_size, metadata_size) = match header {
        ObjectHeader::Failed(status) => {
            connection.recycle(send, recv);
            return failed(status.as_reported_by_puller());
        }
        ObjectHeader::Begin {
            data_size,
            metadata_size,
            offset: 0,
        } => (data_size, metadata_size),
        ObjectHeader::Begin { offset, .. } => {
            warn!(object = %id, offset, "holder answered with a resume offset we did not ask for");
            return failed(Status::PeerRequestFailed);
        }
    };

    let mut object = match node
        .store
        .create(store_id(id), data_size, metadata_size)
        .await
    {
        Ok(object) => object,
        Err(error) => {
            let status = local_store_status(&error);
            warn!(object = %id, %error, "cannot create the object in the local store");
            // Tell the holder (a TAKE keeps its copy), then drop the exchange: its body is unread.
            let _ = send_ack(&mut send, status, timeout).await;
            return failed(status);
        }
    };

    if node.prefault {
        crate::prefault::populate_in_background(object.data_mut());
    }
    let digest = match receive_body(&mut recv, &mut object, data_size, timeout).await {
        Ok(digest) => digest,
        Err(error) => {
            warn!(object = %id, %error, "receiving the object failed; aborting it");
            abort(object).await;
            return failed(error.pull_status());
        }
    };
    if let Err(error) = object.seal(digest).await {
        warn!(object = %id, %error, "sealing failed");
        let _ = send_ack(&mut send, Status::StoreError, timeout).await;
        return failed(Status::StoreError);
    }
    if let Err(error) = send_ack(&mut send, Status::Success, timeout).await {
        // The object is sealed here; a TAKE's holder keeps its copy (no Ack, no delete).
        warn!(object = %id, %error, "acknowledgement failed");
    } else if kind == TransferKind::Take {
        match read_exact(&mut recv, DeleteResult::ENCODED_LEN, timeout).await {
            Ok(bytes) => match DeleteResult::decode(&bytes) {
                Ok(Some((result, _))) if result.status.is_success() => {}
                Ok(Some((result, _))) => {
                    warn!(object = %id, status = %result.status, "the holder kept its copy after TAKE")
                }
                _ => warn!(object = %id, "malformed delete result"),
            },
            Err(error) => warn!(object = %id, %error, "no delete result after TAKE"),
        }
    }
    connection.recycle(send, recv);
    ObjectOutcome {
        id,
        status: Status::Success,
        bytes_moved: data_size + metadata_size,
    }
}

/// Sends the request and reads the holder's header (exactly its bytes, nothing more).
async fn request_header(
    send: &mut SendStream,
    recv: &mut RecvStream,
    kind: TransferKind,
    id: ObjectId,
    timeout: Duration,
) -> Result<ObjectHeader, ExchangeError> {
    let mut bytes = Vec::with_capacity(ObjectRequest::ENCODED_LEN);
    ObjectRequest::new(kind, id).encode(&mut bytes)?;
    write_message(send, &bytes, timeout).await?;
    let mut header = read_exact(recv, 1, timeout).await?;
    if header.first() == Some(&Status::Begin.code()) {
        header.extend(read_exact(recv, ObjectHeader::BEGIN_LEN - 1, timeout).await?);
    }
    match ObjectHeader::decode(&header)? {
        Some((header, _)) => Ok(header),
        None => Err(ExchangeError::Truncated),
    }
}

/// Metadata, then data, straight into the created object; returns the Plasma digest, computed
/// chunk by chunk as the data arrives (no second pass over the object).
async fn receive_body(
    recv: &mut RecvStream,
    object: &mut NewObject,
    data_size: u64,
    timeout: Duration,
) -> Result<[u8; 8], ExchangeError> {
    read_into(recv, object.metadata_mut(), timeout, |_| {}).await?;
    let mut digester = Digester::new(data_size);
    let data = object.data_mut();
    if data.len() as u64 != data_size {
        return Err(ExchangeError::Overrun);
    }
    read_into(recv, data, timeout, |chunk| digester.update(chunk)).await?;
    Ok(digester.finish(object.metadata_mut()))
}

async fn send_ack(
    send: &mut SendStream,
    status: Status,
    timeout: Duration,
) -> Result<(), ExchangeError> {
    let mut bytes = Vec::with_capacity(Ack::ENCODED_LEN);
    Ack { status }.encode(&mut bytes)?;
    write_message(send, &bytes, timeout).await?;
    send.finish().await?;
    Ok(())
}

async fn abort(object: NewObject) {
    let id = object.id;
    if let Err(error) = object.abort().await {
        warn!(object = %id, %error, "abort failed (the store frees it when we disconnect)");
    }
}
