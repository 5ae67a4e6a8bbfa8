"""Whether everything some commits reach is stored and intact: their whole history, every
node of every tree, every chunk list and chunk (``fsck`` of a working copy, and of each
branch of a server's repository).

One breadth-first walk (:func:`~oxen.trees.walk.walk_levels`) that, instead of stopping
at the first object it cannot read, reports it and walks on around it, so one run names
every hole.  Nodes are not kept in memory once a level is read; what stays is the set of
ids seen, so that several walks (one per branch) read shared history once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from oxen.errors import CorruptObject, MissingObject
from oxen.formats.nodes import CommitNode
from oxen.formats.packs import Kind
from oxen.objects.object_store import ObjectStore
from oxen.objects.pack_check import Problem
from oxen.trees.walk import Follow, walk_levels

NOT_STORED = "is not stored"


@dataclass
class Integrity:
    """What the walks found, accumulated over every walk made with it."""

    commits: int = 0
    nodes: int = 0  # commits included
    chunks: int = 0
    problems: list[Problem] = field(default_factory=list)
    seen_nodes: set[bytes] = field(default_factory=set)
    seen_chunks: set[bytes] = field(default_factory=set)


async def check_reachable(
    objects: ObjectStore,
    tips: Iterable[bytes],
    found: Integrity | None = None,
    damaged: Mapping[bytes, str] | None = None,
    via: str | None = None,
    follow: Follow = Follow.ALL,
    absent: dict[bytes, str] | None = None,
    stop: Iterable[bytes] = (),
) -> Integrity:
    """Walk what ``tips`` reach along ``follow``, adding to ``found`` (a new one if None)
    each object that is absent or damaged, and skipping what ``found`` has seen already.

    ``damaged``: ids known to be unreadable, and why (``is corrupt``), as an earlier check
    of the packs found them; ``via`` names what the tips are (``branch main``) in the
    problems reported.  ``absent``: where objects that are simply not stored go (id ->
    "node" or "chunk"), instead of the problems: a partial clone asks its remote about
    them; ``stop``: ids not walked at all (beyond a shallow clone's boundary).  Data chunks are checked only when ``follow`` takes chunk lists
    (a walk of history and trees alone leaves the files' data out)."""
    found = found if found is not None else Integrity()
    damaged = damaged or {}
    reached = f"is reached from {via}" if via else "is referenced"

    def report(kind: str, oid: bytes, reason: str) -> None:
        if absent is not None and reason == NOT_STORED:
            absent[oid] = kind
            return
        found.problems.append(Problem(f"{kind} {oid.hex()}", f"{reached} but {reason}"))

    excluded = set(stop)

    async def readable(level: list[bytes]) -> list[bytes]:
        fresh = [oid for oid in level if oid not in found.seen_nodes and oid not in excluded]
        found.seen_nodes.update(fresh)  # each reported or read once, whichever walk meets it
        located = await objects.db.locate(fresh)
        keep = []
        for oid in fresh:
            loc = located.get(oid)
            if oid in damaged:
                report("node", oid, damaged[oid])
            elif loc is None:
                report("node", oid, NOT_STORED)
            elif loc.kind != Kind.NODE:
                report("node", oid, "is a data chunk, not a node")
            else:
                keep.append(oid)
        return keep

    try:
        async for level in walk_levels(objects, tips, follow, select=readable, cache=False):
            found.nodes += len(level.ids)
            found.commits += sum(isinstance(n, CommitNode) for n in level.nodes.values())
            if not follow & Follow.CHUNK_LISTS:
                continue
            fresh = level.chunks - found.seen_chunks
            found.seen_chunks |= fresh
            found.chunks += len(fresh)
            unstored = await objects.db.missing(fresh)
            for oid in sorted(unstored | (fresh & damaged.keys())):
                report("chunk", oid, damaged.get(oid, NOT_STORED))
    except (MissingObject, CorruptObject) as e:  # changed under the walk (a pack removed)
        found.problems.append(Problem(via or "history", f"cannot be walked: {e}"))
    return found
