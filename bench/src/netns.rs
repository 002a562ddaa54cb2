//! Two test hosts in network namespaces joined by a veth pair, and WAN emulation between them
//! on a kernel without `sch_netem`.
//!
//! Layout: namespace `ta` holds `vA` 10.77.0.1/24,
//! namespace `tb` holds `vB` 10.77.0.2/24, MTU 1500. Benchmarks put the *source* (holder) in
//! `ta` and the *destination* (puller) in `tb`, so data flows ta → tb. Only loopback and these
//! two addresses are ever targets.
//!
//! WAN on the ta → tb direction:
//! - rate: `tbf` on `vA` (ta's egress);
//! - delay: an NFQUEUE rule in tb's raw PREROUTING for packets from `vB`, held for a fixed
//!   time by this harness's own `wan-delay` subcommand ([`crate::wan_delay`]), started
//!   inside tb; one-way delay D gives an RTT of D, as ACKs are not delayed;
//! - loss: `iptables -m statistic --mode random` DROP in tb's INPUT chain (the receiving side,
//!   so the sender sees real loss, not an error).
//!
//! Everything is torn down when the guard drops: deleting a namespace removes its veth end,
//! qdisc and iptables rules; the delayer is stopped first.

use std::io::BufReader;
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::BenchError;

pub const NS_SRC: &str = "ta";
pub const NS_DST: &str = "tb";
pub const ADDR_SRC: &str = "10.77.0.1";
pub const ADDR_DST: &str = "10.77.0.2";

/// Socket-buffer sysctls set inside both namespaces (per namespace, so the rest of the machine
/// is untouched): enough for ~2 Gbit/s over 50 ms. `net.core.rmem_max`/`wmem_max` are global
/// on this kernel and stay as they are (4 MiB).
const NS_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.tcp_wmem", "4096 16384 67108864"),
    ("net.ipv4.tcp_rmem", "4096 131072 67108864"),
];

/// Runs a command, failing with its stderr when it exits non-zero.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, BenchError> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BenchError::Setup(format!("{cmd} {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(BenchError::Setup(format!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside a namespace (`ip netns exec NS ...`).
pub fn run_in(ns: &str, cmd: &str, args: &[&str]) -> Result<String, BenchError> {
    let mut all = vec!["netns", "exec", ns, cmd];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// The names of the existing network namespaces.
pub fn existing() -> Result<Vec<String>, BenchError> {
    Ok(run("ip", &["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect())
}

/// Deletes the two namespaces if they exist (and with them everything inside).
pub fn down() {
    for ns in [NS_SRC, NS_DST] {
        let _ = run("ip", &["netns", "del", ns]);
    }
}

/// WAN conditions on the ta → tb direction.
#[derive(Clone, Debug, PartialEq)]
pub struct Wan {
    /// tbf rate, e.g. `1gbit`; no limit when `None`.
    pub rate: Option<String>,
    /// One-way delay (= RTT) in milliseconds; 0 for none.
    pub delay_ms: f64,
    /// Random loss fraction (0.01 = 1 %) on arrival at tb.
    pub loss: f64,
}

impl Wan {
    /// The iptables rule arguments (after `-A INPUT`) for this loss, or `None` for no loss.
    pub fn loss_rule(&self) -> Option<Vec<String>> {
        (self.loss > 0.0).then(|| {
            [
                "-i",
                "vB",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &format!("{}", self.loss),
                "-j",
                "DROP",
            ]
            .map(String::from)
            .to_vec()
        })
    }

    /// The tc arguments that set the rate on vA, or `None` without a rate.
    pub fn tbf_args(&self) -> Option<Vec<String>> {
        // Queue up to 50 ms at the bottleneck, as a router buffer would.
        self.rate.as_ref().map(|rate| {
            [
                "qdisc", "add", "dev", "vA", "root", "tbf", "rate", rate, "burst", "1mb",
                "latency", "50ms",
            ]
            .map(String::from)
            .to_vec()
        })
    }

    pub fn label(&self) -> String {
        format!(
            "{} ms RTT, {} % loss{}",
            self.delay_ms,
            self.loss * 100.0,
            self.rate
                .as_ref()
                .map(|r| format!(", {r} link"))
                .unwrap_or_default()
        )
    }
}

/// The two namespaces, up; torn down on drop.
pub struct NetnsPair {
    delayer: Option<Child>,
}

impl NetnsPair {
    /// Creates `ta` and `tb` joined by veth (MTU 1500) with larger TCP buffers inside.
    /// Refuses when either namespace already exists (someone may be using it; a stale pair
    /// from a killed run is removed with `plasma-stream-bench netns down`).
    pub fn up() -> Result<Self, BenchError> {
        let have = existing()?;
        if have.iter().any(|n| n == NS_SRC || n == NS_DST) {
            return Err(BenchError::Setup(format!(
                "network namespace {NS_SRC} or {NS_DST} already exists; if it is a leftover of \
                 this harness, remove it with `plasma-stream-bench netns down`"
            )));
        }
        let pair = Self { delayer: None };
        run("ip", &["netns", "add", NS_SRC])?;
        run("ip", &["netns", "add", NS_DST])?;
        run(
            "ip",
            &[
                "link", "add", "vA", "mtu", "1500", "type", "veth", "peer", "name", "vB", "mtu",
                "1500",
            ],
        )?;
        run("ip", &["link", "set", "vA", "netns", NS_SRC])?;
        run("ip", &["link", "set", "vB", "netns", NS_DST])?;
        run(
            "ip",
            &["-n", NS_SRC, "addr", "add", "10.77.0.1/24", "dev", "vA"],
        )?;
        run(
            "ip",
            &["-n", NS_DST, "addr", "add", "10.77.0.2/24", "dev", "vB"],
        )?;
        for (ns, dev) in [(NS_SRC, "vA"), (NS_DST, "vB")] {
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            run("ip", &["-n", ns, "link", "set", dev, "up"])?;
            for (key, value) in NS_SYSCTLS {
                run_in(ns, "sysctl", &["-q", "-w", &format!("{key}={value}")])?;
            }
        }
        Ok(pair)
    }

    /// Applies WAN conditions (after clearing any previous ones).
    pub fn set_wan(&mut self, wan: &Wan) -> Result<(), BenchError> {
        self.clear_wan();
        if let Some(args) = wan.tbf_args() {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_in(NS_SRC, "tc", &args)?;
        }
        if wan.delay_ms > 0.0 {
            let exe = crate::procs::this_exe()?;
            let mut child = Command::new("ip")
                .args(["netns", "exec", NS_DST])
                .arg(exe)
                .args(["wan-delay", "--queue", "0", "--delay-ms"])
                .arg(format!("{}", wan.delay_ms))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| BenchError::Setup(format!("starting the WAN delayer: {e}")))?;
            let stdout = child.stdout.take();
            self.delayer = Some(child);
            // Until the queue is bound, an NFQUEUE rule would drop every packet it matches:
            // add the rule only once the delayer says it is listening.
            let mut stdout = BufReader::new(
                stdout.ok_or_else(|| BenchError::Setup("the WAN delayer has no stdout".into()))?,
            );
            crate::peers::copy::read_line_with_prefix(&mut stdout, "ready")
                .map_err(|e| BenchError::Setup(format!("WAN delayer: {e}")))?;
            run_in(
                NS_DST,
                "iptables",
                &[
                    "-t",
                    "raw",
                    "-A",
                    "PREROUTING",
                    "-i",
                    "vB",
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    "0",
                ],
            )?;
        }
        if let Some(rule) = wan.loss_rule() {
            let mut args = vec!["-A", "INPUT"];
            args.extend(rule.iter().map(String::as_str));
            run_in(NS_DST, "iptables", &args)?;
        }
        Ok(())
    }

    /// Removes rate, delay and loss; ignores what was not set.
    pub fn clear_wan(&mut self) {
        let _ = run_in(NS_SRC, "tc", &["qdisc", "del", "dev", "vA", "root"]);
        let _ = run_in(NS_DST, "iptables", &["-t", "raw", "-F", "PREROUTING"]);
        let _ = run_in(NS_DST, "iptables", &["-F", "INPUT"]);
        if let Some(mut child) = self.delayer.take() {
            // SIGTERM lets it flush held packets and print its counters.
            // SAFETY: signals the child we spawned, by its own pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Round-trip time from ta to tb (ms): the median TCP connect time of five connections
    /// (SYN to SYN-ACK), measured from threads moved into the namespaces.
    pub fn ping_ms(&self) -> Result<f64, BenchError> {
        let listener = in_namespace(NS_DST, || std::net::TcpListener::bind((ADDR_DST, 0)))??;
        let addr = listener.local_addr()?;
        let acceptor = std::thread::spawn(move || {
            for _ in 0..5 {
                if listener.accept().is_err() {
                    break;
                }
            }
        });
        let times = in_namespace(NS_SRC, move || -> std::io::Result<Vec<f64>> {
            let mut times = Vec::new();
            for _ in 0..5 {
                let t = std::time::Instant::now();
                let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                drop(s);
            }
            Ok(times)
        })??;
        let _ = acceptor.join();
        crate::report::median(times).ok_or_else(|| BenchError::Setup("no RTT measurement".into()))
    }

    pub fn src_addr() -> IpAddr {
        IpAddr::from([10, 77, 0, 1])
    }

    pub fn dst_addr() -> IpAddr {
        IpAddr::from([10, 77, 0, 2])
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        self.clear_wan();
        down();
    }
}

/// Runs `f` on a new thread that has joined network namespace `ns` (`/run/netns/NS`); sockets
/// it creates live in that namespace, also after they are handed back to other threads.
pub fn in_namespace<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BenchError> {
    let path = format!("/run/netns/{ns}");
    let handle = std::thread::spawn(move || -> Result<T, BenchError> {
        let file = std::fs::File::open(&path)
            .map_err(|e| BenchError::Setup(format!("opening {path}: {e}")))?;
        // SAFETY: setns on a valid namespace fd affects only this thread.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(BenchError::Setup(format!(
                "setns {path}: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(f())
    });
    handle
        .join()
        .map_err(|_| BenchError::Setup("namespace thread panicked".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_rule_drops_randomly_on_arrival() {
        let wan = Wan {
            rate: None,
            delay_ms: 50.0,
            loss: 0.001,
        };
        let rule = wan.loss_rule().expect("rule").join(" ");
        assert_eq!(
            rule,
            "-i vB -m statistic --mode random --probability 0.001 -j DROP"
        );
        let none = Wan { loss: 0.0, ..wan };
        assert_eq!(none.loss_rule(), None);
    }

    #[test]
    fn tbf_only_with_a_rate() {
        let wan = Wan {
            rate: Some("1gbit".into()),
            delay_ms: 0.0,
            loss: 0.0,
        };
        assert!(wan
            .tbf_args()
            .expect("args")
            .join(" ")
            .contains("tbf rate 1gbit"));
        assert_eq!(Wan { rate: None, ..wan }.tbf_args(), None);
    }

    #[test]
    fn label_says_rtt_and_loss() {
        let wan = Wan {
            rate: Some("1gbit".into()),
            delay_ms: 50.0,
            loss: 0.01,
        };
        assert_eq!(wan.label(), "50 ms RTT, 1 % loss, 1gbit link");
    }

    /// Namespaces, rate, loss and delay for real, one pair for all (the namespace names are
    /// fixed, so two tests could not run side by side): needs root, iproute2, iptables with
    /// the kernel's NFQUEUE, and the `plasma-stream-bench` binary for the delayer (`cargo
    /// build --bins`).
    #[test]
    #[ignore = "needs root, network namespaces and iptables (.ci/run provides it)"]
    fn namespaces_rate_loss_delay_and_teardown() {
        {
            let mut pair = NetnsPair::up().expect("namespaces up");
            let rtt = pair.ping_ms().expect("ping");
            assert!(rtt < 20.0, "veth RTT {rtt} ms");
            pair.set_wan(&Wan {
                rate: Some("1gbit".into()),
                delay_ms: 0.0,
                loss: 0.001,
            })
            .expect("wan");
            let rules = run_in(NS_DST, "iptables", &["-S", "INPUT"]).expect("rules");
            assert!(rules.contains("statistic"), "{rules}");
            let qdisc = run_in(NS_SRC, "tc", &["qdisc", "show", "dev", "vA"]).expect("tc");
            assert!(qdisc.contains("tbf"), "{qdisc}");
            pair.ping_ms().expect("ping through the emulated link");

            // The delayer: the RTT through it is the delay, as ACKs are not delayed.
            pair.set_wan(&Wan {
                rate: None,
                delay_ms: 30.0,
                loss: 0.0,
            })
            .expect("wan with delay");
            let delayed = pair.ping_ms().expect("ping through the delayer");
            assert!(
                (30.0..45.0).contains(&delayed),
                "RTT {delayed} ms with 30 ms delay (veth alone: {rtt} ms)"
            );
            pair.clear_wan();
            assert!(pair.delayer.is_none());
            let after = pair.ping_ms().expect("ping after clearing");
            assert!(after < 20.0, "RTT {after} ms after clearing the delay");
        }
        let left = existing().expect("list");
        assert!(!left.iter().any(|n| n == NS_SRC || n == NS_DST), "{left:?}");
    }
}
