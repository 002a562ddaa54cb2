"""Fixtures for the Plasma interop suite: every test runs once against our `plasma-store`
binary and once against pyarrow 11's real `plasma_store`, with the unmodified pyarrow client.

Environment:
  PLASMA_STORE_BIN   our binary (default: <workspace>/target/debug/plasma-store)
  PLASMA_REAL_STORE  the real store (default: plasma_store next to this Python)
"""
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings

import pytest

warnings.simplefilter("ignore", FutureWarning)  # plasma is deprecated since Arrow 10
import pyarrow.plasma as plasma  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.dirname(os.path.dirname(HERE))
CAPACITY = 100_000_000
# Our store runs with small arenas so that "objects larger than one arena" and multi-arena
# Gets are exercised; the real store has one segment of about the whole capacity.
OUR_ARENA_SIZE = 4 << 20


def our_store_command(sock):
    binary = os.environ.get(
        "PLASMA_STORE_BIN", os.path.join(WORKSPACE, "target", "debug", "plasma-store")
    )
    return [binary, "-m", str(CAPACITY), "-s", sock, "--arena-size", str(OUR_ARENA_SIZE)]


def real_store_command(sock):
    binary = os.environ.get(
        "PLASMA_REAL_STORE", os.path.join(os.path.dirname(sys.executable), "plasma_store")
    )
    return [binary, "-m", str(CAPACITY), "-s", sock]


STORES = {"ours": our_store_command, "real": real_store_command}


def wait_for_socket(path, proc, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"store exited early with {proc.returncode}")
        if os.path.exists(path):
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                return
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.02)
    raise RuntimeError("store socket did not appear")


class Store:
    def __init__(self, kind, sock, proc):
        self.kind = kind
        self.sock = sock
        self.proc = proc
        self.capacity = CAPACITY
        self.clients = []

    def connect(self):
        c = plasma.connect(self.sock)
        self.clients.append(c)
        return c

    def alive(self):
        return self.proc.poll() is None


@pytest.fixture(params=sorted(STORES))
def store(request):
    kind = request.param
    with tempfile.TemporaryDirectory(prefix="plasma-interop-") as d:
        sock = os.path.join(d, "plasma.sock")
        proc = subprocess.Popen(
            STORES[kind](sock), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_for_socket(sock, proc)
            s = Store(kind, sock, proc)
            yield s
            for c in s.clients:
                try:
                    c.disconnect()
                except Exception:
                    pass
            assert s.alive(), f"the {kind} store died during the test"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
