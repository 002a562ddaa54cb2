//! Huge count fields with no body behind them: decoders answer at once (an error, or "need
//! more"), and allocate nothing in proportion to the count.
//!
//! A counting global allocator records the largest single allocation made by the thread under
//! test (per-thread, so tests running in parallel under `cargo test` do not disturb each other).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use plasma_stream_protocol::legacy::SyncReply;
use plasma_stream_protocol::wire::{StreamRequest, SyncReport, SyncRequest};
use plasma_stream_protocol::{DecodeError, LimitError, Request};

struct CountingAllocator;

thread_local! {
    /// Largest allocation (bytes) this thread made since the last reset.
    static LARGEST_ALLOCATION: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // `try_with`: the thread-local may be gone while a thread shuts down.
    let _ = LARGEST_ALLOCATION.try_with(|largest| largest.set(largest.get().max(size)));
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `decode`, asserting it is quick and allocates less than 64 KiB in one piece.
fn bounded<T>(decode: impl FnOnce() -> T) -> T {
    LARGEST_ALLOCATION.with(|largest| largest.set(0));
    let start = Instant::now();
    let result = decode();
    let elapsed = start.elapsed();
    let largest = LARGEST_ALLOCATION.with(Cell::get);
    assert!(largest < 64 * 1024, "allocated {largest} bytes at once");
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    result
}

const HUGE: u32 = u32::MAX;

#[test]
fn quic_sync_with_u32_max_peer_requests_and_no_body() {
    let mut bytes = vec![0x01];
    bytes.extend(HUGE.to_le_bytes());
    let result = bounded(|| SyncRequest::decode(&bytes));
    assert_eq!(
        result,
        Err(DecodeError::Limit(LimitError::TooManyPeerRequests {
            count: u64::from(HUGE)
        }))
    );
    let result = bounded(|| StreamRequest::decode(&bytes));
    assert!(result.is_err());
}

#[test]
fn quic_sync_with_u32_max_ids_and_no_body() {
    let mut bytes = vec![0x01, 1, 0, 0, 0, 0x02, 0x06];
    bytes.extend([0u8; 16]);
    bytes.extend(2021u16.to_le_bytes());
    bytes.extend(HUGE.to_le_bytes());
    let result = bounded(|| SyncRequest::decode(&bytes));
    assert_eq!(
        result,
        Err(DecodeError::Limit(LimitError::TooManyIds {
            peer_request: Some(0),
            count: u64::from(HUGE)
        }))
    );
}

#[test]
fn quic_sync_with_legal_maximum_counts_and_no_body_needs_more() {
    // 1024 peer requests declared, the first declaring 65,536 IDs, none of them sent:
    // "need more", without reserving 1024 peer requests or 1.3 MB of IDs.
    let mut bytes = vec![0x01];
    bytes.extend(1024u32.to_le_bytes());
    bytes.extend([0x03, 0x04, 10, 0, 0, 1, 0xE5, 0x07]);
    bytes.extend(65_536u32.to_le_bytes());
    assert_eq!(bounded(|| SyncRequest::decode(&bytes)), Ok(None));
}

#[test]
fn quic_sync_report_with_u32_max_counts_and_no_body() {
    let result = bounded(|| SyncReport::decode(&HUGE.to_le_bytes()));
    assert!(matches!(
        result,
        Err(DecodeError::Limit(LimitError::TooManyPeerRequests { .. }))
    ));
    let mut bytes = 1u32.to_le_bytes().to_vec();
    bytes.push(0x41);
    bytes.extend(HUGE.to_le_bytes());
    let result = bounded(|| SyncReport::decode(&bytes));
    assert!(matches!(
        result,
        Err(DecodeError::Limit(LimitError::TooManyIds { .. }))
    ));
    let mut bytes = 1024u32.to_le_bytes().to_vec();
    bytes.push(0x41);
    bytes.extend(65_536u32.to_le_bytes());
    assert_eq!(bounded(|| SyncReport::decode(&bytes)), Ok(None));
}

#[test]
fn legacy_requests_with_u16_max_counts_and_no_body() {
    // The legacy counts are 16 bits: 65,535 peer requests is past the limit; 65,535 IDs is
    // legal and asks for more.
    let result = bounded(|| Request::decode_legacy(&[0x01, 0xFF, 0xFF]));
    assert!(matches!(
        result,
        Err(DecodeError::Limit(LimitError::TooManyPeerRequests { .. }))
    ));
    assert_eq!(
        bounded(|| Request::decode_legacy(&[0x02, 0xFF, 0xFF])),
        Ok(None)
    );
    assert_eq!(
        bounded(|| Request::decode_legacy(&[
            0x01, 0x00, 0x04, 0x02, 0x04, 1, 0, 1, 2, 3, 4, 0xFF, 0xFF
        ])),
        Ok(None)
    );
}

#[test]
fn legacy_sync_reply_with_huge_expected_count() {
    let result = bounded(|| SyncReply::decode(&[0x41], usize::MAX));
    assert!(result.is_err());
    assert_eq!(bounded(|| SyncReply::decode(&[0x41], 1024)), Ok(None));
}
