//! A shared-memory region (memfd + `MAP_SHARED`), as a Plasma store's arena is: the peers
//! keep their source and destination bytes here so that their private memory (`RssAnon`)
//! is comparable with a Plasma Stream server's.

use std::io;

/// A writable memfd mapping of a fixed length, unmapped and closed on drop.
pub struct SharedRegion {
    ptr: *mut u8,
    len: usize,
    fd: libc::c_int,
}

// SAFETY: the region is plain memory owned by this value; access goes through &/&mut self.
unsafe impl Send for SharedRegion {}

impl SharedRegion {
    /// Creates a zero-filled region of `len` bytes (at least 1). Pages are allocated lazily,
    /// on first touch.
    pub fn new(len: usize) -> io::Result<Self> {
        Self::map(len, 0)
    }

    /// Like [`SharedRegion::new`], with every page allocated up front (`MAP_POPULATE`), so that
    /// writing into it later costs no page faults: a warm store arena.
    pub fn new_populated(len: usize) -> io::Result<Self> {
        Self::map(len, libc::MAP_POPULATE)
    }

    fn map(len: usize, extra_flags: libc::c_int) -> io::Result<Self> {
        let len = len.max(1);
        // SAFETY: the name is a valid C string; flags are plain constants.
        let fd = unsafe { libc::memfd_create(c"plasma-stream-bench".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fail = |fd| {
            let e = io::Error::last_os_error();
            // SAFETY: fd was returned by memfd_create above and is closed once.
            unsafe { libc::close(fd) };
            e
        };
        // SAFETY: fd is a valid memfd.
        if unsafe { libc::ftruncate(fd, len as libc::off_t) } != 0 {
            return Err(fail(fd));
        }
        // SAFETY: maps `len` bytes of a file that is exactly `len` bytes long.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | extra_flags,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(fail(fd));
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
            fd,
        })
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr..ptr+len is a live mapping owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// So that a region can own the memory behind `Bytes` (`Bytes::from_owner`): zero-copy
/// slices of it for a sender that needs `'static` buffers.
impl AsRef<[u8]> for SharedRegion {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping created in `new` and closes its fd, once.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
            libc::close(self.fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::rss_anon_of;

    #[test]
    fn writes_land_in_shared_not_private_memory() {
        let me = std::process::id();
        let before = rss_anon_of(me).unwrap_or(0);
        let mut r = SharedRegion::new(64 << 20).expect("memfd");
        r.as_mut_slice()
            .iter_mut()
            .step_by(4096)
            .for_each(|b| *b = 7);
        assert!(r.as_slice().iter().step_by(4096).all(|b| *b == 7));
        let after = rss_anon_of(me).unwrap_or(u64::MAX);
        // 64 MiB touched, but private memory barely moved (other tests run in parallel
        // threads, so allow some slack).
        assert!(after < before + (32 << 20), "before {before} after {after}");
    }
}
