//! Child processes of the harness: started directly or inside a network namespace
//! (`ip netns exec NS PROGRAM`, which execs PROGRAM in place, so the PID we sample is the
//! program's), and always stopped when their guard drops; and the CPU time they spend
//! (`utime + stime` from `/proc/PID/stat`).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::BufReader;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;

/// A command for `program`, inside namespace `ns` when given.
pub fn command_in(ns: Option<&str>, program: impl AsRef<OsStr>) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// This harness's own executable (peers run as its `peer` subcommands). From a test binary:
/// the `plasma-stream-bench` built beside it.
pub fn this_exe() -> Result<std::path::PathBuf, BenchError> {
    let exe = std::env::current_exe()?;
    if exe.file_name().is_some_and(|n| n == "plasma-stream-bench") {
        return Ok(exe);
    }
    crate::sibling_binary("plasma-stream-bench").ok_or_else(|| {
        BenchError::Setup("plasma-stream-bench binary not built (cargo build --bins)".into())
    })
}

/// A running child that is terminated (SIGTERM, then SIGKILL) when dropped.
pub struct ChildGuard {
    pub name: String,
    child: Child,
}

impl ChildGuard {
    /// Spawns `cmd` with stdout piped and stdin closed; stderr goes to `stderr_to`
    /// (inherited when `None`).
    pub fn spawn(
        name: impl Into<String>,
        mut cmd: Command,
        stderr_to: Option<std::fs::File>,
    ) -> Result<Self, BenchError> {
        let name = name.into();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        // If the harness dies (Ctrl-C, kill), its servers and peers die with it instead of
        // holding ports and GiBs of store memory. (Children are started from the main thread,
        // whose exit is what the kernel watches.)
        // SAFETY: prctl is async-signal-safe and touches only the child being started.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        match stderr_to {
            Some(f) => cmd.stderr(f),
            None => cmd.stderr(Stdio::inherit()),
        };
        let child = cmd
            .spawn()
            .map_err(|e| BenchError::Setup(format!("starting {name}: {e}")))?;
        Ok(Self { name, child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdout, line-buffered (once; later calls get `None`).
    pub fn take_stdout(&mut self) -> Option<BufReader<ChildStdout>> {
        self.child.stdout.take().map(BufReader::new)
    }

    /// Waits up to `timeout` for the child to exit; `Ok(None)` if it is still running.
    pub fn wait_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<std::process::ExitStatus>, BenchError> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if !self.is_running() {
            return;
        }
        // SAFETY: signals our own child by its pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        if matches!(self.wait_timeout(grace), Ok(Some(_))) {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// `utime + stime` in clock ticks from the text of a `/proc/PID/stat` (fields 14 and 15;
/// counted after the `)` that ends the command name, which may itself hold spaces or `)`).
/// For a process this is the sum over all its threads, those that exited included.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // state is field 3, utime field 14
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds (user + system, all threads) a process has used so far; `None` if it is gone.
/// The resolution is one clock tick (`sysconf(_SC_CLK_TCK)`, 10 ms on Linux).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_cpu_ticks(&stat)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / if hz > 0 { hz as f64 } else { 100.0 })
}

/// CPU seconds of the calling thread so far (`getrusage(RUSAGE_THREAD)`, µs resolution): for
/// a receiver that runs on a thread of the harness itself.
pub fn thread_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The CPU time of named processes over a section: [`CpuMeter::start`] reads each one's
/// `utime + stime`, [`CpuMeter::finish`] reads them again and returns the differences
/// (seconds, by name). A process that cannot be read at either end is left out.
pub struct CpuMeter {
    before: Vec<(String, u32, f64)>,
}

impl CpuMeter {
    pub fn start(targets: Vec<(String, u32)>) -> Self {
        let before = targets
            .into_iter()
            .filter_map(|(name, pid)| cpu_secs(pid).map(|c| (name, pid, c)))
            .collect();
        Self { before }
    }

    pub fn finish(self) -> BTreeMap<String, f64> {
        self.before
            .into_iter()
            .filter_map(|(name, pid, c0)| cpu_secs(pid).map(|c1| (name, (c1 - c0).max(0.0))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_commands_wrap_ip_netns_exec() {
        let c = command_in(Some("tb"), "/bin/true");
        assert_eq!(c.get_program(), "ip");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(args, ["netns", "exec", "tb", "/bin/true"]);
        assert_eq!(command_in(None, "/bin/true").get_program(), "/bin/true");
    }

    #[test]
    fn cpu_ticks_from_proc_stat() {
        // Fields 14 and 15 (utime 250, stime 50), with a command name holding ") (".
        let stat = "4242 (plasma) (srv) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(300));
        assert_eq!(parse_stat_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn cpu_meter_sees_a_busy_child() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "i=0; while [ $i -lt 5000000 ]; do i=$((i+1)); done"]);
        let mut g = ChildGuard::spawn("busy", cmd, None).expect("spawn");
        let meter = CpuMeter::start(vec![("busy".into(), g.pid())]);
        std::thread::sleep(Duration::from_millis(300));
        let used = meter.finish();
        g.stop(Duration::from_secs(2));
        assert!(used.get("busy").is_some_and(|s| *s > 0.0), "{used:?}");
        let t0 = thread_cpu_secs();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(std::hint::black_box(x) != 1 || thread_cpu_secs() > t0);
        assert!(thread_cpu_secs() > t0);
    }

    #[test]
    fn guard_stops_a_running_child() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut g = ChildGuard::spawn("sleep", cmd, None).expect("spawn");
        assert!(g.is_running());
        let t = Instant::now();
        g.stop(Duration::from_secs(2));
        assert!(!g.is_running());
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
