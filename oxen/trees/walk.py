"""Walking the object graph level by level, each level's nodes read in one batch.

One walker serves every traversal: reachability (fsck), push negotiation (descend only
into what the remote lacks), fetch (fetch each level before reading it) and the
commit-graph walks of :mod:`oxen.trees.history`.  What a node points at is said once,
in :func:`children`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import IntFlag
from typing import NamedTuple

from oxen.errors import CorruptObject
from oxen.formats.nodes import (
    ChunkIndex,
    ChunkList,
    CommitNode,
    DirEntry,
    DirNode,
    Node,
    Schema,
    VNode,
)
from oxen.objects.object_store import ObjectStore


class Follow(IntFlag):
    """Which edges a walk follows."""

    PARENTS = 1  # commit -> its parents
    TREES = 2  # commit -> its tree, dir -> its vnodes, vnode -> its subdirectories
    CHUNK_LISTS = 4  # vnode -> its files' chunk lists, chunk index -> its lists
    ALL = PARENTS | TREES | CHUNK_LISTS


def children(node: Node, follow: Follow) -> tuple[list[bytes], list[bytes]]:
    """(ids of the nodes ``node`` points at along ``follow``, ids of the data chunks it names)."""
    kids: list[bytes] = []
    data: list[bytes] = []
    if isinstance(node, CommitNode):
        if follow & Follow.TREES:
            kids.append(node.tree)
        if follow & Follow.PARENTS:
            kids.extend(node.parents)
    elif isinstance(node, DirNode):
        if follow & Follow.TREES:
            kids.extend(node.vnodes)
    elif isinstance(node, VNode):
        for e in node.entries:
            if isinstance(e, DirEntry):
                if follow & Follow.TREES:
                    kids.append(e.id)
                continue
            if e.schema is not None and follow & Follow.TREES:
                kids.append(e.schema)  # metadata: travels with the trees, not the data
            if e.chunks is None:
                data.append(e.id)
            elif follow & Follow.CHUNK_LISTS:
                kids.append(e.chunks)
    elif isinstance(node, ChunkList):
        data.extend(node.ids)
    elif isinstance(node, Schema):
        pass  # a leaf
    elif isinstance(node, ChunkIndex):
        if follow & Follow.CHUNK_LISTS:
            kids.extend(node.lists)
    else:  # pragma: no cover - decode_node returns only the kinds above
        raise CorruptObject(f"unexpected node {node!r}")
    return kids, data


class Level(NamedTuple):
    ids: list[bytes]  # this level's nodes, in discovery order (after ``select``)
    nodes: dict[bytes, Node]
    chunks: set[bytes]  # data chunks those nodes name


Select = Callable[[list[bytes]], Awaitable[list[bytes]]]
Prepare = Callable[[list[bytes]], Awaitable[None]]


async def walk_levels(
    objects: ObjectStore,
    start: Iterable[bytes],
    follow: Follow,
    *,
    select: Select | None = None,
    prepare: Prepare | None = None,
    cache: bool = True,
) -> AsyncIterator[Level]:
    """Breadth-first from ``start``, each node once.

    ``select(level)`` keeps the ids to read and descend into (push: those the remote
    lacks); ``prepare(level)`` runs before a level is read (fetch: get what we lack);
    ``cache`` False keeps the nodes read out of the object store's memory.
    """
    seen: set[bytes] = set()
    level = list(dict.fromkeys(start))
    while level:
        seen.update(level)
        if select is not None:
            level = await select(level)
        if prepare is not None:
            await prepare(level)
        nodes = await objects.read_nodes(level, cache) if level else {}
        nxt: list[bytes] = []
        chunks: set[bytes] = set()
        for oid in level:
            kids, data = children(nodes[oid], follow)
            nxt.extend(kids)
            chunks.update(data)
        yield Level(level, nodes, chunks)
        level = [oid for oid in dict.fromkeys(nxt) if oid not in seen]


@dataclass
class Reached:
    commits: set[bytes] = field(default_factory=set)
    nodes: set[bytes] = field(default_factory=set)  # every node, commits included
    chunks: set[bytes] = field(default_factory=set)


async def reachable(objects: ObjectStore, tips: Iterable[bytes], history: bool = True) -> Reached:
    """Every commit (all ancestors with ``history``), node and chunk the tips reach."""
    out = Reached()
    follow = Follow.ALL if history else Follow.TREES | Follow.CHUNK_LISTS
    async for level in walk_levels(objects, tips, follow):
        out.nodes.update(level.ids)
        out.chunks |= level.chunks
        out.commits.update(c for c, n in level.nodes.items() if isinstance(n, CommitNode))
    return out
