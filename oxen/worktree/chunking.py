"""Content-defined chunking (FastCDC 2020, normalized) of buffers and of large files.

A large file is cut in segments of ``SEGMENT`` bytes on a pool of threads (pyfastcdc and
blake3 release the GIL, so two cores cut twice as fast).  Each chunk's bytes are hashed
once, there; the file's id is made from its chunk ids (:mod:`oxen.formats.ids`).  Each segment is cut as if a chunk
started at its first byte, and reads ``overlap`` bytes past its end.  FastCDC decides a cut
from the bytes since the chunk's start only, so once the chunks of one segment, carried
past its end, meet a cut of the next segment, the two agree from there on: the handed-out
chunks are exactly those of cutting the whole file at once.  When they do not meet within
the overlap (long runs of zeros can do that), the next segment is cut again from the last
true cut.  Memory is bounded by a few segments.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pyfastcdc
from blake3 import blake3

from oxen.config import ChunkingConfig
from oxen.formats.ids import FileIdBuilder, file_id

SEGMENT = 8 * 1024 * 1024
WORKERS = 2  # threads cutting segments
AHEAD = 2  # segments read and cut ahead of the one being handed out (more only cost memory)
KEPT_BUFFERS = AHEAD + 3  # enough for the next large file


@dataclass(slots=True)
class Chunk:
    id: bytes
    offset: int  # within the buffer it was cut from
    length: int


@dataclass(slots=True)
class Block:
    """A stretch of a file: its bytes and the whole chunks it holds."""

    data: memoryview
    chunks: list[Chunk]


class Chunker:
    def __init__(self, config: ChunkingConfig) -> None:
        self.config = config
        self._cdc = pyfastcdc.FastCDC(
            config.avg_size,
            min_size=config.min_size,
            max_size=config.max_size,
            normalized_chunking=config.normalization,
        )
        # segment buffers kept between the large files of one add: fresh pages cost a fault
        # per 4 KiB on first touch, more than the read into them
        self.buffers: list[bytearray] = []

    def cut(self, data: bytes | bytearray | memoryview) -> list[Chunk]:
        """Every chunk of an in-memory buffer that is a whole file."""
        if len(data) <= self.config.min_size:
            return [Chunk(blake3(data).digest(), 0, len(data))]
        return [Chunk(blake3(c.data).digest(), c.offset, c.length) for c in self._cdc.cut_buf(data)]

    def file_id_of(self, path: str, whole_below: int = SEGMENT) -> bytes:
        """The id a file on disk would get from ``add`` (blocking; cuts and hashes it)."""
        with open(path, "rb", buffering=0) as f:
            if os.fstat(f.fileno()).st_size < whole_below:
                return file_id(c.id for c in self.cut(f.read()))
        stream = self.open_stream(path)
        try:
            while stream.next_block() is not None:
                pass
        finally:
            stream.close()
        assert stream.file_id is not None
        return stream.file_id

    def open_stream(self, path: str, segment: int = SEGMENT) -> FileStream:
        return FileStream(self, path, segment)


@dataclass(slots=True)
class _Segment:
    start: int  # file offset of data[0]
    own_end: int  # where the next segment starts: chunks starting before it are ours
    buf: bytearray
    data: memoryview
    eof: bool  # data reaches the end of the file
    chunks: list[Chunk]  # the cuts of this segment that are certain (offsets within data)
    cuts: dict[int, int]  # file offset of each cut -> index of the chunk starting there


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    filled = 0
    while filled < len(view):
        n = os.preadv(fd, [view[filled:]], offset + filled)
        if not n:
            break
        filled += n
    return filled


class FileStream:
    """Cuts one file in parallel segments and hands out its chunks in order, block by block.

    ``next_block`` is blocking (run it in a worker thread); a caller may hold at most two
    blocks at a time (one being written while the next is prepared): the buffer of a block
    is reused for reading once the block after next is asked for.  ``file_id`` and ``size``
    are set when ``next_block`` returns None.
    """

    def __init__(self, chunker: Chunker, path: str, segment: int = SEGMENT) -> None:
        self.chunker = chunker
        self.segment = segment
        # at least one maximal chunk past a segment's end, so that every chunk starting in
        # the segment is whole in its buffer; and short enough to sync within the segment
        self.overlap = 2 * chunker.config.max_size
        if segment <= self.overlap:
            raise ValueError(f"segment must be larger than {self.overlap} bytes")
        self.size = 0
        self.file_id: bytes | None = None
        self._fd = os.open(path, os.O_RDONLY)
        self._planned = os.fstat(self._fd).st_size
        self._ids = FileIdBuilder()
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: deque[Future[_Segment]] = deque()
        self._held: deque[_Segment] = deque()
        self._next_start = 0  # where the next segment on the grid starts
        self._pos = 0  # file offset of the next chunk to hand out
        self._current: _Segment | None = None
        self._done = False

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            kept = self.chunker.buffers
            kept.extend(s.buf for s in self._held)
            if self._current is not None:
                kept.append(self._current.buf)
            del kept[KEPT_BUFFERS:]
            self._held.clear()
            self._current = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- the workers' side --------------------------------------------------------------
    def _cut(self, start: int, own_end: int, buf: bytearray) -> _Segment:
        view = memoryview(buf)[: min(own_end + self.overlap, self._planned) - start]
        n = _pread_into(self._fd, view, start)
        data = view[:n]
        eof = n < len(view) or start + n >= self._planned
        chunks = self.chunker.cut(data) if n else []
        if not eof:
            chunks.pop()  # may be cut short by the buffer's end
        cuts = {start + c.offset: i for i, c in enumerate(chunks)}
        if chunks:
            cuts[start + chunks[-1].offset + chunks[-1].length] = len(chunks)
        else:
            cuts[start] = 0
        return _Segment(start, own_end, buf, data, eof, chunks, cuts)

    def _submit(self, start: int, own_end: int, buf: bytearray | None = None) -> Future[_Segment]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="oxen-cdc")
        if buf is None:
            size = self.segment + self.overlap
            free = self.chunker.buffers
            buf = free.pop() if free and len(free[-1]) == size else bytearray(size)
        return self._pool.submit(self._cut, start, own_end, buf)

    def _fill(self) -> None:
        if self._done:  # the last block is out: nothing more to read
            return
        while len(self._jobs) < AHEAD and self._next_start < self._planned:
            start = self._next_start
            self._next_start += self.segment
            self._jobs.append(self._submit(start, self._next_start))

    # -- the caller's side --------------------------------------------------------------
    def next_block(self) -> Block | None:
        """The next run of whole chunks, or None when the file is done."""
        while len(self._held) > 1:  # the block before the last one handed out is written
            self.chunker.buffers.append(self._held.popleft().buf)
        if self._done:
            return None
        if self._current is None:
            self._fill()
            if not self._jobs:
                return self._finish()
            self._current = self._jobs.popleft().result()
        cur = self._current
        first = cur.cuts[self._pos]
        last = first  # one past the last chunk handed out
        while last < len(cur.chunks) and (
            cur.eof or cur.start + cur.chunks[last].offset < cur.own_end
        ):
            last += 1
        if cur.eof:  # the rest of the file is ours, whatever segments were read past it
            nxt = None
        else:
            self._fill()
            nxt = self._jobs.popleft().result()
            while True:  # carry our chunks on until they meet a cut of the next segment
                end = cur.start + cur.chunks[last - 1].offset + cur.chunks[last - 1].length
                if end in nxt.cuts:
                    break
                if last == len(cur.chunks):  # no meeting within the overlap: cut again
                    nxt = self._submit(end, nxt.own_end, nxt.buf).result()
                    break
                last += 1
        block = self._block(cur, first, last)
        self._held.append(cur)
        self._current = nxt
        if nxt is None:
            self._finish()
        self._fill()
        return block

    def _block(self, seg: _Segment, first: int, last: int) -> Block:
        chunks = seg.chunks[first:last]
        if not chunks:
            return Block(seg.data[:0], [])
        base = chunks[0].offset
        end = chunks[-1].offset + chunks[-1].length
        data = seg.data[base:end]
        self._ids.update(c.id for c in chunks)
        self.size += len(data)
        self._pos = seg.start + end
        return Block(data, [Chunk(c.id, c.offset - base, c.length) for c in chunks])

    def _finish(self) -> None:
        self._done = True
        self.file_id = self._ids.digest()
        self.close()
