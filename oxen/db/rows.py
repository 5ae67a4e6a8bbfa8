"""The rows of the repository database's tables, as named tuples (cheap to build by the
hundred thousand, and what every layer above passes around)."""

from __future__ import annotations

from typing import NamedTuple


class Location(NamedTuple):
    pack: bytes
    offset: int
    length: int
    kind: int


class FileRow(NamedTuple):
    """A file of a tree (HEAD's or the staging area's). ``id`` None means staged removal."""

    path: str
    id: bytes | None
    size: int
    chunks: bytes | None
    mode: int
    schema: bytes | None = None  # a tabular file's Schema node
    rows: int | None = None  # ...and its row count


class StatRow(NamedTuple):
    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    id: bytes
    racy: int


class ConflictRow(NamedTuple):
    path: str
    base: bytes | None
    ours: bytes | None
    theirs: bytes | None
    theirs_path: str | None
