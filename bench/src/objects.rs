//! The benchmark's objects: putting them into the source store through its Plasma socket,
//! checking a sample at the destination, and watching the destination fill up (for "half of
//! the objects done").
//!
//! Contents are cheap to make and never repeat within an object: a 1 MiB block of
//! pseudo-random bytes, copied block by block with the object's index and the block's index
//! stamped into each block's first 16 bytes. Nothing on the path compresses, so this is as
//! good as random data and fills memory at memcpy speed (an 8 GiB object takes seconds).

use std::path::Path;
use std::time::{Duration, Instant};

use plasma_store::{ObjectId, PlasmaClient};
use xxhash_rust::xxh64::xxh64;

use crate::BenchError;

const BLOCK: usize = 1 << 20;

/// The pseudo-random block every object is made from (the same in every process).
fn base_block() -> Vec<u8> {
    let mut block = vec![0u8; BLOCK];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for chunk in block.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    block
}

/// Writes object `index`'s contents into `buf` (its whole data buffer).
pub fn fill_object(buf: &mut [u8], index: u64, base: &[u8]) {
    for (block_index, chunk) in buf.chunks_mut(BLOCK).enumerate() {
        chunk.copy_from_slice(&base[..chunk.len()]);
        let mut stamp = [0u8; 16];
        stamp[..8].copy_from_slice(&index.to_le_bytes());
        stamp[8..].copy_from_slice(&(block_index as u64).to_le_bytes());
        let n = chunk.len().min(16);
        chunk[..n].copy_from_slice(&stamp[..n]);
    }
}

/// The ID of object `index` of a run: `nonce` in the first 8 bytes, the index in the next 8,
/// and a marker in the last 4 (so IDs are recognisable in logs).
pub fn object_id(nonce: u64, index: u64) -> ObjectId {
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(&nonce.to_be_bytes());
    id[8..16].copy_from_slice(&index.to_be_bytes());
    id[16..].copy_from_slice(b"bnch");
    ObjectId(id)
}

/// The indices checked at the destination: first, middle and last.
pub fn sample_indices(objects: u64) -> Vec<u64> {
    let mut v = vec![0, objects / 2, objects.saturating_sub(1)];
    v.dedup();
    v.retain(|i| *i < objects);
    v
}

/// What was put into the source store.
#[derive(Clone, Debug)]
pub struct PutObjects {
    pub ids: Vec<ObjectId>,
    pub object_size: u64,
    /// `(index, xxh64 of the data)` of the sampled objects.
    pub expected: Vec<(u64, u64)>,
}

/// Creates, fills and seals `objects` objects of `object_size` bytes in the store at `socket`.
pub fn put_objects(
    socket: &Path,
    nonce: u64,
    objects: u64,
    object_size: u64,
) -> Result<PutObjects, BenchError> {
    let mut client = PlasmaClient::connect(socket)
        .map_err(|e| BenchError::Server(format!("connecting to {}: {e}", socket.display())))?;
    let base = base_block();
    let samples = sample_indices(objects);
    let mut ids = Vec::with_capacity(objects as usize);
    let mut expected = Vec::new();
    for index in 0..objects {
        let id = object_id(nonce, index);
        let mut created = client
            .create(id, object_size, 0)
            .map_err(|e| BenchError::Server(format!("creating source object {id}: {e}")))?;
        fill_object(created.data_mut(), index, &base);
        if samples.contains(&index) {
            expected.push((index, xxh64(created.data_mut(), 0)));
        }
        client
            .seal(created)
            .map_err(|e| BenchError::Server(format!("sealing source object {id}: {e}")))?;
        ids.push(id);
    }
    Ok(PutObjects {
        ids,
        object_size,
        expected,
    })
}

/// Checks the sampled objects at the destination: present, right size, same XXH64.
pub fn verify(socket: &Path, put: &PutObjects) -> Result<(), BenchError> {
    let mut client = PlasmaClient::connect(socket)
        .map_err(|e| BenchError::Server(format!("connecting to {}: {e}", socket.display())))?;
    for (index, digest) in &put.expected {
        let id = put.ids[*index as usize];
        let got = client
            .get(&[id], Some(Duration::from_secs(5)))
            .map_err(|e| BenchError::Server(format!("reading back {id}: {e}")))?;
        let object =
            got.into_iter().next().flatten().ok_or_else(|| {
                BenchError::Server(format!("object {id} missing at the destination"))
            })?;
        if object.data.len() as u64 != put.object_size {
            return Err(BenchError::Server(format!(
                "object {id}: {} bytes at the destination, {} sent",
                object.data.len(),
                put.object_size
            )));
        }
        let actual = xxh64(&object.data, 0);
        if actual != *digest {
            return Err(BenchError::Server(format!(
                "object {id}: XXH64 {actual:016x} at the destination, {digest:016x} sent"
            )));
        }
    }
    Ok(())
}

/// Watches a destination store until all `ids` are sealed there (or `stop` is set), noting
/// when half of them were. Asks `contains` for each missing ID every `interval`, so use it
/// for up to a few hundred objects.
pub struct Progress {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<ProgressResult>>,
}

/// What the watcher saw.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProgressResult {
    /// Seconds from the watcher's start until half the objects were sealed.
    pub half_secs: Option<f64>,
    /// Objects sealed when it stopped.
    pub done: u64,
}

impl Progress {
    pub fn start(socket: &Path, ids: Vec<ObjectId>, interval: Duration) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let socket = socket.to_path_buf();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut result = ProgressResult::default();
            let Ok(mut client) = PlasmaClient::connect(&socket) else {
                return result;
            };
            let half = (ids.len() as u64).div_ceil(2).max(1);
            let mut missing = ids;
            loop {
                let stopping = flag.load(Ordering::Relaxed);
                let mut still = Vec::with_capacity(missing.len());
                for id in missing {
                    match client.contains(id) {
                        Ok(true) => result.done += 1,
                        Ok(false) => still.push(id),
                        Err(_) => return result,
                    }
                }
                missing = still;
                if result.half_secs.is_none() && result.done >= half {
                    result.half_secs = Some(start.elapsed().as_secs_f64());
                }
                if missing.is_empty() || stopping {
                    return result;
                }
                std::thread::sleep(interval);
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching (after one last look) and returns what was seen.
    pub fn finish(mut self) -> ProgressResult {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_differ_and_blocks_differ() {
        let base = base_block();
        let mut a = vec![0u8; 3 * BLOCK + 100];
        let mut b = a.clone();
        fill_object(&mut a, 1, &base);
        fill_object(&mut b, 2, &base);
        assert_ne!(xxh64(&a, 0), xxh64(&b, 0));
        assert_ne!(a[..BLOCK], a[BLOCK..2 * BLOCK]);
        // Deterministic: the same index gives the same bytes.
        let mut c = vec![0u8; a.len()];
        fill_object(&mut c, 1, &base);
        assert_eq!(a, c);
        // Tiny objects work too.
        let mut tiny = [0u8; 5];
        fill_object(&mut tiny, 7, &base);
        assert_eq!(tiny, [7, 0, 0, 0, 0]);
    }

    #[test]
    fn ids_are_unique_per_index_and_nonce() {
        assert_ne!(object_id(1, 2), object_id(1, 3));
        assert_ne!(object_id(1, 2), object_id(2, 2));
        assert!(object_id(0xabc, 5).to_string().ends_with("626e6368"));
    }

    #[test]
    fn samples_first_middle_last() {
        assert_eq!(sample_indices(1), [0]);
        assert_eq!(sample_indices(2), [0, 1]);
        assert_eq!(sample_indices(64), [0, 32, 63]);
        assert!(sample_indices(0).is_empty());
    }

    /// Put, watch and verify against a real embedded store process (`plasma-store` binary).
    #[test]
    fn put_watch_and_verify_against_the_embedded_store() {
        let Some(store_bin) = crate::sibling_binary("plasma-store") else {
            panic!("plasma-store binary not built (cargo build -p plasma-store --bins)");
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("store.sock");
        let mut cmd = std::process::Command::new(store_bin);
        cmd.args(["-m", "64MiB", "-s"]).arg(&socket);
        let _store = crate::procs::ChildGuard::spawn("plasma-store", cmd, None).expect("store");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let ids: Vec<ObjectId> = (0..8).map(|i| object_id(9, i)).collect();
        let watch = Progress::start(&socket, ids, Duration::from_millis(5));
        let put = put_objects(&socket, 9, 8, 1 << 20).expect("put");
        assert_eq!(put.ids.len(), 8);
        assert_eq!(put.expected.len(), 3);
        verify(&socket, &put).expect("verify");
        let seen = watch.finish();
        assert_eq!(seen.done, 8);
        assert!(seen.half_secs.is_some());
        // A wrong digest is caught.
        let mut bad = put.clone();
        bad.expected[0].1 ^= 1;
        assert!(verify(&socket, &bad).is_err());
    }
}
