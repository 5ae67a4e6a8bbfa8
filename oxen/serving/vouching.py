"""Which stored nodes a server vouches for: those whose every descendant is stored too.

Push negotiation (``objects/missing``) descends only into the nodes the server says it
lacks, so a node it calls present must have its whole subtree there.  Node ids are the
same on every machine, so anyone can build a well-known folder and upload its nodes
without its chunks; were stored nodes called present, every later push of that folder
would skip its data and be refused as incomplete.  So a stored node the server does not
vouch for reads as missing, and the client sends its subtree (re-sending what is stored
is harmless).

A node is vouched for (a row of ``complete_nodes`` in the server's cache):

* when it arrives in a pack, every chunk it names is stored, and every node it points at
  is vouched for or arrives in the same pack and is.  A push sends chunks first, then
  nodes deepest level first and commits last, so an honest push's nodes are vouched for
  as they arrive, and a push interrupted and run again sends only the rest;
* when a branch reaches it: a branch moves only once the server has checked that its
  commit reaches nothing missing.  Every commit of the branches' history and every node
  of each tip's tree is vouched for in one walk that stops at what is vouched for
  already; it runs when negotiation meets a stored node not vouched for (a new cache, or
  a branch another server moved).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from oxen.db.repo_db import RepoDB
from oxen.errors import MissingObject
from oxen.formats.nodes import CommitNode, Node
from oxen.objects.object_store import ObjectStore
from oxen.trees.walk import Follow, children, walk_levels


class PackGraph:
    """What each node of a received pack points at, gathered while the pack is verified
    (``add`` is the pack check's ``on_node``; at most one pack's worth of ids)."""

    def __init__(self) -> None:
        self.kids: dict[bytes, tuple[bytes, ...]] = {}
        self.data: dict[bytes, tuple[bytes, ...]] = {}

    def add(self, oid: bytes, node: Node) -> None:
        kids, data = children(node, Follow.ALL)
        self.kids[oid] = tuple(kids)
        self.data[oid] = tuple(data)


async def vouch_for_pack(db: RepoDB, graph: PackGraph) -> set[bytes]:
    """Record as complete the nodes of a stored pack whose chunks are all stored and whose
    nodes are all complete, counting the pack's own; returns them."""
    absent = await db.missing({c for ids in graph.data.values() for c in ids})
    outside = {k for ks in graph.kids.values() for k in ks if k not in graph.kids}
    known = await db.complete(outside)
    parents: dict[bytes, list[bytes]] = defaultdict(list)
    waiting: dict[bytes, int] = {}
    ready: list[bytes] = []
    for oid, kids in graph.kids.items():
        if any(c in absent for c in graph.data[oid]):
            continue
        if any(k not in graph.kids and k not in known for k in kids):
            continue
        inside = {k for k in kids if k in graph.kids}
        for k in inside:
            parents[k].append(oid)
        waiting[oid] = len(inside)
        if not inside:
            ready.append(oid)
    vouched: set[bytes] = set()
    while ready:  # each node once its last node inside the pack is vouched for
        oid = ready.pop()
        vouched.add(oid)
        for parent in parents.get(oid, ()):
            if parent in waiting:
                waiting[parent] -= 1
                if waiting[parent] == 0:
                    ready.append(parent)
    await db.add_complete(vouched)
    return vouched


async def vouch_for_tips(objects: ObjectStore, db: RepoDB, tips: Iterable[bytes]) -> int:
    """Record as complete every commit the commits ``tips`` (known complete: branch tips,
    verified pushes) descend from, and every node of the tips' trees, walking only what
    is not recorded yet; returns how many were added."""

    async def unrecorded(level: list[bytes]) -> list[bytes]:
        done = await db.complete(level)
        return [oid for oid in level if oid not in done]

    todo = await unrecorded(list(dict.fromkeys(tips)))
    if not todo:
        return 0
    try:
        commits: list[bytes] = []
        trees: list[bytes] = []
        start = set(todo)
        history = walk_levels(objects, todo, Follow.PARENTS, select=unrecorded, cache=False)
        async for level in history:
            commits.extend(level.ids)
            for oid, node in level.nodes.items():
                if oid in start and isinstance(node, CommitNode):
                    trees.append(node.tree)
        nodes: list[bytes] = []
        follow = Follow.TREES | Follow.CHUNK_LISTS
        async for level in walk_levels(objects, trees, follow, select=unrecorded, cache=False):
            nodes.extend(level.ids)
    except MissingObject:
        return 0  # a branch reaching what this cache cannot find: vouch for nothing
    await db.add_complete([*nodes, *commits])
    return len(nodes) + len(commits)
