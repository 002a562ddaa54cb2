//! The copy-limit peers: moving the same objects over one plain TCP connection, and over one
//! rustls connection (TLS 1.3, AES-128-GCM, ring), with the simplest possible framing.
//!
//! Both run as two processes of this binary (`peer hold` and `peer pull`) so that they can be
//! put into network namespaces and their memory sampled like the servers'. The holder keeps
//! its source bytes in a memfd mapping and the puller receives into one, as a Plasma store
//! would: only the copy from the socket into shared memory happens on receive, and neither
//! side's private memory (`RssAnon`) grows with the object size. The destination is
//! pre-faulted before the clock starts, so these peers are the copy limit.
//!
//! Framing, per object: `u64 LE size`, then `size` bytes. The puller times from before
//! `connect` to the last byte of the last object (TLS handshake included, as a SYNC includes
//! its connection set-up), and can stop at a deadline, reporting what arrived complete.

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shm::SharedRegion;
use crate::BenchError;

/// What a peer pair moves, and how.
#[derive(Clone, Debug)]
pub struct CopySpec {
    pub objects: u64,
    pub object_size: u64,
    pub tls: bool,
    /// Over one bare quinn connection instead of TCP ([`super::quic_copy`]; always encrypted,
    /// so `tls` does not apply).
    pub quic: bool,
    /// Sender's TCP congestion controller (`cubic`, `bbr`, `reno`); the system default if `None`.
    pub congestion: Option<String>,
    /// The puller receives into memory it never touched (each page faulted in as the bytes
    /// arrive, as in a fresh store) instead of pre-faulted memory.
    pub fresh_destination: bool,
}

/// What `peer pull` reports on its last stdout line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PullResult {
    pub bytes: u64,
    pub objects: u64,
    pub secs: f64,
    pub half_secs: Option<f64>,
    pub timed_out: bool,
    /// CPU seconds the puller process spent in its timed section (`-` when unknown).
    pub cpu_secs: Option<f64>,
}

impl PullResult {
    /// `result bytes=.. objects=.. secs=.. half=.. timed_out=.. cpu=..` (half and cpu are `-`
    /// when unknown).
    pub fn to_line(&self) -> String {
        let opt = |v: Option<f64>| v.map(|h| format!("{h:.6}")).unwrap_or_else(|| "-".into());
        format!(
            "result bytes={} objects={} secs={:.6} half={} timed_out={} cpu={}",
            self.bytes,
            self.objects,
            self.secs,
            opt(self.half_secs),
            self.timed_out,
            opt(self.cpu_secs)
        )
    }

    /// Parses [`PullResult::to_line`]'s output.
    pub fn parse_line(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix("result ")?;
        let mut r = PullResult {
            bytes: 0,
            objects: 0,
            secs: 0.0,
            half_secs: None,
            timed_out: false,
            cpu_secs: None,
        };
        let mut seen = 0;
        for field in rest.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            match k {
                "bytes" => r.bytes = v.parse().ok()?,
                "objects" => r.objects = v.parse().ok()?,
                "secs" => r.secs = v.parse().ok()?,
                "half" if v == "-" => r.half_secs = None,
                "half" => r.half_secs = Some(v.parse().ok()?),
                "timed_out" => r.timed_out = v.parse().ok()?,
                "cpu" if v == "-" => r.cpu_secs = None,
                "cpu" => r.cpu_secs = Some(v.parse().ok()?),
                _ => return None,
            }
            seen += 1;
        }
        (seen == 6).then_some(r)
    }
}

/// Sets the TCP congestion controller of a socket (Linux `TCP_CONGESTION`).
pub fn set_congestion(socket: &impl AsRawFd, name: &str) -> io::Result<()> {
    // SAFETY: passes a valid pointer and its length for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// TLS 1.3 with AES-128-GCM only, on ring: the configuration the encryption-limit peer
/// measures.
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
        ..rustls::crypto::ring::default_provider()
    })
}

/// Fills a source region with cheap, non-repeating bytes (so nothing can compress them).
pub(crate) fn fill_pattern(buf: &mut [u8]) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// `peer hold`: listens, prints `ready ADDR CERT` (CERT = the DER certificate in hex, or `-`),
/// serves one puller, and exits after the puller has closed.
pub fn hold(listen: SocketAddr, spec: &CopySpec) -> Result<(), BenchError> {
    let listener = TcpListener::bind(listen)?;
    serve(listener, spec, |line| {
        println!("{line}");
        io::stdout().flush()
    })
}

/// The holder's work on a bound listener: `announce` receives the `ready ADDR CERT` line.
pub fn serve(
    listener: TcpListener,
    spec: &CopySpec,
    announce: impl FnOnce(String) -> io::Result<()>,
) -> Result<(), BenchError> {
    let mut source = SharedRegion::new(spec.object_size.max(1) as usize)?;
    fill_pattern(source.as_mut_slice());
    let addr = listener.local_addr()?;
    let tls = if spec.tls {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .map_err(|e| BenchError::Tls(e.to_string()))?;
        let cert = ck.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| BenchError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .map_err(|e| BenchError::Tls(e.to_string()))?;
        Some((Arc::new(config), hex::encode(cert.as_ref())))
    } else {
        None
    };
    announce(format!(
        "ready {addr} {}",
        tls.as_ref().map(|(_, c)| c.as_str()).unwrap_or("-")
    ))?;

    let (tcp, _) = listener.accept()?;
    if let Some(cc) = &spec.congestion {
        set_congestion(&tcp, cc)?;
    }
    tcp.set_nodelay(true)?;
    let header = spec.object_size.to_le_bytes();
    let data = source.as_slice();
    let send_all = |w: &mut dyn Write| -> io::Result<()> {
        for _ in 0..spec.objects {
            w.write_all(&header)?;
            w.write_all(data)?;
        }
        w.flush()
    };
    match tls {
        Some((config, _)) => {
            let conn = rustls::ServerConnection::new(config)
                .map_err(|e| BenchError::Tls(e.to_string()))?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            // A puller that stops at its deadline closes the connection: not an error here.
            if send_all(&mut s).is_ok() {
                s.conn.send_close_notify();
                let _ = s.flush();
                let _ = s.sock.shutdown(std::net::Shutdown::Write);
                let _ = io::copy(&mut s.sock, &mut io::sink());
            }
        }
        None => {
            let mut s = tcp;
            if send_all(&mut s).is_ok() {
                let _ = s.shutdown(std::net::Shutdown::Write);
                let _ = io::copy(&mut s, &mut io::sink());
            }
        }
    }
    Ok(())
}

/// Fills `buf` from `r`, giving up once `deadline` (measured from `start`) has passed.
/// `Ok(Err(n))` means the deadline cut it short after `n` bytes. The reader must have a short read timeout so
/// that a stalled connection comes back here to look at the clock.
fn read_until_deadline(
    r: &mut dyn Read,
    buf: &mut [u8],
    start: Instant,
    deadline: Duration,
) -> io::Result<Result<(), usize>> {
    let mut filled = 0;
    while filled < buf.len() {
        if start.elapsed() >= deadline {
            return Ok(Err(filled));
        }
        let end = buf.len().min(filled + (4 << 20));
        match r.read(&mut buf[filled..end]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(()))
}

/// Where the object announced by `header` goes in `dest`, from `offset`: its slot and the
/// offset after it. The size must be the spec's, and the slot must fit.
pub(crate) fn object_slot<'a>(
    spec: &CopySpec,
    header: [u8; 8],
    dest: &'a mut [u8],
    offset: usize,
) -> Result<(&'a mut [u8], usize), BenchError> {
    let size = u64::from_le_bytes(header);
    if size != spec.object_size {
        return Err(BenchError::Protocol(format!(
            "object size {size}, expected {}",
            spec.object_size
        )));
    }
    let end = offset + size as usize;
    let slot = dest
        .get_mut(offset..end)
        .ok_or_else(|| BenchError::Protocol("more bytes than announced".into()))?;
    Ok((slot, end))
}

/// Reads whole objects into `dest` until all arrived or the deadline passed.
fn receive_objects(
    r: &mut dyn Read,
    spec: &CopySpec,
    dest: &mut [u8],
    start: Instant,
    deadline: Duration,
) -> Result<PullResult, BenchError> {
    let mut result = PullResult {
        bytes: 0,
        objects: 0,
        secs: 0.0,
        half_secs: None,
        timed_out: false,
        cpu_secs: None,
    };
    let half = spec.objects.div_ceil(2).max(1);
    let mut offset = 0usize;
    for _ in 0..spec.objects {
        let mut header = [0u8; 8];
        if read_until_deadline(r, &mut header, start, deadline)?.is_err() {
            result.timed_out = true;
            break;
        }
        let (slot, end) = object_slot(spec, header, dest, offset)?;
        if let Err(partial) = read_until_deadline(r, slot, start, deadline)? {
            // Payload that arrived counts, also of the object cut off (objects/s counts only
            // whole objects).
            result.bytes += partial as u64;
            result.timed_out = true;
            break;
        }
        result.bytes += (end - offset) as u64;
        offset = end;
        result.objects += 1;
        if result.objects == half {
            result.half_secs = Some(start.elapsed().as_secs_f64());
        }
    }
    result.secs = if result.timed_out {
        deadline.as_secs_f64()
    } else {
        start.elapsed().as_secs_f64()
    };
    Ok(result)
}

/// `peer pull`: connects to a holder, receives every object into shared memory and prints a
/// [`PullResult`] line. `cert_hex` is the holder's certificate for TLS.
pub fn pull(
    connect: SocketAddr,
    spec: &CopySpec,
    cert_hex: Option<&str>,
    deadline: Duration,
) -> Result<PullResult, BenchError> {
    let total = (spec.objects * spec.object_size).max(1) as usize;
    // Pre-faulted, so the peer measures the network copy, not first-touch page faults; or
    // fresh, to measure them as a cold store's writer pays them.
    let mut dest = if spec.fresh_destination {
        SharedRegion::new(total)?
    } else {
        SharedRegion::new_populated(total)?
    };
    let me = std::process::id();
    let cpu_before = crate::procs::cpu_secs(me);
    let start = Instant::now();
    let tcp = TcpStream::connect(connect)?;
    tcp.set_nodelay(true)?;
    // Short read timeouts so a stalled connection still notices the deadline.
    tcp.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut result = if spec.tls {
        let cert = hex::decode(cert_hex.unwrap_or_default())
            .map_err(|e| BenchError::Tls(format!("bad certificate hex: {e}")))?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(cert))
            .map_err(|e| BenchError::Tls(e.to_string()))?;
        let config = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| BenchError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost")
            .map_err(|e| BenchError::Tls(e.to_string()))?;
        let conn = rustls::ClientConnection::new(Arc::new(config), name)
            .map_err(|e| BenchError::Tls(e.to_string()))?;
        let mut s = rustls::StreamOwned::new(conn, tcp);
        receive_objects(&mut s, spec, dest.as_mut_slice(), start, deadline)?
    } else {
        let mut s = tcp;
        receive_objects(&mut s, spec, dest.as_mut_slice(), start, deadline)?
    };
    result.cpu_secs = cpu_before
        .zip(crate::procs::cpu_secs(me))
        .map(|(a, b)| b - a);
    Ok(result)
}

/// Reads a child's stdout lines until one starts with `prefix`, returning it. Lines before it
/// are ignored (e.g. log output).
pub fn read_line_with_prefix(r: &mut impl BufRead, prefix: &str) -> Result<String, BenchError> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(BenchError::Protocol(format!(
                "child closed stdout before a `{prefix}` line"
            )));
        }
        if line.starts_with(prefix) {
            return Ok(line.trim_end().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_result_line_round_trips() {
        let r = PullResult {
            bytes: 1 << 30,
            objects: 64,
            secs: 1.25,
            half_secs: Some(0.5),
            timed_out: false,
            cpu_secs: Some(0.75),
        };
        assert_eq!(PullResult::parse_line(&r.to_line()), Some(r.clone()));
        let none = PullResult {
            half_secs: None,
            timed_out: true,
            cpu_secs: None,
            ..r
        };
        assert_eq!(PullResult::parse_line(&none.to_line()), Some(none));
        assert_eq!(PullResult::parse_line("result bytes=1"), None);
        assert_eq!(PullResult::parse_line("hello"), None);
    }

    /// Holder in a thread, puller in this one: the same code the subprocesses run.
    fn run_pair(tls: bool, deadline: Duration) -> PullResult {
        let spec = CopySpec {
            objects: 5,
            object_size: 300_000,
            tls,
            quic: false,
            congestion: Some("cubic".into()),
            fresh_destination: false,
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let (tx, rx) = std::sync::mpsc::channel();
        let hold_spec = spec.clone();
        let holder = std::thread::spawn(move || {
            serve(listener, &hold_spec, |line| {
                tx.send(line).map_err(|e| io::Error::other(e.to_string()))
            })
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("ready line");
        let mut fields = line.split_whitespace();
        assert_eq!(fields.next(), Some("ready"));
        let addr: SocketAddr = fields.next().and_then(|a| a.parse().ok()).expect("addr");
        let cert = fields.next().expect("cert field");
        assert_eq!(cert == "-", !tls);
        let r = pull(addr, &spec, Some(cert), deadline).expect("pull");
        holder.join().expect("holder thread").expect("holder ok");
        r
    }

    /// A reader that yields 100 bytes every 10 ms.
    struct Trickle;
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(10));
            let n = buf.len().min(100);
            buf[..n].fill(1);
            Ok(n)
        }
    }

    #[test]
    fn a_deadline_cuts_off_and_counts_the_partial_object() {
        let spec = CopySpec {
            objects: 2,
            object_size: 1 << 20,
            tls: false,
            quic: false,
            congestion: None,
            fresh_destination: false,
        };
        let mut stream = io::Cursor::new((1u64 << 20).to_le_bytes().to_vec()).chain(Trickle);
        let mut dest = vec![0u8; 2 << 20];
        let r = receive_objects(
            &mut stream,
            &spec,
            &mut dest,
            Instant::now(),
            Duration::from_millis(200),
        )
        .expect("receive");
        assert!(r.timed_out);
        assert_eq!(r.objects, 0);
        assert!(r.bytes >= 500 && r.bytes < 4000, "{r:?}");
        assert_eq!(r.secs, 0.2);
    }

    #[test]
    fn plain_pair_moves_every_byte() {
        let r = run_pair(false, Duration::from_secs(20));
        assert_eq!((r.objects, r.bytes), (5, 5 * 300_000));
        assert!(r.half_secs.is_some_and(|h| h <= r.secs));
        assert!(!r.timed_out);
    }

    #[test]
    fn tls_pair_moves_every_byte() {
        let r = run_pair(true, Duration::from_secs(20));
        assert_eq!((r.objects, r.bytes), (5, 5 * 300_000));
        assert!(!r.timed_out);
    }
}
