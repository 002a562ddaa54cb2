//! Offset allocator for one arena: first-fit over a free list ordered by offset, coalescing
//! neighbours on free.
//!
//! It knows nothing about memory, only about byte ranges `[offset, offset + len)` inside an
//! arena of a fixed length. Every range it hands out starts on a [`ALIGNMENT`]-byte boundary and
//! is a multiple of [`ALIGNMENT`] long, like the real store's 64-byte aligned dlmalloc blocks.

use std::collections::BTreeMap;

/// Alignment (and granularity) of every allocation, in bytes. Plasma clients and Arrow readers
/// expect 64-byte aligned object data.
pub const ALIGNMENT: u64 = 64;

/// Rounds `len` up to the allocation granularity; a zero-byte request still takes one unit so
/// that every live object has its own offset. `None` on overflow.
pub fn allocation_size(len: u64) -> Option<u64> {
    let len = len.max(1);
    len.checked_add(ALIGNMENT - 1).map(|l| l & !(ALIGNMENT - 1))
}

/// Free-space bookkeeping for one arena.
#[derive(Debug)]
pub struct OffsetAllocator {
    /// Free ranges: offset → length. Never two adjacent entries (they are merged on free).
    free: BTreeMap<u64, u64>,
    free_bytes: u64,
    managed_bytes: u64,
}

impl OffsetAllocator {
    /// Manages `[start, end)`, both rounded inward to [`ALIGNMENT`].
    pub fn new(start: u64, end: u64) -> Self {
        let start = start
            .checked_next_multiple_of(ALIGNMENT)
            .unwrap_or(u64::MAX);
        let end = end & !(ALIGNMENT - 1);
        let mut free = BTreeMap::new();
        let len = end.saturating_sub(start);
        if len > 0 {
            free.insert(start, len);
        }
        Self {
            free,
            free_bytes: len,
            managed_bytes: len,
        }
    }

    /// First-fit allocation of `size` bytes (a multiple of [`ALIGNMENT`], from
    /// [`allocation_size`]). Returns the offset, or `None` if no free range is large enough.
    pub fn allocate(&mut self, size: u64) -> Option<u64> {
        debug_assert!(size > 0 && size.is_multiple_of(ALIGNMENT));
        let (&offset, &len) = self.free.iter().find(|(_, &len)| len >= size)?;
        self.free.remove(&offset);
        if len > size {
            self.free.insert(offset + size, len - size);
        }
        self.free_bytes -= size;
        Some(offset)
    }

    /// Returns `[offset, offset + size)` to the free list and merges it with free neighbours.
    /// Returns the whole free range that now contains it (useful for punching holes).
    pub fn free(&mut self, offset: u64, size: u64) -> (u64, u64) {
        let mut start = offset;
        let mut len = size;
        if let Some((&prev_off, &prev_len)) = self.free.range(..offset).next_back() {
            if prev_off + prev_len == offset {
                self.free.remove(&prev_off);
                start = prev_off;
                len += prev_len;
            }
        }
        if let Some(&next_len) = self.free.get(&(offset + size)) {
            self.free.remove(&(offset + size));
            len += next_len;
        }
        self.free.insert(start, len);
        self.free_bytes += size;
        (start, len)
    }

    /// Bytes currently free.
    pub fn free_bytes(&self) -> u64 {
        self.free_bytes
    }

    /// Whether nothing is allocated.
    pub fn is_empty(&self) -> bool {
        self.free_bytes == self.managed_bytes
    }

    /// The free ranges that overlap `[start, end)`, clipped to it.
    pub fn free_within(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let first = self
            .free
            .range(..=start)
            .next_back()
            .map_or(start, |(&o, _)| o);
        self.free
            .range(first..end)
            .filter_map(|(&o, &l)| {
                let (s, e) = (o.max(start), (o + l).min(end));
                (s < e).then_some((s, e - s))
            })
            .collect()
    }

    /// The largest single free range (what the next allocation can get at most).
    pub fn largest_free(&self) -> u64 {
        self.free.values().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_first_fit_and_coalesce() {
        let mut a = OffsetAllocator::new(64, 64 * 100);
        let x = a.allocate(64).unwrap();
        let y = a.allocate(128).unwrap();
        let z = a.allocate(64).unwrap();
        assert_eq!((x, y, z), (64, 128, 256));
        assert_eq!(a.free(y, 128), (128, 128));
        // First fit reuses the hole.
        assert_eq!(a.allocate(64), Some(128));
        a.free(128, 64);
        a.free(x, 64);
        let (start, len) = a.free(z, 64);
        assert_eq!(start, 64);
        assert_eq!(len, 64 * 99);
        assert!(a.is_empty());
        assert_eq!(a.largest_free(), 64 * 99);
    }

    #[test]
    fn free_within_clips_to_the_window() {
        let mut a = OffsetAllocator::new(0, 64 * 10);
        let x = a.allocate(64 * 3).unwrap();
        let _y = a.allocate(64).unwrap();
        a.free(x, 64 * 3);
        assert_eq!(a.free_within(64, 64 * 6), vec![(64, 128), (256, 128)]);
        assert_eq!(a.free_within(192, 256), Vec::<(u64, u64)>::new());
    }

    #[test]
    fn exhausted_arena_refuses() {
        let mut a = OffsetAllocator::new(0, 256);
        assert_eq!(a.allocate(256), Some(0));
        assert_eq!(a.allocate(64), None);
        a.free(0, 256);
        assert_eq!(a.allocate(128), Some(0));
        assert_eq!(a.free_bytes(), 128);
    }

    #[test]
    fn allocation_size_rounds_up() {
        assert_eq!(allocation_size(0), Some(64));
        assert_eq!(allocation_size(64), Some(64));
        assert_eq!(allocation_size(65), Some(128));
        assert_eq!(allocation_size(u64::MAX), None);
    }

    proptest::proptest! {
        #[test]
        fn never_overlaps(ops in proptest::collection::vec((1u64..2000, proptest::bool::ANY), 1..200)) {
            let mut a = OffsetAllocator::new(64, 1 << 16);
            let mut live: Vec<(u64, u64)> = Vec::new();
            for (len, do_free) in ops {
                if do_free && !live.is_empty() {
                    let (o, s) = live.remove(len as usize % live.len());
                    a.free(o, s);
                } else if let Some(size) = allocation_size(len) {
                    if let Some(o) = a.allocate(size) {
                        proptest::prop_assert_eq!(o % ALIGNMENT, 0);
                        for &(lo, ls) in &live {
                            proptest::prop_assert!(o + size <= lo || lo + ls <= o);
                        }
                        live.push((o, size));
                    }
                }
            }
            for (o, s) in live.drain(..) { a.free(o, s); }
            proptest::prop_assert!(a.is_empty());
        }
    }
}
