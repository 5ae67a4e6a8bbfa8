"""Chunks and nodes over a Store: packs on write, batched ranged reads, verification on read.

This is the only module that knows both the store (where bytes live) and the database
index (which pack holds which object).  Write order, as in restic: a pack is written and
stored completely before any index row points into it.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from oxen.db import Location, RepoDB
from oxen.errors import CorruptObject, InvalidInput, MissingObject
from oxen.faults import crash_point
from oxen.ids import hash_bytes
from oxen.nodes import Node, decode_node, encode_with_id
from oxen.packs import (
    FOOTER_LEN,
    Kind,
    PackWriter,
    SealedPack,
    decode_footer,
    decode_trailer,
    pack_key,
)
from oxen.storage import ByteRange, Store

MAX_GAP = 256 * 1024  # merge ranged reads whose gap is smaller than this
MAX_RANGE = 16 * 1024 * 1024
READ_CONCURRENCY = 8

# receives verified data chunks (id -> bytes), a few MiB at a time, in a worker thread
ChunksCallback = Callable[[dict[bytes, bytes]], None]
CALLBACK_BATCH = 16 * 1024 * 1024


class ObjectStore:
    def __init__(self, store: Store, db: RepoDB, tmp_dir: Path, pack_size: int) -> None:
        self.store = store
        self.db = db
        self.tmp_dir = tmp_dir
        self.pack_size = pack_size
        self._nodes: dict[bytes, Node] = {}

    # -- writes ----------------------------------------------------------------------
    def sink(self) -> PackSink:
        return PackSink(self)

    async def write_nodes(self, encoded: Iterable[tuple[bytes, bytes]]) -> int:
        """Store (id, bytes) nodes that are not stored yet; returns how many were new."""
        items = dict(encoded)
        missing = await self.db.missing(items)
        if not missing:
            return 0
        sink = self.sink()
        await sink.add([(oid, Kind.NODE, items[oid]) for oid in sorted(missing)])
        await sink.close()
        return len(missing)

    async def put_nodes(self, nodes: Iterable[Node]) -> list[bytes]:
        encoded = [encode_with_id(n) for n in nodes]
        await self.write_nodes(encoded)
        return [oid for oid, _ in encoded]

    # -- reads -----------------------------------------------------------------------
    async def read_blobs(self, ids: Iterable[bytes]) -> dict[bytes, bytes]:
        """Bytes of every id, verified against it; raises MissingObject / CorruptObject."""
        wanted = set(ids)
        locations = await self.db.locate(wanted)
        if len(locations) != len(wanted):
            absent = next(iter(wanted - locations.keys()))
            raise MissingObject(f"object {absent.hex()} is not in this repository's store")
        by_pack: dict[bytes, list[tuple[bytes, Location]]] = defaultdict(list)
        for oid, loc in locations.items():
            by_pack[loc.pack].append((oid, loc))
        out: dict[bytes, bytes] = {}
        limit = asyncio.Semaphore(READ_CONCURRENCY)

        async def read_pack(pack: bytes, items: list[tuple[bytes, Location]]) -> None:
            async with limit:
                out.update(await self._read_from_pack(pack, items))

        await asyncio.gather(*(read_pack(p, items) for p, items in by_pack.items()))
        return out

    async def _read_from_pack(
        self, pack: bytes, items: list[tuple[bytes, Location]]
    ) -> dict[bytes, bytes]:
        items.sort(key=lambda it: it[1].offset)
        ranges: list[ByteRange] = []
        members: list[list[tuple[bytes, Location]]] = []
        for oid, loc in items:
            if ranges:
                last = ranges[-1]
                gap = loc.offset - last.end
                if 0 <= gap <= MAX_GAP and loc.offset + loc.length - last.start <= MAX_RANGE:
                    ranges[-1] = ByteRange(last.start, loc.offset + loc.length - last.start)
                    members[-1].append((oid, loc))
                    continue
            ranges.append(ByteRange(loc.offset, loc.length))
            members.append([(oid, loc)])
        key = pack_key(pack)
        datas = await self.store.get_ranges(key, ranges)
        if datas is None:
            raise MissingObject(f"pack {pack.hex()} is missing from the store")
        out: dict[bytes, bytes] = {}
        for rng, data, group in zip(ranges, datas, members, strict=True):
            view = memoryview(data)
            for oid, loc in group:
                blob = view[loc.offset - rng.start : loc.offset - rng.start + loc.length]
                if len(blob) != loc.length or hash_bytes(blob) != oid:
                    raise CorruptObject(f"object {oid.hex()} in pack {pack.hex()} is corrupt")
                out[oid] = bytes(blob) if len(group) > 1 else data
        return out

    async def add_verified_pack(
        self, path: Path, max_size: int, on_chunks: ChunksCallback | None = None
    ) -> SealedPack:
        """Verify a pack file received from a peer and keep it (consumes the file).

        ``on_chunks({id: bytes})`` sees the data chunks as soon as they are verified, a
        batch of up to ~16 MiB at a time, in a worker thread (clone writes files from it)."""
        pack = await asyncio.to_thread(verify_pack_file, path, max_size, on_chunks)
        await self.store.put_file(pack_key(pack.id), path, move=True)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        await self.db.add_pack(pack.id, pack.size, pack.entries)
        return pack

    async def write_pack_of(self, ids: list[bytes], path: Path) -> int:
        """Write the objects ``ids`` into a new pack file at ``path`` (for sending); returns bytes."""
        locations = await self.db.locate(ids)
        writer = PackWriter(path.parent)
        try:
            batch: list[bytes] = []
            batch_bytes = 0
            for oid in ids:
                loc = locations.get(oid)
                if loc is None:
                    raise MissingObject(f"object {oid.hex()} is not stored here")
                batch.append(oid)
                batch_bytes += loc.length
                if batch_bytes >= MAX_RANGE or oid == ids[-1]:
                    blobs = await self.read_blobs(batch)
                    await asyncio.to_thread(
                        writer.add_many, [(o, Kind(locations[o].kind), blobs[o]) for o in batch]
                    )
                    batch, batch_bytes = [], 0
            sealed = await asyncio.to_thread(writer.finish)
        except BaseException:
            writer.abort()
            raise
        await asyncio.to_thread(os.replace, sealed.path, path)
        return sealed.size

    async def read_nodes(self, ids: Iterable[bytes]) -> dict[bytes, Node]:
        ids = set(ids)
        out = {oid: self._nodes[oid] for oid in ids if oid in self._nodes}
        todo = ids - out.keys()
        if todo:
            for oid, data in (await self.read_blobs(todo)).items():
                node = decode_node(data)
                self._nodes[oid] = node
                out[oid] = node
        return out

    async def read_node(self, oid: bytes) -> Node:
        return (await self.read_nodes([oid]))[oid]


def verify_pack_file(
    path: Path, max_size: int, on_chunks: ChunksCallback | None = None
) -> SealedPack:
    """Check a pack received from elsewhere: layout, its name, every blob's id, every node.

    Blocking (runs in a worker thread); raises InvalidInput naming the first problem.
    """
    size = path.stat().st_size
    if size > max_size:
        raise InvalidInput(f"pack of {size} bytes exceeds the limit of {max_size}")
    try:
        with open(path, "rb") as f:
            if size < FOOTER_LEN:
                raise CorruptObject("too short to be a pack")
            f.seek(size - FOOTER_LEN)
            trailer_len = decode_footer(f.read(FOOTER_LEN))
            data_size = size - FOOTER_LEN - trailer_len
            if data_size < 0:
                raise CorruptObject("bad trailer length")
            f.seek(data_size)
            trailer = f.read(trailer_len)
            entries = decode_trailer(trailer, data_size)
            f.seek(0)
            offset = 0
            verified: dict[bytes, bytes] = {}
            batched = 0
            for e in sorted(entries, key=lambda e: e.offset):
                if e.offset != offset:
                    raise CorruptObject("blobs are not contiguous")
                blob = f.read(e.length)
                offset += e.length
                if hash_bytes(blob) != e.id:
                    raise CorruptObject(f"object {e.id.hex()} does not match its id")
                if e.kind == Kind.NODE:
                    decode_node(blob)
                elif on_chunks is not None:
                    verified[e.id] = blob
                    batched += len(blob)
                    if batched >= CALLBACK_BATCH:
                        on_chunks(verified)
                        verified, batched = {}, 0
            if offset != data_size:
                raise CorruptObject("pack data and index disagree")
            if verified and on_chunks is not None:
                on_chunks(verified)
    except CorruptObject as e:
        raise InvalidInput(f"rejected pack: {e}") from None
    return SealedPack(hash_bytes(trailer), path, entries, size)


class PackSink:
    """Collects blobs into packs of ~``pack_size``; each full pack is stored, then indexed.

    Storing a sealed pack (fsync, rename or upload, index rows) runs in the background
    while the next pack fills; ``close`` waits for all of them.
    """

    MAX_SEALING = 2

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self._writer: PackWriter | None = None
        self._sealing: set[asyncio.Task[None]] = set()
        self.seen: set[bytes] = set()
        self.bytes_written = 0

    async def add(self, blobs: list[tuple[bytes, Kind, bytes | memoryview]]) -> None:
        fresh = []
        for oid, kind, data in blobs:
            if oid not in self.seen:
                self.seen.add(oid)
                fresh.append((oid, kind, data))
        if not fresh:
            return
        if self._writer is None:
            self._writer = PackWriter(self.objects.tmp_dir, direct=True)
        writer = self._writer
        await asyncio.to_thread(writer.add_many, fresh)
        self.bytes_written += sum(len(d) for _, _, d in fresh)
        if writer.size >= self.objects.pack_size:
            await self._seal()

    async def _seal(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if not writer.entries:
            writer.abort()
            return
        sealed = await asyncio.to_thread(writer.finish)
        while len(self._sealing) >= self.MAX_SEALING:
            done, _ = await asyncio.wait(self._sealing, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        task = asyncio.ensure_future(self._store(sealed))
        self._sealing.add(task)
        task.add_done_callback(self._sealing.discard)

    async def _store(self, pack: SealedPack) -> None:
        await self.objects.store.put_file(pack_key(pack.id), pack.path, move=True)
        await asyncio.to_thread(pack.path.unlink, missing_ok=True)
        crash_point("pack-stored")
        await self.objects.db.add_pack(pack.id, pack.size, pack.entries)

    async def close(self) -> None:
        await self._seal()
        pending = list(self._sealing)
        if pending:
            await asyncio.gather(*pending)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        for task in self._sealing:
            task.cancel()
