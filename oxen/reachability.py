"""Walking everything a set of commits reaches: nodes level by level, in batches."""

from __future__ import annotations

from dataclasses import dataclass, field

from oxen.errors import CorruptObject
from oxen.nodes import ChunkIndex, ChunkList, CommitNode, DirEntry, DirNode, FileEntry, VNode
from oxen.objects import ObjectStore


@dataclass
class Reached:
    commits: set[bytes] = field(default_factory=set)
    nodes: set[bytes] = field(default_factory=set)  # every node, commits included
    chunks: set[bytes] = field(default_factory=set)


async def walk(objects: ObjectStore, tips: set[bytes], history: bool = True) -> Reached:
    """Every commit (all ancestors with ``history``), node and chunk the tips reach."""
    out = Reached()
    frontier = set(tips)
    while frontier:
        nodes = await objects.read_nodes(frontier)
        out.nodes |= frontier
        nxt: set[bytes] = set()
        for oid, node in nodes.items():
            if isinstance(node, CommitNode):
                out.commits.add(oid)
                nxt.add(node.tree)
                if history:
                    nxt.update(node.parents)
            elif isinstance(node, DirNode):
                nxt.update(node.vnodes)
            elif isinstance(node, VNode):
                for e in node.entries:
                    if isinstance(e, DirEntry):
                        nxt.add(e.id)
                    elif isinstance(e, FileEntry):
                        if e.chunks is None:
                            out.chunks.add(e.id)
                        else:
                            nxt.add(e.chunks)
            elif isinstance(node, ChunkList):
                out.chunks.update(node.ids)
            elif isinstance(node, ChunkIndex):
                nxt.update(node.lists)
            else:  # pragma: no cover
                raise CorruptObject(f"unexpected node {oid.hex()}")
        frontier = nxt - out.nodes
    return out


async def is_ancestor(objects: ObjectStore, ancestor: bytes, tip: bytes) -> bool:
    """Whether ``ancestor`` is ``tip`` or reachable from it through parents."""
    seen: set[bytes] = set()
    todo = [tip]
    while todo:
        cid = todo.pop()
        if cid == ancestor:
            return True
        if cid in seen:
            continue
        seen.add(cid)
        node = await objects.read_node(cid)
        if not isinstance(node, CommitNode):
            raise CorruptObject(f"{cid.hex()} is not a commit")
        todo.extend(node.parents)
    return False
