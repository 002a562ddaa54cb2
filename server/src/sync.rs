//! The SYNC dispatcher: a client asked this server to pull objects from its peers.
//!
//! 1. The request was decoded and validated (limits, unique IDs) by the protocol crate.
//! 2. Each object is claimed as *receiving* (0x80 if another SYNC has it) and checked against
//!    the local store (0x81 if already here): nothing is skipped silently.
//! 3. Peer requests run concurrently, each over the pooled connection to its peer (QUIC, or
//!    TLS over TCP when QUIC cannot connect); objects move one per stream, at most
//!    `streams_per_peer` at once, so a 65,536-object request never opens 65,536 streams.
//! 4. The report carries a status per peer request and every object's outcome.

use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use plasma_store::ObjectStore;
use plasma_stream_protocol::wire::{ObjectOutcome, PeerReport, SyncReport, SyncRequest};
use plasma_stream_protocol::{PeerRequest, Status};
use tracing::{info, info_span, warn, Instrument};

use crate::inflight::Claim;
use crate::node::{store_id, Node};
use crate::receiver::pull_object;

/// One object of a peer request, before it moves.
enum Pending {
    /// Already decided (0x80, 0x81, 0x60...).
    Done(ObjectOutcome),
    /// Claimed as receiving; to be pulled.
    ToPull(Claim),
}

/// Executes a SYNC and returns its report (one entry per peer request, in request order).
pub async fn run_sync<S: ObjectStore>(node: &Arc<Node<S>>, request: SyncRequest) -> SyncReport {
    let peer_count = request.peer_requests.len();
    if let Err(error) = request.validate() {
        warn!(%error, "refusing SYNC");
        return SyncReport::refused(
            peer_count,
            error.status().unwrap_or(Status::PeerRequestFailed),
        );
    }
    let objects: usize = request
        .peer_requests
        .iter()
        .map(|p| p.objects().len())
        .sum();
    info!(peer_requests = peer_count, objects, "SYNC");

    // Claim every ID first, for the whole SYNC, so concurrent SYNCs see them at once.
    let mut prepared = Vec::with_capacity(peer_count);
    for peer_request in request.peer_requests {
        let pending = prepare(node, &peer_request).await;
        prepared.push((peer_request, pending));
    }
    let reports = prepared.into_iter().enumerate().map(|(index, (peer_request, pending))| {
        let span = info_span!("peer_request", index, peer = %peer_request.from(), kind = %peer_request.kind());
        run_peer_request(node.clone(), peer_request, pending).instrument(span)
    });
    let started = std::time::Instant::now();
    let peer_reports = futures_util::future::join_all(reports).await;
    let report = SyncReport { peer_reports };
    let outcomes = report.peer_reports.iter().flat_map(|p| &p.objects);
    let arrived = outcomes.clone().filter(|o| o.status.is_success()).count();
    let bytes: u64 = outcomes.map(|o| o.bytes_moved).sum();
    let seconds = started.elapsed().as_secs_f64();
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

async fn prepare<S: ObjectStore>(node: &Node<S>, peer_request: &PeerRequest) -> Vec<Pending> {
    let mut pending = Vec::with_capacity(peer_request.objects().len());
    for &id in peer_request.objects() {
        let done = |status| {
            Pending::Done(ObjectOutcome {
                id,
                status,
                bytes_moved: 0,
            })
        };
        let Some(claim) = node.receiving.claim(id) else {
            pending.push(done(Status::AlreadyReceiving));
            continue;
        };
        match node.store.contains(store_id(id)).await {
            Ok(true) => pending.push(done(Status::AlreadyInStore)),
            Ok(false) => pending.push(Pending::ToPull(claim)),
            Err(error) => {
                warn!(object = %id, %error, "store contains failed");
                pending.push(done(Status::StoreError));
            }
        }
    }
    pending
}

async fn run_peer_request<S: ObjectStore>(
    node: Arc<Node<S>>,
    peer_request: PeerRequest,
    pending: Vec<Pending>,
) -> PeerReport {
    let (kind, peer, _) = peer_request.into_parts();
    let fail_all = |pending: Vec<Pending>, status: Status| {
        PeerReport::from_outcomes(
            pending
                .into_iter()
                .map(|p| match p {
                    Pending::Done(outcome) => outcome,
                    Pending::ToPull(claim) => ObjectOutcome {
                        id: claim.id(),
                        status,
                        bytes_moved: 0,
                    },
                })
                .collect(),
        )
    };
    if !pending.iter().any(|p| matches!(p, Pending::ToPull(_))) {
        return fail_all(pending, Status::PeerConnectionFailed);
    }
    if node.is_own_address(peer) {
        warn!("refusing a peer request whose peer is this server");
        return fail_all(pending, Status::PeerConnectionFailed);
    }
    let connection = match node.endpoint.pooled(peer).await {
        Ok(connection) => connection,
        Err(error) => {
            warn!(%error, "cannot connect to the peer");
            return fail_all(pending, Status::PeerConnectionFailed);
        }
    };
    if connection.peer_fingerprint() == Some(node.fingerprint) {
        warn!("refusing a peer request whose peer is this server (same certificate)");
        return fail_all(pending, Status::PeerConnectionFailed);
    }

    let total = pending.len();
    let pulls = stream::iter(pending.into_iter().enumerate())
        .map(|(index, pending)| {
            let node = &node;
            let connection = &connection;
            async move {
                let outcome = match pending {
                    Pending::Done(outcome) => outcome,
                    Pending::ToPull(claim) => {
                        let outcome = pull_object(node, connection, kind, claim.id()).await;
                        drop(claim);
                        outcome
                    }
                };
                (index, outcome)
            }
        })
        .buffer_unordered(node.streams_per_peer.max(1));
    let mut outcomes: Vec<Option<ObjectOutcome>> = vec![None; total];
    let mut pulls = std::pin::pin!(pulls);
    while let Some((index, outcome)) = pulls.next().await {
        if let Some(slot) = outcomes.get_mut(index) {
            *slot = Some(outcome);
        }
    }
    let report = PeerReport::from_outcomes(outcomes.into_iter().flatten().collect());
    info!(status = %report.status, objects = total, "peer request done");
    report
}
