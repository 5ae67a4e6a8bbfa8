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
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from oxen import chunklists
from oxen.config import save_toml_model
from oxen.errors import NotFound, OxenError, RefError
from oxen.merge import MergeResult
from oxen.nodes import CommitNode, DirEntry, DirNode, VNode
from oxen.objects import ObjectStore
from oxen.progress import Progress, ProgressFactory, null_progress
from oxen.refs import head_value
from oxen.repo import CONFIG_NAME, AsyncRepo
from oxen.sync.protocol import MISSING_BATCH, PACK_TARGET, Remote

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
) -> None:
    """Fetch objects as packs of ~PACK_TARGET bytes, ``jobs`` requests at a time."""
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
                pack = await objects.add_verified_pack(path, MAX_FETCH_PACK)
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


async def fetch_data(
    repo: AsyncRepo, remote: Remote, commits: list[bytes], jobs: int, bar: Progress
) -> tuple[int, int]:
    """The chunks of every file in ``commits``' trees that we lack; returns (nodes, chunks) fetched."""
    files: dict[bytes, tuple[bytes | None, int]] = {}
    for cid in commits:
        tree = (await repo.read_commit(cid)).tree
        for row in (await repo.trees.flatten(tree)).values():
            files[row.id] = (row.chunks, row.size)  # type: ignore[index]
    lists = sorted({c for c, _ in files.values() if c is not None})
    lacking_lists = sorted(await repo.db.missing(lists))
    await _fetch_ids(repo.objects, remote, lacking_lists, {}, jobs, bar)
    groups = {
        g for n in (await repo.objects.read_nodes(lists)).values() for g in chunklists.children(n)
    }
    lacking_groups = sorted(await repo.db.missing(groups))
    await _fetch_ids(repo.objects, remote, lacking_groups, {}, jobs, bar)
    expanded = await chunklists.expand(repo.objects, lists)
    sizes: dict[bytes, int] = {fid: size for fid, (c, size) in files.items() if c is None}
    for ids, lengths in expanded.values():
        sizes.update(zip(ids, lengths, strict=True))
    wanted = sorted(await repo.db.missing(sizes))
    bar.reset(total=sum(sizes[c] for c in wanted))  # the data to come: now its size is known
    await _fetch_ids(repo.objects, remote, wanted, sizes, jobs, bar)
    await repo.db.add_chunk_maps(
        [(fid, c, expanded[c][0]) for fid, (c, _) in files.items() if c is not None]
    )
    lacking_lists += lacking_groups
    return len(lacking_lists), len(wanted)


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
        nodes, result.chunks = await fetch_data(repo, remote, data_commits, jobs, bar)
        result.nodes += nodes
    finally:
        bar.close()
    async with repo.db.transaction():
        for name, cid in refs.items():
            await repo.db.force_ref(f"refs/remotes/{remote_name}/{name}", cid)
    result.bytes_received = remote.bytes_received - received_before
    return result


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
    fetched = await fetch(repo, remote, remote_name, branch, jobs=jobs, progress=progress)
    merged = await repo.merge(f"refs/remotes/{remote_name}/{branch}", progress)
    return fetched, merged


async def clone(
    url: str,
    dest: Path,
    remote: Remote,
    branch: str | None = None,
    all_data: bool = False,
    jobs: int = 4,
    progress: ProgressFactory = null_progress,
) -> tuple[AsyncRepo, FetchResult]:
    """A new repository at ``dest`` with ``origin`` = ``url``, on ``branch`` (default: main)."""
    refs = await remote.refs()
    if not refs:
        raise NotFound(f"{url} has no branches yet (push to it first)")
    if branch is None:
        branch = "main" if "main" in refs else sorted(refs)[0]
    if branch not in refs:
        raise NotFound(f"{url} has no branch {branch}")
    if await asyncio.to_thread(_is_non_empty_dir, dest):
        raise OxenError(f"destination exists and is not empty: {dest}")
    repo = await AsyncRepo.init(dest)
    try:
        repo.config.remotes["origin"] = url
        await asyncio.to_thread(save_toml_model, repo.oxen_dir / CONFIG_NAME, repo.config)
        result = await fetch(repo, remote, "origin", branch, all_data, jobs, progress)
        tip = refs[branch]
        await repo.switch_tree(None, tip, progress)
        async with repo.db.transaction():
            await repo.db.force_ref(f"refs/heads/{branch}", tip)
            await repo.db.set_state("HEAD", head_value(branch, None))
    except BaseException:
        await repo.close()
        raise
    return repo, result


def _is_non_empty_dir(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))
