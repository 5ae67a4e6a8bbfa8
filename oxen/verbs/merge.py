"""Merging branches: fast-forward, or a three-way merge of trees.

A three-way merge compares each side with the merge base using tree diffs (so only
changed subtrees are read).  A path changed on both sides to different content is a
conflict: the working tree keeps our version at the path and theirs beside it at
``<path>.theirs``, nothing is lost; ``oxen add`` + ``oxen commit`` resolves, ``oxen
merge --abort`` puts everything back as it was.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from oxen.core.repository import Repository
from oxen.db.rows import ConflictRow, FileRow
from oxen.errors import DirtyWorkingTree, MergeConflict, OxenError
from oxen.progress import ProgressFactory, null_progress
from oxen.trees import history
from oxen.trees.merge import merge_changes
from oxen.trees.tree import Change
from oxen.verbs import merge_state
from oxen.verbs.checkout import Record, apply_tree_change, refuse_overwrites, switch_to, write_files
from oxen.verbs.commit import commit
from oxen.verbs.status import status as working_status
from oxen.worktree.materialize import remove_files

MergeKind = Literal["up-to-date", "fast-forward", "merged"]


@dataclass(frozen=True)
class MergeResult:
    kind: MergeKind
    commit: bytes | None
    conflicts: list[str] = field(default_factory=list)


def _id(row: FileRow | None) -> bytes | None:
    return row.id if row is not None else None


async def merge_base(repo: Repository, a: bytes, b: bytes) -> bytes | None:
    """The newest common ancestor of two commits."""
    return await history.merge_base(repo.objects, a, b)


async def merge(
    repo: Repository, name: str, progress: ProgressFactory = null_progress, label: str | None = None
) -> MergeResult:
    """Merge the revision ``name`` into the current branch (``label``: the merge commit's
    message, if not "Merge branch 'NAME'")."""
    if await merge_state.merge_head(repo) is not None:
        raise OxenError("a merge is already in progress: commit it or run oxen merge --abort")
    branch, ours = await repo.head()
    theirs = await repo.resolve(name)
    status = await working_status(repo)
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
    base = await merge_base(repo, ours, theirs) if ours is not None else None
    if ours is not None and base == theirs:
        return MergeResult("up-to-date", ours)
    if ours is None or base == ours:

        async def advance() -> None:
            await repo.move_head(branch, ours, theirs)

        await switch_to(repo, ours, theirs, progress, then=advance)
        return MergeResult("fast-forward", theirs)

    assert ours is not None
    base_tree = (await repo.read_commit(base)).tree if base else None
    ours_tree = (await repo.read_commit(ours)).tree
    theirs_tree = (await repo.read_commit(theirs)).tree
    d_ours = await repo.trees.diff(base_tree, ours_tree)
    d_theirs = await repo.trees.diff(base_tree, theirs_tree)
    merged = merge_changes(d_ours, d_theirs)
    take = merged.take
    conflicts = [
        ConflictRow(
            path, _id(d_theirs[path].old), _id(d_ours[path].new), _id(d_theirs[path].new), None
        )
        for path in merged.conflicts
    ]
    await refuse_overwrites(repo, take)
    if conflicts:
        await _hold_conflicts(repo, conflicts, d_ours)
        conflicts = await _write_companions(repo, conflicts, d_theirs)

    async def begin_merge() -> None:
        await merge_state.begin(repo, theirs, ours, conflicts)

    await apply_tree_change(repo, take, progress, force=True, record=Record.STAGE, then=begin_merge)
    if not conflicts:
        return MergeResult("merged", await commit(repo, label or f"Merge branch '{name}'"))
    paths = [c.path for c in conflicts]
    raise MergeConflict(f"merge of {name} stopped with {len(paths)} conflicting path(s)", paths)


async def _hold_conflicts(
    repo: Repository, conflicts: list[ConflictRow], d_ours: dict[str, Change]
) -> None:
    """A partial clone brings our side of conflicts outside what it holds (only those
    files' data is fetched) and holds those paths from now on, so they can be resolved."""
    partial = await repo.partial()
    outside = [c.path for c in conflicts if not partial.holds(c.path)]
    if not outside:
        return
    ours = [row for p in outside if (row := d_ours[p].new) is not None]
    written = await write_files(repo, ours)
    async with repo.db.transaction():
        await repo.db.update_head_files(ours, [])
        await repo.remember_stats(written)
        await repo.set_partial(partial.widened(outside))


async def _write_companions(
    repo: Repository, conflicts: list[ConflictRow], d_theirs: dict[str, Change]
) -> list[ConflictRow]:
    """Write their side of each conflict beside ours; returns the rows with companion paths."""
    out: list[ConflictRow] = []
    rows: list[FileRow] = []
    for c in conflicts:
        new = d_theirs[c.path].new
        if new is None:
            out.append(c)
            continue
        companion = f"{c.path}.theirs"
        n = 1
        while (repo.root / companion).exists() or companion in d_theirs:
            n += 1
            companion = f"{c.path}.theirs{n}"
        rows.append(new._replace(path=companion))
        out.append(c._replace(theirs_path=companion))
    if rows:
        await write_files(repo, rows)
    return out


async def merge_abort(repo: Repository) -> None:
    orig = await repo.db.get_state(merge_state.ORIG_HEAD)
    if orig is None:
        raise OxenError("no merge in progress")
    conflicts = await repo.db.conflicts()
    staged = await repo.db.staged()
    paths = set(staged) | set(conflicts)
    head = await repo.db.head_files(sorted(paths))
    companions = [c.theirs_path for c in conflicts.values() if c.theirs_path]
    await asyncio.to_thread(
        remove_files, repo.root, [p for p in paths if p not in head] + companions
    )
    written = await write_files(repo, list(head.values()))
    async with repo.db.transaction():
        await repo.remember_stats(written)
        await repo.db.clear_staged()
        await merge_state.clear(repo)
