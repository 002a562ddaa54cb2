//! The Plasma object digest (`docs/plasma.md` §5.8), as Arrow 11's C++ client computes it and
//! pyarrow's `client.hash()` reports it.
//!
//! The digest is the little-endian u64 of XXH64 (seed 0) over:
//! - `data ‖ metadata` when the data is smaller than 1 MiB;
//! - otherwise the 72 bytes of nine XXH64 values (eight equal 64-byte-multiple chunks of the
//!   data, then the remaining suffix), each hashed separately, followed by the metadata.
//!
//! The store never checks the digest, but other clients compare it, so it must match bit for
//! bit. [`Digester`] computes the same value incrementally while data arrives in order (the
//! stream server hashes each received chunk as it copies it into the store).

use xxhash_rust::xxh64::{xxh64, Xxh64};

/// Objects with at least this much data use the chunked scheme.
pub const CHUNKED_THRESHOLD: u64 = 1 << 20;

/// Number of equal chunks in the chunked scheme (the suffix is a ninth piece).
const CHUNKS: usize = 8;

/// XXH64 seed used by Arrow.
const SEED: u64 = 0;

/// Objects at least this large hash their nine pieces on several threads when the machine has
/// [`PARALLEL_MIN_CORES`] or more (the C++ client always uses 8 threads); the result is
/// identical. On a busy 2-vCPU machine one thread measured faster than several, so small
/// machines hash sequentially (figure in `docs/benchmarks.md`, "Figures behind code defaults").
const PARALLEL_THRESHOLD: usize = 4 << 20;

/// Fewest cores for which [`object_digest`] hashes on several threads.
const PARALLEL_MIN_CORES: usize = 4;

/// The digest of a whole object, as pyarrow's `client.hash()` returns it.
pub fn object_digest(data: &[u8], metadata: &[u8]) -> [u8; 8] {
    if data.len() >= PARALLEL_THRESHOLD {
        if let Some(digest) = parallel_digest(data, metadata) {
            return digest;
        }
    }
    let mut digester = Digester::new(data.len() as u64);
    digester.update(data);
    digester.finish(metadata)
}

/// The chunked digest with the nine pieces spread over the available cores. `None` on small
/// machines (or when threads cannot be spawned): the caller hashes sequentially.
fn parallel_digest(data: &[u8], metadata: &[u8]) -> Option<[u8; 8]> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if threads < PARALLEL_MIN_CORES {
        return None;
    }
    parallel_digest_on(data, metadata, threads)
}

fn parallel_digest_on(data: &[u8], metadata: &[u8], threads: usize) -> Option<[u8; 8]> {
    let threads = threads.min(CHUNKS + 1);
    if threads < 2 {
        return None;
    }
    let chunk = chunk_len(data.len() as u64) as usize;
    let piece = |i: usize| -> &[u8] {
        let start = (i * chunk).min(data.len());
        let end = if i < CHUNKS {
            ((i + 1) * chunk).min(data.len())
        } else {
            data.len()
        };
        &data[start..end]
    };
    let mut hashes = [0u64; CHUNKS + 1];
    let spawned = std::thread::scope(|scope| {
        // Thread t hashes pieces t, t + threads, ...; this thread takes t = 0.
        let workers: Vec<_> = (1..threads)
            .map(|t| {
                std::thread::Builder::new().spawn_scoped(scope, move || {
                    (t..=CHUNKS)
                        .step_by(threads)
                        .map(|i| (i, xxh64(piece(i), SEED)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for i in (0..=CHUNKS).step_by(threads) {
            hashes[i] = xxh64(piece(i), SEED);
        }
        let mut ok = true;
        for worker in workers {
            match worker.map(|w| w.join()) {
                Ok(Ok(results)) => {
                    for (i, h) in results {
                        hashes[i] = h;
                    }
                }
                _ => ok = false,
            }
        }
        ok
    });
    if !spawned {
        return None;
    }
    let mut pieces = [0u8; (CHUNKS + 1) * 8];
    for (slot, h) in pieces.chunks_exact_mut(8).zip(hashes) {
        slot.copy_from_slice(&h.to_le_bytes());
    }
    let mut hash = Xxh64::new(SEED);
    hash.update(&pieces);
    hash.update(metadata);
    Some(hash.digest().to_le_bytes())
}

/// Length of each of the eight chunks for an object of `data_size` bytes (chunked scheme).
fn chunk_len(data_size: u64) -> u64 {
    ((data_size / 64) / CHUNKS as u64) * 64
}

/// Computes the Plasma digest from data fed in order, in pieces of any size.
///
/// Feed exactly `data_size` bytes with [`Digester::update`], then call [`Digester::finish`]
/// with the metadata. Feeding more or fewer bytes gives a digest no other client will agree
/// with (debug builds assert).
pub struct Digester {
    data_size: u64,
    fed: u64,
    state: DigestState,
}

enum DigestState {
    /// Small object: one running hash over data then metadata.
    Whole(Xxh64),
    /// Large object: the finished hashes of completed pieces and the running one.
    Chunked {
        chunk_len: u64,
        done: Vec<u64>,
        current: Xxh64,
    },
}

impl Digester {
    /// A digester for an object whose data is `data_size` bytes long.
    pub fn new(data_size: u64) -> Self {
        let state = if data_size < CHUNKED_THRESHOLD {
            DigestState::Whole(Xxh64::new(SEED))
        } else {
            DigestState::Chunked {
                chunk_len: chunk_len(data_size),
                done: Vec::with_capacity(CHUNKS + 1),
                current: Xxh64::new(SEED),
            }
        };
        Self {
            data_size,
            fed: 0,
            state,
        }
    }

    /// Feeds the next bytes of data.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.fed += bytes.len() as u64;
        debug_assert!(self.fed <= self.data_size, "fed more data than data_size");
        match &mut self.state {
            DigestState::Whole(hash) => hash.update(bytes),
            DigestState::Chunked {
                chunk_len,
                done,
                current,
            } => {
                let mut position = self.fed - bytes.len() as u64;
                while !bytes.is_empty() {
                    // The first eight pieces end at multiples of chunk_len; the suffix runs to
                    // the end of the data.
                    if done.len() < CHUNKS {
                        let piece_end = (done.len() as u64 + 1) * *chunk_len;
                        let room = (piece_end - position) as usize;
                        let take = room.min(bytes.len());
                        current.update(&bytes[..take]);
                        position += take as u64;
                        bytes = &bytes[take..];
                        if position == piece_end {
                            done.push(current.digest());
                            current.reset(SEED);
                        }
                    } else {
                        current.update(bytes);
                        bytes = &[];
                    }
                }
            }
        }
    }

    /// Finishes with the metadata and returns the 8 digest bytes.
    pub fn finish(self, metadata: &[u8]) -> [u8; 8] {
        debug_assert_eq!(self.fed, self.data_size, "fed a different amount of data");
        let value = match self.state {
            DigestState::Whole(mut hash) => {
                hash.update(metadata);
                hash.digest()
            }
            DigestState::Chunked { done, current, .. } => {
                let mut pieces = [0u8; (CHUNKS + 1) * 8];
                for (slot, piece) in pieces.chunks_exact_mut(8).zip(
                    done.iter()
                        .copied()
                        .chain(std::iter::once(current.digest())),
                ) {
                    slot.copy_from_slice(&piece.to_le_bytes());
                }
                let mut hash = Xxh64::new(SEED);
                hash.update(&pieces);
                hash.update(metadata);
                hash.digest()
            }
        };
        value.to_le_bytes()
    }
}

/// The chunked digest computed directly (used to check [`Digester`]).
#[cfg(test)]
fn chunked_reference(data: &[u8], metadata: &[u8]) -> [u8; 8] {
    let chunk = chunk_len(data.len() as u64) as usize;
    let mut pieces = Vec::with_capacity(72 + metadata.len());
    for i in 0..CHUNKS {
        pieces.extend_from_slice(&xxh64(&data[i * chunk..(i + 1) * chunk], SEED).to_le_bytes());
    }
    pieces.extend_from_slice(&xxh64(&data[CHUNKS * chunk..], SEED).to_le_bytes());
    pieces.extend_from_slice(metadata);
    xxh64(&pieces, SEED).to_le_bytes()
}

/// XXH64 of a whole buffer, seed 0 (exposed for tests and tools).
pub fn xxh64_seed0(bytes: &[u8]) -> u64 {
    xxh64(bytes, SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_object_matches_the_documented_value() {
        // docs/plasma.md §7: "0123456789" + "META" → ebd8e21ffb378c5e (pyarrow hash()).
        assert_eq!(
            hex::encode(object_digest(b"0123456789", b"META")),
            "ebd8e21ffb378c5e"
        );
        // §7: "hello plasma" + "content-type=raw" → ce82aae4234f66d6.
        assert_eq!(
            hex::encode(object_digest(b"hello plasma", b"content-type=raw")),
            "ce82aae4234f66d6"
        );
    }

    #[test]
    fn incremental_matches_one_shot_at_every_split() {
        let data: Vec<u8> = (0..(3 << 20) + 77u32).map(|i| (i * 31 + 7) as u8).collect();
        let metadata = b"meta";
        let expected = chunked_reference(&data, metadata);
        assert_eq!(object_digest(&data, metadata), expected);
        let big: Vec<u8> = (0..(9 << 20) + 5u32).map(|i| (i * 7) as u8).collect();
        for threads in [2, 3, 8, 9, 64] {
            assert_eq!(
                parallel_digest_on(&big, b"x", threads),
                Some(chunked_reference(&big, b"x"))
            );
        }
        assert_eq!(parallel_digest_on(&big, b"x", 1), None);
        assert_eq!(object_digest(&big, b"x"), chunked_reference(&big, b"x"));
        for piece in [1usize, 63, 4096, 65_536, 1 << 20, 3_000_001] {
            let mut d = Digester::new(data.len() as u64);
            for chunk in data.chunks(piece) {
                d.update(chunk);
            }
            assert_eq!(d.finish(metadata), expected, "piece size {piece}");
        }
    }

    #[test]
    fn threshold_boundary() {
        let below = vec![5u8; (1 << 20) - 1];
        let at = vec![5u8; 1 << 20];
        let mut whole = Xxh64::new(0);
        whole.update(&below);
        whole.update(b"m");
        assert_eq!(object_digest(&below, b"m"), whole.digest().to_le_bytes());
        assert_eq!(object_digest(&at, b"m"), chunked_reference(&at, b"m"));
        assert_eq!(object_digest(b"", b""), xxh64(b"", 0).to_le_bytes());
    }
}
