"""Writing a tree's files while their chunks are still arriving (clone, fast-forward pull).

A fetched pack is verified blob by blob; verified chunks are handed here in batches of
a few MiB and written at every offset where the tree uses them (``pwrite``, one open per
file per batch), so files fill in whatever order packs complete, nothing waits in
memory for an earlier chunk, and no chunk is read back from the packs afterwards.
Calls come from several worker threads at once.

Into a fresh working tree (clone), files are written in place: there is nothing to keep
safe from a half-written replacement. Over an existing one (a fast-forward pull), each
file is written to a temporary name beside its target and renamed over it only once
the whole file is there, so an interrupted pull leaves every file old or new.
Each directory is checked once for symlinks.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import defaultdict
from pathlib import Path

from oxen.db.rows import FileRow
from oxen.errors import CorruptObject, PathError
from oxen.faults import crash_point
from oxen.formats.nodes import EXEC_MODE
from oxen.objects.object_store import ObjectStore
from oxen.worktree.materialize import WINDOW_BYTES
from oxen.worktree.paths import FileStat, Written, check_repo_path, safe_target
from oxen.worktree.pending import PendingWrites

FLAGS = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class StreamingCheckout:
    def __init__(
        self,
        root: Path,
        rows: list[FileRow],
        chunk_ids: dict[bytes, list[bytes]],
        lengths: dict[bytes, int],
        in_place: bool = True,
    ) -> None:
        """``chunk_ids``: file id -> its ordered chunk ids; ``lengths``: chunk id -> bytes."""
        self.root = root
        self.rows = rows
        self.in_place = in_place
        self.pending = PendingWrites(root)
        # chunk id -> every (file index, offset) where it belongs
        self._targets: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
        for i, row in enumerate(rows):
            offset = 0
            for cid in chunk_ids[row.id] if row.id is not None else ():
                self._targets[cid].append((i, offset))
                offset += lengths[cid]
        self._remaining = [row.size for row in rows]
        self._stats: list[FileStat | None] = [None] * len(rows)
        self._lock = threading.Lock()
        self._dirs: set[str] = set()
        self._delivered: set[bytes] = set()
        self._chunk_ids = chunk_ids
        self._lengths = lengths

    def on_chunk(self, cid: bytes, data: bytes) -> None:
        """A verified chunk: write it wherever the tree uses it (blocking; any thread)."""
        self.write_chunks({cid: data})

    def write_chunks(self, blobs: dict[bytes, bytes]) -> None:
        """Verified chunks: write each wherever the tree uses it, opening each file once
        per batch (blocking; any thread)."""
        pieces: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        for cid, data in blobs.items():
            if cid in self._delivered:
                continue
            self._delivered.add(cid)
            for i, offset in self._targets.get(cid, ()):
                pieces[i].append((offset, data))
        for i, parts in pieces.items():
            self._write(i, parts)

    def _write(self, i: int, parts: list[tuple[int, bytes]]) -> None:
        row = self.rows[i]
        path = self._path(row.path)
        mode = 0o755 if row.mode == EXEC_MODE else 0o644
        whole = len(parts) == 1 and parts[0][0] == 0 and len(parts[0][1]) == row.size
        fd = os.open(path, FLAGS | (os.O_TRUNC if whole else 0), mode)
        try:
            for offset, data in parts:
                view = memoryview(data)
                written = 0
                while written < len(view):
                    written += os.pwrite(fd, view[written:], offset + written)
            if whole:
                done = True
            else:
                with self._lock:
                    self._remaining[i] -= sum(len(data) for _, data in parts)
                    done = self._remaining[i] == 0
            if done:
                if mode == 0o755:
                    os.fchmod(fd, mode)  # the umask may have dropped the x bits
                st = os.fstat(fd)
                self._stats[i] = FileStat(
                    st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode
                )
        finally:
            os.close(fd)

    def _path(self, rel: str) -> str:
        """Where ``rel``'s bytes are written: the file itself, or its temporary name."""
        target = self._target(rel)
        return target if self.in_place else self._temporary(target)

    def _target(self, rel: str) -> str:
        parent = rel.rpartition("/")[0]
        if parent in self._dirs:
            check_repo_path(rel)
            return os.path.join(self.root, rel)
        target = safe_target(self.root, rel)
        if parent:
            os.makedirs(target.parent, exist_ok=True)
        self._dirs.add(parent)
        return str(target)

    def _temporary(self, target: str) -> str:
        return self.pending.temporary(target)

    def begin(self) -> None:
        """List the files about to be written beside their targets (not in place only), so
        that what a killed pull leaves is removed by the next command (blocking)."""
        if not self.in_place:
            self.pending.begin(row.path for row in self.rows)

    def _install(self) -> None:
        """Rename each finished temporary file over its target (not in place only)."""
        for i, row in enumerate(self.rows):
            if self._stats[i] is None:
                continue
            target = self._target(row.path)
            os.replace(self._temporary(target), target)
            st = os.stat(target)  # a rename changes the ctime
            self._stats[i] = FileStat(
                st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode
            )
        self.pending.end()

    def abort(self) -> None:
        """Remove temporary files left by an interrupted checkout (not in place only)."""
        if self.in_place:
            return
        for row in self.rows:
            try:
                os.unlink(self._temporary(self._target(row.path)))
            except (OSError, PathError):
                pass
        self.pending.end()

    async def finish(self, objects: ObjectStore) -> list[Written]:
        """Write the chunks that did not arrive (we had them already: the unchanged parts
        of a changed file, say) from the store, install the files, and return (path,
        stat, id) of every file, for the stat cache."""
        windows = self._windows()
        reading = asyncio.ensure_future(objects.read_blobs(windows[0])) if windows else None
        try:
            for k in range(len(windows)):
                assert reading is not None
                blobs = await reading
                # read the next window while this one is written
                nxt = k + 1 < len(windows)
                reading = asyncio.ensure_future(objects.read_blobs(windows[k + 1])) if nxt else None
                await asyncio.to_thread(self.write_chunks, blobs)
        finally:
            if reading is not None:
                reading.cancel()
        if not self.in_place:
            crash_point("pull-files-written")
            await asyncio.to_thread(self._install)
        missing = [row.path for row, st in zip(self.rows, self._stats, strict=True) if st is None]
        if missing:
            raise CorruptObject(f"{missing[0]}: its chunks do not add up to its size")
        return [
            Written(row.path, st, row.id)
            for row, st in zip(self.rows, self._stats, strict=True)
            if st is not None and row.id is not None
        ]

    def _windows(self) -> list[list[bytes]]:
        """Chunks of unfinished files that never arrived, in file order, in windows of
        ~WINDOW_BYTES."""
        wanted: dict[bytes, None] = {}
        for i, row in enumerate(self.rows):
            if self._stats[i] is None and row.id is not None:
                wanted.update(
                    (c, None) for c in self._chunk_ids[row.id] if c not in self._delivered
                )
        windows: list[list[bytes]] = []
        size = WINDOW_BYTES
        for cid in wanted:
            if size >= WINDOW_BYTES:
                windows.append([])
                size = 0
            windows[-1].append(cid)
            size += self._lengths[cid]
        return windows
