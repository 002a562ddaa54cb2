//! A network namespace joined to this one by a veth pair, for tests that need a link they can
//! cut: servers started inside it (`ServerConfig::in_namespace`) are reached at
//! [`Namespace::inner_addr`], and `iptables` inside it drops their packets on demand. Needs
//! root, `ip` and `iptables`; the namespace and its veth pair go away when dropped. Only the
//! namespace's own addresses (10.201.N.0/30) are ever targets.

use std::net::IpAddr;
use std::process::Command;

/// Which packets [`Namespace::cut`] drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
    }
}

/// A namespace `psN` with `10.201.N.2` inside and `10.201.N.1` on this side.
pub struct Namespace {
    name: String,
    outer_link: String,
    index: u8,
}

/// Runs a command, panicking with its output if it fails: a test's set-up either works or
/// says exactly what did not.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Namespace {
    /// Whether this process can create namespaces and has the tools (root, `ip`, `iptables`).
    pub fn available() -> Result<(), String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root".into());
        }
        for tool in ["ip", "iptables"] {
            if Command::new(tool).arg("--version").output().is_err() {
                return Err(format!("needs {tool}"));
            }
        }
        Ok(())
    }

    /// Creates a namespace with its own veth pair and subnet; `index` (1..=250) keeps tests
    /// that run at once apart.
    pub fn create(index: u8) -> Namespace {
        let name = format!("ps-test-{index}-{}", std::process::id());
        let outer_link = format!("psv{index}o");
        let inner_link = format!("psv{index}i");
        // Left over from a killed run with the same index: its veth goes with it.
        let _ = Command::new("ip")
            .args(["link", "del", &outer_link])
            .output();
        run("ip", &["netns", "add", &name]);
        let namespace = Namespace {
            name,
            outer_link,
            index,
        };
        let name = namespace.name.as_str();
        run(
            "ip",
            &[
                "link",
                "add",
                &namespace.outer_link,
                "type",
                "veth",
                "peer",
                "name",
                &inner_link,
            ],
        );
        run("ip", &["link", "set", &inner_link, "netns", name]);
        let outer = format!("10.201.{index}.1/30");
        let inner = format!("10.201.{index}.2/30");
        run("ip", &["addr", "add", &outer, "dev", &namespace.outer_link]);
        run("ip", &["link", "set", &namespace.outer_link, "up"]);
        namespace.exec(&["ip", "addr", "add", &inner, "dev", &inner_link]);
        namespace.exec(&["ip", "link", "set", &inner_link, "up"]);
        namespace.exec(&["ip", "link", "set", "lo", "up"]);
        namespace
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address servers inside the namespace listen on.
    pub fn inner_addr(&self) -> IpAddr {
        IpAddr::from([10, 201, self.index, 2])
    }

    /// This side's address on the link: a server that dials into the namespace over QUIC binds
    /// it (a QUIC endpoint bound to 127.0.0.1 cannot send to the namespace: EINVAL).
    pub fn outer_addr(&self) -> IpAddr {
        IpAddr::from([10, 201, self.index, 1])
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, command: &[&str]) -> String {
        let mut args = vec!["netns", "exec", self.name.as_str()];
        args.extend_from_slice(command);
        run("ip", &args)
    }

    /// Drops every packet of `protocol` into and out of the namespace until [`Namespace::restore`].
    pub fn cut(&self, protocol: Protocol) {
        for chain in ["INPUT", "OUTPUT"] {
            self.exec(&["iptables", "-I", chain, "-p", protocol.name(), "-j", "DROP"]);
        }
    }

    /// Undoes [`Namespace::cut`].
    pub fn restore(&self, protocol: Protocol) {
        for chain in ["INPUT", "OUTPUT"] {
            self.exec(&["iptables", "-D", chain, "-p", protocol.name(), "-j", "DROP"]);
        }
    }

    /// Bytes the namespace has sent over its link so far (its veth's transmit counter; what
    /// iptables dropped on the way out is not counted).
    pub fn bytes_sent(&self) -> u64 {
        // The other end's receive counter, read from this side: the same bytes.
        let path = format!("/sys/class/net/{}/statistics/rx_bytes", self.outer_link);
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot read {path}"))
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.outer_link])
            .output();
    }
}
