//! Rust Plasma client vs pyarrow 11's own client, same store, same run.
//!
//! Starts pyarrow's real `plasma_store`, then for 4 KiB and 16 MiB objects measures
//! - create + write + seal (data copied from a prepared buffer, digest included): with the
//!   digest computed by `seal` over the written object (what pyarrow does), and computed while
//!   writing, chunk by chunk (what the stream server's receiver does; the pool row uses this);
//! - get + read + release (read = copy the data out of shared memory).
//!
//! Systems: [`PlasmaClient`] (blocking, one connection), [`StorePool`] (the async façade the
//! server uses, 2 connections), and pyarrow's client in a Python process driven over a pipe.
//! Rounds are interleaved (each round runs every system once) so the noise of a shared machine
//! spreads over all of them; each figure is the median over rounds of the mean µs per object.
//!
//! Run: `cargo bench -p plasma-store --bench plasma_client` (needs the pyarrow 11 venv).

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plasma_store::digest::Digester;
use plasma_store::{ObjectId, ObjectStore, PlasmaClient, StorePool};

const ROUNDS: usize = 11;
const CASES: [(&str, usize, usize); 2] = [("4KiB", 4096, 2000), ("16MiB", 16 << 20, 24)];

/// How much a streaming writer copies (and hashes) at a time.
const WRITE_CHUNK: usize = 256 * 1024;

fn id(system: u8, round: usize, size: usize, i: usize) -> ObjectId {
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(&(size as u64).to_le_bytes());
    id[8..12].copy_from_slice(&(round as u32).to_le_bytes());
    id[12..16].copy_from_slice(&(i as u32).to_le_bytes());
    id[16] = system;
    ObjectId(id)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn per_object_us(start: Instant, count: usize) -> f64 {
    start.elapsed().as_secs_f64() * 1e6 / count as f64
}

/// Copies `source` into `dest` chunk by chunk, hashing each chunk while it is in cache.
fn write_hashing(dest: &mut [u8], source: &[u8]) -> [u8; 8] {
    let mut digester = Digester::new(source.len() as u64);
    for (to, from) in dest.chunks_mut(WRITE_CHUNK).zip(source.chunks(WRITE_CHUNK)) {
        to.copy_from_slice(from);
        digester.update(from);
    }
    digester.finish(b"")
}

/// Per-round samples of one system for one case: (create, create streaming, get), µs/object.
#[derive(Default)]
struct Samples {
    create: Vec<f64>,
    create_streaming: Vec<f64>,
    get: Vec<f64>,
}

fn round_blocking(
    client: &mut PlasmaClient,
    source: &[u8],
    sink: &mut [u8],
    round: usize,
    count: usize,
    samples: &mut Samples,
) {
    let size = source.len();
    let ids: Vec<ObjectId> = (0..count).map(|i| id(1, round, size, i)).collect();
    let start = Instant::now();
    for &oid in &ids {
        let mut object = client.create(oid, size as u64, 0).expect("create");
        let digest = write_hashing(object.data_mut(), source);
        client.seal_with_digest(object, digest).expect("seal");
    }
    samples.create_streaming.push(per_object_us(start, count));
    client.delete(&ids).expect("delete");

    let ids: Vec<ObjectId> = (0..count).map(|i| id(2, round, size, i)).collect();
    let start = Instant::now();
    for &oid in &ids {
        let mut object = client.create(oid, size as u64, 0).expect("create");
        object.data_mut().copy_from_slice(source);
        client.seal(object).expect("seal");
    }
    samples.create.push(per_object_us(start, count));

    let start = Instant::now();
    for &oid in &ids {
        let got = client
            .get(&[oid], Some(Duration::ZERO))
            .expect("get")
            .pop()
            .flatten()
            .expect("object present");
        sink.copy_from_slice(&got.data);
    }
    client.flush_releases().expect("release");
    samples.get.push(per_object_us(start, count));
    assert_eq!(sink, source);
    client.delete(&ids).expect("delete");
}

fn round_pool(
    pool: &StorePool,
    rt: &tokio::runtime::Runtime,
    source: &[u8],
    sink: &mut [u8],
    round: usize,
    count: usize,
    samples: &mut Samples,
) {
    let size = source.len();
    rt.block_on(async {
        let ids: Vec<ObjectId> = (0..count).map(|i| id(3, round, size, i)).collect();
        let start = Instant::now();
        for &oid in &ids {
            let mut object = pool.create(oid, size as u64, 0).await.expect("create");
            let digest = write_hashing(object.data_mut(), source);
            object.seal(digest).await.expect("seal");
        }
        samples.create_streaming.push(per_object_us(start, count));
        let start = Instant::now();
        for &oid in &ids {
            let got = pool
                .get(vec![oid], Duration::ZERO)
                .await
                .expect("get")
                .pop()
                .flatten()
                .expect("object present");
            sink.copy_from_slice(&got.data);
        }
        samples.get.push(per_object_us(start, count));
        assert_eq!(sink, source);
        // Releases go out in the background; a delete of an object still held is scheduled
        // and completes at the release.
        pool.delete(ids).await.expect("delete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
}

/// pyarrow's side: one Python process, one round per request line, one JSON line back.
const PY_BENCH: &str = r#"
import json, time
client = plasma.connect(sys.argv[1])
sources = {}
for line in sys.stdin:
    size, count, r = (int(x) for x in line.split())
    if size not in sources:
        block = bytes((i * 131 + 3) % 251 for i in range(251))
        sources[size] = (block * (size // 251 + 1))[:size]
    source = sources[size]
    ids = [plasma.ObjectID(size.to_bytes(8, 'little') + r.to_bytes(4, 'little')
                           + i.to_bytes(4, 'little') + b'\x04\0\0\0') for i in range(count)]
    t = time.perf_counter()
    for oid in ids:
        buf = client.create(oid, size)
        pa.FixedSizeBufferWriter(buf).write(source)
        client.seal(oid)
        del buf
    create = (time.perf_counter() - t) * 1e6 / count
    t = time.perf_counter()
    for oid in ids:
        [buf] = client.get_buffers([oid], timeout_ms=0)
        sink = buf.to_pybytes()
        del buf
    get = (time.perf_counter() - t) * 1e6 / count
    assert sink == source
    client.delete(ids)
    print(json.dumps({"create_us": create, "get_us": get}), flush=True)
"#;

fn main() {
    // `cargo bench` passes `--bench`; there are no options.
    let store = support::start_pyarrow_store(1_000_000_000);
    let socket = store
        .socket
        .to_str()
        .expect("utf-8 socket path")
        .to_string();
    let mut client = PlasmaClient::connect(&store.socket).expect("connect");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pool = rt
        .block_on(StorePool::connect(&store.socket, 2, Duration::from_secs(5)))
        .expect("pool");
    let mut python = Command::new(support::python())
        .arg("-c")
        .arg(format!(
            "import sys, warnings\nwarnings.simplefilter('ignore')\nimport pyarrow as pa\nimport pyarrow.plasma as plasma\n{PY_BENCH}"
        ))
        .arg(&socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    let mut py_in = python.stdin.take().expect("python stdin");
    let mut py_out = BufReader::new(python.stdout.take().expect("python stdout"));
    let mut py_round = |size: usize, count: usize, round: usize, samples: &mut Samples| {
        writeln!(py_in, "{size} {count} {round}").expect("write to python");
        let mut line = String::new();
        py_out.read_line(&mut line).expect("read from python");
        let v: serde_json::Value = serde_json::from_str(&line).expect("python answers JSON");
        samples
            .create
            .push(v["create_us"].as_f64().unwrap_or(f64::NAN));
        samples.get.push(v["get_us"].as_f64().unwrap_or(f64::NAN));
    };

    let mut results = Vec::new();
    for (name, size, count) in CASES {
        let source = support::pattern(size, 3);
        let mut sink = vec![0u8; size];
        let (mut rust, mut pooled, mut py) =
            (Samples::default(), Samples::default(), Samples::default());
        // Warm-up round (maps the segment, faults pages in), not counted.
        let mut scratch = Samples::default();
        round_blocking(&mut client, &source, &mut sink, 999, count, &mut scratch);
        round_pool(&pool, &rt, &source, &mut sink, 999, count, &mut scratch);
        py_round(size, count, 999, &mut scratch);
        for round in 0..ROUNDS {
            round_blocking(&mut client, &source, &mut sink, round, count, &mut rust);
            round_pool(&pool, &rt, &source, &mut sink, round, count, &mut pooled);
            py_round(size, count, round, &mut py);
        }
        results.push((name, size, count, rust, pooled, py));
    }
    drop(py_in);
    let _ = python.wait();

    println!(
        "\nPlasma client benchmark: pyarrow 11 plasma_store, {ROUNDS} interleaved rounds, median µs per object"
    );
    println!(
        "{:<6} {:<38} {:>10} {:>10} {:>10} {:>8}",
        "size", "operation", "rust", "rust pool", "pyarrow", "py/rust"
    );
    for (name, size, count, rust, pooled, py) in results {
        let py_create = median(py.create);
        let rows = [
            (
                "create+write+seal",
                median(rust.create),
                f64::NAN,
                py_create,
            ),
            (
                "create+write+seal, hash while writing",
                median(rust.create_streaming),
                median(pooled.create_streaming),
                py_create,
            ),
            (
                "get+read+release",
                median(rust.get),
                median(pooled.get),
                median(py.get),
            ),
        ];
        for (op, r, p, y) in rows {
            let cell = |x: f64| {
                if x.is_nan() {
                    "-".to_string()
                } else {
                    format!("{x:.1}")
                }
            };
            println!(
                "{:<6} {:<38} {:>10} {:>10} {:>10} {:>7.2}x   ({count}/round; rust {:.2} GB/s, pyarrow {:.2} GB/s)",
                name,
                op,
                cell(r),
                cell(p),
                cell(y),
                y / r,
                size as f64 / r / 1e3,
                size as f64 / y / 1e3
            );
        }
    }
}
