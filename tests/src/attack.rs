//! Attack senders for the front-door load tests (tests/tests/front_door.rs): floods of
//! unauthenticated work against a server, bounded in size and time, aimed at loopback only.
//!
//! - [`capture_initials`] + [`quic_initial_flood`]: real QUIC Initials (a ClientHello each,
//!   made by our own QUIC client towards a socket of ours that never answers), replayed from
//!   many source ports. The sender never reads what comes back, so each one is a handshake
//!   started and never finished, from an address that proves nothing: what a spoofed-source
//!   flood looks like to the server.
//! - [`idle_tcp_flood`]: TCP sockets that connect and stay silent, each re-opened soon after
//!   the server closes it (slowloris).
//!
//! And [`ProcessCost`]: the CPU and memory a server process used, from /proc.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plasma_stream_certs::{Identity, Trust};
use plasma_stream_transport::{Endpoint, TransportConfig, TransportMode};
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

/// The most sockets one flood may open: floods are bounded by construction.
pub const MAX_FLOOD_SOCKETS: usize = 2048;

/// The most a flood may last.
pub const MAX_FLOOD_DURATION: Duration = Duration::from_secs(120);

/// `count` distinct QUIC Initial datagrams (distinct connection IDs), each carrying a
/// ClientHello for ALPN `plasma-stream/1`: our client dials a UDP socket of ours that records
/// what arrives and never answers.
pub async fn capture_initials(count: usize) -> Vec<Vec<u8>> {
    let capture = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind the capture socket");
    let target = capture.local_addr().expect("capture address");
    let identity = Identity::generate(["attacker"]).expect("identity");
    let config = TransportConfig {
        mode: TransportMode::Quic,
        handshake_timeout: Duration::from_secs(30),
        ..TransportConfig::default()
    };
    let endpoint = Endpoint::client(&identity, &Trust::Insecure, config)
        .await
        .expect("client endpoint");
    let dials: Vec<JoinHandle<()>> = (0..count)
        .map(|_| {
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let _ = endpoint.connect(target).await;
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut initials = Vec::with_capacity(count);
    let mut buffer = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(20);
    while initials.len() < count && Instant::now() < deadline {
        let Ok(Ok(length)) =
            tokio::time::timeout(Duration::from_secs(1), capture.recv(&mut buffer)).await
        else {
            continue;
        };
        let packet = &buffer[..length];
        // Long header, fixed bit, type Initial (the low four bits are header-protected).
        if length < 1200 || packet[0] & 0xf0 != 0xc0 {
            continue;
        }
        let dcid_length = usize::from(packet[5]);
        let Some(dcid) = packet.get(6..6 + dcid_length) else {
            continue;
        };
        // Retransmissions carry the same connection ID: keep the first of each.
        if seen.insert(dcid.to_vec()) {
            initials.push(packet.to_vec());
        }
    }
    for dial in dials {
        dial.abort();
    }
    endpoint.close();
    assert!(
        !initials.is_empty(),
        "no QUIC Initial captured from our own client"
    );
    initials
}

/// A running flood; [`Flood::stop`] ends it and returns how many packets or connections it
/// sent. Dropping it stops it too.
pub struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Flood {
    /// Datagrams or connections sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops every sender and closes its sockets; returns the total sent.
    pub async fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks.drain(..) {
            task.abort();
            let _ = task.await;
        }
        self.sent()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn check_bounds(target: SocketAddr, sockets: usize, duration: Duration) {
    assert!(
        target.ip().is_loopback(),
        "floods are aimed at loopback only, not {target}"
    );
    assert!(
        sockets <= MAX_FLOOD_SOCKETS,
        "{sockets} sockets is too many"
    );
    assert!(duration <= MAX_FLOOD_DURATION, "{duration:?} is too long");
}

/// Replays `initials` at `target` from `sockets` UDP sockets bound to `source` (loopback), each
/// sending one every `interval`, for at most `duration`. Nothing that comes back is read (the
/// kernel drops it once the socket buffer is full).
pub fn quic_initial_flood(
    target: SocketAddr,
    source: IpAddr,
    sockets: usize,
    initials: Arc<Vec<Vec<u8>>>,
    interval: Duration,
    duration: Duration,
) -> Flood {
    check_bounds(target, sockets, duration);
    assert!(source.is_loopback() && !initials.is_empty());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + duration;
    let tasks = (0..sockets)
        .map(|n| {
            let (stop, sent, initials) = (stop.clone(), sent.clone(), initials.clone());
            tokio::spawn(async move {
                let Ok(socket) = tokio::net::UdpSocket::bind((source, 0)).await else {
                    return;
                };
                // Spread the sockets over the interval so the flood is steady, not bursts.
                let offset = interval.mul_f64(n as f64 / sockets.max(1) as f64);
                tokio::time::sleep(offset).await;
                let mut ticker = tokio::time::interval(interval);
                let mut index = n;
                while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
                    ticker.tick().await;
                    if socket
                        .send_to(&initials[index % initials.len()], target)
                        .await
                        .is_ok()
                    {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    index += sockets;
                }
            })
        })
        .collect();
    Flood { stop, sent, tasks }
}

/// Keeps `sockets` TCP connections from `source` (loopback) open to `target`, silent; when the
/// server closes one, it is re-opened after `pause`. Runs for at most `duration`.
pub fn idle_tcp_flood(
    target: SocketAddr,
    source: IpAddr,
    sockets: usize,
    pause: Duration,
    duration: Duration,
) -> Flood {
    check_bounds(target, sockets, duration);
    assert!(source.is_loopback());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + duration;
    let tasks = (0..sockets)
        .map(|_| {
            let (stop, sent) = (stop.clone(), sent.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
                    let socket = match source {
                        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
                    };
                    let connected = match socket {
                        Ok(socket) if socket.bind(SocketAddr::new(source, 0)).is_ok() => {
                            socket.connect(target).await.ok()
                        }
                        _ => None,
                    };
                    if let Some(mut stream) = connected {
                        sent.fetch_add(1, Ordering::Relaxed);
                        // Silent until the server gives up on it (or the flood ends).
                        let mut byte = [0u8; 64];
                        let _ = tokio::time::timeout_at(deadline, stream.read(&mut byte)).await;
                    }
                    tokio::time::sleep(pause).await;
                }
            })
        })
        .collect();
    Flood { stop, sent, tasks }
}

/// CPU time and memory of a process, from /proc/PID/stat and /proc/PID/status.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessCost {
    /// User + system CPU time so far.
    pub cpu: Duration,
    /// Resident memory (VmRSS), bytes.
    pub rss: u64,
    /// Resident anonymous memory (RssAnon: heap and stacks, not the store's shared memory).
    pub rss_anon: u64,
    /// The most memory it ever had resident (VmHWM), bytes.
    pub rss_peak: u64,
}

impl ProcessCost {
    /// The process's figures now (zeros for what cannot be read).
    pub fn of(pid: u32) -> ProcessCost {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |field: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (which may contain spaces, so split after its ')').
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |index: usize| -> u64 {
            fields
                .get(index)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of stat(5): 11 and 12 after the ')'.
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let total = ticks(11) + ticks(12);
        ProcessCost {
            cpu: Duration::from_millis(total * 1000 / per_second),
            rss: kib("VmRSS:"),
            rss_anon: kib("RssAnon:"),
            rss_peak: kib("VmHWM:"),
        }
    }
}

/// The `p`-th percentile (0–100) of `samples`, by nearest rank; zero if there are none.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
