"""Merging branches: fast-forward, or a three-way merge of trees.

A three-way merge compares each side with the merge base using tree diffs (so only
changed subtrees are read).  A path changed on both sides to different content is a
conflict: the working tree keeps our version at the path and theirs beside it at
``<path>.theirs``, nothing is lost; ``oxen add`` + ``oxen commit`` resolves, ``oxen
merge --abort`` puts everything back as it was.
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from oxen.db import ConflictRow, FileRow
from oxen.errors import DirtyWorkingTree, MergeConflict, OxenError
from oxen.materialize import remove_files
from oxen.progress import ProgressFactory, null_progress
from oxen.status import compute_status

if TYPE_CHECKING:
    from oxen.repo import AsyncRepo


@dataclass(frozen=True)
class MergeResult:
    kind: str  # "up-to-date" | "fast-forward" | "merged"
    commit: bytes | None
    conflicts: list[str] = field(default_factory=list)


def _same(a: FileRow | None, b: FileRow | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.id, a.mode) == (b.id, b.mode)


class MergeOps:
    """Merge verbs of :class:`oxen.repo.AsyncRepo` (kept in their own module)."""

    async def merge_base(self: AsyncRepo, a: bytes, b: bytes) -> bytes | None:
        """The newest common ancestor of two commits."""
        ancestors: set[bytes] = set()
        todo = [a]
        while todo:
            cid = todo.pop()
            if cid not in ancestors:
                ancestors.add(cid)
                todo.extend((await self.read_commit(cid)).parents)
        first = await self.read_commit(b)
        heap = [(-first.timestamp, b)]
        seen = {b}
        while heap:
            _, cid = heapq.heappop(heap)
            if cid in ancestors:
                return cid
            for parent in (await self.read_commit(cid)).parents:
                if parent not in seen:
                    seen.add(parent)
                    heapq.heappush(heap, (-(await self.read_commit(parent)).timestamp, parent))
        return None

    async def merge(
        self: AsyncRepo, name: str, progress: ProgressFactory = null_progress
    ) -> MergeResult:
        if await self.db.get_state("MERGE_HEAD") is not None:
            raise OxenError("a merge is already in progress: commit it or run oxen merge --abort")
        branch, ours = await self.head()
        theirs = await self.resolve(name)
        status = await asyncio.to_thread(compute_status, self.root, "")
        if not status.clean:
            dirty = (
                status.staged_added
                + status.staged_modified
                + status.staged_removed
                + status.modified
                + status.removed
            )[:3]
            raise DirtyWorkingTree(
                f"merge refused: uncommitted changes ({', '.join(dirty)}); commit or restore them first"
            )
        if ours == theirs:
            return MergeResult("up-to-date", ours)
        base = await self.merge_base(ours, theirs) if ours is not None else None
        if ours is not None and base == theirs:
            return MergeResult("up-to-date", ours)
        if ours is None or base == ours:
            await self.switch_tree(ours, theirs, progress)
            async with self.db.transaction():
                await self.move_head(branch, ours, theirs)
            return MergeResult("fast-forward", theirs)

        base_tree = (await self.read_commit(base)).tree if base else None
        ours_tree = (await self.read_commit(ours)).tree
        theirs_tree = (await self.read_commit(theirs)).tree
        d_ours = await self.trees.diff(base_tree, ours_tree)
        d_theirs = await self.trees.diff(base_tree, theirs_tree)
        take: dict[str, tuple[FileRow | None, FileRow | None]] = {}
        conflicts: list[ConflictRow] = []
        for path, (old, new) in sorted(d_theirs.items()):
            if path not in d_ours:
                take[path] = (old, new)
            elif not _same(d_ours[path][1], new):
                mine = d_ours[path][1]
                conflicts.append(
                    ConflictRow(
                        path,
                        old.id if old else None,
                        mine.id if mine else None,
                        new.id if new else None,
                        None,
                    )
                )
        await self.refuse_overwrites(take)
        writes = [new for _, new in take.values() if new is not None]
        deletes = [p for p, (_, new) in take.items() if new is None]
        await asyncio.to_thread(remove_files, self.root, deletes)
        await self._write_rows(writes, progress)

        if not conflicts:
            async with self.db.transaction():
                await self.db.stage([*writes, *(FileRow(p, None, 0, None, 0) for p in deletes)])
                await self.db.set_state("MERGE_HEAD", theirs)
                await self.db.set_state("ORIG_HEAD", ours)
            commit = await self.commit(f"Merge branch '{name}'")
            return MergeResult("merged", commit)

        companions = await self._write_companions(conflicts, d_theirs, set(status.untracked))
        async with self.db.transaction():
            await self.db.stage([*writes, *(FileRow(p, None, 0, None, 0) for p in deletes)])
            await self.db.delete_stats(deletes)
            await self.db.set_conflicts(companions)
            await self.db.set_state("MERGE_HEAD", theirs)
            await self.db.set_state("ORIG_HEAD", ours)
            names = [c.theirs_path for c in companions if c.theirs_path]
            await self.db.set_state("MERGE_COMPANIONS", "\n".join(names).encode())
        paths = [c.path for c in conflicts]
        raise MergeConflict(f"merge of {name} stopped with {len(paths)} conflicting path(s)", paths)

    async def _write_companions(
        self: AsyncRepo,
        conflicts: list[ConflictRow],
        d_theirs: dict[str, tuple[FileRow | None, FileRow | None]],
        untracked: set[str],
    ) -> list[ConflictRow]:
        """Write their side of each conflict beside ours; returns the rows with companion paths."""
        out: list[ConflictRow] = []
        rows: list[FileRow] = []
        for c in conflicts:
            new = d_theirs[c.path][1]
            if new is None:
                out.append(c)
                continue
            companion = f"{c.path}.theirs"
            n = 1
            while (self.root / companion).exists() or companion in d_theirs:
                n += 1
                companion = f"{c.path}.theirs{n}"
            rows.append(FileRow(companion, new.id, new.size, new.chunks, new.mode))
            out.append(c._replace(theirs_path=companion))
        if rows:
            await self._write_rows(rows, null_progress)
        return out

    async def merge_companions(self: AsyncRepo) -> list[str]:
        """The ``<path>.theirs`` files this merge wrote (removed when it ends)."""
        raw = await self.db.get_state("MERGE_COMPANIONS")
        return [p for p in raw.decode().split("\n") if p] if raw else []

    async def merge_abort(self: AsyncRepo) -> None:
        orig = await self.db.get_state("ORIG_HEAD")
        if orig is None:
            raise OxenError("no merge in progress")
        conflicts = await self.db.conflicts()
        staged = await self.db.staged()
        paths = set(staged) | set(conflicts)
        head = await self.db.head_files(sorted(paths))
        companions = [c.theirs_path for c in conflicts.values() if c.theirs_path]
        await asyncio.to_thread(
            remove_files, self.root, [p for p in paths if p not in head] + companions
        )
        await self._write_rows(list(head.values()), null_progress)
        async with self.db.transaction():
            await self.db.clear_staged()
            await self._clear_merge_state()
