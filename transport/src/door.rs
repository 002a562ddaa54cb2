//! The front door: what an inbound connection costs the server before it is authenticated,
//! and how that cost is bounded (docs/transport.md, "The front door").
//!
//! - [`HandshakeBudget`]: handshakes in progress, overall and per source prefix (/32 for IPv4,
//!   /64 for IPv6). Unauthenticated work is bounded here, apart from `max_connections`, which
//!   counts authenticated connections only, so peers that never finish a handshake cannot
//!   take the slots of those that did.
//! - [`IdentitySlots`]: of the `max_connections` authenticated connections, how many one
//!   certificate may hold, so one peer or client (buggy, or compromised) cannot take them all.
//! - [`RefusalLog`]: refusals are counted per [`Refusal`] and logged at most once per reason
//!   and interval, plus one summary line: a flood must not turn into a flood of log lines.
//! - File descriptors: [`raise_fd_limit`] at start, and [`FdReserve`], a spare descriptor
//!   given up when `accept` fails with EMFILE so the pending connection can be taken off the
//!   backlog and closed instead of the listener spinning on it.
//!
//! Not here: the accept loops that apply all this (`endpoint::listen`), and what a refused
//! peer is told (`endpoint::listen` sends it, `error` words it on the dialing side).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plasma_stream_certs::Fingerprint;
use tracing::{debug, info, warn};

/// Why an inbound connection attempt was refused or dropped. The names are what the
/// rate-limited log lines count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections` authenticated connections are open.
    ConnectionLimit,
    /// `max_handshakes` handshakes are in progress.
    Handshakes,
    /// `max_handshakes_per_source` handshakes from the same /32 or /64 are in progress.
    PerSource,
    /// The handshake did not complete within `inbound_handshake_timeout`.
    HandshakeTimeout,
    /// The handshake failed (untrusted certificate, wrong ALPN, garbage).
    HandshakeFailed,
    /// A TCP connection whose first byte is neither TLS nor (when enabled) legacy.
    NotTls,
    /// `accept` failed for want of file descriptors; the pending connection was shed.
    Descriptors,
    /// The certificate already holds `max_connections_per_identity` connections.
    IdentityLimit,
}

const REASONS: usize = 8;

/// The name of every [`Refusal`], as [`RefusalHook`] reports them: a metrics registry can make
/// each counter at start, so a reason that never happened reads 0 instead of being absent.
pub const REFUSAL_REASONS: [&str; REASONS] = [
    Refusal::ConnectionLimit.name(),
    Refusal::Handshakes.name(),
    Refusal::PerSource.name(),
    Refusal::HandshakeTimeout.name(),
    Refusal::HandshakeFailed.name(),
    Refusal::NotTls.name(),
    Refusal::Descriptors.name(),
    Refusal::IdentityLimit.name(),
];

/// Told the reason's name (one of [`REFUSAL_REASONS`]) each time the front door refuses or
/// drops an inbound attempt, before any rate limiting of the log: how a server counts
/// refusals in its metrics without this crate knowing of metrics. Called on the accept path,
/// so it must be cheap (an atomic add) and must not block.
#[derive(Clone)]
pub struct RefusalHook(Arc<dyn Fn(&'static str) + Send + Sync>);

impl RefusalHook {
    pub fn new(hook: impl Fn(&'static str) + Send + Sync + 'static) -> Self {
        RefusalHook(Arc::new(hook))
    }
}

impl std::fmt::Debug for RefusalHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefusalHook")
    }
}

impl Refusal {
    fn index(self) -> usize {
        self as usize
    }

    const fn name(self) -> &'static str {
        match self {
            Refusal::ConnectionLimit => "connection_limit",
            Refusal::Handshakes => "handshake_limit",
            Refusal::PerSource => "per_source_limit",
            Refusal::HandshakeTimeout => "handshake_timeout",
            Refusal::HandshakeFailed => "handshake_failed",
            Refusal::NotTls => "not_tls",
            Refusal::Descriptors => "out_of_descriptors",
            Refusal::IdentityLimit => "identity_limit",
        }
    }

    const ALL: [Refusal; REASONS] = [
        Refusal::ConnectionLimit,
        Refusal::Handshakes,
        Refusal::PerSource,
        Refusal::HandshakeTimeout,
        Refusal::HandshakeFailed,
        Refusal::NotTls,
        Refusal::Descriptors,
        Refusal::IdentityLimit,
    ];
}

/// The part of an address handshakes are counted under: one IPv4 address, or one IPv6 /64
/// (what a single host or customer is usually given, so a /128 limit would be no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SourcePrefix {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl SourcePrefix {
    pub(crate) fn of(addr: SocketAddr) -> SourcePrefix {
        match addr.ip() {
            IpAddr::V4(v4) => SourcePrefix::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourcePrefix::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    SourcePrefix::V6(prefix)
                }
            },
        }
    }
}

/// Authenticated connections per certificate. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub(crate) struct IdentitySlots {
    inner: Arc<IdentityInner>,
}

#[derive(Debug)]
struct IdentityInner {
    per_identity: usize,
    by_identity: Mutex<HashMap<Fingerprint, usize>>,
}

/// One connection's place among its certificate's; given back when dropped.
#[derive(Debug)]
pub(crate) struct IdentitySlot {
    slots: Arc<IdentityInner>,
    identity: Fingerprint,
}

impl IdentitySlots {
    /// At most `per_identity` connections for one certificate (at least 1).
    pub(crate) fn new(per_identity: usize) -> Self {
        IdentitySlots {
            inner: Arc::new(IdentityInner {
                per_identity: per_identity.max(1),
                by_identity: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The most one certificate may hold.
    pub(crate) fn per_identity(&self) -> usize {
        self.inner.per_identity
    }

    /// A place for one more connection of `identity`, or `None` when it holds its share.
    pub(crate) fn try_take(&self, identity: Fingerprint) -> Option<IdentitySlot> {
        let mut counts = self.inner.by_identity.lock().ok()?;
        let held = counts.entry(identity).or_insert(0);
        if *held >= self.inner.per_identity {
            return None;
        }
        *held += 1;
        Some(IdentitySlot {
            slots: self.inner.clone(),
            identity,
        })
    }
}

impl Drop for IdentitySlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.slots.by_identity.lock() {
            if let Some(held) = counts.get_mut(&self.identity) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    // As small as the number of identities connected.
                    counts.remove(&self.identity);
                }
            }
        }
    }
}

/// Handshakes in progress, overall and per source prefix. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub(crate) struct HandshakeBudget {
    inner: Arc<BudgetInner>,
}

#[derive(Debug)]
struct BudgetInner {
    overall: usize,
    per_source: usize,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    total: usize,
    by_source: HashMap<SourcePrefix, usize>,
}

/// One handshake in progress; its place in the budget is given back when dropped.
#[derive(Debug)]
pub(crate) struct HandshakeTicket {
    budget: Arc<BudgetInner>,
    source: SourcePrefix,
}

impl HandshakeBudget {
    /// A budget of `overall` handshakes at once, `per_source` of them from one prefix (both at
    /// least 1: a budget of 0 would refuse every peer).
    pub(crate) fn new(overall: usize, per_source: usize) -> Self {
        HandshakeBudget {
            inner: Arc::new(BudgetInner {
                overall: overall.max(1),
                per_source: per_source.max(1),
                state: Mutex::new(BudgetState::default()),
            }),
        }
    }

    /// A place for one more handshake from `peer`, or why there is none.
    pub(crate) fn try_enter(&self, peer: SocketAddr) -> Result<HandshakeTicket, Refusal> {
        let source = SourcePrefix::of(peer);
        // A poisoned lock means a panic while counting; refusing is the safe answer.
        let mut state = self.inner.state.lock().map_err(|_| Refusal::Handshakes)?;
        if state.total >= self.inner.overall {
            return Err(Refusal::Handshakes);
        }
        let from_source = state.by_source.entry(source).or_insert(0);
        if *from_source >= self.inner.per_source {
            return Err(Refusal::PerSource);
        }
        *from_source += 1;
        state.total += 1;
        Ok(HandshakeTicket {
            budget: self.inner.clone(),
            source,
        })
    }

    /// Handshakes in progress now.
    pub(crate) fn in_progress(&self) -> usize {
        self.inner
            .state
            .lock()
            .map(|state| state.total)
            .unwrap_or(0)
    }
}

impl Drop for HandshakeTicket {
    fn drop(&mut self) {
        if let Ok(mut state) = self.budget.state.lock() {
            state.total = state.total.saturating_sub(1);
            if let Some(count) = state.by_source.get_mut(&self.source) {
                *count -= 1;
                if *count == 0 {
                    // Keeps the map as small as the number of sources mid-handshake.
                    state.by_source.remove(&self.source);
                }
            }
        }
    }
}

/// Refusals, counted per reason. The first refusal of each reason in an interval is logged at
/// once (so a misconfigured peer shows up without delay, with its detail); the rest are
/// counted and reported in one line when the interval ends ([`RefusalLog::flush`]).
#[derive(Debug)]
pub(crate) struct RefusalLog {
    interval: Duration,
    hook: Option<RefusalHook>,
    counts: [AtomicU64; REASONS],
    /// Per reason: whether its first line of the current interval was written.
    logged: Mutex<[bool; REASONS]>,
}

impl RefusalLog {
    pub(crate) fn new(interval: Duration, hook: Option<RefusalHook>) -> Arc<Self> {
        Arc::new(RefusalLog {
            interval,
            hook,
            counts: Default::default(),
            logged: Mutex::new([false; REASONS]),
        })
    }

    /// Counts one refusal; `detail` (who, and what went wrong) is formatted only if this is
    /// the line that gets written.
    pub(crate) fn record(&self, reason: Refusal, detail: impl FnOnce() -> String) {
        self.counts[reason.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(hook) = &self.hook {
            (hook.0)(reason.name());
        }
        let first = match self.logged.lock() {
            Ok(mut logged) => !std::mem::replace(&mut logged[reason.index()], true),
            Err(_) => false,
        };
        if first {
            let detail = detail();
            warn!(
                reason = reason.name(),
                "refused an inbound connection: {detail} (more of these are counted and reported every {:?})",
                self.interval
            );
        } else {
            debug!(reason = reason.name(), "refused an inbound connection");
        }
    }

    /// Writes one line with the counts since the last flush (if there were refusals beyond the
    /// ones already logged one by one) and starts a new interval.
    pub(crate) fn flush(&self) {
        let counts: Vec<(Refusal, u64)> = Refusal::ALL
            .iter()
            .map(|reason| {
                (
                    *reason,
                    self.counts[reason.index()].swap(0, Ordering::Relaxed),
                )
            })
            .filter(|(_, count)| *count > 0)
            .collect();
        let logged = match self.logged.lock() {
            Ok(mut logged) => std::mem::replace(&mut *logged, [false; REASONS]),
            Err(_) => [false; REASONS],
        };
        let total: u64 = counts.iter().map(|(_, count)| count).sum();
        let already: u64 = counts
            .iter()
            .filter(|(reason, _)| logged[reason.index()])
            .count() as u64;
        if total > already {
            let summary = counts
                .iter()
                .map(|(reason, count)| format!("{}={count}", reason.name()))
                .collect::<Vec<_>>()
                .join(" ");
            warn!(
                "refused {total} inbound connection attempts in the last {:?}: {summary}",
                self.interval
            );
        }
    }

    /// Flushes every interval until the task is aborted (the endpoint keeps it in its tasks).
    pub(crate) async fn run(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            self.flush();
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (many distributions start services at a
/// soft 1,024, which a few hundred connections and their peers' sockets exhaust) and returns
/// the soft limit in force, if it could be read.
pub(crate) fn raise_fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit we own; raising the soft limit up to the hard one
        // needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            debug!(
                from = limit.rlim_cur,
                to = raised.rlim_cur,
                "raised the soft limit of open files"
            );
            limit = raised;
        }
    }
    Some(limit.rlim_cur)
}

/// Checks that the descriptors the front door may hold at once fit the open-file limit, with
/// room to spare for the store, logs and outbound sockets; says what to change if not.
pub(crate) fn check_fd_budget(limit: Option<u64>, connections: usize, handshakes: usize) {
    /// Descriptors kept for everything that is not an inbound socket: the store's socket and
    /// memory, outbound connections to peers (up to 8 TCP sockets each), logs, the runtime.
    const OTHER_DESCRIPTORS: u64 = 256;
    let Some(limit) = limit else { return };
    let needed = (connections + handshakes) as u64 + OTHER_DESCRIPTORS;
    if needed > limit {
        warn!(
            open_files = limit,
            needed,
            "the open-file limit is too low for --max-connections + --max-handshakes plus {OTHER_DESCRIPTORS} \
             spare: raise it (ulimit -n, LimitNOFILE=) or lower those options; accepts may fail \
             (each failure sheds the pending connection)"
        );
    } else {
        info!(open_files = limit, needed, "open-file limit");
    }
}

/// A spare file descriptor (`/dev/null`), given up when `accept` fails with EMFILE/ENFILE so
/// that the connection at the head of the backlog can be accepted and closed at once: it is
/// refused rather than left waiting, and the listener, still readable, does not spin.
#[derive(Debug)]
pub(crate) struct FdReserve {
    spare: Option<std::fs::File>,
}

impl FdReserve {
    pub(crate) fn new() -> Self {
        FdReserve {
            spare: std::fs::File::open("/dev/null").ok(),
        }
    }

    /// Whether `err` is the process or the system running out of descriptors.
    pub(crate) fn is_exhaustion(err: &std::io::Error) -> bool {
        matches!(err.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
    }

    /// Frees the spare so one descriptor is available; returns whether there was one.
    pub(crate) fn release(&mut self) -> bool {
        self.spare.take().is_some()
    }

    /// Takes the spare back (if a descriptor is free again).
    pub(crate) fn restore(&mut self) {
        if self.spare.is_none() {
            self.spare = std::fs::File::open("/dev/null").ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn prefixes_group_ipv4_by_address_and_ipv6_by_64() {
        assert_eq!(
            SourcePrefix::of(addr("192.0.2.1:1")),
            SourcePrefix::of(addr("192.0.2.1:2"))
        );
        assert_ne!(
            SourcePrefix::of(addr("192.0.2.1:1")),
            SourcePrefix::of(addr("192.0.2.2:1"))
        );
        assert_eq!(
            SourcePrefix::of(addr("[2001:db8:1:2:aaaa::1]:1")),
            SourcePrefix::of(addr("[2001:db8:1:2:bbbb::9]:1"))
        );
        assert_ne!(
            SourcePrefix::of(addr("[2001:db8:1:2::1]:1")),
            SourcePrefix::of(addr("[2001:db8:1:3::1]:1"))
        );
        // IPv4 seen through a dual-stack socket counts as that IPv4 address.
        assert_eq!(
            SourcePrefix::of(addr("[::ffff:192.0.2.1]:5")),
            SourcePrefix::of(addr("192.0.2.1:6"))
        );
    }

    #[test]
    fn budget_caps_overall_and_per_source_and_gives_back_on_drop() {
        let budget = HandshakeBudget::new(3, 2);
        let a1 = budget.try_enter(addr("192.0.2.1:1")).unwrap();
        let _a2 = budget.try_enter(addr("192.0.2.1:2")).unwrap();
        assert_eq!(
            budget.try_enter(addr("192.0.2.1:3")).unwrap_err(),
            Refusal::PerSource
        );
        let _b1 = budget.try_enter(addr("192.0.2.2:1")).unwrap();
        assert_eq!(
            budget.try_enter(addr("192.0.2.3:1")).unwrap_err(),
            Refusal::Handshakes
        );
        assert_eq!(budget.in_progress(), 3);
        drop(a1);
        assert_eq!(budget.in_progress(), 2);
        let _a3 = budget.try_enter(addr("192.0.2.1:4")).unwrap();
    }

    #[test]
    fn refusal_log_counts_and_resets_each_interval() {
        let hooked = Arc::new(AtomicU64::new(0));
        let seen = hooked.clone();
        let hook = RefusalHook::new(move |reason| {
            assert_eq!(reason, "per_source_limit");
            seen.fetch_add(1, Ordering::Relaxed);
        });
        let log = RefusalLog::new(Duration::from_secs(10), Some(hook));
        let mut formatted = 0;
        for _ in 0..5 {
            log.record(Refusal::PerSource, || {
                formatted += 1;
                "detail".into()
            });
        }
        // Only the first one of the interval is formatted and written.
        assert_eq!(formatted, 1);
        assert_eq!(
            log.counts[Refusal::PerSource.index()].load(Ordering::Relaxed),
            5
        );
        log.flush();
        assert_eq!(
            log.counts[Refusal::PerSource.index()].load(Ordering::Relaxed),
            0
        );
        log.record(Refusal::PerSource, || {
            formatted += 1;
            "detail".into()
        });
        assert_eq!(formatted, 2, "a new interval logs its first refusal again");
        // The hook hears every refusal, logged or only counted.
        assert_eq!(hooked.load(Ordering::Relaxed), 6);
        assert!(REFUSAL_REASONS.contains(&Refusal::PerSource.name()));
    }

    #[test]
    fn the_fd_limit_is_at_its_hard_limit_after_raising() {
        let soft = raise_fd_limit().expect("getrlimit works on Linux");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in raise_fd_limit.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(soft, limit.rlim_cur);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
