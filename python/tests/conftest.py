"""Real servers for the tests: two plasma-stream-server processes with embedded stores.

The server binary: $PLASMA_STREAM_SERVER, else <repo>/target/debug/plasma-stream-server
(`cargo build -p plasma-stream-server`; CI builds it before these tests run).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]


def server_binary() -> Path:
    path = Path(os.environ.get("PLASMA_STREAM_SERVER", REPO / "target/debug/plasma-stream-server"))
    if not path.exists():
        pytest.fail(f"{path} not found: run `cargo build -p plasma-stream-server` first")
    return path


class Server(NamedTuple):
    address: str
    fingerprint: str
    socket: str
    process: subprocess.Popen
    log: Path

    def store(self):
        from pyarrow import plasma

        return plasma.connect(self.socket)


def start_server(directory: Path, name: str, *extra: str) -> Server:
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / f"{name}.ready"
    sock = directory / f"{name}.sock"
    log = directory / f"{name}.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [
                str(server_binary()),
                "--embedded-store", "256MiB",
                "-s", str(sock),
                "-p", "0",
                "--bind", "127.0.0.1",
                "--insecure",
                "--ready-file", str(ready),
                # A test that leaves a SYNC running (timeouts, Ctrl-C) must not hold up
                # the end of the run.
                "--drain-timeout", "1",
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        text = ready.read_text() if ready.exists() else ""
        if text.strip():
            address, fingerprint = text.split()[:2]
            return Server(address, fingerprint, str(sock), process, log)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{name} did not start:\n{log.read_text()}")
        time.sleep(0.02)


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ps-python-") as directory:
        yield Path(directory)


@pytest.fixture(scope="session")
def servers(workdir: Path) -> Iterator[List[Server]]:
    """Two servers, [destination, source], for the whole run (each test uses fresh IDs)."""
    started = [start_server(workdir, "a"), start_server(workdir, "b")]
    yield started
    for server in started:
        stop(server)


@pytest.fixture
def dest(servers: List[Server]) -> Server:
    return servers[0]


@pytest.fixture
def source(servers: List[Server]) -> Server:
    return servers[1]


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A peer address that answers nothing: UDP datagrams are dropped, and TCP connections
    complete in the kernel's backlog but are never accepted, so a dial there waits for its
    timeout (seconds) instead of failing at once."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(64)
    port = tcp.getsockname()[1]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    yield f"127.0.0.1:{port}"
    udp.close()
    tcp.close()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (TCP or UDP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
