//! Rust Plasma client vs pyarrow 11's own client, same store, same run.
//!
//! Starts pyarrow's real `plasma_store`, then for 4 KiB and 16 MiB objects measures
//! - create + write + seal (digest included; data copied from a prepared buffer), and
//! - get + read + release (read = copy the data out of shared memory),
//!
//! first with [`PlasmaClient`] (blocking, one connection), then with [`StorePool`] (the async
//! façade the server uses), then with pyarrow's client doing the same work in a Python script.
//! Each figure is the median over rounds of the mean time per object.
//!
//! Run: `cargo bench -p plasma-store --bench plasma_client` (needs the pyarrow 11 venv).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use plasma_store::{ObjectId, ObjectStore, PlasmaClient, StorePool};

const ROUNDS: usize = 5;
const CASES: [(&str, usize, usize); 2] = [("4KiB", 4096, 2000), ("16MiB", 16 << 20, 24)];

fn id(round: usize, size: usize, i: usize) -> ObjectId {
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(&(size as u64).to_le_bytes());
    id[8..12].copy_from_slice(&(round as u32).to_le_bytes());
    id[12..16].copy_from_slice(&(i as u32).to_le_bytes());
    id[16] = 0xEE;
    ObjectId(id)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Figures {
    create_us: f64,
    get_us: f64,
}

fn bench_blocking(client: &mut PlasmaClient, size: usize, count: usize) -> Figures {
    let source = support::pattern(size, 3);
    let mut sink = vec![0u8; size];
    let (mut creates, mut gets) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let ids: Vec<ObjectId> = (0..count).map(|i| id(round, size, i)).collect();
        let start = Instant::now();
        for &oid in &ids {
            let mut object = client.create(oid, size as u64, 0).expect("create");
            object.data_mut().copy_from_slice(&source);
            client.seal(object).expect("seal");
        }
        creates.push(start.elapsed().as_secs_f64() * 1e6 / count as f64);
        let start = Instant::now();
        for &oid in &ids {
            let got = client
                .get(&[oid], Some(Duration::ZERO))
                .expect("get")
                .pop()
                .flatten()
                .expect("object present");
            sink.copy_from_slice(&got.data);
            drop(got);
        }
        client.flush_releases().expect("release");
        gets.push(start.elapsed().as_secs_f64() * 1e6 / count as f64);
        assert_eq!(sink, source);
        client.delete(&ids).expect("delete");
    }
    Figures {
        create_us: median(creates),
        get_us: median(gets),
    }
}

fn bench_pool(
    pool: &StorePool,
    rt: &tokio::runtime::Runtime,
    size: usize,
    count: usize,
) -> Figures {
    let source = support::pattern(size, 4);
    let mut sink = vec![0u8; size];
    let (mut creates, mut gets) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for round in 0..ROUNDS {
            let ids: Vec<ObjectId> = (0..count).map(|i| id(round + 100, size, i)).collect();
            let start = Instant::now();
            for &oid in &ids {
                let mut object = pool.create(oid, size as u64, 0).await.expect("create");
                object.data_mut().copy_from_slice(&source);
                let digest = plasma_store::digest::object_digest(&source, b"");
                object.seal(digest).await.expect("seal");
            }
            creates.push(start.elapsed().as_secs_f64() * 1e6 / count as f64);
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
            gets.push(start.elapsed().as_secs_f64() * 1e6 / count as f64);
            assert_eq!(sink, source);
            // Releases are sent in the background; retry the delete until none is in use.
            pool.delete(ids).await.expect("delete");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    Figures {
        create_us: median(creates),
        get_us: median(gets),
    }
}

const PY_BENCH: &str = r#"
import json, time, statistics
client = plasma.connect(sys.argv[1])
rounds = int(sys.argv[2])
out = {}
for case in sys.argv[3:]:
    name, size, count = case.split(':')
    size, count = int(size), int(count)
    source = bytes((i * 131 + 3) % 251 for i in range(min(size, 251))) * (size // 251 + 1)
    source = source[:size]
    creates, gets = [], []
    for r in range(rounds):
        ids = [plasma.ObjectID(size.to_bytes(8, 'little') + (r + 200).to_bytes(4, 'little')
                               + i.to_bytes(4, 'little') + b'\xee\0\0\0') for i in range(count)]
        t = time.perf_counter()
        for oid in ids:
            buf = client.create(oid, size)
            pa.FixedSizeBufferWriter(buf).write(source)
            client.seal(oid)
            del buf
        creates.append((time.perf_counter() - t) * 1e6 / count)
        t = time.perf_counter()
        for oid in ids:
            [buf] = client.get_buffers([oid], timeout_ms=0)
            sink = buf.to_pybytes()
            del buf
        gets.append((time.perf_counter() - t) * 1e6 / count)
        assert sink == source
        client.delete(ids)
    out[name] = {"create_us": statistics.median(creates), "get_us": statistics.median(gets)}
print(json.dumps(out))
"#;

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let store = support::start_pyarrow_store(1_000_000_000);
    let mut client = PlasmaClient::connect(&store.socket).expect("connect");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pool = rt
        .block_on(StorePool::connect(&store.socket, 2, Duration::from_secs(5)))
        .expect("pool");

    let mut rows = Vec::new();
    for (name, size, count) in CASES {
        // Warm up: map the segment, fault in pages.
        bench_blocking(&mut client, size, count.min(4));
        let rust = bench_blocking(&mut client, size, count);
        let pooled = bench_pool(&pool, &rt, size, count);
        rows.push((name, size, count, rust, pooled));
    }

    let rounds = ROUNDS.to_string();
    let mut args = vec![store.socket.to_str().expect("utf-8 path"), rounds.as_str()];
    let cases: Vec<String> = CASES
        .iter()
        .map(|(n, s, c)| format!("{n}:{s}:{c}"))
        .collect();
    args.extend(cases.iter().map(String::as_str));
    let py = support::run_python(PY_BENCH, &args);
    let py: serde_json::Value = serde_json::from_str(py.trim()).expect("python output is JSON");

    println!(
        "\nPlasma client benchmark (pyarrow 11 plasma_store, median of {ROUNDS} rounds, µs per object)"
    );
    println!(
        "{:<7} {:<24} {:>12} {:>12} {:>12} {:>10}",
        "size", "operation", "rust", "rust pool", "pyarrow", "py/rust"
    );
    for (name, size, count, rust, pooled) in rows {
        let py_create = py[name]["create_us"].as_f64().unwrap_or(f64::NAN);
        let py_get = py[name]["get_us"].as_f64().unwrap_or(f64::NAN);
        let gbps = |us: f64| size as f64 / us / 1e3;
        for (op, r, p, y) in [
            (
                "create+write+seal",
                rust.create_us,
                pooled.create_us,
                py_create,
            ),
            ("get+read+release", rust.get_us, pooled.get_us, py_get),
        ] {
            println!(
                "{:<7} {:<24} {:>12.2} {:>12.2} {:>12.2} {:>9.2}x   ({count} objects/round; rust {:.2} GB/s, pyarrow {:.2} GB/s)",
                name, op, r, p, y, y / r, gbps(r), gbps(y)
            );
        }
    }
}
