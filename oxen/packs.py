"""Pack files: many blobs (chunks and nodes) in one immutable object, index at the end.

Layout (restic-style, so a pack can be streamed out and its index rebuilt from it alone)::

    blob 0 | blob 1 | ... | trailer (msgpack) | u32 trailer length (LE) | b"OXNPACK1"

The trailer is ``[version, [[id(16 bytes), kind, offset, length], ...]]``.  A pack is
named by the xxh3-128 of its trailer, which lists the content ids of everything in it.
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import msgpack

from oxen.errors import CorruptObject
from oxen.ids import hash_bytes

MAGIC = b"OXNPACK1"
FOOTER = struct.Struct("<I")
FOOTER_LEN = FOOTER.size + len(MAGIC)
PACK_VERSION = 1


class Kind(IntEnum):
    CHUNK = 0
    NODE = 1


@dataclass(frozen=True, slots=True)
class PackEntry:
    id: bytes
    kind: Kind
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SealedPack:
    id: bytes
    path: Path
    entries: list[PackEntry]
    size: int


def pack_key(pack_id: bytes) -> str:
    hex_id = pack_id.hex()
    return f"packs/{hex_id[:2]}/{hex_id}.pack"


class PackWriter:
    """Appends blobs to a temporary file; ``finish`` seals it. Not thread-safe."""

    def __init__(self, tmp_dir: Path) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.path = tmp_dir / f"pack-{os.getpid()}-{uuid.uuid4().hex}.tmp"
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in finish/abort
        self.entries: list[PackEntry] = []
        self.size = 0

    def add(self, oid: bytes, kind: Kind, data: bytes | memoryview) -> None:
        self._file.write(data)
        self.entries.append(PackEntry(oid, kind, self.size, len(data)))
        self.size += len(data)

    def add_many(self, blobs: list[tuple[bytes, Kind, bytes | memoryview]]) -> None:
        """Append many blobs with one write call (thousands of 64 KiB writes cost more)."""
        offset = self.size
        for oid, kind, data in blobs:
            self.entries.append(PackEntry(oid, kind, offset, len(data)))
            offset += len(data)
        self._file.write(b"".join(data for _, _, data in blobs))
        self.size = offset

    def finish(self) -> SealedPack:
        trailer = encode_trailer(self.entries)
        self._file.write(trailer)
        self._file.write(FOOTER.pack(len(trailer)))
        self._file.write(MAGIC)
        self._file.close()
        size = self.size + len(trailer) + FOOTER_LEN
        return SealedPack(hash_bytes(trailer), self.path, self.entries, size)

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def encode_trailer(entries: list[PackEntry]) -> bytes:
    rows = [[e.id, int(e.kind), e.offset, e.length] for e in entries]
    return msgpack.packb([PACK_VERSION, rows], use_bin_type=True)


def decode_footer(tail: bytes) -> int:
    """The trailer length from the last ``FOOTER_LEN`` bytes of a pack."""
    if len(tail) != FOOTER_LEN or tail[-len(MAGIC) :] != MAGIC:
        raise CorruptObject("not a pack (bad magic)")
    return FOOTER.unpack(tail[: FOOTER.size])[0]


def decode_trailer(trailer: bytes, data_size: int | None = None) -> list[PackEntry]:
    try:
        version, rows = msgpack.unpackb(trailer, raw=False)
        if version != PACK_VERSION:
            raise CorruptObject(f"unsupported pack version {version}")
        entries = [PackEntry(bytes(r[0]), Kind(r[1]), int(r[2]), int(r[3])) for r in rows]
    except CorruptObject:
        raise
    except Exception as e:  # msgpack raises many types on garbage
        raise CorruptObject(f"unreadable pack trailer: {e}") from None
    for e in entries:
        if len(e.id) != 16 or e.offset < 0 or e.length < 0:
            raise CorruptObject("pack trailer has an invalid entry")
        if data_size is not None and e.offset + e.length > data_size:
            raise CorruptObject("pack trailer points past the pack's data")
    return entries
