//! Faulting in a created object's pages ahead of the bytes that will fill it.
//!
//! A fresh object's pages are not mapped yet: the first write to each one page-faults, and the
//! kernel zeroes it. Profiles of a 1 GiB receive put about a third of the server's CPU there,
//! inside the copy loop. Asking the kernel to populate the range (`MADV_POPULATE_WRITE`) on a
//! blocking thread moves that work beside the copy instead of inside it, on an idle core.
//!
//! This never writes to the object: populating only maps (zeroed or existing) pages, so a
//! racing write from the receiver keeps its bytes, and a range freed meanwhile is unaffected
//! (the call fails harmlessly on an unmapped range). Failures are ignored: it is a hint.

/// Objects smaller than this are not worth a thread hop.
pub const PREFAULT_MIN: usize = 8 * 1024 * 1024;

/// Starts populating the pages of `data` on a blocking thread (Linux; a no-op elsewhere).
pub fn populate_in_background(data: &mut [u8]) {
    if data.len() < PREFAULT_MIN {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // Page-align inwards: madvise needs an aligned start; the edges fault normally.
        const PAGE: usize = 4096;
        let start = data.as_mut_ptr() as usize;
        let aligned = start.div_ceil(PAGE) * PAGE;
        let end = (start + data.len()) / PAGE * PAGE;
        if end <= aligned {
            return;
        }
        let (address, len) = (aligned, end - aligned);
        tokio::task::spawn_blocking(move || {
            // SAFETY: MADV_POPULATE_WRITE only maps pages of the caller's existing mapping (it
            // writes nothing); on a range no longer mapped it returns ENOMEM, which we ignore.
            unsafe {
                libc::madvise(address as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE);
            }
        });
    }
}
