"""Fetching history: commits (all, or the last N generations), then their trees (whole,
or only the folders a partial clone holds), each level of the walk in one batch.

A ``--depth`` clone records the commits where its history stops (``Partial.shallow``);
later fetches never walk past them, so a pull of a shallow clone stays shallow.
"""

from __future__ import annotations

from collections.abc import Iterable

from oxen.core.repository import Repository
from oxen.formats.nodes import CommitNode, DirEntry, DirNode, FileEntry, VNode
from oxen.progress import Progress
from oxen.sync.protocol import Remote
from oxen.sync.transfer import fetch_ids
from oxen.trees import history
from oxen.trees.tree import Within
from oxen.trees.walk import Follow, walk_levels
from oxen.worktree.scope import Partial


class Fetched:
    """What a history fetch brought: commits reached and how many nodes travelled."""

    def __init__(self) -> None:
        self.commits: set[bytes] = set()
        self.shallow: set[bytes] = set()  # reached commits whose parents were not fetched
        self.nodes = 0


async def _fetch_lacking(
    repo: Repository, remote: Remote, ids: list[bytes], jobs: int, bar: Progress, got: Fetched
) -> None:
    lacking = sorted(await repo.db.missing(ids))
    await fetch_ids(repo.objects, remote, lacking, {}, jobs, bar)
    got.nodes += len(lacking)


async def fetch_commits(
    repo: Repository,
    remote: Remote,
    tips: list[bytes],
    jobs: int,
    bar: Progress,
    got: Fetched,
    depth: int | None = None,
    shallow: frozenset[bytes] = frozenset(),
) -> None:
    """Commits reachable from ``tips``: ``depth`` generations at most, never past the
    ``shallow`` boundary this clone has already."""
    stop = await history.parents_of(repo.objects, shallow)
    stop -= set(await repo.db.locate(stop))  # parents fetched since are walked

    async def keep(level: list[bytes]) -> list[bytes]:
        return [c for c in level if c not in stop]

    async def prepare(level: list[bytes]) -> None:
        await _fetch_lacking(repo, remote, level, jobs, bar, got)

    generation = 0
    async for level in walk_levels(
        repo.objects, tips, Follow.PARENTS, select=keep, prepare=prepare
    ):
        got.commits.update(level.ids)
        generation += 1
        if depth is not None and generation >= depth:
            break
    got.shallow = await parents_absent(repo, got.commits)


async def parents_absent(repo: Repository, commits: Iterable[bytes]) -> set[bytes]:
    """Those of ``commits`` with a parent this clone does not hold (its shallow boundary)."""
    nodes = await repo.objects.read_nodes(commits)
    parents = {c: n.parents for c, n in nodes.items() if isinstance(n, CommitNode)}
    absent = await repo.db.missing({p for ps in parents.values() for p in ps})
    return {c for c, ps in parents.items() if any(p in absent for p in ps)}


async def fetch_trees(
    repo: Repository,
    remote: Remote,
    commits: list[bytes],
    jobs: int,
    bar: Progress,
    got: Fetched,
    within: Within | None = None,
) -> None:
    """Every node of the commits' trees, or with ``within`` only the folders it enters
    (and the path down to them); the rest stays a node id until something needs it."""
    nodes = await repo.objects.read_nodes(commits)
    roots = [n.tree for n in nodes.values() if isinstance(n, CommitNode)]
    if within is None:

        async def prepare(level: list[bytes]) -> None:
            await _fetch_lacking(repo, remote, level, jobs, bar, got)

        async for _ in walk_levels(repo.objects, roots, Follow.TREES, prepare=prepare):
            pass
        return
    seen: set[tuple[str, bytes]] = set()
    schemas: set[bytes] = set()  # of the files in the folders entered
    level = [("", r) for r in dict.fromkeys(roots)]
    while level:
        seen.update(level)
        await _fetch_lacking(repo, remote, [d for _, d in level], jobs, bar, got)
        dirs = await repo.objects.read_nodes({d for _, d in level}, cache=False)
        vids = [(p, v) for p, d in level if isinstance(n := dirs[d], DirNode) for v in n.vnodes]
        await _fetch_lacking(repo, remote, [v for _, v in vids], jobs, bar, got)
        vnodes = await repo.objects.read_nodes({v for _, v in vids}, cache=False)
        nxt = []
        for prefix, vid in vids:
            node = vnodes[vid]
            if not isinstance(node, VNode):
                continue
            for e in node.entries:
                key = (f"{prefix}{e.name}/", e.id)
                if isinstance(e, DirEntry) and key not in seen and within(key[0]):
                    nxt.append(key)
                elif isinstance(e, FileEntry) and e.schema is not None:
                    schemas.add(e.schema)
        level = list(dict.fromkeys(nxt))
    await _fetch_lacking(repo, remote, sorted(schemas), jobs, bar, got)


async def fetch_history(
    repo: Repository,
    remote: Remote,
    tips: list[bytes],
    jobs: int,
    bar: Progress,
    partial: Partial,
    depth: int | None = None,
) -> Fetched:
    """Commits from ``tips`` and the trees of those a partial clone keeps trees of."""
    got = Fetched()
    await fetch_commits(repo, remote, tips, jobs, bar, got, depth, partial.shallow)
    within = None if partial.all_trees else partial.reaches  # --subtree: its trees only
    await fetch_trees(repo, remote, sorted(got.commits), jobs, bar, got, within)
    return got
