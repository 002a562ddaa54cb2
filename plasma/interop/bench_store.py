"""Benchmark: create + write + seal + get + release through pyarrow 11's Plasma client, against
our `plasma-store` and the real `plasma_store`, in one run with interleaved rounds.

Usage (from the workspace root, after `cargo build --release -p plasma-store`):
    .venv/bin/python plasma/interop/bench_store.py [--ours target/release/plasma-store]

Per iteration (timed): writer.create(id, size) -> write `size` bytes -> writer.seal(id) ->
drop the create buffer (Release) -> reader.get_buffers([id]) -> drop it (Release).
Untimed: writer.delete([id]), so the store never fills and eviction stays out of the figure.
Prints the median per-iteration time and throughput of each store per size, best of rounds.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

warnings.simplefilter("ignore")
import pyarrow as pa  # noqa: E402
import pyarrow.plasma as plasma  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import wait_for_socket  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.dirname(os.path.dirname(HERE))
CAPACITY = 1 << 30
SIZES = [(4 << 10, 3000), (16 << 20, 60)]


def start(cmd, sock):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_socket(sock, proc)
    return proc


def run_round(sock, size, iters, payload, tag):
    writer, reader = plasma.connect(sock), plasma.connect(sock)
    times = []
    for i in range(iters):
        object_id = plasma.ObjectID((b"%04d%08d" % (tag, i)).ljust(20, b"x"))
        t0 = time.perf_counter()
        buf = writer.create(object_id, size)
        pa.FixedSizeBufferWriter(buf).write(payload)
        writer.seal(object_id)
        del buf
        [got] = reader.get_buffers([object_id], timeout_ms=1000)
        assert got is not None and got.size == size
        del got
        times.append(time.perf_counter() - t0)
        writer.delete([object_id])
    writer.disconnect()
    reader.disconnect()
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default=os.path.join(WORKSPACE, "target", "release", "plasma-store"))
    ap.add_argument(
        "--real", default=os.path.join(os.path.dirname(sys.executable), "plasma_store")
    )
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="plasma-bench-") as d:
        socks = {"ours": os.path.join(d, "ours.sock"), "real": os.path.join(d, "real.sock")}
        procs = {
            "ours": start([args.ours, "-m", str(CAPACITY), "-s", socks["ours"]], socks["ours"]),
            "real": start([args.real, "-m", str(CAPACITY), "-s", socks["real"]], socks["real"]),
        }
        try:
            results = {}
            tag = 0
            for size, iters in SIZES:
                payload = os.urandom(size)
                for r in range(args.rounds):
                    for kind in ("ours", "real") if r % 2 == 0 else ("real", "ours"):
                        tag += 1
                        med = run_round(socks[kind], size, iters, payload, tag)
                        results.setdefault((size, kind), []).append(med)
            print(f"{'size':>8} {'store':>5} {'median us/op':>13} {'ops/s':>9} {'MiB/s':>8}")
            for size, _ in SIZES:
                for kind in ("ours", "real"):
                    best = min(results[(size, kind)])
                    label = f"{size >> 10}KiB" if size < (1 << 20) else f"{size >> 20}MiB"
                    print(
                        f"{label:>8} {kind:>5} {best * 1e6:13.1f} {1 / best:9.0f} "
                        f"{size / best / (1 << 20):8.1f}"
                    )
        finally:
            for p in procs.values():
                p.terminate()
                p.wait(timeout=10)


if __name__ == "__main__":
    main()
