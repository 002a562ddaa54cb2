"""The unmodified pyarrow 11 Plasma client against a store (ours and the real one: see
conftest.py). Each test asserts protocol-visible behaviour only, so the same suite proves our
store compatible and the real store proves the suite honest."""
import threading
import time

import pyarrow as pa
import pyarrow.plasma as plasma
import pytest


def oid(n):
    return plasma.ObjectID(n.to_bytes(4, "little") * 5)


def put(client, object_id, payload, meta=b""):
    buf = client.create(object_id, len(payload), meta)
    pa.FixedSizeBufferWriter(buf).write(payload)
    client.seal(object_id)
    del buf


def test_create_write_seal_get_buffers_and_metadata(store):
    c = store.connect()
    assert c.store_capacity() == store.capacity
    put(c, oid(1), b"hello plasma", b"content-type=raw")
    [data] = c.get_buffers([oid(1)], timeout_ms=1000)
    [meta] = c.get_metadata([oid(1)], timeout_ms=1000)
    assert bytes(data) == b"hello plasma"
    assert bytes(meta) == b"content-type=raw"
    # Missing objects come back as None after the timeout.
    start = time.time()
    assert c.get_buffers([oid(2)], timeout_ms=100) == [None]
    assert time.time() - start >= 0.09


def test_create_and_seal_and_duplicates(store):
    c = store.connect()
    c.create_and_seal(oid(1), b"inline bytes", b"m")
    with pytest.raises(plasma.PlasmaObjectExists):
        c.create_and_seal(oid(1), b"again")
    with pytest.raises(plasma.PlasmaObjectExists):
        c.create(oid(1), 5)
    other = store.connect()
    # with_meta=True yields (metadata, data) pairs.
    [(meta, data)] = other.get_buffers([oid(1)], timeout_ms=1000, with_meta=True)
    assert (bytes(data), bytes(meta)) == (b"inline bytes", b"m")


def test_contains(store):
    a, b = store.connect(), store.connect()
    put(a, oid(1), b"x")
    buf = a.create(oid(2), 3)
    assert b.contains(oid(1))
    assert not b.contains(oid(2)), "unsealed objects are not contained"
    assert not b.contains(oid(3))
    del buf


def test_list_fields(store):
    a = store.connect()
    before = int(time.time())
    put(a, oid(1), b"0123456789", b"META")
    buf = a.create(oid(2), 7, b"mm")
    listing = a.list()
    sealed, created = listing[oid(1)], listing[oid(2)]
    assert sealed["data_size"] == 10 and sealed["metadata_size"] == 4
    assert sealed["state"] == "sealed" and created["state"] == "created"
    assert created["data_size"] == 7 and created["metadata_size"] == 2
    assert created["construct_duration"] == -1
    assert sealed["construct_duration"] >= 0
    assert before - 2 <= sealed["create_time"] <= time.time() + 2
    assert created["ref_count"] == 1
    del buf
    b = store.connect()
    [data] = b.get_buffers([oid(1)], timeout_ms=0)
    assert b.list()[oid(1)]["ref_count"] >= 1
    del data


def test_hash_is_the_clients_digest_kept_by_the_store(store):
    a, b = store.connect(), store.connect()
    put(a, oid(1), b"hello plasma", b"content-type=raw")
    assert a.hash(oid(1)).hex() == "ce82aae4234f66d6"
    assert b.hash(oid(1)).hex() == "ce82aae4234f66d6"
    put(a, oid(2), b"0123456789", b"META")
    assert b.hash(oid(2)).hex() == "ebd8e21ffb378c5e"


def test_delete_now_and_scheduled(store):
    a, b = store.connect(), store.connect()
    put(a, oid(1), b"gone soon")
    a.delete([oid(1)])
    assert not b.contains(oid(1))
    put(a, oid(2), b"held by b")
    [held] = b.get_buffers([oid(2)], timeout_ms=0)
    a.delete([oid(2)])
    # Still in use by b: the delete is scheduled, the bytes stay readable.
    assert bytes(held) == b"held by b"
    assert b.contains(oid(2))
    del held  # b releases; the scheduled delete runs
    deadline = time.time() + 5
    while a.contains(oid(2)) and time.time() < deadline:
        time.sleep(0.01)
    assert not a.contains(oid(2))
    # Deleting a missing object is not an error for the client.
    a.delete([oid(3)])


def test_evict(store):
    a = store.connect()
    for i in range(5):
        put(a, oid(10 + i), b"e" * 1000)
    freed = a.evict(1500)
    assert freed >= 1500
    remaining = [i for i in range(5) if a.contains(oid(10 + i))]
    # Oldest released first.
    assert remaining == list(range(5 - len(remaining), 5))
    assert len(remaining) <= 3
    assert a.evict(10**9) >= 0
    assert not any(a.contains(oid(10 + i)) for i in range(5))


def test_create_evicts_when_full_and_refuses_the_impossible(store):
    a = store.connect()
    chunk = 20_000_000
    for i in range(10):  # 200 MB through a 100 MB store: older objects get evicted
        buf = a.create(oid(100 + i), chunk)
        a.seal(oid(100 + i))
        del buf
    assert a.contains(oid(109))
    assert not a.contains(oid(100))
    with pytest.raises(plasma.PlasmaStoreFull):
        a.create(oid(200), store.capacity + 1)


def test_subscribe_notifications(store):
    a, watcher = store.connect(), store.connect()
    put(a, oid(1), b"before", b"m")
    watcher.subscribe()
    # Existing sealed objects are announced first.
    assert watcher.get_next_notification() == (oid(1), 6, 1)
    put(a, oid(2), b"after!!", b"mm")
    assert watcher.get_next_notification() == (oid(2), 7, 2)
    a.delete([oid(2)])
    got_id, data_size, meta_size = watcher.get_next_notification()
    assert got_id == oid(2)
    assert data_size == -1 and meta_size == -1


def test_disconnect_frees_unsealed_objects_and_references(store):
    a = plasma.connect(store.sock)
    b = store.connect()
    put(b, oid(1), b"shared")
    [held] = a.get_buffers([oid(1)], timeout_ms=0)
    buf = a.create(oid(2), 100)
    assert b.list()[oid(1)]["ref_count"] == 1
    assert oid(2) in b.list()
    del held, buf
    a.disconnect()
    deadline = time.time() + 5
    while oid(2) in b.list() and time.time() < deadline:
        time.sleep(0.01)
    listing = b.list()
    assert oid(2) not in listing, "the unsealed object of a disconnected client is freed"
    assert listing[oid(1)]["ref_count"] == 0
    # The id is free again.
    put(b, oid(2), b"recreated")
    assert bytes(b.get_buffers([oid(2)], timeout_ms=0)[0]) == b"recreated"


def test_second_client_reads_the_first_ones_objects(store):
    a, b = store.connect(), store.connect()
    payloads = {i: bytes([i]) * (1000 * i + 1) for i in range(1, 20)}
    for i, p in payloads.items():
        put(a, oid(i), p, str(i).encode())
    ids = [oid(i) for i in payloads]
    got = b.get_buffers(ids, timeout_ms=1000, with_meta=True)
    for i, (meta, data) in zip(payloads, got):
        assert bytes(data) == payloads[i]
        assert bytes(meta) == str(i).encode()


def test_get_waits_for_seal_by_another_client(store):
    a, b = store.connect(), store.connect()
    result = {}

    def waiter():
        result["got"] = b.get_buffers([oid(1)], timeout_ms=10_000)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.2)
    put(a, oid(1), b"worth the wait")
    t.join(15)
    assert not t.is_alive()
    assert bytes(result["got"][0]) == b"worth the wait"


def test_objects_larger_than_one_arena(store):
    # Our store runs with 4 MiB arenas: these objects need arenas of their own, and one Get
    # returns objects from several arenas (several fds after one reply).
    a, b = store.connect(), store.connect()
    big = bytes(range(256)) * (40_000)  # 10.24 MB
    put(a, oid(1), b"small")
    put(a, oid(2), big, b"big-meta")
    put(a, oid(3), big[::-1])
    got = b.get_buffers([oid(1), oid(2), oid(3)], timeout_ms=1000, with_meta=True)
    assert bytes(got[0][1]) == b"small"
    assert bytes(got[1][1]) == big and bytes(got[1][0]) == b"big-meta"
    assert bytes(got[2][1]) == big[::-1]
    assert a.hash(oid(2)) == b.hash(oid(2))


def test_debug_string_and_set_options(store):
    a = store.connect()
    a.set_client_options("interop", 1000)
    assert isinstance(a.debug_string(), str) and a.debug_string()
