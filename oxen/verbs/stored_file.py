"""A file of a revision read at any offset from the object store, without writing it out.

``StoredFile.read(offset, n)`` reads only the chunks holding those bytes (of a large
file's chunk index, only the lists the span touches); in a partial clone the chunks it
lacks are fetched from the remote, those alone.  ``SyncReader`` lets a library that wants
a seekable binary file (pyarrow reading a parquet footer, then one row group) use it from
a worker thread while the event loop does the reads.
"""

from __future__ import annotations

import asyncio
import io

from oxen.core.repository import Repository
from oxen.db.rows import FileRow
from oxen.errors import MissingObject
from oxen.objects.chunklists import expand_span


class StoredFile:
    def __init__(self, repo: Repository, row: FileRow) -> None:
        assert row.id is not None
        self.repo = repo
        self.row = row
        self.size = row.size
        self.bytes_read = 0

    async def read(self, offset: int, n: int) -> bytes:
        """Bytes ``offset`` to ``offset + n`` (fewer at the end of the file)."""
        end = min(self.size, offset + n)
        if offset >= end:
            return b""
        run = await expand_span(
            self.repo.objects,
            self.row.id,
            self.row.chunks,
            self.size,
            offset,
            end,  # type: ignore[arg-type]
        )
        absent = sorted(await self.repo.db.missing(run.ids))
        if absent:
            if self.repo.on_demand is None:
                raise MissingObject(
                    f"this clone does not hold the data of {self.row.path}; nothing was "
                    f"changed: run it online, or `oxen fetch-data {self.row.path}` first"
                )
            await self.repo.on_demand.objects(absent)
        blobs = await self.repo.objects.read_blobs(set(run.ids))
        data = b"".join(blobs[c] for c in run.ids)
        self.bytes_read += len(data)
        start = offset - run.offset
        return data[start : start + (end - offset)]


class SyncReader(io.RawIOBase):
    """A seekable, read-only binary file over a :class:`StoredFile`, for use in a worker
    thread (each read is run on ``loop`` and waited for)."""

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

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.stored.size - self.pos
        future = asyncio.run_coroutine_threadsafe(self.stored.read(self.pos, n), self.loop)
        data = future.result()
        self.pos += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
