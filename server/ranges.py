"""The HTTP ``Range`` header of a file read (RFC 9110, section 14), for one byte range.

A request names at most one range we serve as 206: ``bytes=a-b``, ``bytes=a-`` or
``bytes=-n``.  Anything we do not serve as a range (another unit, a malformed header,
several ranges) is answered with the whole file, as the RFC lets a server ignore
``Range``; a range that starts past the end is unsatisfiable (416).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes ``start`` to ``end`` (exclusive) of a file."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


class Unsatisfiable(Exception):
    """A range of a file that holds none of its bytes: answered 416."""


def parse_range(header: str | None, size: int) -> Span | None:
    """The one range ``header`` asks for in a file of ``size`` bytes, clipped to the file;
    None to send the whole file; Unsatisfiable when no byte of the file is asked for."""
    if header is None:
        return None
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = specs.split(",")
    if len(parts) != 1:
        return None  # several ranges: the whole file (documented in docs/sync-protocol.md)
    first, dash, last = parts[0].strip().partition("-")
    if not dash or not _digits(first or "0") or not _digits(last or "0") or not (first or last):
        return None
    if not first:  # bytes=-n: the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return Span(max(0, size - suffix), size)
    start = int(first)
    if last and int(last) < start:
        return None  # last before first: an invalid range, so no range
    if start >= size:
        raise Unsatisfiable
    return Span(start, min(int(last) + 1 if last else size, size))


def _digits(text: str) -> bool:
    """Plain ASCII digits (``int`` would also take ``+1``, `` 1`` or ``1_000``)."""
    return text.isascii() and text.isdigit() and len(text) <= 40
