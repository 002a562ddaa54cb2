//! Mapping a created object's pages ahead of the bytes that will fill it.
//!
//! A received object's pages are not in this server's page tables yet: the first write to
//! each 4 KiB page traps, and for fresh store memory the kernel also zeroes it. Profiles of a
//! 1 GiB receive put 22–34 % of the receiving server's CPU in those faults even when the
//! store's pages already existed (a long-running store), because a write fault on a shared
//! mapping maps one page at a time (docs/benchmarks.md, "Profiles of the path beside pyarrow's
//! store"). `MADV_POPULATE_WRITE` maps a whole range in one call: measured outside the server,
//! 0.20 CPU s per GiB against 0.46 for the faults where the pages exist, and no more than
//! the faults where they are fresh.
//!
//! Two ways, chosen by `--prefault`: [`populate_window`] inline, just before a window is
//! filled (the default: no extra thread, so it never takes a core the transfer needs), and
//! [`populate_in_background`] for the whole object on a blocking thread beside the copy.
//!
//! This never writes to the object: populating only maps (zeroed or existing) pages, so a
//! racing write from the receiver keeps its bytes, and a range freed meanwhile is unaffected
//! (the call fails harmlessly on an unmapped range). Failures are ignored: it is a hint.

/// Objects smaller than this are not worth a thread hop.
pub const PREFAULT_MIN: usize = 8 * 1024 * 1024;

/// Windows smaller than this are left to fault: a few pages cost less than the call.
const WINDOW_MIN: usize = 64 * 1024;

const PAGE: usize = 4096;

/// The page-aligned part of `data` (inwards: madvise needs an aligned start; the edges fault
/// normally), as an address and a length.
fn aligned_range(data: &mut [u8]) -> Option<(usize, usize)> {
    let start = data.as_mut_ptr() as usize;
    let aligned = start.div_ceil(PAGE) * PAGE;
    let end = (start + data.len()) / PAGE * PAGE;
    (end > aligned).then(|| (aligned, end - aligned))
}

/// Maps the pages of `window` now, on this thread (Linux; a no-op elsewhere).
pub fn populate_window(window: &mut [u8]) {
    if window.len() < WINDOW_MIN {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Some((address, len)) = aligned_range(window) {
        // SAFETY: MADV_POPULATE_WRITE only maps pages of this mapping, which `window`
        // borrows mutably for the call (it writes nothing into them).
        unsafe {
            libc::madvise(address as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE);
        }
    }
}

/// Starts populating the pages of `data` on a blocking thread (Linux; a no-op elsewhere).
pub fn populate_in_background(data: &mut [u8]) {
    if data.len() < PREFAULT_MIN {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Some((address, len)) = aligned_range(data) {
        tokio::task::spawn_blocking(move || {
            // SAFETY: MADV_POPULATE_WRITE only maps pages of the caller's existing mapping (it
            // writes nothing); on a range no longer mapped it returns ENOMEM, which we ignore.
            unsafe {
                libc::madvise(address as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE);
            }
        });
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Pages of `len` bytes at `address` that are in this process's page tables.
    fn resident_pages(address: *mut libc::c_void, len: usize) -> usize {
        let mut map = vec![0u8; len / PAGE];
        // SAFETY: `address..address+len` is one mapping of ours; `map` has a byte per page.
        let rc = unsafe { libc::mincore(address, len, map.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        map.iter().filter(|&&b| b & 1 == 1).count()
    }

    #[test]
    fn populate_window_maps_the_window_and_nothing_beyond_it_and_writes_nothing() {
        const LEN: usize = 8 << 20;
        // A shared mapping, as a store's segment is: each page faults on first write.
        // SAFETY: a fresh anonymous mapping, unmapped below.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(address, libc::MAP_FAILED);
        // SAFETY: the mapping is LEN bytes, readable and writable, and only used here.
        let data = unsafe { std::slice::from_raw_parts_mut(address.cast::<u8>(), LEN) };
        assert_eq!(resident_pages(address, LEN), 0);

        let (window, rest) = data.split_at_mut(4 << 20);
        populate_window(window);
        assert_eq!(resident_pages(address, LEN), (4 << 20) / PAGE);
        // A window too small to be worth a call is left alone.
        populate_window(rest.get_mut(..WINDOW_MIN / 2).unwrap());
        assert_eq!(resident_pages(address, LEN), (4 << 20) / PAGE);
        // (Reading faults pages in, so contents are checked last.)
        assert!(
            window.iter().all(|&b| b == 0),
            "populating wrote into the window"
        );

        // SAFETY: unmapping what we mapped; `data` is not used after this.
        unsafe { libc::munmap(address, LEN) };
    }
}
