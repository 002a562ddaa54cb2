"""Plasma Stream from Python: move objects between Plasma stores on different machines.

>>> import plasma_stream
>>> with plasma_stream.Client("127.0.0.1:2021", insecure=True) as client:  # doctest: +SKIP
...     report = client.sync([plasma_stream.Copy("127.0.0.1:2022", [object_id])])
...     report.raise_for_status()

:meth:`Client.sync` makes the server pull objects from its peers into its own store;
:meth:`Client.copy` / :meth:`Client.take` pull objects into this process (as bytes, or into
a pyarrow.plasma store with ``into=``). See the README's "From Python" section.
"""

from ._client import (
    DEFAULT_PORT,
    Client,
    Copy,
    PeerStats,
    ReceivedObject,
    ServerStats,
    StoredObject,
    Take,
    object_id,
    write_into,
)
from ._errors import (
    ConnectError,
    ObjectError,
    ObjectNotFoundError,
    PlasmaStreamError,
    ProtocolError,
    RequestError,
    StoreError,
    SyncError,
    TimeoutError,
    TrustError,
)
from ._report import ObjectEvent, ObjectOutcome, PeerReport, Progress, SyncReport
from ._status import Status

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PORT",
    "Client",
    "ConnectError",
    "Copy",
    "ObjectError",
    "ObjectEvent",
    "ObjectNotFoundError",
    "ObjectOutcome",
    "PeerReport",
    "PeerStats",
    "PlasmaStreamError",
    "Progress",
    "ProtocolError",
    "ReceivedObject",
    "RequestError",
    "ServerStats",
    "Status",
    "StoreError",
    "StoredObject",
    "SyncError",
    "SyncReport",
    "Take",
    "TimeoutError",
    "TrustError",
    "object_id",
    "write_into",
]
