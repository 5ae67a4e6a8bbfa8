"""Chunks and nodes over a Store: packs on write, batched ranged reads, verification on read.

This is the only module that knows both the store (where bytes live) and the database
index (which pack holds which object).  Write order, as in restic: a pack is written and
stored completely before any index row points into it.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from oxen.db.repo_db import RepoDB
from oxen.db.rows import Location
from oxen.errors import CorruptObject, MissingObject
from oxen.faults import crash_point
from oxen.formats.ids import hash_bytes
from oxen.formats.nodes import Node, decode_node, encode_with_id
from oxen.formats.packs import MAX_PACK_ENTRIES, Kind, SealedPack, pack_key
from oxen.objects.pack_index import ChunksCallback, NodeCallback, verify_pack_file
from oxen.objects.pack_writer import PackWriter
from oxen.storage import ByteRange, Store

READ_BATCH = 16 * 1024 * 1024  # bytes of objects read per batch when copying them out
READ_CONCURRENCY = 8


class ObjectStore:
    def __init__(self, store: Store, db: RepoDB, tmp_dir: Path, pack_size: int) -> None:
        self.store = store
        self.db = db
        self.tmp_dir = tmp_dir
        self.pack_size = pack_size
        self._nodes: dict[bytes, Node] = {}
        # fetches absent nodes from where a partial clone came from (set by the repository
        # when it has a remote and may go online; None: absent nodes are refused)
        self.fetch_missing: Callable[[list[bytes]], Awaitable[None]] | None = None

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
    async def read_blobs(
        self, ids: Iterable[bytes], known: dict[bytes, Location] | None = None
    ) -> dict[bytes, bytes]:
        """Bytes of every id, verified against it; raises MissingObject / CorruptObject.

        ``known``: locations the caller has looked up already (not asked again)."""
        wanted = set(ids)
        if known is not None and wanted <= known.keys():
            locations = {oid: known[oid] for oid in wanted}
        else:
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
        """Read and verify objects of one pack (the store merges nearby ranges)."""
        ranges = [ByteRange(loc.offset, loc.length) for _, loc in items]
        datas = await self.store.get_ranges(pack_key(pack), ranges)
        if datas is None:
            raise MissingObject(f"pack {pack.hex()} is missing from the store")
        out: dict[bytes, bytes] = {}
        for (oid, loc), blob in zip(items, datas, strict=True):
            if len(blob) != loc.length or hash_bytes(blob) != oid:
                raise CorruptObject(f"object {oid.hex()} in pack {pack.hex()} is corrupt")
            out[oid] = blob
        return out

    async def add_verified_pack(
        self,
        path: Path,
        max_size: int,
        on_chunks: ChunksCallback | None = None,
        on_node: NodeCallback | None = None,
    ) -> SealedPack:
        """Verify a pack file received from a peer and keep it (consumes the file).

        ``on_chunks({id: bytes})`` sees the data chunks as soon as they are verified, a
        batch of up to ~16 MiB at a time, in a worker thread (clone writes files from it);
        ``on_node(id, node)`` each decoded node, in that thread too."""
        pack = await asyncio.to_thread(verify_pack_file, path, max_size, on_chunks, on_node)
        await self.store.put_file(pack_key(pack.id), path, move=True)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        await self.db.add_pack(pack.id, pack.size, pack.entries)
        return pack

    async def add_verified_stored_pack(
        self, path: Path, key: str, max_size: int, on_node: NodeCallback | None = None
    ) -> SealedPack | None:
        """Verify a pack whose bytes are both at ``path`` (a local copy, removed here) and
        in the store at ``key`` (which no one else can write), then keep the stored copy as
        the pack, copied inside the store.  None if ``key`` vanished meanwhile."""
        try:
            pack = await asyncio.to_thread(verify_pack_file, path, max_size, None, on_node)
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        if not await self.store.copy(key, pack_key(pack.id)):
            return None
        await self.db.add_pack(pack.id, pack.size, pack.entries)
        return pack

    async def write_pack_of(
        self, ids: list[bytes], path: Path, known: dict[bytes, Location] | None = None
    ) -> int:
        """Write the objects ``ids`` into a new pack file at ``path`` (for sending); returns
        bytes.  ``known``: their locations, when the caller has looked them up already."""
        locations = known if known is not None else await self.db.locate(ids)
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
                if batch_bytes >= READ_BATCH or oid == ids[-1]:
                    blobs = await self.read_blobs(batch, locations)
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

    async def drop(
        self, ids: Iterable[bytes], check: Callable[[], Awaitable[None]] | None = None
    ) -> int:
        """Remove objects from this store (a partial clone freeing data its remote holds,
        ``gc`` removing what nothing reaches): each pack holding any of them is rewritten
        without them.  Returns bytes freed.

        Order, so a crash loses nothing kept: the new pack is stored, then one transaction
        points the index at it and forgets the old pack, then the old pack is deleted.
        ``check`` runs inside each of those transactions, first: it raises to stop (the
        packs done so far stay done, the rest untouched)."""
        gone = set(ids)
        by_pack: dict[bytes, int] = defaultdict(int)
        for loc in (await self.db.locate(gone)).values():
            by_pack[loc.pack] += loc.length
        for pack in by_pack:
            rows = await self.db.objects_in_pack(pack)
            kept = [r for r in rows if r[0] not in gone]
            sealed = await self._copy_out(kept) if kept else None
            if sealed is not None:
                await self.store.put_file(pack_key(sealed.id), sealed.path, move=True)
                await asyncio.to_thread(sealed.path.unlink, missing_ok=True)
            try:
                async with self.db.transaction():
                    if check is not None:
                        await check()
                    await self.db.forget_pack(pack)
                    if sealed is not None:
                        await self.db.add_pack(sealed.id, sealed.size, sealed.entries)
            except BaseException:
                if sealed is not None:  # stored, never indexed: not a pack of this store
                    await self.store.delete(pack_key(sealed.id))
                raise
            await self.store.delete(pack_key(pack))
        for oid in gone:
            self._nodes.pop(oid, None)
        return sum(by_pack.values())

    async def _copy_out(self, rows: list[tuple[bytes, int, int, int]]) -> SealedPack:
        """A new pack file of these objects (id, offset, length, kind), read in batches."""
        await asyncio.to_thread(self.tmp_dir.mkdir, parents=True, exist_ok=True)
        writer = PackWriter(self.tmp_dir)
        try:
            for i in range(0, len(rows), 4096):
                part = rows[i : i + 4096]
                blobs = await self.read_blobs([r[0] for r in part])
                await asyncio.to_thread(
                    writer.add_many, [(oid, Kind(kind), blobs[oid]) for oid, _, _, kind in part]
                )
            return await asyncio.to_thread(writer.finish)
        except BaseException:
            writer.abort()
            raise

    async def read_nodes(self, ids: Iterable[bytes], cache: bool = True) -> dict[bytes, Node]:
        """Decoded nodes; kept in memory for the next read unless ``cache`` is False (a
        walk of a whole tree that will not be read again)."""
        ids = set(ids)
        out = {oid: self._nodes[oid] for oid in ids if oid in self._nodes}
        todo = ids - out.keys()
        if todo:
            try:
                blobs = await self.read_blobs(todo)
            except MissingObject:
                absent = sorted(await self.db.missing(todo))
                if not absent:
                    raise  # a pack gone under the index: not a partial clone's business
                if self.fetch_missing is None:
                    raise MissingObject(
                        f"this clone does not hold node {absent[0].hex()} (and "
                        f"{len(absent) - 1} more) that this needs; nothing was changed: run "
                        "it online (without --offline, with a remote), or `oxen fetch-data`"
                    ) from None
                await self.fetch_missing(absent)
                blobs = await self.read_blobs(todo)
            for oid, data in blobs.items():
                node = decode_node(data)
                if cache:
                    self._nodes[oid] = node
                out[oid] = node
        return out

    async def read_node(self, oid: bytes) -> Node:
        return (await self.read_nodes([oid]))[oid]


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
        while fresh:
            if self._writer is None:
                self._writer = PackWriter(self.objects.tmp_dir, direct=True)
            writer = self._writer
            room = MAX_PACK_ENTRIES - len(writer.entries)  # no pack lists more than this
            part, fresh = fresh[:room], fresh[room:]
            await asyncio.to_thread(writer.add_many, part)
            self.bytes_written += sum(len(d) for _, _, d in part)
            if writer.size >= self.objects.pack_size or len(writer.entries) >= MAX_PACK_ENTRIES:
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
