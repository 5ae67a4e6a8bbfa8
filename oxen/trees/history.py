"""The commit graph: ancestors, ancestry tests, newest-first order, merge bases.

All of them are walks along parents (:func:`oxen.trees.walk.walk_levels`), reading
each generation of commits in one batch.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Iterable

from oxen.errors import CorruptObject
from oxen.formats.nodes import CommitNode
from oxen.objects.object_store import ObjectStore
from oxen.trees.walk import Follow, walk_levels


async def read_commit(objects: ObjectStore, cid: bytes) -> CommitNode:
    node = await objects.read_node(cid)
    if not isinstance(node, CommitNode):
        raise CorruptObject(f"{cid.hex()} is not a commit")
    return node


async def ancestors(
    objects: ObjectStore, tips: Iterable[bytes], stop: Iterable[bytes] = ()
) -> list[bytes]:
    """The tips and every commit reachable from them through parents, nearest first,
    without entering the commits of ``stop`` (nor, through them, their ancestors)."""
    excluded = set(stop)

    async def keep(level: list[bytes]) -> list[bytes]:
        return [c for c in level if c not in excluded]

    out: list[bytes] = []
    async for level in walk_levels(objects, tips, Follow.PARENTS, select=keep):
        for cid, node in level.nodes.items():
            if not isinstance(node, CommitNode):
                raise CorruptObject(f"{cid.hex()} is not a commit")
        out.extend(level.ids)
    return out


async def parents_of(objects: ObjectStore, commits: Iterable[bytes]) -> set[bytes]:
    """Every parent of ``commits`` (of a shallow clone's boundary: where walks stop)."""
    nodes = await objects.read_nodes(commits)
    return {p for n in nodes.values() if isinstance(n, CommitNode) for p in n.parents}


async def is_ancestor(objects: ObjectStore, ancestor: bytes, tip: bytes) -> bool:
    """Whether ``ancestor`` is ``tip`` or reachable from it through parents."""
    async for level in walk_levels(objects, [tip], Follow.PARENTS):
        if ancestor in level.nodes:
            return True
    return False


async def newest_first(
    objects: ObjectStore, start: bytes, shallow: frozenset[bytes] = frozenset()
) -> AsyncIterator[tuple[bytes, CommitNode]]:
    """``start`` and its ancestors, newest (by timestamp) first, each once; the parents
    of ``shallow`` commits (where a shallow clone's history stops) are not entered."""
    first = await read_commit(objects, start)
    heap = [(-first.timestamp, 0, start, first)]
    seen = {start}
    counter = 1
    while heap:
        _, _, cid, commit = heapq.heappop(heap)
        yield cid, commit
        fresh = [p for p in commit.parents if p not in seen and cid not in shallow]
        seen.update(fresh)
        for parent in fresh:
            pc = await read_commit(objects, parent)
            heapq.heappush(heap, (-pc.timestamp, counter, parent, pc))
            counter += 1


async def merge_base(objects: ObjectStore, a: bytes, b: bytes) -> bytes | None:
    """The newest common ancestor of two commits."""
    of_a = set(await ancestors(objects, [a]))
    async for cid, _ in newest_first(objects, b):
        if cid in of_a:
            return cid
    return None
