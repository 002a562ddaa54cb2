//! A bounded soak: random COPY, TAKE and multi-peer SYNCs among three servers, each beside a
//! store of its own (standalone `plasma-store` processes, which outlive the servers), while
//! servers are SIGKILLed and restarted on the same store and port at random. A ledger follows
//! what every answered operation says must now be where; at the end every object is where the
//! ledger puts it, byte for byte, nothing exists zero times (a TAKE may leave a duplicate,
//! never a loss), no store holds an unsealed leftover, and every server serves.
//!
//! Runs for `PLASMA_STREAM_SOAK_SECONDS` (default 180; `.ci/run` runs it whole).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plasma_stream_tests::{
    contains, oid, put, store_client, unsealed, verify, ObjectId, RealStore, Server, ServerConfig,
};
use stream::{PeerRequest, Status, TransferKind};

const MIB: u64 = 1 << 20;
const NODES: usize = 3;
const OBJECTS: u32 = 40;
const TAG: u8 = 120;

/// Sizes in rotation: mostly small, some large enough to be cut by a kill mid-transfer.
fn size_of(n: u32) -> (u64, usize) {
    match n % 5 {
        0 => (32 * MIB, 16),
        1 | 2 => (MIB, 4),
        _ => (4096, 0),
    }
}

/// Where the answered operations say an object is: `must` hold it for sure, `may` perhaps
/// (an operation whose answer was lost, or a TAKE whose delete is best effort).
#[derive(Clone, Debug, Default)]
struct Whereabouts {
    must: BTreeSet<usize>,
    may: BTreeSet<usize>,
}

impl Whereabouts {
    fn holds(&mut self, node: usize) {
        self.must.insert(node);
        self.may.remove(&node);
    }

    fn perhaps(&mut self, node: usize) {
        if !self.must.contains(&node) {
            self.may.insert(node);
        }
    }

    fn perhaps_not(&mut self, node: usize) {
        if self.must.remove(&node) {
            self.may.insert(node);
        }
    }
}

/// A server beside its own store; `None` while killed.
struct Node {
    store: RealStore,
    server: Mutex<Option<Server>>,
    addr: SocketAddr,
}

fn server_config(store: &RealStore, port: u16) -> ServerConfig {
    let mut config = ServerConfig::on_socket(&store.socket).with_args(&[
        "--stream-timeout",
        "2",
        "--retries",
        "2",
        "--retry-backoff",
        "100",
    ]);
    config.port = port;
    config.drain_timeout_secs = 1;
    config
}

fn soak_duration() -> Duration {
    let seconds = std::env::var("PLASMA_STREAM_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    Duration::from_secs(seconds)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a 3-minute soak with kills: .ci/run runs it (PLASMA_STREAM_SOAK_SECONDS shortens it)"]
async fn heavy_soak_copy_take_sync_with_kills_loses_nothing() {
    let nodes: Vec<Arc<Node>> = (0..NODES)
        .map(|_| {
            let store = RealStore::ours(512 * MIB);
            let server = Server::start(server_config(&store, 0));
            let addr = server.addr;
            Arc::new(Node {
                store,
                server: Mutex::new(Some(server)),
                addr,
            })
        })
        .collect();
    let ids: Vec<ObjectId> = (0..OBJECTS).map(|n| oid(TAG, n)).collect();
    let mut ledger: Vec<Whereabouts> = vec![Whereabouts::default(); ids.len()];
    for (n, id) in ids.iter().enumerate() {
        let home = n % NODES;
        let (data, metadata) = size_of(n as u32);
        put(
            &mut store_client(&nodes[home].store.socket),
            *id,
            data,
            metadata,
        );
        ledger[n].holds(home);
    }

    // The killer: a random server is SIGKILLed every 2-5 s and restarted 0.3-1 s later.
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU32::new(0));
    let killer = {
        let nodes = nodes.clone();
        let stop = stop.clone();
        let kills = kills.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(fastrand::u64(2000..5000)));
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let node = &nodes[fastrand::usize(..NODES)];
                let killed = node.server.lock().unwrap().take();
                if let Some(mut server) = killed {
                    server.process.kill_now();
                    kills.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(fastrand::u64(300..1000)));
                let restarted = Server::restart(server_config(&node.store, node.addr.port()));
                *node.server.lock().unwrap() = Some(restarted);
            }
        })
    };

    let deadline = Instant::now() + soak_duration();
    let (mut answered, mut failed, mut lost_answers) = (0u32, 0u32, 0u32);
    while Instant::now() < deadline {
        // One or two peer requests: objects from one or two sources into one destination.
        let destination = fastrand::usize(..NODES);
        let mut picked: Vec<(usize, usize, TransferKind)> = Vec::new();
        for _ in 0..fastrand::usize(1..=2) {
            let n = fastrand::usize(..ids.len());
            if picked.iter().any(|p| p.0 == n) {
                continue;
            }
            let sources: Vec<usize> = ledger[n]
                .must
                .iter()
                .copied()
                .filter(|&s| s != destination)
                .collect();
            if sources.is_empty() {
                continue;
            }
            let source = sources[fastrand::usize(..sources.len())];
            let kind = if fastrand::bool() {
                TransferKind::Copy
            } else {
                TransferKind::Take
            };
            picked.push((n, source, kind));
        }
        if picked.is_empty() {
            continue;
        }
        let requests: Vec<PeerRequest> = picked
            .iter()
            .map(|&(n, source, kind)| PeerRequest::new(kind, nodes[source].addr, vec![ids[n]]))
            .collect();
        let outcome = tokio::time::timeout(Duration::from_secs(60), async {
            let client = stream::Client::builder()
                .insecure()
                .connect(nodes[destination].addr)
                .await?;
            client.sync(requests).await
        })
        .await;
        match outcome {
            Ok(Ok(report)) => {
                answered += 1;
                for ((n, source, kind), peer_report) in picked.iter().zip(&report.peer_reports) {
                    let status = peer_report
                        .objects
                        .first()
                        .map_or(peer_report.status, |o| o.status);
                    let whereabouts = &mut ledger[*n];
                    if status == Status::Success || status == Status::AlreadyInStore {
                        whereabouts.holds(destination);
                        if *kind == TransferKind::Take {
                            // Deleted after the Ack, best effort: perhaps still there.
                            whereabouts.perhaps_not(*source);
                        }
                    } else {
                        failed += 1;
                        // Nothing arrived for sure; a TAKE deletes only after a sealed copy
                        // was acknowledged, so the source may have let go only if it did.
                        whereabouts.perhaps(destination);
                        if *kind == TransferKind::Take {
                            whereabouts.perhaps_not(*source);
                        }
                    }
                }
            }
            // The destination was down, or killed before it answered.
            _ => {
                lost_answers += 1;
                for &(n, source, kind) in &picked {
                    ledger[n].perhaps(destination);
                    if kind == TransferKind::Take {
                        ledger[n].perhaps_not(source);
                    }
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    killer.join().unwrap();
    // Every server up again (the killer restarts what it killed before it stops).
    for node in &nodes {
        assert!(node.server.lock().unwrap().is_some());
    }
    eprintln!(
        "soak: {answered} SYNCs answered ({failed} objects failed in them), {lost_answers} \
         without an answer, {} servers killed",
        kills.load(Ordering::Relaxed)
    );
    assert!(answered > 20, "too few SYNCs were answered: {answered}");
    assert!(kills.load(Ordering::Relaxed) > 0);

    // A SYNC whose client gave up may still be finishing on its server: let it end.
    let settle = Instant::now() + Duration::from_secs(30);
    while nodes.iter().any(|n| !unsealed(&n.store.socket).is_empty()) && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(200));
    }

    // The ledger, against the stores.
    for (n, id) in ids.iter().enumerate() {
        let (data, metadata) = size_of(n as u32);
        let whereabouts = &ledger[n];
        for &node in &whereabouts.must {
            verify(
                &mut store_client(&nodes[node].store.socket),
                *id,
                data,
                metadata,
            );
        }
        let present: Vec<usize> = (0..NODES)
            .filter(|&node| contains(&mut store_client(&nodes[node].store.socket), *id))
            .collect();
        assert!(
            !present.is_empty(),
            "object {id} exists nowhere; ledger {whereabouts:?}"
        );
        for &node in &present {
            assert!(
                whereabouts.must.contains(&node) || whereabouts.may.contains(&node),
                "object {id} at node {node}, where no operation could have put it: {whereabouts:?}"
            );
            verify(
                &mut store_client(&nodes[node].store.socket),
                *id,
                data,
                metadata,
            );
        }
    }
    for node in &nodes {
        assert!(
            unsealed(&node.store.socket).is_empty(),
            "unsealed leftovers in a store"
        );
    }
    // Every server serves: a fresh object from node 0 reaches the two others.
    let fresh = oid(TAG, 999);
    put(&mut store_client(&nodes[0].store.socket), fresh, 4096, 0);
    for node in &nodes[1..] {
        let client = stream::Client::builder()
            .insecure()
            .connect(node.addr)
            .await
            .unwrap();
        let report = client
            .sync(vec![PeerRequest::Copy {
                from: nodes[0].addr,
                objects: vec![fresh],
            }])
            .await
            .unwrap();
        assert!(report.is_success(), "{report:?}");
        verify(&mut store_client(&node.store.socket), fresh, 4096, 0);
    }
}
