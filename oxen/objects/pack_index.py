"""Pack files as the store holds them: listing them, reading a pack's index (its trailer),
and checking a pack received from a peer before it is kept.

The one place that parses a pack's tail: fsck, the server's index rebuild and the
verification of received packs all come here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from oxen.errors import CorruptObject, InvalidInput
from oxen.formats.ids import hash_bytes
from oxen.formats.nodes import Node, decode_node
from oxen.formats.packs import (
    FOOTER_LEN,
    MAX_PACK_ENTRIES,
    Kind,
    PackEntry,
    SealedPack,
    decode_trailer,
    trailer_span,
)
from oxen.storage import Store

PACKS_PREFIX = "packs/"
# receives verified data chunks (id -> bytes), a few MiB at a time, in a worker thread
ChunksCallback = Callable[[dict[bytes, bytes]], None]
# receives each verified node (id, decoded node), in a worker thread
NodeCallback = Callable[[bytes, Node], None]
CALLBACK_BATCH = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PackIndex:
    id: bytes  # the hash of the trailer (a pack's name, when it is intact)
    size: int
    data_size: int  # bytes of blobs before the trailer
    entries: list[PackEntry]


async def stored_packs(store: Store) -> AsyncIterator[tuple[str, str]]:
    """(pack id in hex, key) of every pack object in the store."""
    async for key in store.list(PACKS_PREFIX):
        name = key.rsplit("/", 1)[-1]
        if name.endswith(".pack"):
            yield name[:-5], key


async def read_pack_index(
    store: Store, key: str, max_entries: int | None = MAX_PACK_ENTRIES
) -> PackIndex | None:
    """A stored pack's index, read with two ranged reads and decoded in a worker thread;
    None when the pack is missing.  Raises CorruptObject when its tail is not a pack's."""
    size = await store.size(key)
    if size is None:
        return None
    tail = await store.get_range(key, max(0, size - FOOTER_LEN), FOOTER_LEN) or b""
    data_size, trailer_len = trailer_span(size, tail)
    trailer = await store.get_range(key, data_size, trailer_len) or b""
    entries = await asyncio.to_thread(decode_trailer, trailer, data_size, max_entries)
    return PackIndex(hash_bytes(trailer), size, data_size, entries)


def check_layout(entries: list[PackEntry], data_size: int) -> list[PackEntry]:
    """A pack's entries in offset order, once checked: at least one, none listed twice,
    their blobs tiling the ``data_size`` bytes before the trailer exactly, without gaps
    or overlaps.  Raises CorruptObject naming the first problem."""
    if not entries:
        raise CorruptObject("an empty pack")
    if len({e.id for e in entries}) != len(entries):
        raise CorruptObject("an object is listed twice")
    ordered = sorted(entries, key=lambda e: e.offset)
    offset = 0
    for e in ordered:
        if e.offset != offset:
            raise CorruptObject("blobs are not contiguous")
        offset += e.length
    if offset != data_size:
        raise CorruptObject("pack data and index disagree")
    return ordered


def verify_pack_file(
    path: Path,
    max_size: int,
    on_chunks: ChunksCallback | None = None,
    on_node: NodeCallback | None = None,
) -> SealedPack:
    """Check a pack received from elsewhere: layout, its name, every blob's id, every node.

    ``on_chunks({id: bytes})`` sees the data chunks as soon as they are verified, a batch
    of up to ~16 MiB at a time; ``on_node(id, node)`` sees each node once decoded.
    Blocking (runs in a worker thread); raises InvalidInput naming the first problem.
    """
    size = path.stat().st_size
    if size > max_size:
        raise InvalidInput(f"pack of {size} bytes exceeds the limit of {max_size}")
    try:
        with open(path, "rb") as f:
            f.seek(max(0, size - FOOTER_LEN))
            data_size, trailer_len = trailer_span(size, f.read(FOOTER_LEN))
            f.seek(data_size)
            trailer = f.read(trailer_len)
            entries = decode_trailer(trailer, data_size)
            ordered = check_layout(entries, data_size)
            f.seek(0)
            verified: dict[bytes, bytes] = {}
            batched = 0
            for e in ordered:
                blob = f.read(e.length)
                if hash_bytes(blob) != e.id:
                    raise CorruptObject(f"object {e.id.hex()} does not match its id")
                if e.kind == Kind.NODE:
                    node = decode_node(blob)
                    if on_node is not None:
                        on_node(e.id, node)
                elif on_chunks is not None:
                    verified[e.id] = blob
                    batched += len(blob)
                    if batched >= CALLBACK_BATCH:
                        on_chunks(verified)
                        verified, batched = {}, 0
            if verified and on_chunks is not None:
                on_chunks(verified)
    except CorruptObject as e:
        raise InvalidInput(f"rejected pack: {e}") from None
    return SealedPack(hash_bytes(trailer), path, entries, size)
