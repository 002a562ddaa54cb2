"""The :class:`Client` and the arguments it takes."""

from __future__ import annotations

import ipaddress
import os
from typing import (
    Any,
    Callable,
    Iterable,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _native
from ._errors import RequestError, StoreError
from ._report import (
    ObjectEvent,
    ObjectOutcome,
    PeerReport,
    Progress,
    SyncReport,
    event_from_native,
)
from ._status import as_status

#: The server's default port (as the CLI's and the server's own).
DEFAULT_PORT = 2021

#: An object ID: 20 raw bytes, 40 hex digits, or anything with a ``binary()`` method that
#: returns the 20 bytes (``pyarrow.plasma.ObjectID``).
ObjectIdLike = Union[bytes, bytearray, memoryview, str, Any]

#: An address: ``"host:port"`` (``"[v6]:port"``) or ``(host, port)``.
Address = Union[str, Tuple[str, int]]

PathLike = Union[str, "os.PathLike[str]"]

# Objects up to this size go into a pyarrow.plasma store with one create_and_seal call (one
# request); larger ones are copied straight into the buffer that create() maps, since
# create_and_seal would copy them once more on the way.
_SMALL_OBJECT = 64 << 10


class Copy(NamedTuple):
    """A peer request: the server copies ``objects`` from ``peer`` (which keeps them)."""

    #: The peer's plasma-stream-server, ``"IP:port"`` or ``(IP, port)``.
    peer: Address
    objects: Sequence[ObjectIdLike]

    @property
    def kind(self) -> str:
        return "copy"


class Take(NamedTuple):
    """A peer request: the server takes ``objects`` from ``peer``, which deletes each once
    the server has sealed it."""

    peer: Address
    objects: Sequence[ObjectIdLike]

    @property
    def kind(self) -> str:
        return "take"


class ReceivedObject(NamedTuple):
    """An object pulled into this process by :meth:`Client.copy` or :meth:`Client.take`."""

    #: The 20-byte ID.
    id: bytes
    data: bytes
    metadata: bytes


class StoredObject(NamedTuple):
    """An object in the server's store, as :meth:`Client.list` and :meth:`Client.info`
    describe it."""

    #: The 20-byte ID.
    id: bytes
    data_size: int
    metadata_size: int
    #: Sealed (complete and readable), or still being written.
    sealed: bool
    #: When it was created, in Unix seconds; 0 where the store does not say.
    created: int


class PeerStats(NamedTuple):
    """Object bytes a server moved with one peer (``"other"`` past its first 64 peers)."""

    peer: str
    received_bytes: int
    sent_bytes: int


class ServerStats(NamedTuple):
    """What a server counted since it started (:meth:`Client.stats`)."""

    uptime_seconds: int
    #: Objects moving either way, and SYNCs until their report is delivered.
    transfers_in_flight: int
    received_bytes: int
    received_objects: int
    sent_bytes: int
    sent_objects: int
    failed_objects: int
    store_capacity: int
    #: ``None`` where the store does not say (pyarrow's ``plasma_store``).
    store_used: Optional[int]
    peers: List[PeerStats]


PeerRequestLike = Union[Copy, Take, Tuple[str, Address, Sequence[ObjectIdLike]]]
ProgressCallback = Callable[[Union[Progress, ObjectEvent]], Any]
#: A ``pyarrow.plasma.PlasmaClient``, or the path of a Plasma store's socket.
StoreLike = Union[PathLike, Any]


def object_id(value: ObjectIdLike) -> bytes:
    """The 20 raw bytes of an object ID given as bytes, hex, or ``pyarrow.plasma.ObjectID``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) != 20:
            hint = " (hex digits? pass them as a str)" if len(raw) == 40 else ""
            raise RequestError(f"an object ID is 20 bytes, not {len(raw)}{hint}: {raw[:48]!r}")
        return raw
    if isinstance(value, str):
        text = value.strip()
        if len(text) != 40:
            raise RequestError(
                f"an object ID in hex is 40 digits, not {len(text)}: {value[:48]!r}"
            )
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise RequestError(f"an object ID in hex has only 0-9 and a-f: {value!r}") from None
    binary = getattr(value, "binary", None)
    if callable(binary):
        return object_id(binary())
    raise TypeError(
        "an object ID is 20 bytes, 40 hex digits or a pyarrow.plasma.ObjectID, "
        f"not {type(value).__name__}"
    )


def _id_list(objects: Union[ObjectIdLike, Iterable[ObjectIdLike]]) -> List[bytes]:
    # One ID on its own is a list of one (a str or bytes is not a list of characters).
    if isinstance(objects, (bytes, bytearray, memoryview, str)) or callable(
        getattr(objects, "binary", None)
    ):
        return [object_id(objects)]
    try:
        items = iter(objects)  # type: ignore[arg-type]
    except TypeError:
        return [object_id(objects)]
    return [object_id(item) for item in items]


def _address(value: Address, default_port: Optional[int]) -> str:
    """``host:port`` text for an address given as text or ``(host, port)``; a missing port is
    ``default_port`` where there is one."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise RequestError(f"an address tuple is (host, port), not {value!r}")
        host, port = value
        host = str(host).strip("[]")
        return f"[{host}]:{int(port)}" if ":" in host else f"{host}:{int(port)}"
    if not isinstance(value, str):
        raise TypeError(f"an address is 'host:port' or (host, port), not {type(value).__name__}")
    text = value.strip()
    if default_port is None:
        return text
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        ip = None
    if ip is not None:
        # A bare address, IPv6 ones included ("::1" has colons but no port).
        return f"[{ip}]:{default_port}" if ip.version == 6 else f"{ip}:{default_port}"
    if text.startswith("[") or ":" in text:
        return text
    return f"{text}:{default_port}"


def _peer_request(index: int, request: PeerRequestLike) -> Tuple[str, str, bytes]:
    if isinstance(request, (Copy, Take)):
        kind, peer, objects = request.kind, request.peer, request.objects
    elif isinstance(request, tuple) and len(request) == 3 and isinstance(request[0], str):
        kind, peer, objects = request
    else:
        raise TypeError(
            f"peer request {index}: expected Copy(peer, objects), Take(peer, objects) or "
            f"(\"copy\" | \"take\", peer, objects), not {request!r:.80}"
        )
    try:
        ids = _id_list(objects)
        return kind, _address(peer, None), b"".join(ids)
    except RequestError as error:
        raise RequestError(f"peer request {index}: {error}") from None


class Client:
    """A connection to one plasma-stream-server.

    ``address`` is ``"host[:port]"`` (port 2021 if left out; IPv6 as ``"[::1]:2021"``) or
    ``(host, port)``. Trust, as for the CLI:

    - ``insecure=True``: any server (development; traffic is still encrypted);
    - ``trust``: the server's SHA-256 fingerprint (the server prints it at start), or a list;
    - ``trust_file``: a file of fingerprints, one per line, ``#`` comments;
    - ``ca``: cluster CA mode, the CA certificate (PEM) that issued the server's certificate
      and this client's (in ``identity_dir``).

    With none of these, trust comes from the environment as for the Rust library's
    ``Client::connect`` (``PLASMA_STREAM_INSECURE``, ``PLASMA_STREAM_TRUST``,
    ``PLASMA_STREAM_TRUST_FILE``, ``PLASMA_STREAM_CA``, ``~/.config/plasma-stream/trusted``),
    and :class:`TrustError` says how to set it when there is none.

    ``identity_dir``: where this client's certificate lives (generated on first use; a server
    in pinned mode must trust its fingerprint); default ``PLASMA_STREAM_IDENTITY_DIR`` or
    ``~/.config/plasma-stream/client``. ``timeout``: seconds to wait for the server's next
    bytes while pulling objects (default 30). ``transport``: ``"auto"`` (QUIC, falling back
    to TLS over TCP), ``"quic"`` or ``"tcp"``.

    Connecting, and every call, waits with the GIL released; Ctrl-C interrupts any of them.
    A client may be shared by threads. Use it as a context manager, or call :meth:`close`,
    to tell the server at once that it is gone.
    """

    def __init__(
        self,
        address: Address,
        *,
        insecure: bool = False,
        trust: Union[str, Iterable[str], None] = None,
        trust_file: Optional[PathLike] = None,
        ca: Optional[PathLike] = None,
        identity_dir: Optional[PathLike] = None,
        timeout: Optional[float] = None,
        transport: str = "auto",
    ) -> None:
        fingerprints = [trust] if isinstance(trust, str) else list(trust or ())
        explicit = bool(fingerprints) or trust_file is not None or ca is not None
        if insecure and explicit:
            raise ValueError("insecure=True cannot be combined with trust, trust_file or ca")
        self._native = _native.NativeClient(
            _address(address, DEFAULT_PORT),
            from_env=not (insecure or explicit),
            insecure=bool(insecure),
            trust=[str(f) for f in fingerprints],
            trust_file=os.fspath(trust_file) if trust_file is not None else None,
            ca=os.fspath(ca) if ca is not None else None,
            identity_dir=os.fspath(identity_dir) if identity_dir is not None else None,
            timeout=float(timeout) if timeout is not None else None,
            transport=transport,
        )

    @property
    def server(self) -> str:
        """The server's socket address, e.g. ``"127.0.0.1:2021"``."""
        return self._native.server

    @property
    def transport(self) -> str:
        """``"quic"``, or ``"tcp"`` when the connection fell back to TLS over TCP."""
        return self._native.transport

    def sync(
        self,
        requests: Union[PeerRequestLike, Iterable[PeerRequestLike]],
        progress: Optional[ProgressCallback] = None,
        *,
        timeout: Optional[float] = None,
    ) -> SyncReport:
        """Asks the server to pull objects from its peers into its store and returns the
        report, whatever the objects' fate: check ``report.ok`` or call
        ``report.raise_for_status()``.

        ``requests``: :class:`Copy` / :class:`Take` (or ``("copy", peer, ids)`` tuples), one
        or a list; peers are ``"IP:port"`` as the *server* dials them. ``progress`` is called
        on this thread with each :class:`Progress` and :class:`ObjectEvent` while the SYNC
        runs; an exception it raises ends the wait and propagates. ``timeout``: seconds to
        wait for the report at most (:class:`TimeoutError` after; the server goes on with
        the SYNC, and sending it again later reports what arrived).
        """
        if isinstance(requests, (Copy, Take)) or (
            isinstance(requests, tuple) and requests and isinstance(requests[0], str)
        ):
            requests = [requests]  # type: ignore[list-item]
        listed = list(requests)  # type: ignore[arg-type]
        native_requests = [_peer_request(i, r) for i, r in enumerate(listed)]
        callback = None
        if progress is not None:

            def callback(raw: tuple) -> None:
                progress(event_from_native(raw))

        raw_reports = self._native.sync(native_requests, callback, timeout)
        return SyncReport(
            [
                PeerReport(
                    kind=kind.lower(),
                    peer=peer,
                    status=as_status(status),
                    objects=[
                        ObjectOutcome(
                            id=oid,
                            status=as_status(code),
                            reason=reason,
                            reason_code=reason_code,
                            reason_text=reason_text,
                            bytes_moved=moved,
                            attempts=attempts,
                            duration=duration_ms / 1000,
                        )
                        for (oid, code, reason_code, reason, reason_text, moved, attempts, duration_ms) in objects
                    ],
                )
                for (kind, peer, _), (status, objects) in zip(native_requests, raw_reports)
            ]
        )

    def copy(
        self,
        ids: Union[ObjectIdLike, Iterable[ObjectIdLike]],
        *,
        into: Optional[StoreLike] = None,
    ) -> List[ReceivedObject]:
        """Pulls copies of these objects from the server into this process, in order (the
        server keeps them). The first object that cannot be pulled raises
        :class:`ObjectError` (:class:`ObjectNotFoundError` for one the server lacks).

        ``into``: also write them into this pyarrow.plasma store (a ``PlasmaClient``, or
        its socket path); an object the store already has is left as it is.
        """
        objects = self._pull(self._native.copy, ids)
        if into is not None:
            write_into(into, objects)
        return objects

    def take(
        self,
        ids: Union[ObjectIdLike, Iterable[ObjectIdLike]],
        *,
        into: Optional[StoreLike] = None,
    ) -> List[ReceivedObject]:
        """Like :meth:`copy`, but the server deletes each object once this client has all
        of it. If writing ``into`` the store fails, :class:`StoreError` carries every
        received object (``error.objects``), so nothing taken is lost."""
        objects = self._pull(self._native.take, ids)
        if into is not None:
            write_into(into, objects)
        return objects

    @staticmethod
    def _pull(
        pull: Callable[[bytes], List[Tuple[bytes, bytes, bytes]]],
        ids: Union[ObjectIdLike, Iterable[ObjectIdLike]],
    ) -> List[ReceivedObject]:
        return [ReceivedObject(*raw) for raw in pull(b"".join(_id_list(ids)))]

    def put(
        self,
        id: ObjectIdLike,  # noqa: A002 (the name the rest of the API uses)
        data: Union[bytes, bytearray, memoryview],
        metadata: Union[bytes, bytearray, memoryview] = b"",
    ) -> None:
        """Stores an object in the server's store and returns once the server sealed it. A
        refusal raises :class:`ObjectError` with the server's status (``Status.ALREADY_IN_STORE``
        when the store has it already, ``Status.STORE_FULL`` when it has no room)."""
        # bytes and bytearray go as they are (bytes without a copy); other buffers are copied.
        def raw(value: Union[bytes, bytearray, memoryview]) -> Union[bytes, bytearray]:
            return value if isinstance(value, (bytes, bytearray)) else bytes(value)

        self._native.put(object_id(id), raw(data), raw(metadata))

    def list(self) -> List[StoredObject]:
        """Every object in the server's store, sealed or not, ordered by ID."""
        return [StoredObject(*raw) for raw in self._native.list()]

    def info(self, id: ObjectIdLike) -> Optional[StoredObject]:  # noqa: A002
        """One object of the server's store, or ``None`` if the store does not hold it."""
        raw = self._native.info(object_id(id))
        return StoredObject(*raw) if raw is not None else None

    def stats(self) -> ServerStats:
        """The server's counters since it started, and its store's capacity and use."""
        *counters, peers = self._native.stats()
        return ServerStats(*counters, [PeerStats(*peer) for peer in peers])

    def close(self) -> None:
        """Closes the connection and tells the server (waits about a second at most)."""
        self._native.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        try:
            return f"<plasma_stream.Client {self.server} over {self.transport}>"
        except Exception:  # a client used after fork still has a repr
            return "<plasma_stream.Client>"


def write_into(store: StoreLike, objects: Sequence[ReceivedObject]) -> None:
    """Writes received objects into a pyarrow.plasma store (a ``PlasmaClient``, or the path
    of its socket) and seals them. An object the store already has is skipped: Plasma
    objects are immutable, so it holds these bytes already."""
    from pyarrow import plasma  # only needed here; the package works without pyarrow

    opened = isinstance(store, (str, os.PathLike))
    client = plasma.connect(os.fspath(store)) if opened else store
    try:
        for obj in objects:
            oid = plasma.ObjectID(obj.id)
            try:
                if len(obj.data) <= _SMALL_OBJECT:
                    client.create_and_seal(oid, obj.data, obj.metadata)
                else:
                    buffer = client.create(oid, len(obj.data), obj.metadata)
                    # pyarrow's buffers are of signed bytes: view them as bytes to copy.
                    memoryview(buffer).cast("B")[:] = obj.data
                    client.seal(oid)
            except plasma.PlasmaObjectExists:
                continue
            except Exception as cause:
                error = StoreError(
                    f"cannot write object {obj.id.hex()} ({len(obj.data)} bytes) into the "
                    f"Plasma store: {type(cause).__name__}: {cause}; error.objects holds "
                    f"all {len(objects)} received objects"
                )
                error.object_id = obj.id
                error.objects = list(objects)
                raise error from cause
    finally:
        if opened:
            client.disconnect()
