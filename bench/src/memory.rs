//! Peak private memory of running processes: `RssAnon` from `/proc/PID/status`, sampled.
//!
//! Why `RssAnon`: a Plasma server maps its store's shared memory (memfd arenas), and those
//! pages show up in `RssShmem`, not in `RssAnon`. `RssAnon` is the memory the process itself
//! allocated (heap, buffers, stacks), which is what "the server never holds a whole object in
//! its own memory" is about. Sampling misses short spikes between two samples; the interval
//! (default 10 ms) is the resolution callers may rely on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Parses the `RssAnon:` line of a `/proc/PID/status` text into bytes.
///
/// Returns `None` when the line is missing or malformed (e.g. a kernel thread, or a process
/// that already exited and left an empty file).
pub fn parse_rss_anon(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    let mut fields = line["RssAnon:".len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    let multiplier = match fields.next() {
        Some("kB") | Some("KB") | Some("kb") => 1024,
        Some("B") | None => 1,
        Some("mB") | Some("MB") => 1024 * 1024,
        Some(_) => return None,
    };
    value.checked_mul(multiplier)
}

/// The current `RssAnon` of a process in bytes, or `None` if it cannot be read (gone, no such
/// PID).
pub fn rss_anon_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss_anon(&text)
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo_field(&text, "MemAvailable:")
}

/// A `NAME:   123 kB` field of `/proc/meminfo` (or `/proc/PID/status`) in bytes.
pub fn parse_meminfo_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let mut fields = line[name.len()..].split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// A background thread that samples the `RssAnon` of named processes and keeps each one's
/// peak. Stop it with [`PeakSampler::finish`] to get the peaks (bytes, by name).
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    peaks: Arc<Mutex<BTreeMap<String, u64>>>,
    thread: Option<JoinHandle<()>>,
}

impl PeakSampler {
    /// Starts sampling `(name, pid)` pairs every `interval`.
    pub fn start(targets: Vec<(String, u32)>, interval: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new(Mutex::new(BTreeMap::new()));
        let thread = {
            let stop = stop.clone();
            let peaks = peaks.clone();
            std::thread::spawn(move || loop {
                for (name, pid) in &targets {
                    if let Some(rss) = rss_anon_of(*pid) {
                        if let Ok(mut map) = peaks.lock() {
                            let entry = map.entry(name.clone()).or_insert(0);
                            *entry = (*entry).max(rss);
                        }
                    }
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(interval);
            })
        };
        Self {
            stop,
            peaks,
            thread: Some(thread),
        }
    }

    /// Takes one last sample, stops the thread and returns each process's peak in bytes.
    pub fn finish(mut self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peaks.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Drop for PeakSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tplasma-stream-s\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmRSS:\t  123456 kB\nRssAnon:\t    5432 kB\nRssFile:\t    7000 kB\nRssShmem:\t 1048576 kB\n";

    #[test]
    fn parses_rss_anon_in_kib() {
        assert_eq!(parse_rss_anon(STATUS), Some(5432 * 1024));
    }

    #[test]
    fn does_not_confuse_rss_shmem_with_rss_anon() {
        let only_shmem = "VmRSS:\t 1 kB\nRssShmem:\t 99 kB\n";
        assert_eq!(parse_rss_anon(only_shmem), None);
    }

    #[test]
    fn reads_meminfo_fields() {
        let text =
            "MemTotal:       24000000 kB\nMemAvailable:   23253688 kB\nHugePages_Total:       0\n";
        assert_eq!(
            parse_meminfo_field(text, "MemAvailable:"),
            Some(23_253_688 * 1024)
        );
        assert_eq!(parse_meminfo_field(text, "HugePages_Total:"), Some(0));
        assert_eq!(parse_meminfo_field(text, "Nope:"), None);
        assert!(mem_available().is_some_and(|b| b > 0));
    }

    #[test]
    fn rejects_malformed_lines() {
        assert_eq!(parse_rss_anon("RssAnon:\tlots kB\n"), None);
        assert_eq!(parse_rss_anon("RssAnon:\t12 parsecs\n"), None);
        assert_eq!(parse_rss_anon(""), None);
    }

    #[test]
    fn samples_this_process() {
        let me = std::process::id();
        assert!(rss_anon_of(me).is_some_and(|b| b > 0));
        let sampler = PeakSampler::start(vec![("me".into(), me)], Duration::from_millis(1));
        // Allocate and touch 32 MiB so the peak must reflect it.
        let big = vec![1u8; 32 << 20];
        std::thread::sleep(Duration::from_millis(30));
        let peaks = sampler.finish();
        assert!(big.iter().step_by(4096).all(|b| *b == 1));
        assert!(peaks["me"] >= 32 << 20, "peak {} too small", peaks["me"]);
    }
}
