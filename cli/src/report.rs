//! Printing a SYNC report for people (text) and for programs (JSON).

use std::fmt::Write;

use serde_json::json;
use stream::{PeerRequest, SyncReport};

/// One line per peer request, then one indented line per object that did not arrive.
pub fn to_text(peer_requests: &[PeerRequest], report: &SyncReport) -> String {
    let mut out = String::new();
    for (request, peer) in peer_requests.iter().zip(&report.peer_reports) {
        let arrived = peer
            .objects
            .iter()
            .filter(|o| o.status.is_success())
            .count();
        let bytes: u64 = peer.objects.iter().map(|o| o.bytes_moved).sum();
        let _ = writeln!(
            out,
            "{} {}: {} — {arrived}/{} objects arrived, {bytes} bytes",
            request.kind(),
            request.from(),
            peer.status,
            request.objects().len(),
        );
        for object in peer.objects.iter().filter(|o| !o.status.is_success()) {
            let _ = writeln!(out, "  {}: {}", object.id, object.status);
        }
    }
    out
}

/// The report as one JSON object.
pub fn to_json(peer_requests: &[PeerRequest], report: &SyncReport) -> String {
    let peers: Vec<_> = peer_requests
        .iter()
        .zip(&report.peer_reports)
        .map(|(request, peer)| {
            json!({
                "kind": request.kind().keyword(),
                "peer": request.from().to_string(),
                "status": peer.status.code(),
                "status_text": peer.status.message(),
                "objects": peer.objects.iter().map(|o| json!({
                    "id": o.id.to_string(),
                    "status": o.status.code(),
                    "status_text": o.status.message(),
                    "bytes": o.bytes_moved,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "success": report.is_success(), "peer_requests": peers }).to_string()
}
