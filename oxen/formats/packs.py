"""Pack files: many blobs (chunks and nodes) in one immutable object, index at the end.

Layout (restic-style, so a pack can be streamed out and its index rebuilt from it alone)::

    blob 0 | blob 1 | ... | trailer (msgpack) | u32 trailer length (LE) | b"OXNPACK1"

The trailer is ``[version, [[id(32 bytes), kind, offset, length], ...]]``.  A pack is
named by the BLAKE3 of its trailer, which lists the content ids of everything in it.
Formats only: writing packs is :mod:`oxen.objects.pack_writer`, reading a stored pack's
index :mod:`oxen.objects.pack_index`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import NamedTuple

import msgpack

from oxen.errors import CorruptObject
from oxen.formats.ids import ID_LEN

MAGIC = b"OXNPACK1"
FOOTER = struct.Struct("<I")
FOOTER_LEN = FOOTER.size + len(MAGIC)
PACK_VERSION = 2  # 2: 32-byte BLAKE3 ids
# Entries one pack may list: every pack written or sent holds at most this many, and a
# received pack listing more is refused before its trailer costs more than ~10 MB to read.
MAX_PACK_ENTRIES = 100_000


class Kind(IntEnum):
    CHUNK = 0
    NODE = 1


class PackEntry(NamedTuple):
    """One blob of a pack (a named tuple: packs of small files hold tens of thousands,
    and a frozen dataclass costs several times as much to build)."""

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


def encode_trailer(entries: list[PackEntry]) -> bytes:
    rows = [[e.id, int(e.kind), e.offset, e.length] for e in entries]
    return msgpack.packb([PACK_VERSION, rows], use_bin_type=True)


def decode_footer(tail: bytes) -> int:
    """The trailer length from the last ``FOOTER_LEN`` bytes of a pack."""
    if len(tail) != FOOTER_LEN or tail[-len(MAGIC) :] != MAGIC:
        raise CorruptObject("not a pack (bad magic)")
    return FOOTER.unpack(tail[: FOOTER.size])[0]


def trailer_span(size: int, tail: bytes) -> tuple[int, int]:
    """(offset, length) of the trailer of a pack of ``size`` bytes, from its last
    ``FOOTER_LEN`` bytes; the offset is also the length of the blob area."""
    if size < FOOTER_LEN:
        raise CorruptObject("too short to be a pack")
    trailer_len = decode_footer(tail)
    data_size = size - FOOTER_LEN - trailer_len
    if data_size < 0:
        raise CorruptObject("bad trailer length")
    return data_size, trailer_len


def decode_trailer(
    trailer: bytes, data_size: int | None = None, max_entries: int | None = MAX_PACK_ENTRIES
) -> list[PackEntry]:
    """The entries of a pack's trailer, strictly checked (ids are ID_LEN bytes, kinds known,
    offsets and lengths non-negative integers inside the data).  ``max_entries`` bounds what
    the decoding may cost: None only for packs a repository wrote itself."""
    try:
        limit = max(max_entries, 4) if max_entries is not None else 2**31 - 1
        body = msgpack.unpackb(trailer, raw=False, max_array_len=limit)
    except Exception as e:  # msgpack raises many types on garbage
        raise CorruptObject(
            f"unreadable pack trailer (at most {max_entries} entries): {e}"
        ) from None
    if not isinstance(body, list) or len(body) != 2 or not isinstance(body[1], list):
        raise CorruptObject("pack trailer is not [version, entries]")
    version, rows = body
    if version != PACK_VERSION:
        raise CorruptObject(f"unsupported pack version {version!r}")
    entries = []
    for r in rows:
        if (
            not isinstance(r, list)
            or len(r) != 4
            or not isinstance(r[0], bytes)
            or len(r[0]) != ID_LEN
            or r[1] not in (Kind.CHUNK, Kind.NODE)
            or type(r[1]) is not int
            or type(r[2]) is not int
            or type(r[3]) is not int
            or r[2] < 0
            or r[3] < 0
        ):
            raise CorruptObject("pack trailer has an invalid entry")
        if data_size is not None and r[2] + r[3] > data_size:
            raise CorruptObject("pack trailer points past the pack's data")
        entries.append(PackEntry(r[0], Kind(r[1]), r[2], r[3]))
    return entries
