"""Checking a stored pack where it lies (``fsck`` of a working copy or of a server's
store): its tail, its name, that its blobs tile its data, that every blob hashes to its
id and every node decodes.

A pack is read in windows of ~16 MiB, each hashed and decoded in a worker thread, so
memory holds one window whatever the pack's size and the event loop stays free.  Nothing
is written.  What is wrong is collected as :class:`Problem` lines, never raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from oxen.errors import CorruptObject
from oxen.formats.ids import hash_bytes
from oxen.formats.nodes import decode_node
from oxen.formats.packs import Kind, PackEntry, pack_key
from oxen.objects.pack_index import PackIndex, check_layout, read_pack_index
from oxen.storage import Store

WINDOW = 16 * 1024 * 1024  # bytes of a pack read, hashed and decoded at once


class Problem(NamedTuple):
    """One thing found wrong: what it is about (``pack <id>``, ``chunk <id>``) and what is
    wrong with it, a phrase that follows the subject (``is corrupt: bad magic``)."""

    subject: str
    what: str

    def __str__(self) -> str:
        return f"{self.subject} {self.what}"


@dataclass
class PackCheck:
    """What checking one pack found."""

    hex_id: str
    index: PackIndex | None = None  # None when its tail is unreadable (its objects are lost)
    objects: int = 0  # blobs hashed
    bytes: int = 0  # bytes of those blobs
    corrupt: set[bytes] = field(default_factory=set)  # ids of its blobs that are not intact
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> list[PackEntry]:
        """The entries whose blobs are intact (none if the index is unreadable)."""
        if self.index is None:
            return []
        return [e for e in self.index.entries if e.id not in self.corrupt]


async def check_pack(store: Store, hex_id: str, key: str) -> PackCheck:
    """Check the pack stored at ``key`` (listed under the name ``hex_id``)."""
    check = PackCheck(hex_id)
    subject = f"pack {hex_id}"
    try:
        index = await read_pack_index(store, key, max_entries=None)
    except CorruptObject as e:
        check.problems.append(Problem(subject, f"is corrupt: {e}"))
        return check
    if index is None:
        check.problems.append(Problem(subject, "vanished while it was being checked"))
        return check
    check.index = index
    if index.id.hex() != hex_id or key != pack_key(index.id):
        check.problems.append(
            Problem(subject, f"is misnamed: its trailer hashes to {index.id.hex()}")
        )
    try:
        ordered = check_layout(index.entries, index.data_size)
    except CorruptObject as e:
        check.problems.append(Problem(subject, f"is corrupt: {e}"))
        ordered = sorted(index.entries, key=lambda e: e.offset)
    for window in _windows(ordered):
        start = window[0].offset
        end = max(e.offset + e.length for e in window)
        data = await store.get_range(key, start, end - start)
        if data is None:
            check.problems.append(Problem(subject, "vanished while it was being checked"))
            return check
        bad = await asyncio.to_thread(_check_window, window, data, start)
        check.objects += len(window)
        check.bytes += sum(e.length for e in window)
        for e, reason in bad:
            check.corrupt.add(e.id)
            check.problems.append(Problem(f"object {e.id.hex()} in pack {hex_id}", reason))
    return check


def _windows(ordered: list[PackEntry]) -> Iterator[list[PackEntry]]:
    """Runs of entries (in offset order) spanning ~WINDOW bytes each; at least one each."""
    window: list[PackEntry] = []
    for e in ordered:
        window.append(e)
        if e.offset + e.length - window[0].offset >= WINDOW:
            yield window
            window = []
    if window:
        yield window


def _check_window(window: list[PackEntry], data: bytes, start: int) -> list[tuple[PackEntry, str]]:
    """The blobs of ``window`` (read from ``start``) that are not intact, and why.  Blocking."""
    view = memoryview(data)
    bad: list[tuple[PackEntry, str]] = []
    for e in window:
        blob = view[e.offset - start : e.offset - start + e.length]
        if len(blob) != e.length:
            bad.append((e, "is cut short (the pack ends before it does)"))
        elif hash_bytes(blob) != e.id:
            bad.append((e, "is corrupt (its bytes do not match its id)"))
        elif e.kind == Kind.NODE:
            try:
                decode_node(bytes(blob))
            except CorruptObject as err:
                bad.append((e, f"is corrupt (not a valid node: {err})"))
    return bad
