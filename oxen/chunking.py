"""Content-defined chunking (FastCDC 2020, normalized) of buffers and of files streamed in blocks.

A file is read in large blocks; each block is cut, and the last, possibly truncated
chunk of a block is carried over to the start of the next one.  Because FastCDC
decides a cut from the bytes after a chunk's start only, this yields exactly the
chunks of cutting the whole file at once, with memory bounded by the block size.
These functions hold no event loop: callers run them in worker threads (pyfastcdc
and xxhash release the GIL on large buffers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyfastcdc
import xxhash

from oxen.config import ChunkingConfig

BLOCK_SIZE = 16 * 1024 * 1024
BUFFERS = 3


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

    def cut(self, data: bytes | bytearray | memoryview) -> list[Chunk]:
        """Every chunk of an in-memory buffer that is a whole file."""
        digest = xxhash.xxh3_128_digest
        if len(data) <= self.config.min_size:
            return [Chunk(digest(data), 0, len(data))]
        return [Chunk(digest(c.data), c.offset, c.length) for c in self._cdc.cut_buf(data)]

    def open_stream(self, path: str, block_size: int = BLOCK_SIZE) -> FileStream:
        return FileStream(self, path, block_size)


@dataclass
class FileStream:
    """Reads and cuts one file block by block; ``file_id`` and ``size`` are set at the end."""

    chunker: Chunker
    path: str
    block_size: int = BLOCK_SIZE
    size: int = 0
    file_id: bytes | None = None
    _hasher: xxhash.xxh3_128 = field(default_factory=xxhash.xxh3_128)
    _carry: bytes = b""
    _eof: bool = False
    _buffers: list[bytearray] = field(default_factory=list)
    _blocks: int = 0

    def __post_init__(self) -> None:
        self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed at EOF/close()

    def close(self) -> None:
        self._file.close()

    def _next_buffer(self) -> memoryview:
        """Buffers are reused round-robin: a caller holds at most two blocks at a time
        (one being written, one being cut), and fresh 16 MiB allocations per block would
        fragment the heap across threads and grow RSS."""
        size = self.block_size + self.chunker.config.max_size
        if len(self._buffers) < BUFFERS:
            self._buffers.append(bytearray(size))
        buf = self._buffers[self._blocks % BUFFERS]
        self._blocks += 1
        return memoryview(buf)

    def next_block(self) -> Block | None:
        """The next block of whole chunks, or None when the file is done."""
        if self._eof:
            return None
        carry = len(self._carry)
        view = self._next_buffer()[: carry + self.block_size]
        view[:carry] = self._carry
        filled = carry
        while filled < len(view):
            n = self._file.readinto(view[filled:])
            if not n:
                self._eof = True
                break
            self._hasher.update(view[filled : filled + n])
            filled += n
        self.size += filled - carry
        data = view[:filled]
        if self._eof:
            self._file.close()
            self.file_id = self._hasher.digest()
            if filled == 0:
                return None
            return Block(data, self.chunker.cut(data))
        chunks = self.chunker.cut(data)
        last = chunks.pop()  # may be cut short by the block's end: carry it over
        self._carry = bytes(data[last.offset :])
        return Block(data[: last.offset], chunks)
