"""Staging: ``add`` (hash new and changed files into the store and the staging area),
``rm`` (stop tracking) and ``restore`` (files back from the index or a commit)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from oxen.core.repository import Repository
from oxen.db.rows import FileRow, StatRow
from oxen.errors import DirtyWorkingTree, PathError
from oxen.faults import crash_point
from oxen.formats.limits import MAX_DEPTH
from oxen.formats.nodes import EXEC_MODE, FILE_MODE, Schema
from oxen.progress import ProgressFactory, null_progress
from oxen.verbs import merge_state
from oxen.verbs.checkout import write_files
from oxen.verbs.status import status as working_status
from oxen.worktree.ignore import Ignore
from oxen.worktree.materialize import remove_files
from oxen.worktree.paths import FileStat, fs_clock, is_under, scan, stat_files
from oxen.worktree.tabular import format_of, sniff

if TYPE_CHECKING:
    from oxen.objects.object_store import ObjectStore
    from oxen.worktree.ingest import Ingested


@dataclass(frozen=True)
class AddResult:
    staged: int
    removed: int
    bytes_hashed: int
    bytes_stored: int


def file_mode(st: FileStat) -> int:
    return EXEC_MODE if st.executable else FILE_MODE


async def add(
    repo: Repository,
    paths: list[str],
    progress: ProgressFactory = null_progress,
    force: bool = False,
) -> AddResult:
    """Stage ``paths``; ``force`` adds paths that .oxenignore rules out."""
    targets = [repo.repo_path(p) for p in paths]
    conflicts = await repo.db.conflicts()
    companions = await merge_state.companions(repo)
    ignore = None if force else await asyncio.to_thread(Ignore.load, repo.root)
    clock, on_disk = await asyncio.to_thread(_scan_targets, repo, targets, ignore)
    for path in companions:
        on_disk.pop(path, None)
    staged_all = await repo.db.staged()
    tracked: dict[str, FileRow] = {}
    for t in targets:
        tracked.update(await repo.db.head_files_under(t))
    if ignore is not None:
        on_disk = await _leave_out_ignored(
            repo, ignore, paths, targets, on_disk, tracked, staged_all
        )
    too_deep = next((p for p in on_disk if p.count("/") >= MAX_DEPTH), None)
    if too_deep is not None:
        raise PathError(f"path is deeper than {MAX_DEPTH} directories: {too_deep[:200]}...")
    known = _paths_and_parents([*on_disk, *tracked, *staged_all])
    for user_path, t in zip(paths, targets, strict=True):
        if t and t not in known:
            raise PathError(f"pathspec '{user_path}' did not match any files")
    head = tracked  # every file on disk here is under a target, so its HEAD row is in tracked
    stats = await repo.db.stat_rows(list(on_disk))

    to_ingest: list[tuple[str, FileStat]] = []
    unstage: list[str] = []
    for path, st in on_disk.items():
        cached = stats.get(path)
        mode = file_mode(st)
        if (
            cached is not None
            and not cached.racy
            and (cached.size, cached.mtime_ns, cached.ctime_ns, cached.ino)
            == (st.size, st.mtime_ns, st.ctime_ns, st.ino)
        ):
            h, s = head.get(path), staged_all.get(path)
            if s is not None and s.id == cached.id and s.mode == mode:
                continue
            if h is not None and h.id == cached.id and h.mode == mode:
                if s is not None:
                    unstage.append(path)
                continue
        to_ingest.append((path, st))

    # imported here: the chunker (pyfastcdc) costs every other command 10 ms to load
    from oxen.worktree.chunking import Chunker
    from oxen.worktree.ingest import Ingestor

    total = sum(st.size for _, st in to_ingest)
    bar = progress("hashing", total, "B")
    try:
        ingestor = Ingestor(repo.objects, Chunker(repo.config.chunking), bar)
        ingested = await ingestor.run(repo.root, to_ingest)
    finally:
        bar.close()

    described = await describe_tabular(repo.objects, repo.root, ingested)
    stage: list[FileRow] = []
    stat_rows: list[StatRow] = []
    for ing in ingested:
        mode = file_mode(ing.stat)
        row = FileRow(ing.path, ing.id, ing.size, ing.chunks, mode, *described.get(ing.path, ()))
        h = head.get(ing.path)
        if h is not None and h.id == ing.id and h.mode == mode:
            if ing.path in staged_all:
                unstage.append(ing.path)
        else:
            stage.append(row)
        st = ing.stat
        stat_rows.append(
            StatRow(
                ing.path,
                st.size,
                st.mtime_ns,
                st.ctime_ns,
                st.ino,
                ing.id,
                int(st.mtime_ns >= clock),
            )
        )
    removals = [FileRow(p, None, 0, None, 0) for p in tracked if p not in on_disk]
    vanished_adds = [
        p
        for p, s in staged_all.items()
        if s.id is not None
        and p not in head
        and p not in on_disk
        and any(is_under(p, t) for t in targets)
    ]
    partial = await repo.partial()
    outside = [r.path for r in stage if not partial.holds(r.path)]
    async with repo.db.transaction():
        if outside:  # a partial clone holds what it adds from now on
            await repo.set_partial(partial.widened(outside))
        await repo.db.add_chunk_maps(ingestor.chunk_maps)
        await repo.db.stage(stage + removals)
        await repo.db.unstage(unstage + vanished_adds)
        await repo.db.put_stats(stat_rows)
        await repo.db.delete_stats([r.path for r in removals] + vanished_adds)
        resolved = [p for p in conflicts if p in on_disk or p in tracked]
        await repo.db.resolve_conflicts(resolved)
        crash_point("add-transaction")
    return AddResult(len(stage), len(removals), total, ingestor.sink.bytes_written)


async def describe_tabular(
    objects: ObjectStore, root: Path, ingested: list[Ingested]
) -> dict[str, tuple[bytes, int | None]]:
    """path -> (schema id, rows) of the tabular files among ``ingested`` (their Schema
    nodes stored); nothing is imported, nor read, when there are none."""
    tabular = [(i, fmt) for i in ingested if (fmt := format_of(i.path)) is not None]
    if not tabular:
        return {}

    def read_all() -> dict[str, tuple[Schema, int | None]]:
        out: dict[str, tuple[Schema, int | None]] = {}
        for ing, fmt in tabular:
            full = str(root / ing.path)
            found = sniff(full, fmt)
            st = os.stat(full)
            if (st.st_size, st.st_mtime_ns) == (ing.stat.size, ing.stat.mtime_ns):
                out[ing.path] = found  # (else it changed since it was hashed: no schema)
        return out

    found = await asyncio.to_thread(read_all)
    ids = await objects.put_nodes([schema for schema, _ in found.values()])
    return {path: (oid, rows) for (path, (_, rows)), oid in zip(found.items(), ids, strict=True)}


def _scan_targets(
    repo: Repository, targets: list[str], ignore: Ignore | None
) -> tuple[int, dict[str, FileStat]]:
    clock = fs_clock(repo.oxen_dir)
    found: dict[str, FileStat] = {}
    for t in targets:
        found.update(scan(repo.root, t, ignore))
    return clock, found


async def _leave_out_ignored(
    repo: Repository,
    ignore: Ignore,
    paths: list[str],
    targets: list[str],
    on_disk: dict[str, FileStat],
    tracked: dict[str, FileRow],
    staged: dict[str, FileRow],
) -> dict[str, FileStat]:
    """``on_disk`` without the untracked files .oxenignore rules out, plus the tracked
    files in ignored directories the scan skipped; naming an ignored path is an error."""
    known = _paths_and_parents([*tracked, *staged])
    for user_path, t in zip(paths, targets, strict=True):
        if t and t not in known and (ignore.file(t) or ignore.file(t + "/")):
            raise PathError(f"path is ignored by .oxenignore: {user_path} (use --force to add it)")
    kept = {p: st for p, st in on_disk.items() if p in tracked or p in staged or not ignore.file(p)}
    skipped = [p for p in ignore.under_pruned([*tracked, *staged]) if p not in kept]
    if skipped:
        kept.update(await asyncio.to_thread(stat_files, repo.root, skipped))
    return kept


async def rm(
    repo: Repository, paths: list[str], recursive: bool = False, staged_only: bool = False
) -> list[str]:
    """Stop tracking paths (and delete them from the working tree unless ``staged_only``)."""
    staged_all = await repo.db.staged()
    chosen: dict[str, FileRow] = {}
    for user_path in paths:
        t = repo.repo_path(user_path)
        found = dict(await repo.db.head_files_under(t))
        found.update({p: r for p, r in staged_all.items() if r.id is not None and is_under(p, t)})
        if not found:
            raise PathError(f"pathspec '{user_path}' did not match any tracked files")
        if any(p != t for p in found) and not recursive:
            raise PathError(f"not removing '{user_path}' recursively without -r")
        chosen.update(found)
    if not staged_only:
        status = await working_status(repo)
        dirty = sorted(set(status.modified) & chosen.keys())
        if dirty:
            raise DirtyWorkingTree(
                f"{dirty[0]} has local modifications; commit them, or use --staged to keep the file"
            )
    head = await repo.db.head_files(list(chosen))
    async with repo.db.transaction():
        await repo.db.stage([FileRow(p, None, 0, None, 0) for p in chosen if p in head])
        await repo.db.unstage([p for p in chosen if p not in head])
        await repo.db.delete_stats(list(chosen))
        await repo.db.resolve_conflicts(list(chosen))
    if not staged_only:
        await asyncio.to_thread(remove_files, repo.root, sorted(chosen))
    return sorted(chosen)


async def restore(
    repo: Repository,
    paths: list[str],
    staged: bool = False,
    source: str | None = None,
    progress: ProgressFactory = null_progress,
) -> list[str]:
    targets = [repo.repo_path(p) for p in paths]
    if staged:
        rows: dict[str, FileRow] = {}
        if source is not None:
            tree = await repo.tree_of(source)
            for t in targets:
                rows.update(await repo.trees.subtree_files(tree, t))
        staged_all = await repo.db.staged()
        hits = [p for p in staged_all if any(is_under(p, t) for t in targets)]
        head = await repo.db.head_files(list(rows)) if rows else {}
        async with repo.db.transaction():
            await repo.db.unstage(hits)
            await repo.db.stage([r for p, r in rows.items() if head.get(p) != r])
        return sorted(set(hits) | set(rows))
    # working tree: from the source commit, else from the staging area / HEAD
    wanted: dict[str, FileRow] = {}
    if source is not None:
        tree = await repo.tree_of(source)
        for t in targets:
            wanted.update(await repo.trees.subtree_files(tree, t))
    else:
        staged_all = await repo.db.staged()
        for t in targets:
            wanted.update(await repo.db.head_files_under(t))
        for p, r in staged_all.items():
            if any(is_under(p, t) for t in targets):
                if r.id is None:
                    wanted.pop(p, None)
                else:
                    wanted[p] = r
    if not wanted:
        raise PathError(f"pathspec '{paths[0]}' did not match any file known to oxen")
    written = await write_files(repo, list(wanted.values()), progress)
    await repo.remember_stats(written)
    return sorted(wanted)


def _paths_and_parents(paths: list[str]) -> set[str]:
    """Each path and every directory above it ("a/b/c" -> a/b/c, a/b, a)."""
    out: set[str] = set()
    for p in paths:
        while p and p not in out:
            out.add(p)
            p = p.rpartition("/")[0]
    return out
