//! The server's use of glibc's allocator: keep freed memory while transfers run (they free
//! and allocate receive buffers at line rate), and give it back after a SYNC so large that
//! keeping it would leave hundreds of MB with the process for good.

/// Objects in one SYNC from which its memory is handed back once it is answered: below it, a
/// SYNC's state (about 100 bytes an object) is small beside what transfers keep anyway.
pub const GIVE_BACK_ABOVE_OBJECTS: usize = 100_000;

/// Tells glibc's allocator to keep freed heap memory instead of handing it back to the kernel
/// at once. Transfers allocate and free receive buffers (quinn's datagram batches, TLS reads)
/// at line rate; with glibc's defaults (trim above 128 KiB free) the pages went back to the
/// kernel and came back zero-filled, page fault by page fault (the figures are in
/// docs/benchmarks.md, "Figures behind code defaults"). Freed memory stays reusable by the
/// process; peak use is unchanged, only the return of memory after a peak is delayed until
/// the next trim ([`give_back_freed_memory`]).
///
/// Call before any other thread exists.
pub fn keep_freed_heap_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const TRIM_THRESHOLD: libc::c_int = 256 << 20;
        const MMAP_THRESHOLD: libc::c_int = 4 << 20;
        // SAFETY: mallopt only changes allocator tuning; the caller calls it before any other
        // thread exists. A refused setting (return 0) leaves glibc's default, which is harmless.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

/// Hands the free pages of every allocator arena back to the kernel. The state of a SYNC of
/// millions of objects (ID lists, claims, outcomes: each piece under the mmap threshold, so on
/// the heap) is freed when it is answered, but stays with the process under
/// [`keep_freed_heap_memory`]'s threshold; measured in docs/operations.md ("Exposure to the
/// internet"). Costs a walk over the heap, so only after large SYNCs.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe (it locks each arena).
    unsafe {
        libc::malloc_trim(0);
    }
}
