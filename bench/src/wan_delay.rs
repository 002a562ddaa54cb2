//! The WAN delay line: a user-space stand-in for `tc netem delay`, which these kernels lack.
//!
//! An iptables `NFQUEUE` rule hands every packet it matches to a netfilter queue; this module
//! binds that queue over a raw `NETLINK_NETFILTER` socket, notes when each packet arrived and
//! lets it through (`NF_ACCEPT`) once it has waited the configured delay. The delay is the
//! same for every packet, so releasing in arrival order keeps the stream's order, and one
//! batch verdict ("every packet up to id N") releases all packets that fell due together.
//! A random fraction can be dropped on arrival (the benchmark drops with iptables instead;
//! the option is for trying loss without a second rule).
//!
//! It runs as the hidden subcommand `plasma-stream-bench wan-delay` inside the receiving
//! namespace (see [`crate::netns`]), prints `ready` once the queue is bound, and on SIGTERM
//! or SIGINT releases every packet it still holds, prints its counters to stderr and exits.
//!
//! Only metadata is copied to user space (`NFQNL_COPY_META`): the verdict needs the packet's
//! id, not its bytes. The netlink encoding is written out here (no libnetfilter_queue, so
//! nothing to install): [`encode`] builds requests, [`decode`] reads the kernel's messages.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Everything that can stop the delayer.
#[derive(Debug, thiserror::Error)]
pub enum DelayError {
    #[error("netlink socket: {0}")]
    Socket(io::Error),
    #[error("configuring netfilter queue {queue} ({what}): {source}")]
    Config {
        queue: u16,
        what: &'static str,
        source: io::Error,
    },
    #[error("netlink receive: {0}")]
    Recv(io::Error),
    #[error("sending a verdict: {0}")]
    Verdict(io::Error),
    #[error("malformed netlink message: {0}")]
    Malformed(&'static str),
    #[error("bad option: {0}")]
    Option(String),
}

/// The netfilter queue protocol's numbers (linux/netfilter/nfnetlink_queue.h).
mod nfq {
    pub const SUBSYS_QUEUE: u16 = 3;
    pub const MSG_PACKET: u16 = 0;
    pub const MSG_VERDICT: u16 = 1;
    pub const MSG_CONFIG: u16 = 2;
    pub const MSG_VERDICT_BATCH: u16 = 3;
    pub const ATTR_PACKET_HDR: u16 = 1;
    pub const ATTR_VERDICT_HDR: u16 = 2;
    pub const CFG_CMD: u16 = 1;
    pub const CFG_PARAMS: u16 = 2;
    pub const CFG_QUEUE_MAXLEN: u16 = 3;
    pub const CFG_MASK: u16 = 4;
    pub const CFG_FLAGS: u16 = 5;
    pub const CMD_BIND: u8 = 1;
    pub const CMD_UNBIND: u8 = 2;
    pub const COPY_META: u8 = 1;
    pub const FLAG_FAIL_OPEN: u32 = 1;
    pub const FLAG_GSO: u32 = 4;
    pub const NF_DROP: u32 = 0;
    pub const NF_ACCEPT: u32 = 1;
}

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// The type bits of an attribute's type (the top two are the nested / byte-order flags).
const NLA_TYPE_MASK: u16 = 0x3fff;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Building netlink requests to the queue subsystem.
pub mod encode {
    use super::*;

    /// One message: netlink header, nfgenmsg naming the queue, then attributes.
    pub struct Request {
        buf: Vec<u8>,
    }

    impl Request {
        pub fn new(msg_type: u16, queue: u16, ack: bool) -> Self {
            let mut buf = Vec::with_capacity(64);
            buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish()
            buf.extend_from_slice(&((nfq::SUBSYS_QUEUE << 8) | msg_type).to_ne_bytes());
            let flags = NLM_F_REQUEST | if ack { NLM_F_ACK } else { 0 };
            buf.extend_from_slice(&flags.to_ne_bytes());
            buf.extend_from_slice(&0u32.to_ne_bytes()); // sequence: unused, replies are in order
            buf.extend_from_slice(&0u32.to_ne_bytes()); // port id 0: the kernel
            buf.push(libc::AF_UNSPEC as u8);
            buf.push(0); // NFNETLINK_V0
            buf.extend_from_slice(&queue.to_be_bytes());
            Self { buf }
        }

        /// Appends one attribute, padded to 4 bytes (the length field excludes the padding).
        pub fn attr(mut self, attr_type: u16, payload: &[u8]) -> Self {
            let len = 4 + payload.len();
            self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
            self.buf.extend_from_slice(&attr_type.to_ne_bytes());
            self.buf.extend_from_slice(payload);
            self.buf.resize(align4(self.buf.len()), 0);
            self
        }

        pub fn finish(mut self) -> Vec<u8> {
            let len = self.buf.len() as u32;
            self.buf[..4].copy_from_slice(&len.to_ne_bytes());
            self.buf
        }
    }

    /// `NFQNL_CFG_CMD_BIND` or `_UNBIND` for `queue`, asking for an acknowledgement.
    pub fn command(queue: u16, command: u8) -> Vec<u8> {
        // struct nfqnl_msg_config_cmd { u8 command; u8 pad; be16 pf; }: pf is unused since 3.8.
        Request::new(nfq::MSG_CONFIG, queue, true)
            .attr(nfq::CFG_CMD, &[command, 0, 0, 0])
            .finish()
    }

    /// Copy mode, queue length and flags in one acknowledged request.
    pub fn params(queue: u16, max_len: u32, flags: u32) -> Vec<u8> {
        // struct nfqnl_msg_config_params { be32 copy_range; u8 copy_mode; } (packed: 5 bytes).
        let mut params = 0u32.to_be_bytes().to_vec();
        params.push(nfq::COPY_META);
        let mask = nfq::FLAG_FAIL_OPEN | nfq::FLAG_GSO;
        Request::new(nfq::MSG_CONFIG, queue, true)
            .attr(nfq::CFG_PARAMS, &params)
            .attr(nfq::CFG_QUEUE_MAXLEN, &max_len.to_be_bytes())
            .attr(nfq::CFG_MASK, &mask.to_be_bytes())
            .attr(nfq::CFG_FLAGS, &(flags & mask).to_be_bytes())
            .finish()
    }

    /// A verdict on one packet (`batch`: on every queued packet with an id up to `id`).
    pub fn verdict(queue: u16, id: u32, verdict: u32, batch: bool) -> Vec<u8> {
        let msg_type = if batch {
            nfq::MSG_VERDICT_BATCH
        } else {
            nfq::MSG_VERDICT
        };
        let mut hdr = verdict.to_be_bytes().to_vec();
        hdr.extend_from_slice(&id.to_be_bytes());
        Request::new(msg_type, queue, false)
            .attr(nfq::ATTR_VERDICT_HDR, &hdr)
            .finish()
    }
}

/// Reading the kernel's messages.
pub mod decode {
    use super::*;

    /// One message of a netlink datagram, as far as the delayer cares.
    #[derive(Debug, PartialEq, Eq)]
    pub enum Message {
        /// A queued packet's id (from `NFQA_PACKET_HDR`).
        Packet(u32),
        /// An acknowledgement (errno 0) or an error (a positive errno).
        Ack(i32),
        /// Anything else (end of a dump, other message types).
        Other,
    }

    fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
    }

    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }

    /// Splits one datagram into its messages. Lengths come from the kernel but are checked
    /// all the same: a short or overlong field is an error, never a panic.
    pub fn messages(datagram: &[u8]) -> Result<Vec<Message>, DelayError> {
        let mut out = Vec::new();
        let mut rest = datagram;
        while rest.len() >= NLMSG_HDRLEN {
            let len = u32_at(rest, 0).ok_or(DelayError::Malformed("header"))? as usize;
            if len < NLMSG_HDRLEN || len > rest.len() {
                return Err(DelayError::Malformed("message length"));
            }
            let msg_type = u16_at(rest, 4).ok_or(DelayError::Malformed("header"))?;
            let body = &rest[NLMSG_HDRLEN..len];
            out.push(match msg_type {
                NLMSG_ERROR => {
                    let errno = i32::from_ne_bytes(
                        body.get(..4)
                            .and_then(|b| b.try_into().ok())
                            .ok_or(DelayError::Malformed("error message"))?,
                    );
                    Message::Ack(errno.saturating_abs())
                }
                NLMSG_DONE => Message::Other,
                t if t == (nfq::SUBSYS_QUEUE << 8) | nfq::MSG_PACKET => {
                    Message::Packet(packet_id(body)?)
                }
                _ => Message::Other,
            });
            rest = rest.get(align4(len)..).unwrap_or(&[]);
        }
        Ok(out)
    }

    /// The packet id in a packet message's attributes (after the nfgenmsg).
    fn packet_id(body: &[u8]) -> Result<u32, DelayError> {
        let mut attrs = body
            .get(NFGENMSG_LEN..)
            .ok_or(DelayError::Malformed("packet message"))?;
        while attrs.len() >= 4 {
            let len = u16_at(attrs, 0).ok_or(DelayError::Malformed("attribute"))? as usize;
            let attr_type = u16_at(attrs, 2).ok_or(DelayError::Malformed("attribute"))?;
            if len < 4 || len > attrs.len() {
                return Err(DelayError::Malformed("attribute length"));
            }
            if attr_type & NLA_TYPE_MASK == nfq::ATTR_PACKET_HDR {
                // struct nfqnl_msg_packet_hdr { be32 packet_id; be16 hw_protocol; u8 hook; }
                let id = attrs
                    .get(4..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes)
                    .ok_or(DelayError::Malformed("packet header"))?;
                return Ok(id);
            }
            attrs = attrs.get(align4(len)..).unwrap_or(&[]);
        }
        Err(DelayError::Malformed(
            "packet message without a packet header",
        ))
    }
}

/// What the delayer does with each packet.
#[derive(Clone, Debug, PartialEq)]
pub struct DelaySpec {
    pub queue: u16,
    pub delay: Duration,
    /// Fraction of packets dropped on arrival (0 for none).
    pub loss: f64,
    /// Take GSO packets whole (up to 64 KiB each) instead of letting the kernel cut them into
    /// wire-size packets first: much less work here, but a "loss" then drops a whole burst.
    pub gso: bool,
}

impl DelaySpec {
    pub fn new(queue: u16, delay_ms: f64, loss: f64, gso: bool) -> Result<Self, DelayError> {
        if !(delay_ms.is_finite() && (0.0..=60_000.0).contains(&delay_ms)) {
            return Err(DelayError::Option(format!(
                "delay {delay_ms} ms (0 to 60000)"
            )));
        }
        if !(0.0..=1.0).contains(&loss) {
            return Err(DelayError::Option(format!("loss {loss} (0 to 1)")));
        }
        Ok(Self {
            queue,
            delay: Duration::from_secs_f64(delay_ms / 1000.0),
            loss,
            gso,
        })
    }
}

/// Packets held, oldest first, with the instant each one is due. Pure bookkeeping, so the
/// order and batching rules are testable without a kernel.
#[derive(Debug, Default)]
pub struct DelayLine {
    held: VecDeque<(Instant, u32)>,
}

impl DelayLine {
    /// Packets that can be held at once; beyond that a packet is let through at once, which
    /// at 1 Gbit/s of full-size packets takes over 10 s of delay to reach.
    pub const CAPACITY: usize = 1 << 20;

    /// Holds packet `id` until `due`; false (hold nothing) when full.
    pub fn hold(&mut self, id: u32, due: Instant) -> bool {
        if self.held.len() >= Self::CAPACITY {
            return false;
        }
        self.held.push_back((due, id));
        true
    }

    /// Removes every packet due by `now` and returns the id of the last one: a batch verdict
    /// on it releases them all (the kernel numbers a queue's packets in arrival order).
    pub fn release_due(&mut self, now: Instant) -> Option<u32> {
        let mut last = None;
        while let Some(&(due, id)) = self.held.front() {
            if due > now {
                break;
            }
            last = Some(id);
            self.held.pop_front();
        }
        last
    }

    /// The id of the newest packet held, emptying the line (for the final flush).
    pub fn release_all(&mut self) -> Option<u32> {
        let last = self.held.back().map(|&(_, id)| id);
        self.held.clear();
        last
    }

    /// When the oldest packet falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.front().map(|&(due, _)| due)
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// A small deterministic generator for the drop decision (xorshift64*): the same seed gives
/// the same losses, run after run.
#[derive(Debug)]
pub struct Coin(u64);

impl Coin {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// True with probability `p`.
    pub fn flip(&mut self, p: f64) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// A netlink socket bound to one netfilter queue.
struct QueueSocket {
    fd: OwnedFd,
    queue: u16,
}

impl QueueSocket {
    fn open(spec: &DelaySpec) -> Result<Self, DelayError> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(DelayError::Socket(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a socket we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a zeroed sockaddr_nl (port id 0: let the kernel choose) is valid to bind.
        let rc = unsafe {
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(DelayError::Socket(io::Error::last_os_error()));
        }
        let socket = Self {
            fd,
            queue: spec.queue,
        };
        // A burst at line rate must fit in the socket while we are busy releasing: past the
        // buffer the kernel drops packets (loss the scenario did not ask for). FORCE goes past
        // net.core.rmem_max as root; elsewhere the plain option gives what the limit allows.
        let want: libc::c_int = 64 << 20;
        if socket.set_int(libc::SO_RCVBUFFORCE, want).is_err() {
            let _ = socket.set_int(libc::SO_RCVBUF, want);
        }
        socket.configure("bind", &encode::command(spec.queue, nfq::CMD_BIND))?;
        // Fail open: when the kernel's queue is full it lets packets through undelayed rather
        // than dropping them, so an overload shows as less delay, not as extra loss. 2^17
        // packets hold 50 ms of about 30 Gbit/s of full-size packets.
        let flags = nfq::FLAG_FAIL_OPEN | if spec.gso { nfq::FLAG_GSO } else { 0 };
        socket.configure("parameters", &encode::params(spec.queue, 1 << 17, flags))?;
        Ok(socket)
    }

    fn set_int(&self, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: setsockopt with a pointer to an int that outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                &value as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sends `msg.len()` bytes from a live slice.
        let n = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                msg.as_ptr() as *const libc::c_void,
                msg.len(),
                0,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// One datagram into `buf` (its length), or `None` when nothing is waiting.
    fn recv(&self, buf: &mut [u8], wait: bool) -> io::Result<Option<usize>> {
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        // SAFETY: receives into a live, writable buffer of `buf.len()` bytes.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                flags,
            )
        };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(e),
        }
    }

    /// Sends an acknowledged configuration request and waits for its answer. Packets cannot
    /// arrive yet (the queue is bound by the first request and the harness adds the NFQUEUE
    /// rule only after `ready`), so the first message back is the answer.
    fn configure(&self, what: &'static str, msg: &[u8]) -> Result<(), DelayError> {
        let err = |source| DelayError::Config {
            queue: self.queue,
            what,
            source,
        };
        self.send(msg).map_err(err)?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = self.recv(&mut buf, true).map_err(err)?.unwrap_or(0);
            if n == 0 {
                // A blocking netlink read returns at least one message; nothing means the
                // socket is unusable, and waiting again would never end.
                return Err(DelayError::Malformed(
                    "empty answer to a configuration request",
                ));
            }
            for m in decode::messages(&buf[..n])? {
                if let decode::Message::Ack(errno) = m {
                    return match errno {
                        0 => Ok(()),
                        e => Err(err(io::Error::from_raw_os_error(e))),
                    };
                }
            }
        }
    }

    fn verdict(&self, id: u32, verdict: u32, batch: bool) -> Result<(), DelayError> {
        self.send(&encode::verdict(self.queue, id, verdict, batch))
            .map_err(DelayError::Verdict)
    }

    /// Waits until the socket is readable or `timeout` passes (or a signal arrives).
    fn wait_readable(&self, timeout: Duration) {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: one valid pollfd and a timespec, both alive for the call. EINTR (a signal)
        // simply ends the wait; the loop then looks at the stop flag.
        unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    }
}

impl Drop for QueueSocket {
    fn drop(&mut self) {
        // Unbinding is polite, not required: closing the socket also unbinds the queue.
        let _ = self.send(&encode::command(self.queue, nfq::CMD_UNBIND));
    }
}

/// Counters printed when the delayer stops.
#[derive(Debug, Default)]
pub struct Counters {
    pub packets: u64,
    pub dropped: u64,
    pub passed_full: u64,
    pub overruns: u64,
}

/// Runs the delay line until SIGTERM/SIGINT. `on_ready` is called once the queue is bound.
pub fn run(spec: &DelaySpec, on_ready: impl FnOnce()) -> Result<Counters, DelayError> {
    crate::catch_interrupts();
    let socket = QueueSocket::open(spec)?;
    on_ready();
    let mut line = DelayLine::default();
    let mut coin = Coin::new(0x5eed_de1a);
    let mut counters = Counters::default();
    // Metadata-only messages are a few hundred bytes; 64 KiB takes many per datagram.
    let mut buf = vec![0u8; 1 << 16];
    while !crate::interrupted() {
        let now = Instant::now();
        if let Some(id) = line.release_due(now) {
            socket.verdict(id, nfq::NF_ACCEPT, true)?;
        }
        // Sleep until the next packet is due, but wake at least every 100 ms to see the stop
        // flag even if a signal slipped in between the check and the wait.
        let wait = line
            .next_due()
            .map(|due| due.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        socket.wait_readable(wait);
        // Drain what is waiting, but give due packets a turn after a bounded number of reads.
        for _ in 0..256 {
            let n = match socket.recv(&mut buf, false) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                // The socket overflowed and the kernel dropped packets: count it, go on.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    counters.overruns += 1;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) => return Err(DelayError::Recv(e)),
            };
            let arrived = Instant::now();
            for m in decode::messages(&buf[..n])? {
                let decode::Message::Packet(id) = m else {
                    continue;
                };
                counters.packets += 1;
                if spec.loss > 0.0 && coin.flip(spec.loss) {
                    counters.dropped += 1;
                    socket.verdict(id, nfq::NF_DROP, false)?;
                } else if !line.hold(id, arrived + spec.delay) {
                    counters.passed_full += 1;
                    socket.verdict(id, nfq::NF_ACCEPT, false)?;
                }
            }
        }
    }
    // Stopping must not strand packets in the queue: let everything still held through.
    if let Some(id) = line.release_all() {
        socket.verdict(id, nfq::NF_ACCEPT, true)?;
    }
    Ok(counters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ne16(b: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes([b[at], b[at + 1]])
    }

    #[test]
    fn bind_request_layout() {
        let m = encode::command(7, nfq::CMD_BIND);
        assert_eq!(m.len(), 16 + 4 + 8);
        assert_eq!(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]), 28);
        assert_eq!(ne16(&m, 4), (3 << 8) | 2, "queue subsystem, config message");
        assert_eq!(ne16(&m, 6), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(&m[18..20], &7u16.to_be_bytes(), "queue number, big-endian");
        assert_eq!((ne16(&m, 20), ne16(&m, 22)), (8, nfq::CFG_CMD));
        assert_eq!(m[24], nfq::CMD_BIND);
    }

    #[test]
    fn params_are_padded_and_big_endian() {
        let m = encode::params(0, 1 << 17, nfq::FLAG_FAIL_OPEN);
        // params (4 + 5, padded to 12), maxlen, mask and flags (8 each)
        assert_eq!(m.len(), 20 + 12 + 8 + 8 + 8);
        assert_eq!((ne16(&m, 20), ne16(&m, 22)), (9, nfq::CFG_PARAMS));
        assert_eq!(&m[24..29], &[0, 0, 0, 0, nfq::COPY_META]);
        assert_eq!(&m[29..32], &[0, 0, 0], "padding");
        assert_eq!(ne16(&m, 34), nfq::CFG_QUEUE_MAXLEN);
        assert_eq!(&m[36..40], &(1u32 << 17).to_be_bytes());
        assert_eq!(&m[44..48], &5u32.to_be_bytes(), "mask: fail-open and GSO");
        assert_eq!(&m[52..56], &1u32.to_be_bytes(), "flags: fail-open only");
    }

    #[test]
    fn batch_and_single_verdicts() {
        let b = encode::verdict(0, 0x0102_0304, nfq::NF_ACCEPT, true);
        assert_eq!(ne16(&b, 4), (3 << 8) | nfq::MSG_VERDICT_BATCH);
        assert_eq!(ne16(&b, 6), NLM_F_REQUEST, "verdicts are not acknowledged");
        assert_eq!(&b[24..32], &[0, 0, 0, 1, 1, 2, 3, 4]);
        let d = encode::verdict(0, 9, nfq::NF_DROP, false);
        assert_eq!(ne16(&d, 4), (3 << 8) | nfq::MSG_VERDICT);
        assert_eq!(&d[24..32], &[0, 0, 0, 0, 0, 0, 0, 9]);
    }

    /// A packet message as the kernel sends it: an unrelated attribute first, then the
    /// packet header; and an acknowledgement after it in the same datagram.
    fn datagram(id: u32) -> Vec<u8> {
        let mut hdr = id.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[0x08, 0x00, 3]); // hw protocol, hook (7 bytes, padded)
        let mut d = encode::Request::new(nfq::MSG_PACKET, 0, false)
            .attr(5, &[0; 4])
            .attr(nfq::ATTR_PACKET_HDR, &hdr)
            .finish();
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&[0; 10]);
        ack.extend_from_slice(&(-libc::EBUSY).to_ne_bytes());
        ack.extend_from_slice(&[0; 16]);
        d.extend_from_slice(&ack);
        d
    }

    #[test]
    fn decodes_packet_ids_and_acks() {
        let msgs = decode::messages(&datagram(0xdead_beef)).expect("decoded");
        assert_eq!(
            msgs,
            [
                decode::Message::Packet(0xdead_beef),
                decode::Message::Ack(libc::EBUSY)
            ]
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let good = datagram(1);
        for cut in [17, 20, 27, 30, 35] {
            assert!(decode::messages(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut long_attr = good.clone();
        long_attr[28..30].copy_from_slice(&200u16.to_ne_bytes());
        assert!(decode::messages(&long_attr).is_err());
        let mut no_hdr = encode::Request::new(nfq::MSG_PACKET, 0, false)
            .attr(5, &[0; 4])
            .finish();
        assert!(decode::messages(&no_hdr).is_err());
        no_hdr.truncate(10); // shorter than a header: nothing to read, not an error
        assert_eq!(decode::messages(&no_hdr).expect("empty"), []);
    }

    #[test]
    fn delay_line_releases_in_order_and_in_batches() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut line = DelayLine::default();
        for (id, at) in [(10, 0), (11, 1), (12, 1), (13, 5)] {
            assert!(line.hold(id, t0 + ms(50 + at)));
        }
        assert_eq!(line.release_due(t0 + ms(49)), None);
        assert_eq!(line.next_due(), Some(t0 + ms(50)));
        assert_eq!(
            line.release_due(t0 + ms(51)),
            Some(12),
            "10, 11 and 12 together"
        );
        assert_eq!(line.len(), 1);
        assert_eq!(line.release_all(), Some(13));
        assert!(line.is_empty());
        assert_eq!(line.release_due(t0 + ms(100)), None);
    }

    #[test]
    fn coin_flips_at_the_asked_rate() {
        let mut coin = Coin::new(42);
        let hits = (0..100_000).filter(|_| coin.flip(0.01)).count();
        assert!((800..1200).contains(&hits), "{hits} of 100000 at 1 %");
        assert!(!(0..1000).any(|_| coin.flip(0.0)));
        assert!((0..1000).all(|_| coin.flip(1.0)));
    }

    #[test]
    fn spec_rejects_nonsense() {
        assert!(DelaySpec::new(0, 50.0, 0.01, false).is_ok());
        assert!(DelaySpec::new(0, -1.0, 0.0, false).is_err());
        assert!(DelaySpec::new(0, f64::NAN, 0.0, false).is_err());
        assert!(DelaySpec::new(0, 10.0, 1.5, false).is_err());
    }
}
