//! Child processes of the harness: started directly or inside a network namespace
//! (`ip netns exec NS PROGRAM`, which execs PROGRAM in place, so the PID we sample is the
//! program's), and always stopped when their guard drops.

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
