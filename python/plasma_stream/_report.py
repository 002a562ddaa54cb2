"""What a SYNC reports: per peer request and per object, and the progress events."""

from __future__ import annotations

from typing import Iterator, List, NamedTuple, Optional, Union

from ._errors import SyncError
from ._status import Status, status_text


class ObjectOutcome(NamedTuple):
    """One object's outcome in a :class:`SyncReport`."""

    #: The object's 20-byte ID.
    id: bytes
    #: The documented status: ``Status.SUCCESS`` (arrived), ``Status.ALREADY_IN_STORE``,
    #: ``Status.NOT_FOUND``, ``Status.PEER_CONNECTION_FAILED``, ...
    status: Union[Status, int]
    #: Why, finer than the status: a stable machine name such as ``"connection-refused"``,
    #: ``"not-found-at-peer"`` or ``"already-in-store"`` (``"none"`` on success).
    reason: str
    #: The reason's code (docs/protocol.md §4.3).
    reason_code: int
    #: The reason in words, e.g. the peer's error message (may be empty).
    reason_text: str
    #: Object bytes (data + metadata) that arrived, also when the object then failed.
    bytes_moved: int
    #: Attempts made (0 when decided without pulling, e.g. already in store).
    attempts: int
    #: Seconds spent on the object.
    duration: float

    @property
    def arrived(self) -> bool:
        """It arrived and was sealed in the destination store."""
        return self.status == Status.SUCCESS

    @property
    def already_there(self) -> bool:
        """It was in the destination store already (nothing to move)."""
        return self.status == Status.ALREADY_IN_STORE

    @property
    def failed(self) -> bool:
        """It is not in the destination store now."""
        return not (self.arrived or self.already_there)

    @property
    def status_text(self) -> str:
        """The status's documented meaning."""
        return status_text(self.status)

    def __str__(self) -> str:
        line = f"{self.id.hex()}: {self.status:#04x} ({self.status_text})"
        if self.failed and self.reason_text:
            line += f": {self.reason_text}"
        return line


class PeerReport(NamedTuple):
    """One peer request's outcome in a :class:`SyncReport`."""

    #: ``"copy"`` or ``"take"``.
    kind: str
    #: The peer the objects came from (``IP:port``).
    peer: str
    #: ``Status.SUCCESS`` when every object arrived, else the first other object's status.
    status: Union[Status, int]
    #: Every object, in request order (empty when the server refused the whole SYNC).
    objects: List[ObjectOutcome]

    @property
    def success(self) -> bool:
        """Every object arrived now."""
        return self.status == Status.SUCCESS

    @property
    def ok(self) -> bool:
        """Every object is in the destination store: arrived now or already there."""
        if self.success:
            return True
        return bool(self.objects) and not any(o.failed for o in self.objects)

    @property
    def failed(self) -> List[ObjectOutcome]:
        """The objects that are not in the destination store."""
        return [o for o in self.objects if o.failed]

    @property
    def bytes_moved(self) -> int:
        return sum(o.bytes_moved for o in self.objects)

    @property
    def status_text(self) -> str:
        return status_text(self.status)


class SyncReport:
    """The report of :meth:`Client.sync`: one :class:`PeerReport` per peer request, in
    request order (index it, iterate it, or use ``peer_reports``)."""

    __slots__ = ("peer_reports",)

    def __init__(self, peer_reports: List[PeerReport]) -> None:
        self.peer_reports = peer_reports

    def __len__(self) -> int:
        return len(self.peer_reports)

    def __iter__(self) -> Iterator[PeerReport]:
        return iter(self.peer_reports)

    def __getitem__(self, index: int) -> PeerReport:
        return self.peer_reports[index]

    @property
    def success(self) -> bool:
        """Every object of every peer request arrived now (strict: 0x81 counts against)."""
        return all(p.success for p in self.peer_reports)

    @property
    def ok(self) -> bool:
        """Every object is in the destination store, arrived now or already there (what
        the CLI's exit code 0 means)."""
        return all(p.ok for p in self.peer_reports)

    @property
    def objects(self) -> List[ObjectOutcome]:
        """Every object's outcome, all peer requests together."""
        return [o for p in self.peer_reports for o in p.objects]

    @property
    def arrived(self) -> List[ObjectOutcome]:
        return [o for o in self.objects if o.arrived]

    @property
    def already_there(self) -> List[ObjectOutcome]:
        return [o for o in self.objects if o.already_there]

    @property
    def failed(self) -> List[ObjectOutcome]:
        return [o for o in self.objects if o.failed]

    @property
    def bytes_moved(self) -> int:
        return sum(p.bytes_moved for p in self.peer_reports)

    def raise_for_status(self, strict: bool = False) -> "SyncReport":
        """Raises :class:`SyncError` unless :attr:`ok` (with ``strict``: :attr:`success`);
        returns the report otherwise, so ``client.sync(...).raise_for_status()`` chains."""
        if self.success if strict else self.ok:
            return self
        refused = [p for p in self.peer_reports if not p.ok and not p.objects]
        failed = [o for o in self.objects if o.failed or (strict and o.already_there)]
        lines = [f"peer request {p.peer}: {p.status:#04x} ({p.status_text})" for p in refused]
        lines += [str(o) for o in failed[:10]]
        if len(failed) > 10:
            lines.append(f"... and {len(failed) - 10} more")
        error = SyncError(
            f"{len(failed)} of {len(self.objects)} objects are not in the destination store:\n  "
            + "\n  ".join(lines)
        )
        error.report = self
        raise error

    def __repr__(self) -> str:
        return (
            f"<SyncReport ok={self.ok} arrived={len(self.arrived)} "
            f"already_there={len(self.already_there)} failed={len(self.failed)} "
            f"bytes_moved={self.bytes_moved}>"
        )


class Progress(NamedTuple):
    """Bytes and objects done so far (at most about ten a second per peer request)."""

    #: Index of the peer request, or ``None`` for the whole SYNC.
    peer_request: Optional[int]
    #: Object bytes (data + metadata) received so far.
    bytes_done: int
    #: Object bytes in all, or ``None`` while some object's size is not known yet.
    bytes_total: Optional[int]
    objects_done: int
    objects_total: int

    @property
    def fraction(self) -> Optional[float]:
        """Bytes done over bytes in all (``None`` while unknown; 1.0 for no bytes)."""
        if self.bytes_total is None:
            return None
        return self.bytes_done / self.bytes_total if self.bytes_total else 1.0


class ObjectEvent(NamedTuple):
    """One object started, arrived, or failed (the report says why)."""

    #: Index of its peer request.
    peer_request: int
    #: The object's 20-byte ID.
    id: bytes
    #: ``"started"``, ``"arrived"`` or ``"failed"``.
    state: str
    #: Its size (data + metadata) when known, else 0.
    size: int


def event_from_native(raw: tuple) -> Union[Progress, ObjectEvent]:
    if raw[0] == "progress":
        return Progress(*raw[1:])
    return ObjectEvent(*raw[1:])
