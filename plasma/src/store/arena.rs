//! Shared-memory arenas: anonymous memfd files that the store maps and hands to clients by fd.
//!
//! Each arena has a [`SegmentKey`] that is unique for the store's whole life (clients cache
//! their mapping by key until they disconnect, so a key is never reused). A client maps
//! `mmap_size - 8` bytes of the fd it receives; we report `mmap_size = len + 8` so that the
//! client maps exactly `len` bytes, with object offsets counted from byte 0 of the file
//! (`docs/plasma.md` §4.1, §6.2).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{FallocateFlags, MemfdFlags};

/// The int32 that identifies an arena on the wire (`store_fd`, `segment_index`, `store_fds`).
pub type SegmentKey = i32;

/// `kMmapRegionsGap`: clients map `mmap_size - 8` bytes.
pub const MMAP_SIZE_GAP: u64 = 8;

/// Page granularity used for arena lengths and hole punching.
pub const PAGE_SIZE: u64 = 4096;

/// One memfd arena, mapped read-write and shared.
///
/// Pages are populated lazily, so a large arena costs nothing until objects are written, and
/// freed ranges are handed back to the kernel with [`Arena::punch_hole`]. A store configured to
/// keep its memory resident calls [`Arena::populate`] once instead: every page is then
/// allocated, zeroed and mapped before the first object arrives.
pub struct Arena {
    key: SegmentKey,
    fd: OwnedFd,
    map: MmapRaw,
    len: u64,
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("key", &self.key)
            .field("len", &self.len)
            .finish()
    }
}

impl Arena {
    /// Creates a memfd of `len` bytes (rounded up to a page) and maps it.
    pub fn create(key: SegmentKey, len: u64) -> std::io::Result<Self> {
        let len = len
            .checked_add(PAGE_SIZE - 1)
            .map(|l| l & !(PAGE_SIZE - 1))
            .filter(|&l| l > 0)
            .ok_or_else(|| std::io::Error::other("arena length out of range"))?;
        let map_len = usize::try_from(len).map_err(std::io::Error::other)?;
        let fd = rustix::fs::memfd_create(format!("plasma-arena-{key}"), MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, len)?;
        let file = std::fs::File::from(fd);
        let map = MmapOptions::new().len(map_len).map_raw(&file)?;
        Ok(Self {
            key,
            fd: OwnedFd::from(file),
            map,
            len,
        })
    }

    pub fn key(&self) -> SegmentKey {
        self.key
    }

    /// Length of the arena file (what clients map).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true: an arena has at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `mmap_size` to report to clients for this arena.
    pub fn mmap_size(&self) -> u64 {
        self.len + MMAP_SIZE_GAP
    }

    /// The memfd, to pass to clients with SCM_RIGHTS.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Raw pointer to `offset` inside the mapping, after checking `offset + len` fits.
    ///
    /// The bytes are shared with client processes, which may write them at any time while an
    /// object is unsealed; sealed objects are never written by well-behaved clients.
    pub fn ptr(&self, offset: u64, len: u64) -> Option<*mut u8> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        let offset = usize::try_from(offset).ok()?;
        // SAFETY: offset + len <= self.len, the mapping's length, so the pointer stays inside
        // the mapping (or one past its end when len == 0).
        Some(unsafe { self.map.as_mut_ptr().add(offset) })
    }

    /// Allocates, zeroes and maps every page of the arena now, on up to `threads` threads.
    ///
    /// Why: the first write to a fresh shared-memory page faults and the kernel zeroes it. On
    /// the machines measured here that is slower than the network path (figure in
    /// `docs/benchmarks.md`, "Figures behind code defaults"), so a receive into lazily
    /// populated memory is bound by page faults (half of the receiving server's CPU in
    /// profiles). Paying it once at start-up takes it off every
    /// transfer. Uses `MADV_POPULATE_WRITE` (Linux 5.14+); on older kernels `fallocate`
    /// allocates the pages without mapping them, which still saves the zeroing.
    pub fn populate(&self, threads: usize) -> std::io::Result<()> {
        let len = usize::try_from(self.len).map_err(std::io::Error::other)?;
        let threads = threads.clamp(1, 16);
        // Whole pages per thread, so every madvise range is page-aligned.
        let pages = len / PAGE_SIZE as usize;
        let per_thread = pages.div_ceil(threads) * PAGE_SIZE as usize;
        let base = self.map.as_mut_ptr() as usize;
        let results: Vec<std::io::Result<()>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|i| i * per_thread)
                .filter(|&start| start < len)
                .map(|start| {
                    let chunk = per_thread.min(len - start);
                    scope.spawn(move || {
                        // SAFETY: [base + start, base + start + chunk) lies inside this
                        // arena's mapping (start < len, chunk <= len - start), which lives as
                        // long as `self`; populating maps pages and writes no bytes.
                        unsafe {
                            rustix::mm::madvise(
                                (base + start) as *mut std::ffi::c_void,
                                chunk,
                                rustix::mm::Advice::LinuxPopulateWrite,
                            )
                        }
                        .map_err(std::io::Error::from)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err(std::io::Error::other("populate thread panicked")))
                })
                .collect()
        });
        match results.into_iter().find(|r| r.is_err()) {
            None => Ok(()),
            Some(Err(e)) if e.raw_os_error() == Some(libc::EINVAL) => {
                rustix::fs::fallocate(&self.fd, FallocateFlags::KEEP_SIZE, 0, self.len)?;
                Ok(())
            }
            Some(other) => other,
        }
    }

    /// Gives the pages fully inside `[offset, offset + len)` back to the kernel; the file keeps
    /// its size and the range reads as zeroes afterwards. Errors are reported, not fatal: the
    /// memory simply stays populated.
    pub fn punch_hole(&self, offset: u64, len: u64) -> std::io::Result<()> {
        let start = offset.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let end = (offset.saturating_add(len) / PAGE_SIZE) * PAGE_SIZE;
        if end <= start {
            return Ok(());
        }
        rustix::fs::fallocate(
            &self.fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            start,
            end - start,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_is_shared_and_holes_read_as_zero() {
        let arena = Arena::create(7, 3 * PAGE_SIZE + 1).unwrap();
        assert_eq!(arena.len(), 4 * PAGE_SIZE);
        assert_eq!(arena.mmap_size(), 4 * PAGE_SIZE + 8);
        let p = arena.ptr(PAGE_SIZE, PAGE_SIZE).unwrap();
        unsafe { std::ptr::write_bytes(p, 0xAB, PAGE_SIZE as usize) };
        // A second mapping of the same fd sees the write (what a client does).
        let file = std::fs::File::from(arena.fd().try_clone_to_owned().unwrap());
        let other = unsafe { memmap2::Mmap::map(&file).unwrap() };
        assert_eq!(other[PAGE_SIZE as usize], 0xAB);
        arena.punch_hole(PAGE_SIZE - 10, PAGE_SIZE + 20).unwrap();
        assert_eq!(other[PAGE_SIZE as usize], 0);
        assert!(arena.ptr(4 * PAGE_SIZE, 1).is_none());
        assert!(arena.ptr(u64::MAX, 2).is_none());
    }

    /// Resident shared memory of this process, from /proc (what populating must raise).
    fn rss_shmem_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssShmem:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn populate_maps_every_page_and_keeps_it_zeroed() {
        const LEN: u64 = 64 << 20;
        let arena = Arena::create(9, LEN + 1).unwrap();
        let before = rss_shmem_kib();
        arena.populate(3).unwrap();
        let gained = rss_shmem_kib().saturating_sub(before);
        // Other tests in this process may map and drop shared memory meanwhile; the arena
        // alone accounts for LEN + one page, so require nearly all of it.
        assert!(
            gained >= (LEN >> 10) * 9 / 10,
            "populate mapped only {gained} KiB"
        );
        let last = arena.ptr(arena.len() - 1, 1).unwrap();
        assert_eq!(unsafe { *last }, 0);
    }
}
