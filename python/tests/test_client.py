"""plasma_stream against real servers: SYNC, copy/take, pyarrow.plasma stores, progress,
exceptions, and waits that Ctrl-C and other threads can get past."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from pyarrow import plasma

import plasma_stream as ps
from plasma_stream import _native


def new_id() -> bytes:
    return os.urandom(20)


def put(server, data: bytes, metadata: bytes = b"") -> bytes:
    """Puts an object into a server's store with pyarrow.plasma; returns its ID."""
    oid = new_id()
    store = server.store()
    store.put_raw_buffer(data, object_id=plasma.ObjectID(oid), metadata=metadata)
    store.disconnect()
    return oid


def read(server, oid: bytes):
    """(data, metadata) of an object in a server's store, or None if it has none."""
    store = server.store()
    try:
        if not store.contains(plasma.ObjectID(oid)):
            return None
        [(metadata, buffer)] = store.get_buffers([plasma.ObjectID(oid)], timeout_ms=1000, with_meta=True)
        return bytes(buffer), bytes(metadata)
    finally:
        store.disconnect()


@pytest.fixture
def client(dest):
    with ps.Client(dest.address, insecure=True) as client:
        yield client


def test_sync_copy_moves_the_bytes_and_the_source_keeps_them(client, dest, source):
    one = put(source, b"one" * 100_000, metadata=b"meta-1")
    two = put(source, os.urandom(3 << 20))
    report = client.sync([ps.Copy(source.address, [one, two.hex()])])

    assert report.ok and report.success, report.failed
    [peer] = report
    assert (peer.kind, peer.peer, peer.status) == ("copy", source.address, ps.Status.SUCCESS)
    assert [o.id for o in peer.objects] == [one, two]
    assert all(o.arrived and o.attempts == 1 and o.reason == "none" for o in peer.objects)
    assert report.bytes_moved == 300_000 + len(b"meta-1") + (3 << 20)
    assert read(dest, one) == (b"one" * 100_000, b"meta-1")
    assert read(dest, two) == read(source, two)
    assert read(source, one) is not None


def test_sync_take_moves_the_object_and_the_source_deletes_it(client, dest, source):
    data = os.urandom(100_000)
    oid = put(source, data)
    report = client.sync(("take", source.address, [oid]))
    assert report.ok, report.failed
    assert report[0].kind == "take"
    assert read(dest, oid) == (data, b"")
    assert read(source, oid) is None


def test_sync_again_reports_already_there(client, source):
    oid = put(source, b"x" * 1000)
    client.sync([ps.Copy(source.address, [oid])]).raise_for_status(strict=True)
    again = client.sync([ps.Copy(source.address, [oid])])
    [outcome] = again.objects
    assert outcome.already_there and not outcome.failed
    assert outcome.status == ps.Status.ALREADY_IN_STORE == 0x81
    assert again.ok and not again.success
    again.raise_for_status()
    with pytest.raises(ps.SyncError):
        again.raise_for_status(strict=True)


def test_a_missing_object_has_its_status_in_the_report(client, source):
    present, missing = put(source, b"here"), new_id()
    report = client.sync([ps.Copy(source.address, [present, missing])])
    assert not report.ok
    assert [o.id for o in report.arrived] == [present]
    [failed] = report.failed
    assert failed.id == missing
    assert failed.status == ps.Status.NOT_FOUND
    assert failed.status_text == "object not found"
    assert failed.reason == "not-found-at-peer"
    assert report[0].status == ps.Status.NOT_FOUND
    with pytest.raises(ps.SyncError, match=missing.hex()) as raised:
        report.raise_for_status()
    assert raised.value.report is report


def test_progress_is_called_with_object_events_and_progress(client, source):
    oid = put(source, os.urandom(2 << 20))
    events = []
    report = client.sync([ps.Copy(source.address, [oid])], progress=events.append)
    assert report.ok
    object_events = [e for e in events if isinstance(e, ps.ObjectEvent)]
    assert [(e.id, e.state) for e in object_events] == [(oid, "started"), (oid, "arrived")]
    assert object_events[0].peer_request == 0 and object_events[0].size == 2 << 20
    progress = [e for e in events if isinstance(e, ps.Progress)]
    assert progress, events
    whole = [p for p in progress if p.peer_request is None]
    assert whole and whole[-1].objects_done == whole[-1].objects_total == 1
    assert whole[-1].bytes_done == 2 << 20 and whole[-1].fraction == 1.0


def test_an_exception_in_the_progress_callback_propagates(client, source):
    oid = put(source, b"p" * 1000)

    def fail(event):
        raise RuntimeError("callback refused")

    with pytest.raises(RuntimeError, match="callback refused"):
        client.sync([ps.Copy(source.address, [oid])], progress=fail)
    # The connection is still usable afterwards.
    assert client.sync([ps.Copy(source.address, [oid])]).ok


def test_copy_returns_the_bytes_and_the_server_keeps_them(servers):
    source = servers[1]
    data, meta = os.urandom(5 << 20), b"\x00meta"
    big = put(source, data, metadata=meta)
    small = put(source, b"small")
    with ps.Client(source.address, insecure=True) as client:
        objects = client.copy([plasma.ObjectID(big), small.hex()])
    assert [o.id for o in objects] == [big, small]
    assert (objects[0].data, objects[0].metadata) == (data, meta)
    assert (objects[1].data, objects[1].metadata) == (b"small", b"")
    assert isinstance(objects[0].data, bytes)
    assert read(source, big) is not None


def test_take_returns_the_bytes_and_the_server_deletes_them(source):
    oid = put(source, b"taken" * 1000)
    with ps.Client(source.address, insecure=True) as client:
        [obj] = client.take(oid)
    assert obj.data == b"taken" * 1000
    assert read(source, oid) is None


def test_copy_into_a_pyarrow_plasma_store(source, dest):
    small, big = put(source, b"s" * 100, metadata=b"m"), put(source, os.urandom(1 << 20))
    already = put(source, b"already")
    put_same = dest.store()
    put_same.put_raw_buffer(b"already", object_id=plasma.ObjectID(already))
    with ps.Client(source.address, insecure=True) as client:
        store = dest.store()
        client.copy([small, big], into=store)
        store.disconnect()
        # A socket path works too, and an object the store has already is left alone.
        client.copy([already], into=dest.socket)
    put_same.disconnect()
    assert read(dest, small) == (b"s" * 100, b"m")
    assert read(dest, big) == read(source, big)
    assert read(dest, already) == (b"already", b"")


def test_take_into_a_full_store_keeps_the_objects_in_the_error(source, workdir):
    from conftest import start_server, stop

    tiny = start_server(workdir, "tiny", "--embedded-store", "1MiB")
    try:
        data = os.urandom(2 << 20)
        oid = put(source, data)
        with ps.Client(source.address, insecure=True) as client:
            with pytest.raises(ps.StoreError) as raised:
                client.take([oid], into=tiny.socket)
        assert raised.value.object_id == oid
        assert [o.data for o in raised.value.objects] == [data]
        assert read(source, oid) is None
    finally:
        stop(tiny)


def test_copy_of_a_missing_object_raises_object_not_found(source):
    missing = new_id()
    with ps.Client(source.address, insecure=True) as client:
        with pytest.raises(ps.ObjectNotFoundError) as raised:
            client.copy([missing])
    error = raised.value
    assert isinstance(error, ps.ObjectError) and isinstance(error, ps.PlasmaStreamError)
    assert error.object_id == missing
    assert error.status == ps.Status.NOT_FOUND and error.status_text == "object not found"
    assert missing.hex() in str(error)


def test_an_unreachable_server_raises_connect_error(closed_port):
    with pytest.raises(ps.ConnectError) as raised:
        ps.Client(("127.0.0.1", closed_port), insecure=True, transport="tcp")
    assert isinstance(raised.value, ConnectionError)
    assert str(closed_port) in str(raised.value)


def test_a_wrong_pinned_fingerprint_raises_trust_error(source, tmp_path):
    wrong = "ab" * 32
    assert wrong != source.fingerprint
    with pytest.raises(ps.TrustError) as raised:
        ps.Client(source.address, trust=wrong, identity_dir=tmp_path / "id", transport="tcp")
    assert not isinstance(raised.value, ConnectionError)
    assert source.fingerprint in str(raised.value) or "fingerprint" in str(raised.value)
    # The right one connects (this insecure server accepts any client).
    with ps.Client(source.address, trust=[source.fingerprint], identity_dir=tmp_path / "id") as ok:
        assert ok.server == source.address


def test_a_trust_file_is_read(source, tmp_path):
    trusted = tmp_path / "trusted"
    trusted.write_text(f"# the source\n{source.fingerprint}\n")
    with ps.Client(source.address, trust_file=trusted, identity_dir=tmp_path / "id") as client:
        assert client.transport in ("quic", "tcp")
    with pytest.raises(ps.TrustError, match="missing"):
        ps.Client(source.address, trust_file=tmp_path / "missing", identity_dir=tmp_path)


def test_without_any_trust_the_error_says_how_to_set_it(source, tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("PLASMA_STREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with pytest.raises(ps.TrustError, match="PLASMA_STREAM_TRUST"):
        ps.Client(source.address)
    # The environment is what an argument-less client trusts.
    monkeypatch.setenv("PLASMA_STREAM_INSECURE", "1")
    with ps.Client(source.address) as client:
        assert client.server == source.address


def test_bad_arguments_raise_request_and_type_errors(client, source):
    with pytest.raises(ps.RequestError, match="40 digits"):
        client.copy(["0102"])
    with pytest.raises(ValueError, match="only 0-9"):
        client.copy(["zz" * 20])
    with pytest.raises(ps.RequestError, match="pass them as a str"):
        client.copy([b"01" * 20])
    with pytest.raises(TypeError):
        client.copy([12345])
    with pytest.raises(ps.RequestError, match="peer request 0: peer `localhost:2022`"):
        client.sync([ps.Copy("localhost:2022", [new_id()])])
    with pytest.raises(ps.RequestError, match="unknown kind"):
        client.sync([("move", source.address, [new_id()])])
    duplicate = new_id()
    with pytest.raises(ps.RequestError):
        client.sync([ps.Copy(source.address, [duplicate, duplicate])])
    with pytest.raises(ValueError, match="transport"):
        ps.Client(source.address, insecure=True, transport="carrier-pigeon")
    with pytest.raises(ValueError, match="cannot be combined"):
        ps.Client(source.address, insecure=True, trust="ab" * 32)


def test_a_sync_that_does_not_report_in_time_raises_timeout_error(client, black_hole):
    started = time.monotonic()
    with pytest.raises(ps.TimeoutError) as raised:
        client.sync([ps.Copy(black_hole, [new_id()])], timeout=0.5)
    assert isinstance(raised.value, TimeoutError)
    assert 0.4 < time.monotonic() - started < 3


def test_other_threads_run_while_a_sync_waits(client, black_hole):
    # With the GIL held during the wait, this loop could not run at all for that second.
    done = threading.Event()
    errors = []

    def wait():
        try:
            client.sync([ps.Copy(black_hole, [new_id()])], timeout=1.0)
        except ps.TimeoutError as error:
            errors.append(error)
        finally:
            done.set()

    thread = threading.Thread(target=wait)
    thread.start()
    spins = 0
    while not done.is_set():
        spins += 1
        time.sleep(0.001)
    thread.join()
    assert len(errors) == 1
    assert spins > 200


def test_ctrl_c_interrupts_a_waiting_sync(dest, black_hole):
    script = textwrap.dedent(
        f"""
        import os, sys, time
        import plasma_stream as ps
        client = ps.Client({dest.address!r}, insecure=True)
        print("waiting", flush=True)
        started = time.monotonic()
        try:
            client.sync([ps.Copy({black_hole!r}, [os.urandom(20)])])
        except KeyboardInterrupt:
            print("interrupted after %.1f s" % (time.monotonic() - started), flush=True)
            sys.exit(0)
        print("the sync ended by itself", flush=True)
        sys.exit(1)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "waiting"
        time.sleep(1.0)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=5)
    finally:
        child.kill()
    assert child.returncode == 0, (out, err)
    assert out.startswith("interrupted"), (out, err)


def test_the_status_enum_matches_the_rust_table():
    table = dict(_native.status_table())
    assert {int(s): s.text for s in ps.Status} == table
    assert str(ps.Status.PEER_CONNECTION_FAILED) == "0x90 (connection to the peer failed)"


def test_object_ids_in_every_accepted_form():
    raw = bytes(range(20))
    assert ps.object_id(raw) == raw
    assert ps.object_id(raw.hex()) == raw
    assert ps.object_id(raw.hex().upper()) == raw
    assert ps.object_id(bytearray(raw)) == raw
    assert ps.object_id(plasma.ObjectID(raw)) == raw


def test_put_list_info_stats_and_copy_back(client, dest):
    data, metadata = os.urandom(200_000), b"put-meta"
    oid = new_id()
    before = client.stats()
    client.put(oid, memoryview(data), metadata)

    # The bytes are in the server's store, sealed, as pyarrow.plasma reads them.
    assert read(dest, oid) == (data, metadata)
    listed = {o.id: o for o in client.list()}
    assert listed[oid] == client.info(oid.hex())
    stored = listed[oid]
    assert (stored.data_size, stored.metadata_size, stored.sealed) == (200_000, 8, True)
    assert stored.created > 0
    assert client.info(new_id()) is None
    assert [o.id for o in client.list()] == sorted(listed)

    # Putting the same ID again is refused with the documented status, and changes nothing.
    with pytest.raises(ps.ObjectError) as refused:
        client.put(oid, b"other bytes")
    assert refused.value.status == ps.Status.ALREADY_IN_STORE
    assert refused.value.object_id == oid
    assert read(dest, oid) == (data, metadata)

    [(copied_id, copied, copied_meta)] = client.copy(oid)
    assert (copied_id, copied, copied_meta) == (oid, data, metadata)

    # The server counts an object sent once it has read the client's acknowledgement, which
    # may come after `copy` returned: wait for the count (a few ms), not for a fixed time.
    deadline = time.monotonic() + 10
    after = client.stats()
    while after.sent_objects == before.sent_objects and time.monotonic() < deadline:
        time.sleep(0.01)
        after = client.stats()
    assert after.store_capacity == 256 << 20
    assert after.store_used is not None and after.store_used >= 200_000
    assert after.sent_objects == before.sent_objects + 1
    assert after.sent_bytes >= before.sent_bytes + len(data)
    assert after.uptime_seconds >= before.uptime_seconds
    assert all(isinstance(peer, ps.PeerStats) for peer in after.peers)


def test_put_rejects_a_bad_id_before_sending(client):
    with pytest.raises(ps.RequestError, match="20 bytes"):
        client.put(b"short", b"data")


def test_put_takes_bytes_bytearray_and_memoryview_alike(client, dest):
    data = os.urandom(5 << 20)
    for value in (data, bytearray(data), memoryview(data)[1:]):
        oid = new_id()
        client.put(oid, value, metadata=bytearray(b"m"))
        assert read(dest, oid) == (bytes(value), b"m")
