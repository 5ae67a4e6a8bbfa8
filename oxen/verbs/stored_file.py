"""A file of a revision read at any offset from the object store, without writing it out.

``StoredFile.read(offset, n)`` reads only the chunks holding those bytes (of a large
file's chunk index, only the lists the span touches); in a partial clone the chunks it
lacks are fetched from the remote, those alone.  ``SyncReader`` lets a library that wants
a seekable binary file (pyarrow reading a parquet footer, then one row group) use it from
a worker thread while the event loop does the reads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from itertools import accumulate

from oxen.core.repository import Repository
from oxen.db.rows import FileRow
from oxen.errors import MissingObject
from oxen.objects.chunklists import expand


class StoredFile:
    """Reads of one stored file: its chunk layout is read once, and the chunks read are
    kept (up to ``CACHE_BYTES``), since a parquet reader asks for many small spans."""

    CACHE_BYTES = 64 * 1024 * 1024

    def __init__(self, repo: Repository, row: FileRow) -> None:
        assert row.id is not None
        self.repo = repo
        self.row = row
        self.size = row.size
        self.bytes_read = 0  # bytes of chunks read from the store (cache misses)
        self._ids: list[bytes] = []
        self._starts: list[int] = []  # byte offset of each chunk
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._cached = 0

    async def _layout(self) -> None:
        if self._starts or not self.size:
            return
        if self.row.chunks is None:
            ids, lengths = [self.row.id], [self.size]
        else:
            sizes = {self.row.chunks: self.size}
            ids, lengths = (await expand(self.repo.objects, sizes))[self.row.chunks]
        self._ids = list(ids)
        self._starts = [0, *accumulate(lengths)][:-1]

    async def read(self, offset: int, n: int) -> bytes:
        """Bytes ``offset`` to ``offset + n`` (fewer at the end of the file)."""
        end = min(self.size, offset + n)
        if offset >= end:
            return b""
        await self._layout()
        lo = bisect_right(self._starts, offset) - 1
        hi = bisect_left(self._starts, end)
        wanted = self._ids[lo:hi]
        await self._load([c for c in dict.fromkeys(wanted) if c not in self._cache])
        data = b"".join(self._cache[c] for c in wanted)
        start = offset - self._starts[lo]
        return data[start : start + (end - offset)]

    async def _load(self, ids: list[bytes]) -> None:
        if not ids:
            return
        absent = sorted(await self.repo.db.missing(ids))
        if absent:
            if self.repo.on_demand is None:
                raise MissingObject(
                    f"this clone does not hold the data of {self.row.path}; nothing was "
                    f"changed: run it online, or `oxen fetch-data {self.row.path}` first"
                )
            await self.repo.on_demand.objects(absent)
        blobs = await self.repo.objects.read_blobs(set(ids))
        for oid in ids:
            self._cache[oid] = blobs[oid]
            self._cached += len(blobs[oid])
            self.bytes_read += len(blobs[oid])
        while self._cached > self.CACHE_BYTES and len(self._cache) > len(ids):
            _, dropped = self._cache.popitem(last=False)
            self._cached -= len(dropped)


class SyncReader(io.RawIOBase):
    """A seekable, read-only binary file over a :class:`StoredFile` (or anything with
    ``size`` and an async ``read(offset, n)``), for use in a worker thread: each read is
    run on ``loop`` and waited for (``_wait``: how; the server's reader bounds it)."""

    def __init__(self, stored: StoredFile, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.stored = stored
        self.loop = loop
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.stored.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def size(self) -> int:
        return self.stored.size

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.stored.size - self.pos
        future = asyncio.run_coroutine_threadsafe(self.stored.read(self.pos, n), self.loop)
        data = self._wait(future)
        self.pos += len(data)
        return data

    def _wait(self, future: concurrent.futures.Future[bytes]) -> bytes:
        return future.result()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
