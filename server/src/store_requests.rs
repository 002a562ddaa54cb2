//! The requests a client makes about this server's own store (`docs/protocol.md` §4.4):
//! LIST (the CLI's `ls` and `info`), STATS (`stats`) and PUT (`put`: an object the client
//! sends, stored here). All three need the `sync` right: whoever may make this server pull
//! objects into its store may see what it holds and put objects into it.

use std::ops::ControlFlow;

use plasma_store::digest::Digester;
use plasma_store::{ObjectStore, StoredObject};
use plasma_stream_protocol::store_requests::{
    encode_status, ListPiece, ListRequest, ListedObject, PeerStats, PutRequest, ServerStats,
    MAX_LIST_PIECE, MAX_PEER_LABEL, MAX_STATS_PEERS,
};
use plasma_stream_protocol::Status;
use plasma_stream_transport::{MessageReader, RecvStream, SendStream};
use tracing::{info, warn};

use crate::access::{Right, Who};
use crate::error::ServeError;
use crate::node::{store_id, Node};
use crate::puller::{abort, create};

/// Answers `status` alone and ends this side of the exchange (a refusal, or an outcome).
async fn answer<S>(
    node: &Node<S>,
    send: &mut SendStream,
    status: Status,
) -> Result<(), ServeError> {
    let mut bytes = Vec::with_capacity(1);
    encode_status(status, &mut bytes);
    send.write_message(&bytes, node.idle_timeout).await?;
    send.finish().await?;
    Ok(())
}

/// Whether `who` may make this request; logs a refusal.
fn permitted<S>(node: &Node<S>, who: &Who, what: &str) -> bool {
    let allowed = node.access().allows(who, Right::Sync);
    if !allowed {
        warn!(identity = %who, "refused {what}: the access policy does not grant `sync`");
    }
    allowed
}

/// LIST: 0x41 then the objects in pieces of at most [`MAX_LIST_PIECE`], ending with an
/// empty piece; 0x63 without the right, 0x60 if the store cannot list.
pub async fn serve_list<S: ObjectStore>(
    node: &Node<S>,
    request: ListRequest,
    who: &Who,
    send: &mut SendStream,
) -> Result<(), ServeError> {
    if !permitted(node, who, "LIST") {
        return answer(node, send, Status::NotPermitted).await;
    }
    let objects = match node.store.list().await {
        Ok(objects) => objects,
        Err(error) => {
            warn!(%error, "LIST: the store cannot list its objects");
            return answer(node, send, Status::StoreError).await;
        }
    };
    let mut listed: Vec<ListedObject> = objects
        .into_iter()
        .filter(|object| match request {
            ListRequest::All => true,
            ListRequest::One(id) => store_id(id) == object.id,
        })
        .map(listed)
        .collect();
    listed.sort_by_key(|object| object.id);
    let mut bytes = Vec::with_capacity(1);
    encode_status(Status::Success, &mut bytes);
    send.write_message(&bytes, node.idle_timeout).await?;
    for piece in listed.chunks(MAX_LIST_PIECE) {
        bytes.clear();
        ListPiece(piece.to_vec()).encode(&mut bytes)?;
        send.write_message(&bytes, node.idle_timeout).await?;
    }
    bytes.clear();
    ListPiece(Vec::new()).encode(&mut bytes)?;
    send.write_message(&bytes, node.idle_timeout).await?;
    send.finish().await?;
    Ok(())
}

fn listed(object: StoredObject) -> ListedObject {
    ListedObject {
        id: plasma_stream_protocol::ObjectId::from_bytes(*object.id.as_bytes()),
        data_size: object.data_size,
        metadata_size: object.metadata_size,
        sealed: object.sealed,
        created: object.created,
    }
}

/// STATS: 0x41 then the counters since start; 0x63 without the right.
pub async fn serve_stats<S: ObjectStore>(
    node: &Node<S>,
    who: &Who,
    send: &mut SendStream,
) -> Result<(), ServeError> {
    if !permitted(node, who, "STATS") {
        return answer(node, send, Status::NotPermitted).await;
    }
    let totals = node.metrics.totals();
    let capacity = node.store.capacity().await.unwrap_or(0);
    // A socket store answers free space with a List: fine for a request a person makes.
    let store_used = node
        .store
        .free_space()
        .await
        .ok()
        .map(|free| capacity.saturating_sub(free));
    let peers = totals
        .peers
        .into_iter()
        .filter(|(label, _, _)| !label.is_empty() && label.len() <= MAX_PEER_LABEL)
        .take(MAX_STATS_PEERS)
        .map(|(label, received_bytes, sent_bytes)| PeerStats {
            label,
            received_bytes,
            sent_bytes,
        })
        .collect();
    let stats = ServerStats {
        uptime_seconds: node.started.elapsed().as_secs(),
        transfers_in_flight: node.shutdown.transfers_in_flight() as u64,
        received_bytes: totals.received_bytes,
        received_objects: totals.received_objects,
        sent_bytes: totals.sent_bytes,
        sent_objects: totals.sent_objects,
        failed_objects: totals.failed_objects,
        store_capacity: capacity,
        store_used,
        peers,
    };
    let mut bytes = Vec::with_capacity(128);
    encode_status(Status::Success, &mut bytes);
    stats.encode(&mut bytes)?;
    send.write_message(&bytes, node.idle_timeout).await?;
    send.finish().await?;
    Ok(())
}

/// PUT: refuses (0x63 no right, 0x80 being received, 0x81 already here, 0x64 no room, 0x60
/// store failed) or answers BEGIN, receives metadata then data straight into a new object
/// (hashing on the way), seals it and answers 0x41. The object never pushes out sealed
/// objects unless `--evict-for-incoming`. A stream that ends or stalls before the last byte
/// aborts the object: nothing half-written stays.
pub async fn serve_put<S: ObjectStore>(
    node: &Node<S>,
    request: PutRequest,
    who: &Who,
    send: &mut SendStream,
    reader: &mut MessageReader<RecvStream>,
) -> Result<(), ServeError> {
    let id = request.id;
    if !permitted(node, who, "PUT") {
        return answer(node, send, Status::NotPermitted).await;
    }
    // The same claim a pull takes: a PUT and a pull of one ID never write it at once.
    let Some(_claim) = node.receiving.claim(id) else {
        return answer(node, send, Status::AlreadyReceiving).await;
    };
    // As for a pulled object: no eviction unless --evict-for-incoming; the refusal's status.
    let mut object = match create(node, id, request.data_size, request.metadata_size).await {
        Ok(object) => object,
        Err(status) => return answer(node, send, status).await,
    };
    let mut begin = Vec::with_capacity(1);
    encode_status(Status::Begin, &mut begin);
    if let Err(error) = send.write_message(&begin, node.idle_timeout).await {
        abort(object).await;
        return Err(error.into());
    }
    let mut digester = Digester::new(request.data_size);
    let metadata_len = object.metadata_mut().len();
    let metadata_read = reader
        .read_raw(object.metadata_mut(), |_| ControlFlow::Continue(()))
        .await;
    let data_len = object.data_mut().len();
    let data_read = match metadata_read {
        Ok(read) if read == metadata_len => {
            reader
                .read_raw(object.data_mut(), |piece| {
                    digester.update(piece);
                    ControlFlow::Continue(())
                })
                .await
        }
        other => other,
    };
    match data_read {
        Ok(read) if read == data_len => {}
        Ok(_) => {
            warn!(object = %id, "PUT: the stream ended before the object's last byte; aborting it");
            abort(object).await;
            return Err(ServeError::Truncated);
        }
        Err(error) => {
            warn!(object = %id, %error, "PUT: receiving failed; aborting the object");
            abort(object).await;
            return Err(error.into());
        }
    }
    let digest = digester.finish(object.metadata_mut());
    if let Err(error) = object.seal(digest).await {
        warn!(object = %id, %error, "PUT: sealing failed");
        return answer(node, send, Status::StoreError).await;
    }
    info!(object = %id, bytes = request.data_size + request.metadata_size, "PUT: sealed");
    answer(node, send, Status::Success).await
}
