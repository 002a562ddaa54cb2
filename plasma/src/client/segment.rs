//! The client's view of the store's shared-memory segments (`docs/plasma.md` §4.1): one
//! read-write `MAP_SHARED` mapping per segment key, of `mmap_size - 8` bytes, kept for as long
//! as anything uses it.
//!
//! A [`Segment`] is reference-counted: the connection's table holds one `Arc`, and so does
//! every buffer handed out (created or got objects). The mapping therefore outlives the
//! connection if a `Bytes` still points into it, and is unmapped only when the last user goes.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use crate::wire::MessageType;
use crate::wire::WireError;
use crate::Error;

/// `kMmapRegionsGap`: the store reports each segment 8 bytes larger than what clients map.
pub const MMAP_REGIONS_GAP: i64 = 8;

/// One mapped segment of the store.
pub struct Segment {
    key: i32,
    map: MmapRaw,
}

impl Segment {
    /// Maps `mmap_size - 8` bytes of the passed fd read-write and shared. The fd is closed on
    /// return (the mapping stays), as the C++ client does.
    pub fn map(key: i32, fd: OwnedFd, mmap_size: i64, message: MessageType) -> Result<Self, Error> {
        let len = mmap_size
            .checked_sub(MMAP_REGIONS_GAP)
            .filter(|&l| l > 0)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| {
                Error::MalformedReply(WireError::Inconsistent {
                    message,
                    detail: format!("segment {key}: impossible mmap_size {mmap_size}"),
                })
            })?;
        // A segment file shorter than the mapping would turn reads past its end into SIGBUS.
        let file_len = rustix::fs::fstat(&fd)
            .map_err(std::io::Error::from)?
            .st_size;
        if u64::try_from(file_len).map_or(true, |f| f < len as u64) {
            return Err(Error::MalformedReply(WireError::Inconsistent {
                message,
                detail: format!(
                    "segment {key}: file of {file_len} bytes is shorter than mmap_size - 8 = {len}"
                ),
            }));
        }
        let map = MmapOptions::new().len(len).map_raw(&fd)?;
        Ok(Segment { key, map })
    }

    pub fn key(&self) -> i32 {
        self.key
    }

    /// Mapped length in bytes.
    pub fn mapped_len(&self) -> usize {
        self.map.len()
    }

    /// Checks that `[offset, offset + len)` lies inside the mapping and returns it as `usize`s.
    pub fn check_range(&self, offset: u64, len: u64) -> Option<(usize, usize)> {
        let end = offset.checked_add(len)?;
        if end > self.map.len() as u64 {
            return None;
        }
        Some((usize::try_from(offset).ok()?, usize::try_from(len).ok()?))
    }

    /// Pointer to byte `offset` of the mapping. Callers check the range first.
    pub(crate) fn ptr_at(&self, offset: usize) -> *mut u8 {
        // `wrapping_add` keeps this free of UB even for a bad offset; dereferencing is what the
        // callers guard with `check_range`.
        self.map.as_mut_ptr().wrapping_add(offset)
    }
}

/// The per-connection table of mapped segments, keyed by the store's segment key. Never pruned:
/// the store will not resend an fd it believes this connection already has.
#[derive(Default)]
pub struct SegmentTable {
    segments: HashMap<i32, Arc<Segment>>,
}

impl SegmentTable {
    pub fn get(&self, key: i32) -> Option<&Arc<Segment>> {
        self.segments.get(&key)
    }

    pub fn contains(&self, key: i32) -> bool {
        self.segments.contains_key(&key)
    }

    pub fn insert(&mut self, segment: Segment) -> Arc<Segment> {
        let segment = Arc::new(segment);
        self.segments.insert(segment.key(), Arc::clone(&segment));
        segment
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}
