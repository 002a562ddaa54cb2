"""The exceptions of plasma_stream.

Every error the package raises is a :class:`PlasmaStreamError`. The subclasses say what
kind of failure it was, and those that have a natural built-in counterpart also derive from
it, so ``except ConnectionError`` / ``except TimeoutError`` / ``except ValueError`` work as
a Python user expects.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, List, Optional

if TYPE_CHECKING:  # pragma: no cover
    from ._report import SyncReport
    from . import ReceivedObject
    from ._status import Status


class PlasmaStreamError(Exception):
    """Base class of every error plasma_stream raises."""


class ConnectError(PlasmaStreamError, builtins.ConnectionError):
    """The server could not be reached or resolved, refused the connection (at its limits),
    or the connection was lost. Usually worth retrying later."""


class TrustError(PlasmaStreamError):
    """Trust or certificates: the server's certificate is not trusted (a wrong pinned
    fingerprint), the server refused this client's certificate, nothing to trust was
    configured, or a trust file, CA or identity could not be read. The message says what to
    pin or fix. Not worth retrying unchanged."""


class TimeoutError(PlasmaStreamError, builtins.TimeoutError):  # noqa: A001 (as asyncio's)
    """Nothing arrived in time: a handshake, a stalled transfer, or a SYNC that did not
    report within the ``timeout`` given to :meth:`Client.sync` (the server goes on with it)."""


class RequestError(PlasmaStreamError, builtins.ValueError):
    """The request is invalid before anything is sent: a malformed object ID or peer
    address, duplicate IDs, or a request past the protocol's limits."""


class ProtocolError(PlasmaStreamError):
    """The server broke the protocol (a malformed or unexpected reply)."""


class ObjectError(PlasmaStreamError):
    """:meth:`Client.copy` / :meth:`Client.take` could not pull an object: the server
    answered with ``status`` (e.g. :attr:`Status.NOT_PERMITTED`) for ``object_id``."""

    #: The 20-byte ID of the object.
    object_id: Optional[bytes] = None
    #: The documented status code the server answered with.
    status: Optional[int] = None

    @property
    def status_text(self) -> str:
        """The status's documented meaning, e.g. ``"object not found"``."""
        from ._status import status_text

        return status_text(self.status) if self.status is not None else ""


class ObjectNotFoundError(ObjectError):
    """The server does not have the object (status 0x71, :attr:`Status.NOT_FOUND`)."""


class StoreError(PlasmaStreamError):
    """Writing received objects into the local pyarrow.plasma store failed (the store is
    full, say). ``objects`` holds every received object, so that nothing a TAKE moved is
    lost: write them elsewhere or retry. ``object_id`` names the object that failed."""

    object_id: Optional[bytes] = None
    objects: List["ReceivedObject"] = []


class SyncError(PlasmaStreamError):
    """Raised by :meth:`SyncReport.raise_for_status`: some object did not arrive.
    ``report`` is the whole report."""

    report: "SyncReport"


def _from_native(
    kind: str, message: str, object_id: Optional[bytes], status: Optional[int]
) -> PlasmaStreamError:
    """Builds the exception the native module raises (``kind`` names the class)."""
    cls = _CLASSES.get(kind, PlasmaStreamError)
    error = cls(message)
    if isinstance(error, ObjectError):
        from ._status import as_status

        error.object_id = object_id
        error.status = as_status(status) if status is not None else None
    return error


_CLASSES = {
    cls.__name__: cls
    for cls in (
        PlasmaStreamError,
        ConnectError,
        TrustError,
        TimeoutError,
        RequestError,
        ProtocolError,
        ObjectError,
        ObjectNotFoundError,
    )
}
