"""One file of a commit, read as the server serves it: the revision to a commit, the path
to its entry, a span of bytes to the chunks that hold it, and those chunks read in order.

Memory stays bounded whatever the file's size: chunks are read a window at a time (one
window read ahead of the one being sent), each window's chunks located with the others
in one batch beforehand and read with ranged reads the store merges per pack.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from oxen.db.rows import Location
from oxen.errors import InvalidInput, MissingObject, NotFound, RefError
from oxen.formats.ids import from_hex
from oxen.formats.nodes import CommitNode, FileEntry
from oxen.formats.packs import Kind
from oxen.formats.refnames import check_branch_name
from oxen.objects.chunklists import ChunkRun, expand_span
from oxen.serving.served_repo import ServedRepo
from oxen.worktree.paths import check_repo_path

DEFAULT_REV = "main"
# Bytes of chunks read from the store at once; a request holds at most about three
# windows (the one being sent, its copy into one buffer, the one read ahead).
READ_WINDOW = 4 * 1024 * 1024
_COMMIT_ID = re.compile(r"[0-9a-fA-F]{64}")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FileAt:
    """A file of a commit."""

    path: str
    commit: bytes
    entry: FileEntry
    committed: int = 0  # the commit's time, seconds since the epoch

    @property
    def size(self) -> int:
        return self.entry.size


async def find_file(repo: ServedRepo, rev: str, path: str) -> FileAt:
    """The file at ``path`` in revision ``rev`` (a branch, else a full commit id).

    PathError for an unsafe path, NotFound for an unknown revision or path,
    InvalidInput for a directory."""
    check_repo_path(path)
    commit = await resolve_rev(repo, rev)
    node = await commit_of(repo, commit)
    entry = await after_refresh(repo, lambda: repo.trees.lookup(node.tree, path))
    if entry is None:
        raise NotFound(f"no file {path} at {rev}")
    if not isinstance(entry, FileEntry):
        raise InvalidInput(f"{path} is a directory at {rev}: name a file in it")
    return FileAt(path, commit, entry, node.timestamp)


async def resolve_rev(repo: ServedRepo, rev: str) -> bytes:
    """The commit ``rev`` names: the branch of that name, else a full (64 hex digit)
    commit id; NotFound when it is neither."""
    try:
        branch = check_branch_name(rev)
    except RefError:
        branch = None
    if branch is not None and (tip := await repo.branch_refs.get(branch)) is not None:
        return tip
    if _COMMIT_ID.fullmatch(rev):
        return from_hex(rev.lower())
    if branch is None:
        raise InvalidInput(f"not a branch name or commit id: {rev[:100]!r}")
    raise NotFound(f"no branch or commit {rev}")


async def commit_of(repo: ServedRepo, commit: bytes) -> CommitNode:
    """A commit; NotFound when no server on the store holds it."""
    return await after_refresh(repo, lambda: _commit(repo, commit))


async def tree_of(repo: ServedRepo, commit: bytes) -> bytes:
    """The root tree of a commit; NotFound when no server on the store holds it."""
    return (await commit_of(repo, commit)).tree


async def _commit(repo: ServedRepo, cid: bytes) -> CommitNode:
    located = (await repo.db.locate([cid])).get(cid)
    if located is None:
        raise MissingObject(f"no commit {cid.hex()}")  # another server may hold it
    node = await repo.objects.read_node(cid) if located.kind == Kind.NODE else None
    if not isinstance(node, CommitNode):
        raise NotFound(f"no commit {cid.hex()}")
    return node


async def after_refresh(repo: ServedRepo, read: Callable[[], Awaitable[T]]) -> T:
    """``read()``, and once more if another server stored what it missed; a miss that
    stays one is NotFound."""
    try:
        return await read()
    except MissingObject as e:
        if not await repo.refresh_after_miss():
            raise NotFound(str(e)) from None
    try:
        return await read()
    except MissingObject as e:
        raise NotFound(str(e)) from None


async def chunk_lengths(repo: ServedRepo, file: FileAt) -> list[int]:
    """The lengths of the file's chunks, in order."""
    e = file.entry
    run = await after_refresh(
        repo, lambda: expand_span(repo.objects, e.id, e.chunks, e.size, 0, e.size)
    )
    return run.lengths


@dataclass(frozen=True)
class ReadPlan:
    """Bytes ``start`` to ``end`` of a file: the chunks that hold them, each located."""

    repo: ServedRepo
    run: ChunkRun
    start: int
    end: int
    locations: dict[bytes, Location]

    def windows(self) -> list[tuple[int, int, int]]:
        """(first chunk, past the last chunk, file offset of the first) of each window of
        ``run``: about READ_WINDOW bytes, one chunk at least."""
        out: list[tuple[int, int, int]] = []
        first, offset, size = 0, self.run.offset, 0
        for i, length in enumerate(self.run.lengths):
            size += length
            if size >= READ_WINDOW:
                out.append((first, i + 1, offset))
                first, offset, size = i + 1, offset + size, 0
        if first < len(self.run.lengths):
            out.append((first, len(self.run.lengths), offset))
        return out

    async def pieces(self) -> AsyncIterator[bytes]:
        """The bytes, verified against their chunks' ids, a window at a time."""
        windows = self.windows()
        if not windows:
            return
        ahead = asyncio.ensure_future(self._read(*windows[0][:2]))
        try:
            for n, (lo, hi, offset) in enumerate(windows):
                blobs = await ahead
                if n + 1 < len(windows):
                    ahead = asyncio.ensure_future(self._read(*windows[n + 1][:2]))
                yield self._cut(lo, hi, offset, blobs)
        finally:
            if not ahead.done():
                ahead.cancel()
            elif not ahead.cancelled():
                ahead.exception()  # retrieved: a failed read ahead is not logged as lost

    async def _read(self, lo: int, hi: int) -> dict[bytes, bytes]:
        return await self.repo.objects.read_blobs(self.run.ids[lo:hi], self.locations)

    def _cut(self, lo: int, hi: int, offset: int, blobs: dict[bytes, bytes]) -> bytes:
        """The window's chunks in order (the first at byte ``offset`` of the file), cut
        to the span."""
        parts: list[bytes | memoryview] = []
        for cid, length in zip(self.run.ids[lo:hi], self.run.lengths[lo:hi], strict=True):
            a, b = max(self.start - offset, 0), min(self.end - offset, length)
            blob = blobs[cid]
            parts.append(blob if (a, b) == (0, length) else memoryview(blob)[a:b])
            offset += length
        return b"".join(parts)


async def plan_read(repo: ServedRepo, file: FileAt, start: int, end: int) -> ReadPlan:
    """Where each chunk of bytes ``start`` to ``end`` is, looked up in one batch before a
    byte is sent (so a missing chunk is a clean error, not a cut-off answer)."""
    e = file.entry
    run = await after_refresh(
        repo, lambda: expand_span(repo.objects, e.id, e.chunks, e.size, start, end)
    )
    wanted = set(run.ids)
    locations = await repo.db.locate(wanted)
    if len(locations) < len(wanted) and await repo.refresh_after_miss():
        locations = await repo.db.locate(wanted)
    if len(locations) < len(wanted):
        raise NotFound(f"chunks of {file.path} are not stored on this server")
    return ReadPlan(repo, run, start, end, locations)
