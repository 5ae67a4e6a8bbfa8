"""fetch, pull and clone: bring the remote's commits and trees, and the data asked for.

Metadata first: commits and every node of their trees that we lack, fetched level by level
in batches.  Then data: by default only the chunks of the branch tips' files (``all_data``
takes every commit's), fetched as ~16 MiB packs with several requests in flight; each pack
is verified (every blob against its id, every node decoded, so no path can escape) before
it is kept.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from oxen import chunklists
from oxen.config import save_toml_model
from oxen.db import FileRow
from oxen.errors import NotFound, OxenError, RefError
from oxen.materialize import remove_files
from oxen.merge import MergeResult
from oxen.nodes import CommitNode, DirEntry, DirNode, VNode
from oxen.objects import ChunksCallback, ObjectStore
from oxen.progress import Progress, ProgressFactory, null_progress
from oxen.refs import head_value
from oxen.repo import CONFIG_NAME, AsyncRepo
from oxen.status import compute_status
from oxen.stream_checkout import StreamingCheckout
from oxen.sync.protocol import MISSING_BATCH, PACK_TARGET, Remote
from oxen.worktree import FileStat

MAX_FETCH_PACK = 512 * 1024 * 1024


@dataclass
class FetchResult:
    branches: dict[str, bytes] = field(default_factory=dict)
    nodes: int = 0
    chunks: int = 0
    bytes_received: int = 0


async def _fetch_ids(
    objects: ObjectStore,
    remote: Remote,
    ids: list[bytes],
    sizes: dict[bytes, int],
    jobs: int,
    bar: Progress,
    on_chunks: ChunksCallback | None = None,
) -> None:
    """Fetch objects as packs of ~PACK_TARGET bytes, ``jobs`` requests at a time, in the
    order given."""
    if not ids:
        return
    groups: list[list[bytes]] = [[]]
    size = 0
    for oid in ids:
        if size >= PACK_TARGET or len(groups[-1]) >= MISSING_BATCH:
            groups.append([])
            size = 0
        groups[-1].append(oid)
        size += sizes.get(oid, 4096)
    limit = asyncio.Semaphore(jobs)
    tmp = objects.tmp_dir
    await asyncio.to_thread(tmp.mkdir, parents=True, exist_ok=True)

    async def one(group: list[bytes]) -> None:
        async with limit:
            path = tmp / f"fetch-{os.getpid()}-{uuid.uuid4().hex}.pack"
            try:
                await remote.fetch_pack(group, path)
                pack = await objects.add_verified_pack(path, MAX_FETCH_PACK, on_chunks)
                got = {e.id for e in pack.entries}
                if not set(group) <= got:
                    raise OxenError("the remote sent a pack without some objects we asked for")
                bar.update(sum(e.length for e in pack.entries))
            finally:
                await asyncio.to_thread(path.unlink, missing_ok=True)

    await asyncio.gather(*(one(g) for g in groups))


async def fetch_history(
    repo: AsyncRepo, remote: Remote, tips: list[bytes], jobs: int, bar: Progress
) -> tuple[set[bytes], int]:
    """Commits reachable from ``tips`` and every node of their trees; returns (commits, fetched)."""
    fetched = 0
    commits: set[bytes] = set()
    seen: set[bytes] = set()
    level = list(dict.fromkeys(tips))
    while level:
        lacking = sorted(await repo.db.missing(level))
        await _fetch_ids(repo.objects, remote, lacking, {}, jobs, bar)
        fetched += len(lacking)
        seen.update(level)
        nodes = await repo.objects.read_nodes(level)
        nxt: set[bytes] = set()
        for oid, node in nodes.items():
            if isinstance(node, CommitNode):
                commits.add(oid)
                nxt.add(node.tree)
                nxt.update(node.parents)
            elif isinstance(node, DirNode):
                nxt.update(node.vnodes)
            elif isinstance(node, VNode):
                nxt.update(e.id for e in node.entries if isinstance(e, DirEntry))
        level = sorted(nxt - seen)
    return commits, fetched


@dataclass
class DataPlan:
    """The data some trees need: every file's chunks, and which of them we lack."""

    chunk_ids: dict[bytes, list[bytes]]  # file id -> its ordered chunk ids
    lengths: dict[bytes, int]  # chunk id -> bytes
    # chunks to fetch, sorted by id: the order pushes send them in, so the server's packs
    # hold them in that order too and each fetched pack reads few of them (file order
    # made the server read 13x the data from S3)
    wanted: list[bytes]
    lists: list[tuple[bytes, bytes, list[bytes]]]  # (file id, chunk list id, chunk ids)
    nodes_fetched: int


async def plan_data(
    repo: AsyncRepo, remote: Remote, rows: list[FileRow], jobs: int, bar: Progress
) -> DataPlan:
    """Fetch the chunk lists of ``rows``' large files, then work out the chunks we lack."""
    files: dict[bytes, tuple[bytes | None, int]] = {
        row.id: (row.chunks, row.size) for row in rows if row.id is not None
    }
    lists = sorted({c for c, _ in files.values() if c is not None})
    lacking_lists = sorted(await repo.db.missing(lists))
    await _fetch_ids(repo.objects, remote, lacking_lists, {}, jobs, bar)
    groups = {
        g for n in (await repo.objects.read_nodes(lists)).values() for g in chunklists.children(n)
    }
    lacking_groups = sorted(await repo.db.missing(groups))
    await _fetch_ids(repo.objects, remote, lacking_groups, {}, jobs, bar)
    expanded = await chunklists.expand(repo.objects, lists)
    chunk_ids: dict[bytes, list[bytes]] = {}
    lengths: dict[bytes, int] = {}
    maps: list[tuple[bytes, bytes, list[bytes]]] = []
    for fid, (list_id, size) in files.items():
        if list_id is None:
            chunk_ids[fid] = [fid]
            lengths[fid] = size
        else:
            ids, sizes = expanded[list_id]
            chunk_ids[fid] = ids
            lengths.update(zip(ids, sizes, strict=True))
            maps.append((fid, list_id, ids))
    return DataPlan(
        chunk_ids=chunk_ids,
        lengths=lengths,
        wanted=sorted(await repo.db.missing(lengths)),
        lists=maps,
        nodes_fetched=len(lacking_lists) + len(lacking_groups),
    )


async def fetch_chunks(
    repo: AsyncRepo,
    remote: Remote,
    plan: DataPlan,
    jobs: int,
    bar: Progress,
    on_chunks: ChunksCallback | None = None,
) -> None:
    bar.reset(total=sum(plan.lengths[c] for c in plan.wanted))  # now the size is known
    await _fetch_ids(repo.objects, remote, plan.wanted, plan.lengths, jobs, bar, on_chunks)
    await repo.db.add_chunk_maps(plan.lists)


async def commit_rows(repo: AsyncRepo, commits: list[bytes]) -> list[FileRow]:
    """Every file of the commits' trees (one row per distinct file id is enough)."""
    rows: dict[bytes | None, FileRow] = {}
    for cid in commits:
        tree = (await repo.read_commit(cid)).tree
        for row in (await repo.trees.flatten(tree)).values():
            rows.setdefault(row.id, row)
    return list(rows.values())


async def fetch(
    repo: AsyncRepo,
    remote: Remote,
    remote_name: str,
    branch: str | None = None,
    all_data: bool = False,
    jobs: int = 4,
    progress: ProgressFactory = null_progress,
) -> FetchResult:
    received_before = remote.bytes_received
    refs = await remote.refs()
    if branch is not None:
        if branch not in refs:
            raise NotFound(f"the remote has no branch {branch}")
        refs = {branch: refs[branch]}
    result = FetchResult(branches=refs)
    bar = progress("fetching", None, "B")
    try:
        commits, result.nodes = await fetch_history(repo, remote, list(refs.values()), jobs, bar)
        data_commits = sorted(commits) if all_data else list(dict.fromkeys(refs.values()))
        plan = await plan_data(repo, remote, await commit_rows(repo, data_commits), jobs, bar)
        await fetch_chunks(repo, remote, plan, jobs, bar)
        result.nodes += plan.nodes_fetched
        result.chunks = len(plan.wanted)
    finally:
        bar.close()
    await _set_remote_refs(repo, remote_name, refs)
    result.bytes_received = remote.bytes_received - received_before
    return result


async def _set_remote_refs(repo: AsyncRepo, remote_name: str, refs: dict[str, bytes]) -> None:
    async with repo.db.transaction():
        for name, cid in refs.items():
            await repo.db.force_ref(f"refs/remotes/{remote_name}/{name}", cid)


async def pull(
    repo: AsyncRepo,
    remote: Remote,
    remote_name: str,
    branch: str | None = None,
    jobs: int = 4,
    progress: ProgressFactory = null_progress,
) -> tuple[FetchResult, MergeResult]:
    current, _ = await repo.head()
    branch = branch or current
    if branch is None:
        raise RefError("HEAD is detached: say which branch to pull")
    streamed = await _fast_forward_pull(repo, remote, remote_name, branch, jobs, progress)
    if streamed is not None:
        return streamed
    fetched = await fetch(repo, remote, remote_name, branch, jobs=jobs, progress=progress)
    merged = await repo.merge(f"refs/remotes/{remote_name}/{branch}", progress)
    return fetched, merged


async def _fast_forward_pull(
    repo: AsyncRepo,
    remote: Remote,
    remote_name: str,
    branch: str,
    jobs: int,
    progress: ProgressFactory,
) -> tuple[FetchResult, MergeResult] | None:
    """A pull that is a fast-forward of a clean working tree writes the changed files as
    their chunks arrive, as clone does (to temporary names, renamed once complete).
    Returns None, having changed nothing but fetched history, when it is not that case:
    then the ordinary fetch + merge runs and says what is in the way."""
    refs = await remote.refs()
    if branch not in refs:
        raise NotFound(f"the remote has no branch {branch}")
    tip = refs[branch]
    received_before = remote.bytes_received
    head_branch, ours = await repo.head()
    if ours is None or ours == tip or await repo.db.get_state("MERGE_HEAD") is not None:
        return None
    bar = progress("fetching", None, "B")
    try:
        commits, nodes = await fetch_history(repo, remote, [tip], jobs, bar)
        if await repo.merge_base(ours, tip) != ours:
            return None  # diverged: a real merge
        if not (await asyncio.to_thread(compute_status, repo.root, "")).clean:
            return None
        old_tree = (await repo.read_commit(ours)).tree
        new_tree = (await repo.read_commit(tip)).tree
        changes = await repo.trees.diff(old_tree, new_tree)
        writes = sorted(new for _, new in changes.values() if new is not None)
        deletes = [p for p, (_, new) in changes.items() if new is None]
        if _file_becomes_dir(writes, deletes):
            return None
        await repo.refuse_overwrites(changes)
        rows = sorted((await repo.trees.flatten(new_tree)).values())
        plan, written = await _fetch_and_write(repo, remote, rows, writes, False, jobs, bar)
    finally:
        bar.close()
    await asyncio.to_thread(remove_files, repo.root, deletes)
    async with repo.db.transaction():
        await repo.db.update_head_files(writes, deletes)
        await repo.db.delete_stats(deletes)
        await repo.remember_stats(written)
        await repo.db.force_ref(f"refs/remotes/{remote_name}/{branch}", tip)
        await repo.move_head(head_branch, ours, tip)
    fetched = FetchResult(
        branches={branch: tip},
        nodes=nodes + plan.nodes_fetched,
        chunks=len(plan.wanted),
        bytes_received=remote.bytes_received - received_before,
    )
    return fetched, MergeResult("fast-forward", tip)


async def _fetch_and_write(
    repo: AsyncRepo,
    remote: Remote,
    rows: list[FileRow],
    writes: list[FileRow],
    in_place: bool,
    jobs: int,
    bar: Progress,
) -> tuple[DataPlan, list[tuple[str, FileStat, bytes]]]:
    """Fetch the data ``rows`` lack, writing the files ``writes`` as their chunks arrive
    (see ``stream_checkout``); returns the plan and (path, stat, id) of each file written."""
    plan = await plan_data(repo, remote, rows, jobs, bar)
    writer = StreamingCheckout(repo.root, writes, plan.chunk_ids, plan.lengths, in_place)
    try:
        await fetch_chunks(repo, remote, plan, jobs, bar, writer.write_chunks)
        return plan, await writer.finish(repo.objects)
    except BaseException:
        await asyncio.to_thread(writer.abort)
        raise


def _file_becomes_dir(writes: list[FileRow], deletes: list[str]) -> bool:
    """Whether a new file goes below a path that is a file now (it must be deleted first,
    which the streaming pull does last)."""
    gone = set(deletes)
    return any(
        "/".join(parts[:i]) in gone
        for parts in (row.path.split("/") for row in writes)
        for i in range(1, len(parts))
    )


async def clone(
    url: str,
    dest: Path,
    remote: Remote,
    branch: str | None = None,
    all_data: bool = False,
    jobs: int = 4,
    progress: ProgressFactory = null_progress,
) -> tuple[AsyncRepo, FetchResult]:
    """A new repository at ``dest`` with ``origin`` = ``url``, on ``branch`` (default: main).

    The branch's files are written as their chunks arrive (see ``stream_checkout``)."""
    refs = await remote.refs()
    if not refs:
        raise NotFound(f"{url} has no branches yet (push to it first)")
    if branch is None:
        branch = "main" if "main" in refs else sorted(refs)[0]
    if branch not in refs:
        raise NotFound(f"{url} has no branch {branch}")
    if await asyncio.to_thread(_is_non_empty_dir, dest):
        raise OxenError(f"destination exists and is not empty: {dest}")
    created = not await asyncio.to_thread(dest.exists)
    repo = await AsyncRepo.init(dest)
    try:
        repo.config.remotes["origin"] = url
        await asyncio.to_thread(save_toml_model, repo.oxen_dir / CONFIG_NAME, repo.config)
        result = await _clone_into(repo, remote, branch, refs[branch], all_data, jobs, progress)
    except BaseException:
        await repo.close()
        await asyncio.to_thread(_remove_clone, dest, created)
        raise
    return repo, result


async def _clone_into(
    repo: AsyncRepo,
    remote: Remote,
    branch: str,
    tip: bytes,
    all_data: bool,
    jobs: int,
    progress: ProgressFactory,
) -> FetchResult:
    received_before = remote.bytes_received
    result = FetchResult(branches={branch: tip})
    bar = progress("fetching", None, "B")
    try:
        commits, result.nodes = await fetch_history(repo, remote, [tip], jobs, bar)
        tree = (await repo.read_commit(tip)).tree
        rows = sorted((await repo.trees.flatten(tree)).values())
        others = await commit_rows(repo, sorted(commits)) if all_data else []
        plan, written = await _fetch_and_write(repo, remote, rows + others, rows, True, jobs, bar)
        result.nodes += plan.nodes_fetched
        result.chunks = len(plan.wanted)
    finally:
        bar.close()
    async with repo.db.transaction():
        await repo.db.update_head_files(rows, ())
        await repo.remember_stats(written)
        await repo.db.force_ref(f"refs/remotes/origin/{branch}", tip)
        await repo.db.force_ref(f"refs/heads/{branch}", tip)
        await repo.db.set_state("HEAD", head_value(branch, None))
    result.bytes_received = remote.bytes_received - received_before
    return result


def _remove_clone(dest: Path, created: bool) -> None:
    """A failed or interrupted clone leaves nothing behind (``dest`` was empty or absent)."""
    if created:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _is_non_empty_dir(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))
