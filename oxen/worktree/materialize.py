"""Writing tree files into the working tree: batched chunk reads, atomic file replacement.

Files are assembled in a temporary file beside their target and renamed over it, so
an interrupted checkout leaves each file either old or new, never half-written.
Large files are streamed in windows of chunks so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from oxen.db.repo_db import RepoDB
from oxen.db.rows import FileRow
from oxen.formats.nodes import EXEC_MODE
from oxen.objects import chunklists
from oxen.objects.object_store import ObjectStore
from oxen.progress import Progress
from oxen.worktree.paths import FileStat, Written, safe_target, temp_name
from oxen.worktree.pending import PendingWrites

WINDOW_BYTES = 64 * 1024 * 1024


class Materializer:
    def __init__(self, root: Path, objects: ObjectStore, db: RepoDB, progress: Progress) -> None:
        self.root = root
        self.objects = objects
        self.db = db
        self.progress = progress
        self.pending = PendingWrites(root)

    async def chunk_ids(self, rows: list[FileRow]) -> dict[bytes, list[bytes]]:
        """file id -> ordered chunk ids, from the chunk-map table or the chunk-list nodes."""
        multi = {r.id: r.chunks for r in rows if r.chunks is not None and r.id is not None}
        out: dict[bytes, list[bytes]] = {r.id: [r.id] for r in rows if r.chunks is None and r.id}
        if multi:
            found = await self.db.chunk_maps(multi)
            out.update(found)
            lacking = {fid: lid for fid, lid in multi.items() if fid not in found}
            if lacking:
                sizes = chunklists.declared_sizes(
                    (r.chunks, r.size) for r in rows if r.id in lacking
                )
                expanded = await chunklists.expand(self.objects, sizes)
                for fid, lid in lacking.items():
                    out[fid] = expanded[lid][0]
        return out

    async def write(
        self, rows: list[FileRow], lists: dict[bytes, list[bytes]] | None = None
    ) -> list[Written]:
        """Write every row's file; returns (path, stat after writing, id) for the stat cache.
        ``lists``: the rows' chunk ids, when the caller already has them."""
        written: list[Written] = []
        if lists is None:
            lists = await self.chunk_ids(rows)
        batch: list[FileRow] = []
        batch_bytes = 0
        await asyncio.to_thread(self.pending.begin, [r.path for r in rows])
        try:
            for row in sorted(rows, key=lambda r: r.path):
                if row.size > WINDOW_BYTES:
                    written.append(await self._write_large(row, lists[row.id]))  # type: ignore[index]
                    continue
                batch.append(row)
                batch_bytes += row.size
                if batch_bytes >= WINDOW_BYTES or len(batch) >= 4096:
                    written.extend(await self._write_batch(batch, lists))
                    batch, batch_bytes = [], 0
            if batch:
                written.extend(await self._write_batch(batch, lists))
        finally:
            await asyncio.to_thread(self.pending.end)
        return written

    async def _write_batch(
        self, rows: list[FileRow], lists: dict[bytes, list[bytes]]
    ) -> list[Written]:
        blobs = await self.objects.read_blobs({c for r in rows for c in lists[r.id]})  # type: ignore[index]

        def write_all() -> list[Written]:
            out = []
            for r in rows:
                parts = [blobs[c] for c in lists[r.id]]  # type: ignore[index]
                out.append(Written(r.path, self._write_file(r, parts), r.id))
            return out

        result = await asyncio.to_thread(write_all)
        self.progress.update(sum(r.size for r in rows))
        return result

    async def _write_large(self, row: FileRow, ids: list[bytes]) -> Written:
        target = safe_target(self.root, row.path)
        await asyncio.to_thread(_prepare_parent, self.root, target)
        tmp = target.with_name(temp_name(target.name, self.pending.token))
        locations = await self.db.locate(ids)
        f = await asyncio.to_thread(open, tmp, "wb")
        try:
            window: list[bytes] = []
            size = 0
            for i, cid in enumerate(ids):
                window.append(cid)
                size += locations[cid].length if cid in locations else 0
                if size >= WINDOW_BYTES or i == len(ids) - 1:
                    blobs = await self.objects.read_blobs(window)
                    await asyncio.to_thread(f.writelines, [blobs[c] for c in window])
                    self.progress.update(size)
                    window, size = [], 0
            f.close()
            st = await asyncio.to_thread(_install, tmp, target, row.mode)
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise
        return Written(row.path, st, row.id)

    def _write_file(self, row: FileRow, parts: list[bytes]) -> FileStat:
        target = safe_target(self.root, row.path)
        _prepare_parent(self.root, target)
        tmp = target.with_name(temp_name(target.name, self.pending.token))
        try:
            with open(tmp, "wb") as f:
                f.writelines(parts)
            return _install(tmp, target, row.mode)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _install(tmp: Path, target: Path, mode: int) -> FileStat:
    os.chmod(tmp, EXEC_MODE if mode == EXEC_MODE else 0o644)
    os.replace(tmp, target)
    return FileStat.of(os.stat(target))


def _prepare_parent(root: Path, target: Path) -> None:
    """Create the parent directories, replacing a tracked file that stands where a dir must."""
    parent = target.parent
    if parent.is_dir():
        return
    for anc in reversed([parent, *parent.parents]):
        if anc == root or root not in anc.parents:
            continue
        if anc.exists() and not anc.is_dir():
            anc.unlink()
    parent.mkdir(parents=True, exist_ok=True)


def remove_files(root: Path, paths: list[str]) -> None:
    """Delete files and prune directories left empty by it (never the root)."""
    dirs: set[Path] = set()
    for path in paths:
        target = safe_target(root, path)
        try:
            if target.is_dir() and not target.is_symlink():
                continue
            target.unlink()
        except FileNotFoundError:
            pass
        dirs.update(p for p in target.parents if p != root and root in p.parents)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass
