"""Writing a tree into an empty working tree while its chunks are still arriving (clone).

A fetched pack is verified blob by blob; each verified chunk is handed here at once and
written at every offset where the tree uses it (``pwrite``), so files fill in whatever
order packs complete, nothing waits in memory for an earlier chunk, and no chunk is read
back from the packs afterwards. Calls come from several worker threads at once.

Only for a fresh working tree: files are written in place (there is nothing to keep
safe from a half-written replacement), each directory is checked once for symlinks.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from pathlib import Path

from oxen.db import FileRow, RepoDB
from oxen.materialize import Materializer
from oxen.nodes import EXEC_MODE
from oxen.objects import ObjectStore
from oxen.progress import Progress
from oxen.worktree import FileStat, check_repo_path, safe_target

FLAGS = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class StreamingCheckout:
    def __init__(
        self,
        root: Path,
        rows: list[FileRow],
        chunk_ids: dict[bytes, list[bytes]],
        lengths: dict[bytes, int],
    ) -> None:
        """``chunk_ids``: file id -> its ordered chunk ids; ``lengths``: chunk id -> bytes."""
        self.root = root
        self.rows = rows
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

    def on_chunk(self, cid: bytes, data: bytes) -> None:
        """A verified chunk: write it wherever the tree uses it (blocking; any thread)."""
        for i, offset in self._targets.get(cid, ()):
            self._write(i, offset, data)

    def _write(self, i: int, offset: int, data: bytes) -> None:
        row = self.rows[i]
        path = self._path(row.path)
        mode = 0o755 if row.mode == EXEC_MODE else 0o644
        whole = offset == 0 and len(data) == row.size
        fd = os.open(path, FLAGS | (os.O_TRUNC if whole else 0), mode)
        try:
            view = memoryview(data)
            written = 0
            while written < len(view):
                written += os.pwrite(fd, view[written:], offset + written)
            if whole:
                done = True
            else:
                with self._lock:
                    self._remaining[i] -= len(data)
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
        parent = rel.rpartition("/")[0]
        if parent in self._dirs:
            check_repo_path(rel)
            return os.path.join(self.root, rel)
        target = safe_target(self.root, rel)
        if parent:
            os.makedirs(target.parent, exist_ok=True)
        self._dirs.add(parent)
        return str(target)

    async def finish(
        self, objects: ObjectStore, db: RepoDB, progress: Progress
    ) -> list[tuple[str, FileStat, bytes]]:
        """Write whatever did not arrive (chunks we already had), then return (path, stat,
        id) of every file, for the stat cache."""
        incomplete = [row for row, st in zip(self.rows, self._stats, strict=True) if st is None]
        done: list[tuple[str, FileStat, bytes]] = [
            (row.path, st, row.id)
            for row, st in zip(self.rows, self._stats, strict=True)
            if st is not None and row.id is not None
        ]
        if incomplete:
            writer = Materializer(self.root, objects, db, progress)
            done.extend(await writer.write(incomplete))
        return done
