//! The puller's side of an OBJECT exchange, into the local store: the shared driver
//! (`stream::pull`, over the `protocol::exchange::ObjectPull` state machine) moves the bytes;
//! this file creates the object, writes the bytes straight into it as they arrive (one copy,
//! hashing on the way), seals it, and acknowledges. Never holds a whole object in memory.
//!
//! Any failure after the object was created aborts it: nothing half-written stays in the store.

use plasma_store::digest::Digester;
use plasma_store::{NewObject, ObjectStore};
use plasma_stream_protocol::exchange::ObjectPull;
use plasma_stream_protocol::wire::ObjectOutcome;
use plasma_stream_protocol::{ObjectId, Status, TransferKind};
use plasma_stream_transport::Connection;
use stream::pull::{self, PullError, Pulling, Started};
use tracing::{debug, warn};

use crate::error::local_store_status;
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
    let failed = |status| ObjectOutcome {
        id,
        status,
        bytes_moved: 0,
    };
    let peer = connection.remote_addr();
    let mut pulling =
        match pull::start(connection, ObjectPull::new(kind, id), node.idle_timeout).await {
            Ok(Started::Begin(pulling)) => *pulling,
            Ok(Started::Refused(status)) => return failed(status.as_reported_by_puller()),
            Err(error) => {
                warn!(object = %id, %peer, %error, "object request failed");
                return failed(error.status());
            }
        };
    let body = pulling.body();
    let mut object = match node
        .store
        .create(store_id(id), body.data_size, body.metadata_size)
        .await
    {
        Ok(object) => object,
        Err(error) => {
            let status = local_store_status(&error);
            warn!(object = %id, %error, "cannot create the object in the local store");
            // Tell the holder (a TAKE keeps its copy), then drop the exchange.
            pulling.give_up(status).await;
            return failed(status);
        }
    };

    if node.prefault {
        crate::prefault::populate_in_background(object.data_mut());
    }
    let digest = match receive_body(&mut pulling, &mut object, body.data_size).await {
        Ok(digest) => digest,
        Err(error) => {
            warn!(object = %id, %peer, %error, "receiving the object failed; aborting it");
            abort(object).await;
            return failed(error.status());
        }
    };
    if let Err(error) = object.seal(digest).await {
        warn!(object = %id, %error, "sealing failed");
        let _ = pulling.finish(Status::StoreError).await;
        return failed(Status::StoreError);
    }
    match pulling.finish(Status::Success).await {
        Ok(Some(status)) if !status.is_success() => {
            warn!(object = %id, %status, "the holder kept its copy after TAKE")
        }
        Ok(_) => {}
        // The object is sealed here; without our Ack a TAKE's holder keeps its copy.
        Err(error) => warn!(object = %id, %error, "acknowledgement or delete result failed"),
    }
    ObjectOutcome {
        id,
        status: Status::Success,
        bytes_moved: body.data_size + body.metadata_size,
    }
}

/// Metadata, then data, straight into the created object; returns the Plasma digest, computed
/// chunk by chunk as the data arrives (no second pass over the object).
async fn receive_body(
    pulling: &mut Pulling,
    object: &mut NewObject,
    data_size: u64,
) -> Result<[u8; 8], PullError> {
    pulling.read_metadata(object.metadata_mut()).await?;
    let mut digester = Digester::new(data_size);
    pulling
        .read_data(object.data_mut(), |chunk| digester.update(chunk))
        .await?;
    Ok(digester.finish(object.metadata_mut()))
}

async fn abort(object: NewObject) {
    let id = object.id;
    if let Err(error) = object.abort().await {
        warn!(object = %id, %error, "abort failed (the store frees it when we disconnect)");
    }
}
