"""Status codes, as in docs/protocol.md (the native module has the meanings)."""

from __future__ import annotations

import enum
from typing import Dict, Union

from . import _native


class Status(enum.IntEnum):
    """A documented status code. Compares equal to its int (``Status.NOT_FOUND == 0x71``)."""

    BEGIN = 0x00
    SUCCESS = 0x41
    METADATA_TOO_LARGE = 0x50
    DATA_TOO_LARGE = 0x51
    ZERO_LENGTH_DATA = 0x52
    STORE_ERROR = 0x60
    PEER_STORE_ERROR = 0x61
    PEER_REQUEST_FAILED = 0x62
    NOT_PERMITTED = 0x63
    STORE_FULL = 0x64
    BEING_DELETED = 0x70
    NOT_FOUND = 0x71
    ALREADY_RECEIVING = 0x80
    ALREADY_IN_STORE = 0x81
    PEER_CONNECTION_FAILED = 0x90
    CLIENT_CONNECTION_FAILED = 0x91

    @property
    def text(self) -> str:
        """The documented meaning, e.g. ``"object not found"``."""
        return _TEXT.get(int(self), "")

    def __str__(self) -> str:
        return f"{int(self):#04x} ({self.text})"


# From the Rust side, so the words are the ones the CLI and the docs use.
_TEXT: Dict[int, str] = dict(_native.status_table())


def as_status(code: int) -> Union[Status, int]:
    """``Status(code)``, or the plain int for a code this version does not know."""
    try:
        return Status(code)
    except ValueError:
        return code


def status_text(code: int) -> str:
    return _TEXT.get(int(code), f"undocumented status {int(code):#04x}")
