"""Arrow Flight peer of the Plasma Stream benchmark: `do_get` throughput on loopback.

The harness (bench/src/peers/flight.rs) embeds this file, writes it to a temporary
directory and runs it with the project's pyarrow 11 in two processes, so that server and
client each have their own interpreter (and GIL), as two Flight users on two hosts would:

  flight_peer.py serve --batch-bytes B --row-bytes R [--cert PEM --key PEM]
      builds one record batch (one binary column of R-byte rows, about B bytes of values),
      listens on 127.0.0.1 on a port the kernel picks and prints `listening PORT`.
      A ticket is the number of times to send that batch, in ASCII decimal.

  flight_peer.py get --port P --batches N --runs K [--ca PEM] [--server-pid PID]
      one untimed do_get of a single batch (connection and TLS handshake), then K timed
      do_get calls of N batches each; prints `run I bytes=VALUE_BYTES secs=SECONDS
      cpu_dst=S [cpu_src=S]` per run: CPU seconds (user + system, /proc/PID/stat) of this
      process and of the server's during the timed call.

Only loopback is ever used: the server binds 127.0.0.1 and the client dials localhost (the
name the harness's certificate is issued to).
"""

import argparse
import os
import sys
import time

import pyarrow as pa
import pyarrow.flight as flight


def one_batch(batch_bytes, row_bytes):
    """A batch of distinct rows (random bytes, so nothing downstream can compress them)."""
    rows = max(1, batch_bytes // row_bytes)
    values = [os.urandom(row_bytes) for _ in range(rows)]
    return pa.record_batch([pa.array(values, type=pa.binary())], names=["payload"])


class RepeatServer(flight.FlightServerBase):
    """Answers every do_get with the same batch, as many times as the ticket asks."""

    def __init__(self, location, batch, **kwargs):
        super().__init__(location, **kwargs)
        self._batch = batch

    def do_get(self, context, ticket):
        try:
            count = int(ticket.ticket.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise flight.FlightServerError("ticket is not a batch count")
        if count < 0:
            raise flight.FlightServerError("negative batch count")
        batch = self._batch
        return flight.GeneratorStream(batch.schema, (batch for _ in range(count)))


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def serve(args):
    batch = one_batch(args.batch_bytes, args.row_bytes)
    options = {}
    if args.cert:
        scheme = "grpc+tls"
        options["tls_certificates"] = [(read_file(args.cert), read_file(args.key))]
    else:
        scheme = "grpc+tcp"
    server = RepeatServer(f"{scheme}://127.0.0.1:0", batch, **options)
    # The harness waits for this line: the port is only known once the server is bound.
    print(f"listening {server.port}", flush=True)
    server.serve()


def value_bytes(column):
    """Payload bytes of a binary column: the span of its value offsets (exact, no padding)."""
    if len(column) == 0:
        return 0
    # pyarrow 11's BinaryArray has no `offsets` accessor: read the int32 offsets buffer,
    # minding the array's own offset into it (a slice shares its parent's buffers).
    offsets = memoryview(column.buffers()[1]).cast("i")
    return offsets[column.offset + len(column)] - offsets[column.offset]


def fetch(client, batches):
    """One do_get of `batches` batches; returns the payload bytes received."""
    received = 0
    for chunk in client.do_get(flight.Ticket(str(batches).encode("ascii"))):
        received += value_bytes(chunk.data.column(0))
    return received


def cpu_secs(pid):
    """utime + stime of a process (all threads) in seconds, from /proc/PID/stat; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(args):
    if args.ca:
        client = flight.FlightClient(
            f"grpc+tls://localhost:{args.port}", tls_root_certs=read_file(args.ca)
        )
    else:
        client = flight.FlightClient(f"grpc+tcp://localhost:{args.port}")
    # Untimed: gRPC connects lazily, so the first call pays for TCP and TLS set-up.
    fetch(client, 1)
    me = os.getpid()
    for run in range(1, args.runs + 1):
        cpu0 = (cpu_secs(me), args.server_pid and cpu_secs(args.server_pid))
        start = time.perf_counter()
        received = fetch(client, args.batches)
        secs = time.perf_counter() - start
        cpu1 = (cpu_secs(me), args.server_pid and cpu_secs(args.server_pid))
        line = f"run {run} bytes={received} secs={secs:.6f}"
        for name, a, b in (("cpu_dst", cpu0[0], cpu1[0]), ("cpu_src", cpu0[1], cpu1[1])):
            if a is not None and b is not None:
                line += f" {name}={b - a:.6f}"
        print(line, flush=True)
    client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--batch-bytes", type=int, required=True)
    s.add_argument("--row-bytes", type=int, required=True)
    s.add_argument("--cert")
    s.add_argument("--key")
    g = sub.add_parser("get")
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--batches", type=int, required=True)
    g.add_argument("--runs", type=int, default=1)
    g.add_argument("--ca")
    g.add_argument("--server-pid", type=int, default=0)
    args = parser.parse_args()
    if args.role == "serve":
        if bool(args.cert) != bool(args.key):
            parser.error("--cert and --key go together")
        if args.batch_bytes <= 0 or args.row_bytes <= 0:
            parser.error("--batch-bytes and --row-bytes must be positive")
        serve(args)
    else:
        if args.batches < 0 or args.runs < 1:
            parser.error("--batches must be >= 0 and --runs >= 1")
        get(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
