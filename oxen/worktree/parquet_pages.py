"""Whether a parquet file was written with content-defined pages, told from its page headers.

pyarrow's ``use_content_defined_chunking=True`` leaves no mark in the file's metadata, but
it does leave one in where pages end.  Arrow C++ (``created_by`` "parquet-cpp-arrow", which
pyarrow, pandas and anything on them write with) otherwise ends a page only between its
write batches of 1,024 values or at its row limit per page (20,000), so every page but a
column chunk's last holds a multiple of 1,024 values or exactly 20,000 (or, where the
dictionary overflowed, one page of the remainder; columns of lists, whose pages count
values rather than rows, are not looked at).  Pages cut by content end anywhere.
"Fixed-size" needs pages that ended at a batch boundary below the row limit (cut by
size), which content-defined pages do only by chance.  Where every page ended at the row
limit (narrow columns), both ways of writing cut alike and the pages deduplicate alike:
that reads as unknown.  The
headers of the first row group's pages are read (a few hundred bytes each, at most
``MAX_PAGES`` per column); they are Thrift compact structs, decoded here for the few fields
wanted, since pyarrow does not expose pages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

ARROW_WRITER = "parquet-cpp-arrow"
BATCH = 1024  # Arrow C++'s write_batch_size
ROW_LIMIT = 20_000  # Arrow C++'s data_page_row_count_limit
MAX_PAGES = 24  # page headers read per column chunk
HEADER_READ = 4096  # bytes read for one header, more if it is longer
MIN_PAGES = 4  # fewer data pages than this (a small file) cannot tell
DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 2, 3


@dataclass(frozen=True)
class PageCuts:
    """What the page headers say: ``verdict`` is "content-defined", "fixed" or "unknown"."""

    verdict: str
    pages: int  # data pages looked at (not the last of a column chunk)
    by_content: int  # of them, pages whose length no fixed-size writer gives
    writer: str
    at_row_limit: bool = False  # every page ended at the row limit: no evidence either way

    def describe(self) -> str:
        if self.verdict == "content-defined":
            return f"content-defined ({self.by_content} of {self.pages} pages cut by content)"
        if self.verdict == "fixed":
            return (
                "fixed-size (rewrite with pyarrow's use_content_defined_chunking=True "
                "so the next version shares most chunks)"
            )
        if self.at_row_limit:
            return (
                f"unknown (all {self.pages} pages end at the {ROW_LIMIT:,}-row limit, where "
                "either way of writing ends them; such pages deduplicate alike)"
            )
        if self.writer and not self.writer.startswith(ARROW_WRITER):
            return f"unknown (written by {self.writer.split(' (')[0]})"
        return f"unknown (only {self.pages} pages: too small to tell)"


class _Truncated(Exception):
    """The header runs past the bytes read."""


class _Compact:
    """Just enough of Thrift's compact protocol to read a struct into {field id: value}
    (nested structs as dicts; strings, lists and maps skipped)."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _byte(self) -> int:
        if self.pos >= len(self.buf):
            raise _Truncated
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def _varint(self) -> int:
        shift = out = 0
        while True:
            b = self._byte()
            out |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return out
            if shift > 70:
                raise ValueError("varint too long")

    def _zigzag(self) -> int:
        n = self._varint()
        return (n >> 1) ^ -(n & 1)

    def _skip(self, n: int) -> None:
        self.pos += n
        if self.pos > len(self.buf):
            raise _Truncated

    def _value(self, kind: int) -> Any:
        if kind in (1, 2):  # booleans are in the field header
            return kind == 1
        if kind == 3:
            return struct.unpack("b", bytes([self._byte()]))[0]
        if kind in (4, 5, 6):
            return self._zigzag()
        if kind == 7:
            self._skip(8)
        elif kind == 8:
            self._skip(self._varint())
        elif kind in (9, 10):
            head = self._byte()
            size, element = head >> 4, head & 15
            if size == 15:
                size = self._varint()
            for _ in range(size):
                self._byte() if element in (1, 2) else self._value(element)
        elif kind == 11:
            size = self._varint()
            if size:
                types = self._byte()
                for _ in range(size):
                    self._value(types >> 4)
                    self._value(types & 15)
        elif kind == 12:
            return self.read_struct()
        else:
            raise ValueError(f"not a thrift compact type: {kind}")
        return None

    def read_struct(self) -> dict[int, Any]:
        out: dict[int, Any] = {}
        field = 0
        while True:
            head = self._byte()
            if head == 0:
                return out
            delta = head >> 4
            field = field + delta if delta else self._zigzag()
            out[field] = self._value(head & 15)


def _header(f: BinaryIO, offset: int) -> tuple[dict[int, Any], int]:
    """The page header at ``offset`` and its length in bytes."""
    want = HEADER_READ
    while True:
        f.seek(offset)
        buf = f.read(want)
        try:
            reader = _Compact(buf)
            return reader.read_struct(), reader.pos
        except _Truncated:
            if len(buf) < want or want >= 1 << 24:
                raise ValueError("a page header runs past the end of the file") from None
            want *= 16


def _column_pages(f: BinaryIO, start: int, length: int) -> list[int]:
    """Values in each data page of one column chunk, but its last (unless ``MAX_PAGES``
    stopped the walk first)."""
    counts: list[int] = []
    pos, end = start, start + length
    while pos < end and len(counts) <= MAX_PAGES:
        header, size = _header(f, pos)
        kind, body = header.get(1), header.get(3)
        if not isinstance(body, int) or body < 0:
            raise ValueError("a page header without a size")
        detail = header.get(5) if kind == DATA_PAGE else header.get(8)
        if kind in (DATA_PAGE, DATA_PAGE_V2) and isinstance(detail, dict):
            counts.append(int(detail.get(1, 0)))
        pos += size + body
    return counts if len(counts) > MAX_PAGES else counts[:-1]


def page_cuts(f: BinaryIO) -> PageCuts:
    """Read the first row group's page headers of a parquet file (a seekable binary file)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(f).metadata
    writer = meta.created_by or ""
    if not writer.startswith(ARROW_WRITER) or meta.num_row_groups == 0:
        return PageCuts("unknown", 0, 0, writer)
    group = meta.row_group(0)
    pages = by_content = by_size = 0
    for i in range(group.num_columns):
        if meta.schema.column(i).max_repetition_level > 0:
            continue  # a list's pages count values, not the rows the writer cuts by
        column = group.column(i)
        start = column.data_page_offset
        if column.has_dictionary_page and column.dictionary_page_offset is not None:
            start = min(start, column.dictionary_page_offset)
        counts = _column_pages(f, start, column.total_compressed_size)
        # One page per chunk may end where the dictionary overflowed: not counted.
        odd = [n for n in counts if n % BATCH and n != ROW_LIMIT]
        pages += len(counts)
        by_content += max(0, len(odd) - 1)
        by_size += sum(1 for n in counts if n % BATCH == 0)
    if pages < MIN_PAGES:
        return PageCuts("unknown", pages, by_content, writer)
    if by_content >= 2 and by_content * 10 >= pages:
        return PageCuts("content-defined", pages, by_content, writer)
    if by_size >= 2 and by_content * 10 < pages:
        return PageCuts("fixed", pages, by_content, writer)
    # every page ended at the row limit: both writers cut there (the columns are narrow)
    return PageCuts("unknown", pages, by_content, writer, at_row_limit=True)
