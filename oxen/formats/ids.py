"""Content ids: BLAKE3, kept as 32 raw bytes in memory and on disk, 64 hex chars for people.

Ids must be collision resistant: whoever can make two contents with one id can have a
team's clones hold bytes nobody committed.  Chunks, nodes and packs are named by the
BLAKE3 hash of their bytes.  A file is named by its chunks: a file of one chunk by that
chunk's id, a file of several by BLAKE3 in key-derivation mode over its chunk ids, so each
byte is hashed once (by the chunker) and no content's plain hash can equal a file id made
of chunks (the two modes are domain-separated).  xxh3 remains only where nobody gains by
choosing the input (VNode buckets, lock names).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from blake3 import blake3

ID_LEN = 32
HEX_LEN = 2 * ID_LEN
_HEX_ID = re.compile(rf"^[0-9a-f]{{{HEX_LEN}}}$")
_FILE_CONTEXT = "oxen 2026-11 file id from chunk ids"


def hash_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return blake3(data).digest()


class FileIdBuilder:
    """The id of a file from its chunk ids, given in order (streams: memory stays flat)."""

    __slots__ = ("_first", "_count", "_hasher")

    def __init__(self) -> None:
        self._first = b""
        self._count = 0
        self._hasher = blake3(derive_key_context=_FILE_CONTEXT)

    def update(self, chunk_ids: Iterable[bytes]) -> None:
        for cid in chunk_ids:
            if not self._count:
                self._first = cid
            self._count += 1
            self._hasher.update(cid)

    def digest(self) -> bytes:
        if self._count == 0:
            return EMPTY_ID
        if self._count == 1:
            return self._first
        return self._hasher.digest()


def file_id(chunk_ids: Iterable[bytes]) -> bytes:
    builder = FileIdBuilder()
    builder.update(chunk_ids)
    return builder.digest()


EMPTY_ID = hash_bytes(b"")


def to_hex(oid: bytes) -> str:
    return oid.hex()


def from_hex(text: str) -> bytes:
    """Parse a full 64-char id; raises ValueError on anything else."""
    if not _HEX_ID.match(text):
        raise ValueError(f"not an object id: {text!r}")
    return bytes.fromhex(text)


def is_hex_prefix(text: str) -> bool:
    return 4 <= len(text) <= HEX_LEN and all(c in "0123456789abcdef" for c in text)


def split_ids(blob: bytes) -> list[bytes]:
    """Concatenated ids back to a list; raises ValueError when the length is not a multiple."""
    if len(blob) % ID_LEN:
        raise ValueError(f"not a list of {ID_LEN}-byte ids")
    return [blob[i : i + ID_LEN] for i in range(0, len(blob), ID_LEN)]
