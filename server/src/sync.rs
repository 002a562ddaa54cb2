//! The SYNC dispatcher: a client asked this server to pull objects from its peers.
//!
//! 1. The request was decoded and validated (limits, unique IDs) by the protocol crate: a
//!    `SyncRequest` is valid by construction.
//! 2. Each object is claimed as *receiving* (0x80 if another SYNC has it) and checked against
//!    the local store (0x81 if already here): nothing is skipped silently.
//! 3. Peer requests run concurrently, each over the pooled connection to its peer (QUIC, or
//!    TLS over TCP when QUIC cannot connect); objects move one per stream, at most
//!    `streams_per_peer` at once, so a 65,536-object request never opens 65,536 streams.
//! 4. The report carries a status per peer request and every object's outcome.

use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use plasma_store::ObjectStore;
use plasma_stream_protocol::events::{
    DetailedOutcome, DetailedPeerReport, DetailedReport, Reason, ReasonCode,
};
use plasma_stream_protocol::exchange::policy;
use plasma_stream_protocol::wire::{SyncReport, SyncRequest};
use plasma_stream_protocol::{ObjectId, Status, TransferKind};
use plasma_stream_transport::Connection;
use tokio::sync::Semaphore;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::access::{Right, Who};
use crate::inflight::Claim;
use crate::node::{store_id, Node};
use crate::progress::{ObjectTrack, SyncProgress};
use crate::puller::{connect_holder, pull_object, Unusable};
use crate::reasons;

/// One object of a peer request, before it moves. Kept small (40 bytes): a maximal SYNC
/// holds 12.45 M of them, beside its claims, until each becomes an outcome.
enum Pending {
    /// Another SYNC is receiving it: 0x80, nothing to pull.
    AlreadyReceiving(ObjectId),
    /// Claimed as receiving; to be pulled.
    ToPull(Claim),
}

impl Pending {
    fn id(&self) -> ObjectId {
        match self {
            Pending::AlreadyReceiving(id) => *id,
            Pending::ToPull(claim) => claim.id(),
        }
    }
}

/// The outcome of an object another SYNC is receiving.
fn already_receiving(id: ObjectId) -> DetailedOutcome {
    decided(
        id,
        Status::AlreadyReceiving,
        reasons::status(Status::AlreadyReceiving),
    )
}

/// An outcome decided without pulling (no attempt, no bytes).
fn decided(id: ObjectId, status: Status, reason: Reason) -> DetailedOutcome {
    DetailedOutcome {
        id,
        status,
        reason,
        bytes_moved: 0,
        attempts: 0,
        duration_ms: 0,
    }
}

/// Dials one SYNC may have in progress at once (the server has `--max-dials` for all).
const DIALS_PER_SYNC: usize = 16;

/// Executes a SYNC and returns its plain report (the `0x01` SYNC stream's and the legacy
/// format's): one entry per peer request, in request order.
pub async fn run_sync<S: ObjectStore>(
    node: &Arc<Node<S>>,
    request: SyncRequest,
    client: Who,
    client_addr: std::net::SocketAddr,
) -> SyncReport {
    let progress = SyncProgress::new(
        request.peer_requests().iter().map(|p| p.objects().len()),
        false,
    );
    run_sync_detailed(node, request, client, client_addr, &progress)
        .await
        .into_plain()
}

/// Executes a SYNC, counting its progress in `progress`, and returns its detailed report.
pub async fn run_sync_detailed<S: ObjectStore>(
    node: &Arc<Node<S>>,
    request: SyncRequest,
    client: Who,
    client_addr: std::net::SocketAddr,
    progress: &Arc<SyncProgress>,
) -> DetailedReport {
    let peer_count = request.peer_requests().len();
    let objects = request.object_count();
    info!(peer_requests = peer_count, objects, %client, "SYNC");
    let access = node.access();
    if !access.allows(&client, Right::Sync) {
        warn!(%client, "refused SYNC: the access policy does not grant `sync`");
        return DetailedReport::refused(peer_count, Status::NotPermitted);
    }
    let may_take = access.allows(&client, Right::SyncTake);

    // Claim every ID first, for the whole SYNC, so concurrent SYNCs see them at once. (The
    // count is of IDs already decoded, so reserving for it is bounded by the request limits.)
    node.receiving.reserve(objects);
    let mut prepared = Vec::with_capacity(peer_count);
    for peer_request in request.into_peer_requests() {
        let (kind, peer, objects) = peer_request.into_parts();
        // The ID list is dropped as it is claimed: each claim holds its ID.
        prepared.push((kind, peer, prepare(node, objects)));
    }
    // The peer requests run at once, but dial at most DIALS_PER_SYNC peers at a time.
    let sync_dials = Semaphore::new(DIALS_PER_SYNC);
    let reports = prepared
        .into_iter()
        .enumerate()
        .map(|(index, (kind, peer, pending))| {
            let span = info_span!("peer_request", index, %peer, %kind);
            let asker = Asker {
                who: client.clone(),
                addr: client_addr,
            };
            run_peer_request(
                node.clone(),
                (kind, peer),
                pending,
                may_take,
                asker,
                &sync_dials,
                progress,
                index,
            )
            .instrument(span)
        });
    let started = std::time::Instant::now();
    let peer_reports = futures_util::future::join_all(reports).await;
    let report = DetailedReport { peer_reports };
    let outcomes = report.peer_reports.iter().flat_map(|p| &p.objects);
    let arrived = outcomes.clone().filter(|o| o.status.is_success()).count();
    let bytes: u64 = outcomes.map(|o| o.bytes_moved).sum();
    let seconds = started.elapsed().as_secs_f64();
    node.metrics.sync_done(&report, started.elapsed());
    info!(
        arrived,
        objects,
        bytes,
        seconds,
        mib_per_s = bytes as f64 / seconds.max(1e-9) / 1_048_576.0,
        success = report.is_success(),
        "SYNC done"
    );
    report
}

/// Claims every object of a peer request as *receiving* (cheap: no store call, so a large
/// SYNC claims all its IDs at once, before any transfer starts).
fn prepare<S>(node: &Node<S>, objects: Vec<ObjectId>) -> Vec<Pending> {
    objects
        .into_iter()
        .map(|id| match node.receiving.claim(id) {
            Some(claim) => Pending::ToPull(claim),
            None => Pending::AlreadyReceiving(id),
        })
        .collect()
}

/// One claimed object: `here` says whether the store already has it (0x81, or 0x60 if it
/// could not say: [`already_here`]); otherwise it is pulled.
async fn check_and_pull<S: ObjectStore>(
    node: &Node<S>,
    peer: std::net::SocketAddr,
    connection: &Connection,
    kind: TransferKind,
    claim: Claim,
    here: Option<Status>,
    mut track: ObjectTrack,
) -> DetailedOutcome {
    let id = claim.id();
    let outcome = match here {
        Some(status) => decided(id, status, reasons::status(status)),
        None => pull_object(node, peer, connection, kind, &mut track).await,
    };
    drop(claim);
    track.finished(outcome.status.is_success());
    outcome
}

/// Objects checked against the local store at once (`ObjectStore::contains_many`: one round
/// trip to a socket store for all of them). The check runs this far ahead of the pulls, and
/// an object that arrives in the store meanwhile is refused by its create as already there.
const PRESENCE_BATCH: usize = 128;

/// For each entry: 0x81 if the local store already has that object, 0x60 if it cannot say,
/// `None` to pull it (and `None` for an entry without an ID: an object not to be pulled).
async fn already_here<S: ObjectStore>(
    node: &Node<S>,
    ids: Vec<Option<ObjectId>>,
) -> Vec<Option<Status>> {
    let asked: Vec<_> = ids.iter().flatten().map(|&id| store_id(id)).collect();
    let count = asked.len();
    let first = ids.iter().flatten().next().copied().unwrap_or_default();
    let answers = match node.store.contains_many(asked).await {
        Ok(here) if here.len() == count => here.into_iter().map(Ok).collect(),
        Ok(here) => {
            warn!(asked = count, answered = here.len(), object = %first, "store contains answered a different count");
            vec![Err(()); count]
        }
        Err(error) => {
            warn!(objects = count, object = %first, %error, "store contains failed");
            vec![Err(()); count]
        }
    };
    let mut answers = answers.into_iter();
    ids.iter()
        .map(|id| {
            id.and_then(|_| answers.next())
                .and_then(policy::already_here)
        })
        .collect()
}

/// One batch of a peer request's objects, each with what [`already_here`] says of it.
async fn check_batch<S: ObjectStore>(
    node: &Node<S>,
    batch: Vec<(usize, Pending)>,
) -> Vec<(usize, Pending, Option<Status>)> {
    let here = already_here(node, batch.iter().map(|(_, p)| to_pull(p)).collect()).await;
    batch
        .into_iter()
        .zip(here)
        .map(|((index, p), here)| (index, p, here))
        .collect()
}

/// The ID of an object to pull.
fn to_pull(pending: &Pending) -> Option<ObjectId> {
    match pending {
        Pending::ToPull(claim) => Some(claim.id()),
        Pending::AlreadyReceiving(_) => None,
    }
}

/// The outcomes of a peer request none of whose objects is to be pulled.
fn done_outcomes(
    pending: Vec<Pending>,
    progress: &Arc<SyncProgress>,
    peer_index: usize,
) -> Vec<DetailedOutcome> {
    pending
        .into_iter()
        .map(|p| {
            let id = p.id();
            progress.object(peer_index, id).finished(false);
            already_receiving(id)
        })
        .collect()
}

/// When the peer cannot be used: objects already here still get 0x81 (that check comes
/// before connecting, as documented), the others the unusable peer's status and reason
/// (shared, not copied, by all of them).
///
/// The store is asked first (one byte an object), then the outcomes are made in one pass
/// without an await: the peer requests of a SYNC run at once, and so no two of them hold
/// their pending list and their outcomes side by side.
async fn fail_remaining<S: ObjectStore>(
    node: &Node<S>,
    pending: Vec<Pending>,
    unusable: Unusable,
    progress: &Arc<SyncProgress>,
    peer_index: usize,
) -> DetailedPeerReport {
    let mut in_store = Vec::with_capacity(pending.len());
    for batch in pending.chunks(PRESENCE_BATCH) {
        let here = already_here(node, batch.iter().map(to_pull).collect()).await;
        in_store.extend(
            here.into_iter()
                .map(|here| here == Some(Status::AlreadyInStore)),
        );
    }
    let outcomes = pending
        .into_iter()
        .zip(in_store)
        .map(|(p, in_store)| {
            let outcome = match p {
                Pending::AlreadyReceiving(id) => already_receiving(id),
                // The claim ends here, once the outcome is known.
                Pending::ToPull(claim) if in_store => decided(
                    claim.id(),
                    Status::AlreadyInStore,
                    reasons::status(Status::AlreadyInStore),
                ),
                Pending::ToPull(claim) => DetailedOutcome {
                    attempts: unusable.attempts,
                    ..decided(claim.id(), unusable.status, unusable.reason.clone())
                },
            };
            progress.object(peer_index, outcome.id).finished(false);
            outcome
        })
        .collect();
    DetailedPeerReport::from_outcomes(outcomes)
}

/// A peer refused before any dial (no attempt made).
fn refused(status: Status, code: ReasonCode, text: &'static str) -> Unusable {
    Unusable {
        status,
        reason: Reason::new(code, text),
        attempts: 0,
    }
}

/// The client of a SYNC, for the audit line of each TAKE it asks for.
#[derive(Clone)]
struct Asker {
    who: Who,
    addr: std::net::SocketAddr,
}

#[allow(clippy::too_many_arguments)] // one peer request's whole context, passed once
async fn run_peer_request<S: ObjectStore>(
    node: Arc<Node<S>>,
    (kind, peer): (TransferKind, std::net::SocketAddr),
    pending: Vec<Pending>,
    may_take: bool,
    asker: Asker,
    sync_dials: &Semaphore,
    progress: &Arc<SyncProgress>,
    peer_index: usize,
) -> DetailedPeerReport {
    if !pending.iter().any(|p| matches!(p, Pending::ToPull(_))) {
        return DetailedPeerReport::from_outcomes(done_outcomes(pending, progress, peer_index));
    }
    let unusable = if kind == TransferKind::Take && !may_take {
        // This server would TAKE in its own name: only for a client trusted to ask for that.
        warn!("refused a TAKE peer request: the client lacks `sync-take`");
        Some(refused(
            Status::NotPermitted,
            ReasonCode::NotPermitted,
            "the access policy does not grant this client `sync-take`",
        ))
    } else if !node.peer_allowed(peer) {
        // Checked before any dial: a SYNC must not make this server connect (or even send a
        // UDP Initial) to a host outside the networks the operator allowed.
        warn!(%peer, "refused a peer request: the peer is outside --peer-allow; not dialled");
        Some(refused(
            Status::NotPermitted,
            ReasonCode::PeerNotAllowed,
            "the peer is outside --peer-allow; not dialled",
        ))
    } else if node.is_own_address(peer) {
        warn!("refusing a peer request whose peer is this server");
        Some(refused(
            Status::PeerConnectionFailed,
            ReasonCode::PeerIsSelf,
            "the peer is this server",
        ))
    } else {
        None
    };
    if let Some(unusable) = unusable {
        return fail_remaining(&node, pending, unusable, progress, peer_index).await;
    }
    if kind == TransferKind::Take {
        // The audit trail of a deletion: the holder logs "deleted by TAKE" with this
        // server's identity and the same `object` field, so an operator joins the two lines
        // on the object id to learn which client had the object moved and deleted.
        for claim in pending.iter().filter_map(|p| match p {
            Pending::ToPull(claim) => Some(claim),
            Pending::AlreadyReceiving(_) => None,
        }) {
            info!(object = %claim.id(), client = %asker.who, client_addr = %asker.addr,
                holder = %peer, "TAKE asked by a client");
        }
    }
    let connected = tokio::select! {
        connected = connect_holder(&node, peer, sync_dials) => connected,
        () = progress.cancelled() => {
            let (status, reason) = reasons::cancelled();
            Err(Unusable { status, reason, attempts: 0 })
        }
    };
    let connection = match connected {
        Ok(connection) => connection,
        Err(unusable) => {
            return fail_remaining(&node, pending, unusable, progress, peer_index).await
        }
    };

    let total = pending.len();
    // Taken lazily, a batch at a time: a maximal SYNC's pending list is not copied.
    let items = pending.into_iter().enumerate();
    // The state owns its `Arc` of the node: with a borrowed one, rustc cannot prove the
    // spawned SYNC task `Send` for every lifetime (a known limit of its inference).
    let checked = stream::unfold((items, Arc::clone(&node)), |(mut items, node)| async move {
        let batch: Vec<(usize, Pending)> = items.by_ref().take(PRESENCE_BATCH).collect();
        if batch.is_empty() {
            return None;
        }
        Some((check_batch(&node, batch).await, (items, node)))
    })
    .flat_map(stream::iter);
    let pulls = checked
        .map(|(index, pending, here)| {
            let node = &node;
            let connection = &connection;
            async move {
                let outcome = match pending {
                    Pending::AlreadyReceiving(id) => {
                        progress.object(peer_index, id).finished(false);
                        already_receiving(id)
                    }
                    Pending::ToPull(claim) => {
                        let track = progress.object(peer_index, claim.id());
                        let span = info_span!("object", object = %claim.id());
                        check_and_pull(node, peer, connection, kind, claim, here, track)
                            .instrument(span)
                            .await
                    }
                };
                (index, outcome)
            }
        })
        .buffer_unordered(node.streams_per_peer.max(1));
    let mut outcomes: Vec<Option<DetailedOutcome>> = vec![None; total];
    let mut pulls = std::pin::pin!(pulls);
    while let Some((index, outcome)) = pulls.next().await {
        if let Some(slot) = outcomes.get_mut(index) {
            *slot = Some(outcome);
        }
    }
    let report = DetailedPeerReport::from_outcomes(outcomes.into_iter().flatten().collect());
    info!(status = %report.status, objects = total, "peer request done");
    log_path_stats(&connection);
    node.metrics.sample_path(peer, &connection);
    report
}

/// The QUIC path as it stands after a peer request (debug level): what an operator needs to
/// tell a slow link (RTT, congestion window, losses) from a slow host, and whether path MTU
/// discovery reached the link's MTU (each datagram is encrypted and handled on its own, so a
/// small MTU costs CPU per byte).
fn log_path_stats(connection: &Connection) {
    if let Some(quic) = connection.quic_connection() {
        let stats = quic.stats();
        debug!(
            rtt_us = stats.path.rtt.as_micros() as u64,
            cwnd = stats.path.cwnd,
            mtu = stats.path.current_mtu,
            sent_packets = stats.path.sent_packets,
            lost_packets = stats.path.lost_packets,
            congestion_events = stats.path.congestion_events,
            udp_rx_datagrams = stats.udp_rx.datagrams,
            udp_rx_bytes = stats.udp_rx.bytes,
            udp_tx_datagrams = stats.udp_tx.datagrams,
            frames_rx_ack = stats.frame_rx.acks,
            frames_tx_ack = stats.frame_tx.acks,
            "QUIC path after the peer request"
        );
    }
}
