//! Printing a SYNC report for people (text) and for programs (JSON), and deciding whether it
//! counts as success for the exit code.
//!
//! The server reports 0x81 ("already in the local store") for an object the destination had
//! before the SYNC. Like rsync and rclone, the CLI counts "already there" as success (the
//! object is where it was asked to be), unless `--strict` asks for every object to arrive now.

use std::fmt::Write;
use std::time::Duration;

use serde_json::json;
use stream::{DetailedOutcome, DetailedReport, PeerRequest, Status, SyncReport, TransferKind};

/// The detailed outcome of object `object` of peer request `peer`, if the server sent one.
fn detail(
    details: Option<&DetailedReport>,
    peer: usize,
    object: usize,
) -> Option<&DetailedOutcome> {
    details?.peer_reports.get(peer)?.objects.get(object)
}

/// `: why (2 attempts, 1.2 s, 3.0 kB arrived)`, or nothing without detail.
fn why(detail: Option<&DetailedOutcome>) -> String {
    let Some(d) = detail else {
        return String::new();
    };
    let mut out = String::new();
    if !d.reason.text.is_empty() {
        let _ = write!(out, ": {}", d.reason.text);
    }
    let _ = write!(
        out,
        " ({} attempt{}, {}, {} arrived)",
        d.attempts,
        if d.attempts == 1 { "" } else { "s" },
        duration_text(Duration::from_millis(d.duration_ms)),
        bytes_text(d.bytes_moved)
    );
    out
}

/// Only the objects that failed, one line each with its reason (for `--quiet`).
pub fn failures_text(peer_requests: &[PeerRequest], details: &DetailedReport) -> String {
    let mut out = String::new();
    for (request, peer) in peer_requests.iter().zip(&details.peer_reports) {
        if peer.objects.is_empty() && !peer.status.is_success() {
            let _ = writeln!(
                out,
                "{} {}: failed, {}",
                request.kind(),
                request.from(),
                peer.status
            );
        }
        for object in &peer.objects {
            if Fate::of(object.status) == Fate::Failed {
                let _ = writeln!(
                    out,
                    "{} {}: failed, {}{}",
                    object.id,
                    request.from(),
                    object.status,
                    why(Some(object))
                );
            }
        }
    }
    out
}

/// What became of one object, as the CLI counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// 0x41: it arrived in this SYNC.
    Arrived,
    /// 0x81: the destination had it already (nothing moved).
    AlreadyThere,
    /// Any other status.
    Failed,
}

impl Fate {
    pub fn of(status: Status) -> Fate {
        match status {
            Status::Success => Fate::Arrived,
            Status::AlreadyInStore => Fate::AlreadyThere,
            _ => Fate::Failed,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Fate::Arrived => "arrived",
            Fate::AlreadyThere => "already there",
            Fate::Failed => "failed",
        }
    }
}

/// Counts over a whole report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub arrived: usize,
    pub already_there: usize,
    pub failed: usize,
    pub bytes: u64,
}

impl Tally {
    pub fn of(peer_requests: &[PeerRequest], report: &SyncReport) -> Tally {
        let mut tally = Tally::default();
        for (request, peer) in peer_requests.iter().zip(&report.peer_reports) {
            for object in &peer.objects {
                match Fate::of(object.status) {
                    Fate::Arrived => tally.arrived += 1,
                    Fate::AlreadyThere => tally.already_there += 1,
                    Fate::Failed => tally.failed += 1,
                }
                tally.bytes += object.bytes_moved;
            }
            // A peer request refused as a whole (0x90 peer unreachable, 0x63 not permitted…)
            // may list no objects: each requested object counts as failed.
            if peer.objects.is_empty() && !peer.status.is_success() {
                tally.failed += request.objects().len();
            }
        }
        // A report with fewer peer reports than requests (a misbehaving server) fails the rest.
        for request in peer_requests.iter().skip(report.peer_reports.len()) {
            tally.failed += request.objects().len();
        }
        tally
    }

    /// Whether the exit code is 0: nothing failed, and with `strict` nothing was already there.
    pub fn is_ok(&self, strict: bool) -> bool {
        self.failed == 0 && !(strict && self.already_there > 0)
    }
}

/// One line per peer request, one indented line per object that did not arrive now, then a
/// summary with the duration and the rate.
pub fn to_text(
    peer_requests: &[PeerRequest],
    report: &SyncReport,
    details: Option<&DetailedReport>,
    elapsed: Duration,
    strict: bool,
) -> String {
    let mut out = String::new();
    for (index, (request, peer)) in peer_requests.iter().zip(&report.peer_reports).enumerate() {
        let count = |fate| {
            peer.objects
                .iter()
                .filter(|o| Fate::of(o.status) == fate)
                .count()
        };
        let bytes: u64 = peer.objects.iter().map(|o| o.bytes_moved).sum();
        let _ = write!(
            out,
            "{} {}: {} — {}/{} objects arrived",
            request.kind(),
            request.from(),
            peer.status,
            count(Fate::Arrived),
            request.objects().len(),
        );
        let already = count(Fate::AlreadyThere);
        if already > 0 {
            let _ = write!(out, ", {already} already there");
        }
        let _ = writeln!(out, ", {}", bytes_text(bytes));
        for (n, object) in peer.objects.iter().enumerate() {
            match Fate::of(object.status) {
                Fate::Arrived => {}
                Fate::AlreadyThere if request.kind() == TransferKind::Take => {
                    // The server checks its own store first and never contacts the peer, so a
                    // TAKE of an object already here leaves the peer's copy in place.
                    let _ = writeln!(
                        out,
                        "  {}: already there, {} (the peer kept its copy)",
                        object.id, object.status
                    );
                }
                Fate::AlreadyThere => {
                    let _ = writeln!(out, "  {}: already there, {}", object.id, object.status);
                }
                Fate::Failed => {
                    let _ = writeln!(
                        out,
                        "  {}: failed, {}{}",
                        object.id,
                        object.status,
                        why(detail(details, index, n))
                    );
                }
            }
        }
    }
    let tally = Tally::of(peer_requests, report);
    let total = tally.arrived + tally.already_there + tally.failed;
    let _ = write!(
        out,
        "{total} object{}: {} arrived, {} already there, {} failed; {} in {} ({})",
        if total == 1 { "" } else { "s" },
        tally.arrived,
        tally.already_there,
        tally.failed,
        bytes_text(tally.bytes),
        duration_text(elapsed),
        rate_text(tally.bytes, elapsed),
    );
    if strict && tally.already_there > 0 && tally.failed == 0 {
        let _ = write!(out, "; --strict: already there counts as failed");
    }
    out.push('\n');
    out
}

/// The report as one JSON object. `success` says what the exit code says (true: 0); `status`
/// fields are the numeric codes, `status_hex` the same as written in the docs (`"0x81"`).
pub fn to_json(
    peer_requests: &[PeerRequest],
    report: &SyncReport,
    details: Option<&DetailedReport>,
    elapsed: Duration,
    strict: bool,
) -> String {
    let peers: Vec<_> = peer_requests
        .iter()
        .zip(&report.peer_reports)
        .enumerate()
        .map(|(index, (request, peer))| {
            json!({
                "kind": request.kind().keyword(),
                "peer": request.from().to_string(),
                "status": peer.status.code(),
                "status_hex": hex_code(peer.status),
                "status_text": peer.status.message(),
                "objects": peer.objects.iter().enumerate().map(|(n, o)| {
                    let mut object = json!({
                        "id": o.id.to_string(),
                        "status": o.status.code(),
                        "status_hex": hex_code(o.status),
                        "status_text": o.status.message(),
                        "outcome": Fate::of(o.status).word(),
                        "bytes": o.bytes_moved,
                    });
                    if let (Some(d), Some(fields)) = (detail(details, index, n), object.as_object_mut()) {
                        fields.insert("reason".into(), json!(d.reason.code.name()));
                        fields.insert("reason_code".into(), json!(d.reason.code.code()));
                        fields.insert("reason_text".into(), json!(d.reason.text.as_str()));
                        fields.insert("attempts".into(), json!(d.attempts));
                        fields.insert("duration_ms".into(), json!(d.duration_ms));
                    }
                    object
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let tally = Tally::of(peer_requests, report);
    let seconds = elapsed.as_secs_f64();
    json!({
        "event": "report",
        "success": tally.is_ok(strict),
        "arrived": tally.arrived,
        "already_there": tally.already_there,
        "failed": tally.failed,
        "bytes": tally.bytes,
        "seconds": seconds,
        "bytes_per_second": if seconds > 0.0 { tally.bytes as f64 / seconds } else { 0.0 },
        "peer_requests": peers,
    })
    .to_string()
}

fn hex_code(status: Status) -> String {
    format!("{:#04x}", status.code())
}

/// `512 bytes`, `1234567 bytes (1.23 MB)`: the exact count, and a readable size when large.
pub fn bytes_text(bytes: u64) -> String {
    if bytes < 10_000 {
        format!("{bytes} bytes")
    } else {
        format!("{bytes} bytes ({})", decimal_units(bytes as f64, "B"))
    }
}

/// `850 µs`, `12.3 ms`, `4.56 s`, `2 min 5.0 s`.
pub fn duration_text(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds < 0.001 {
        format!("{} µs", elapsed.as_micros())
    } else if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1e3)
    } else if seconds < 60.0 {
        format!("{seconds:.2} s")
    } else {
        let minutes = (seconds / 60.0).floor();
        format!("{minutes:.0} min {:.1} s", seconds - minutes * 60.0)
    }
}

/// `1.23 GB/s`, or `no data moved`.
pub fn rate_text(bytes: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if bytes == 0 || seconds <= 0.0 {
        "no data moved".to_owned()
    } else {
        decimal_units(bytes as f64 / seconds, "B/s")
    }
}

/// Decimal (SI) prefixes, as the benchmarks in the docs report rates.
fn decimal_units(value: f64, unit: &str) -> String {
    const PREFIXES: [&str; 5] = ["", "k", "M", "G", "T"];
    let mut value = value;
    let mut index = 0;
    while value >= 1000.0 && index + 1 < PREFIXES.len() {
        value /= 1000.0;
        index += 1;
    }
    if index == 0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.2} {}{unit}", PREFIXES[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stream::{ObjectId, ObjectOutcome, PeerReport};

    fn id(n: u8) -> ObjectId {
        ObjectId::from([n; 20])
    }

    fn copy(ids: &[ObjectId]) -> PeerRequest {
        PeerRequest::Copy {
            from: "127.0.0.1:2022".parse().unwrap(),
            objects: ids.to_vec(),
        }
    }

    fn outcome(id: ObjectId, status: Status, bytes: u64) -> ObjectOutcome {
        ObjectOutcome {
            id,
            status,
            bytes_moved: bytes,
        }
    }

    #[test]
    fn already_there_is_success_unless_strict() {
        let requests = vec![copy(&[id(1), id(2)])];
        let report = SyncReport {
            peer_reports: vec![PeerReport {
                status: Status::AlreadyInStore,
                objects: vec![
                    outcome(id(1), Status::Success, 100),
                    outcome(id(2), Status::AlreadyInStore, 0),
                ],
            }],
        };
        let tally = Tally::of(&requests, &report);
        assert_eq!(
            (tally.arrived, tally.already_there, tally.failed),
            (1, 1, 0)
        );
        assert!(tally.is_ok(false));
        assert!(!tally.is_ok(true));
        let text = to_text(&requests, &report, None, Duration::from_millis(20), false);
        assert!(text.contains("already there, 0x81"), "{text}");
        assert!(text.contains("in 20.0 ms (5.00 kB/s)"), "{text}");
        let json = to_json(&requests, &report, None, Duration::from_millis(20), true);
        assert!(json.contains("\"success\":false"), "{json}");
        assert!(json.contains("\"status_hex\":\"0x81\""), "{json}");
    }

    #[test]
    fn a_refused_peer_request_fails_its_objects() {
        let requests = vec![copy(&[id(1), id(2)])];
        let report = SyncReport {
            peer_reports: vec![PeerReport {
                status: Status::PeerConnectionFailed,
                objects: vec![],
            }],
        };
        let tally = Tally::of(&requests, &report);
        assert_eq!(tally.failed, 2);
        assert!(!tally.is_ok(false));
    }

    #[test]
    fn units() {
        assert_eq!(duration_text(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration_text(Duration::from_millis(4560)), "4.56 s");
        assert_eq!(duration_text(Duration::from_secs(125)), "2 min 5.0 s");
        assert_eq!(bytes_text(512), "512 bytes");
        assert_eq!(bytes_text(1_234_567), "1234567 bytes (1.23 MB)");
        assert_eq!(
            rate_text(2_420_000_000, Duration::from_secs(1)),
            "2.42 GB/s"
        );
        assert_eq!(rate_text(0, Duration::from_secs(1)), "no data moved");
    }
}
