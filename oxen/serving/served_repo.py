"""A repository as a server keeps it: everything in one object store, a cache on local disk.

Layout under the repository's prefix (``repos/<namespace>/<name>/`` in the bucket)::

    repo.json                       namespace, name, created, chunker parameters
    packs/ab/<pack id>.pack         chunks and nodes (the same packs as a local repo)
    refs/heads/<branch>             commit id (hex); moved only by compare-and-swap

The local SQLite file is only a cache of the packs' trailers (which object is in which
pack): a server with an empty disk rebuilds it from the bucket, so N servers can share
one bucket.  Branches are :class:`~oxen.core.refs.StoreRefs`.  No HTTP here: ``server/``
maps requests onto these methods.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from oxen.config import FORMAT_VERSION
from oxen.core.refs import StoreRefs, check_branch_name
from oxen.db.repo_db import RepoDB
from oxen.db.rows import Location
from oxen.errors import (
    CorruptObject,
    FormatError,
    IncompletePush,
    InvalidInput,
    MissingObject,
    NonFastForward,
    NotFound,
    RefConflict,
)
from oxen.formats.nodes import CommitNode
from oxen.formats.packs import Kind
from oxen.objects import chunklists
from oxen.objects.object_store import ObjectStore
from oxen.objects.pack_index import read_pack_index, stored_packs
from oxen.serving.gc_marks import GcMarks, read_marks
from oxen.serving.relisting import RelistLimit
from oxen.serving.vouching import PackGraph, vouch_for_pack, vouch_for_tips
from oxen.storage import Store
from oxen.trees.history import ancestors, is_ancestor
from oxen.trees.tree import Trees

MAX_PACK_BYTES = 256 * 1024 * 1024
# Packs being verified and stored at once, across every repository: each may be held in
# memory while it goes to the store, so this bounds the server's memory, not its clients.
PACKS_IN_FLIGHT = 4
# The cache's state key holding the generation of the last gc sweep it followed.
GC_FOLLOWED = "gc swept"
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def check_repo_name(part: str, what: str) -> str:
    if not part or len(part) > 100 or set(part) - _NAME_OK or part[0] in ".-":
        raise InvalidInput(f"invalid {what}: {part!r} (letters, digits, '-', '_', '.')")
    return part


class PackSlots:
    """At most ``limit`` packs at once, across every repository of a server, being verified
    and stored (``receive``) or built for a fetch (``fetch``); how many of each are held
    and how many requests wait for a slot, for the server's metrics."""

    def __init__(self, limit: int = PACKS_IN_FLIGHT) -> None:
        self.limit = limit
        self._slots = asyncio.Semaphore(limit)
        self.held: Counter[str] = Counter()
        self.waiting = 0

    @asynccontextmanager
    async def hold(self, kind: str) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.held[kind] += 1
        try:
            yield
        finally:
            self.held[kind] -= 1
            self._slots.release()


@dataclass(frozen=True)
class RepoInfo:
    namespace: str
    name: str
    created: int
    # Random per creation: a repository deleted and created again under the same name is
    # another incarnation, and nothing cached for the old one (index, verified commits)
    # may serve it.
    incarnation: str = "0"
    format: int = FORMAT_VERSION  # of its objects (see oxen.config.FORMAT_VERSION)

    def check_format(self) -> None:
        if self.format != FORMAT_VERSION:
            raise FormatError(
                f"repository {self.namespace}/{self.name} is stored in format {self.format}; "
                f"this server reads format {FORMAT_VERSION} only (32-byte BLAKE3 ids): "
                "serve it with the older oxen-server, or delete it and push it again"
            )

    def as_dict(self) -> dict[str, object]:
        return {"namespace": self.namespace, "name": self.name, "created": self.created}


class ServedRepo:
    def __init__(
        self,
        info: RepoInfo,
        store: Store,
        db: RepoDB,
        tmp_dir: Path,
        vnode_size: int = 10_000,
        pack_slots: PackSlots | None = None,
        relist: RelistLimit | None = None,
    ) -> None:
        self.info = info
        self._pack_slots = pack_slots or PackSlots()
        self.store = store
        self.db = db
        self.tmp_dir = tmp_dir
        self.objects = ObjectStore(store, db, tmp_dir, MAX_PACK_BYTES)
        self.trees = Trees(self.objects, vnode_size)
        self.branch_refs = StoreRefs(store)
        self._relist = relist or RelistLimit()
        self._vouch_lock = asyncio.Lock()
        self._gc_marks: GcMarks | None = None  # the marks of a gc this server follows
        # the branches as the last listing of packs began to find them
        self._listed_refs: dict[str, bytes] | None = None

    async def close(self) -> None:
        await self.db.close()

    # -- the index cache ---------------------------------------------------------------
    async def refresh_index(self) -> int:
        """Index packs written by other servers (or before this disk existed)."""
        return await self._relist.listing(self._index_new_packs)

    async def refresh_after_miss(self, writer: bool = False) -> int:
        """Index packs stored since, because a request needed an object the cache does not
        know.  Returns the packs found (0: asking again cannot help).

        Such listings are rate-limited (:mod:`oxen.serving.relisting`), except when the
        miss is known to come from another server's write: a ``writer``'s request (its
        push may have stored its packs through another server behind the same load
        balancer), or branches that moved since the last listing began (a push stores
        every object before it moves a branch, so a listing now finds all they reach;
        which server took which of its packs does not matter).  Those list at once: a
        clone through one server right after a push through others does not wait out the
        interval.  A miss while the branches are as the last listing found them is for
        an object no branch reaches (or a damaged store): it waits for the interval."""
        if writer or await self.refs() != self._listed_refs:
            return await self._relist.after_miss(self._index_new_packs, wait=False)
        return await self._relist.after_miss(self._index_new_packs)

    async def _index_new_packs(self) -> int:
        """Index the packs stored since the last listing, and forget those deleted since
        (by gc, whose marks this server may never have read: it was stopped meanwhile)."""
        # the branches first: whatever they reach was stored before they moved, so the
        # packs listed next hold it all
        self._listed_refs = await self.refs()
        indexed = {p.hex() for p, _, _ in await self.db.packs()}
        known = set(indexed)
        if self._gc_marks is not None and self._gc_marks.pending:
            known |= self._gc_marks.packs  # being collected: never indexed again
        listed = [(hex_id, key) async for hex_id, key in stored_packs(self.store)]
        vanished = indexed - {hex_id for hex_id, _ in listed}
        for hex_id in sorted(vanished):
            await self.db.forget_pack(bytes.fromhex(hex_id))
        if vanished:
            await self.db.forget_complete()
            await self.db.set_state("verified", None)
        added = 0
        for hex_id, key in listed:
            if hex_id in known:
                continue
            try:
                index = await read_pack_index(self.store, key)
            except CorruptObject:
                continue  # not a whole pack (yet): it is not indexed, so never used
            if index is None:
                continue
            await self.db.add_pack(bytes.fromhex(hex_id), index.size, index.entries)
            added += 1
        return added

    async def follow_gc(self) -> bool:
        """Read the marks of a running ``oxen-server gc`` (see :mod:`oxen.serving.gc`);
        when they changed, stop using the packs marked: forget them from the index (their
        objects another pack holds are found there), forget which nodes and commits were
        known complete, and index what gc stored meanwhile.  A record of a sweep this
        cache never followed changes them too: the listing forgets the packs deleted
        (this server may have had no request while they were marked).  Returns whether
        they changed (and the packs were listed)."""
        marks = await read_marks(self.store)
        if marks == self._gc_marks:
            return False
        if self._gc_marks is None and marks is not None and not marks.pending:
            if await self.db.get_state(GC_FOLLOWED) == marks.generation.encode():
                self._gc_marks = marks  # reopened: this cache followed that sweep already
                return False

        async def forget() -> int:
            known = {p for p, _, _ in await self.db.packs()}
            for hex_id in sorted(marks.packs if marks else ()):
                if bytes.fromhex(hex_id) in known:
                    await self.db.forget_pack(bytes.fromhex(hex_id))
            await self.db.forget_complete()
            await self.db.set_state("verified", None)
            self._gc_marks = marks
            found = await self._index_new_packs()
            if marks is not None and not marks.pending:
                await self.db.set_state(GC_FOLLOWED, marks.generation.encode())
            return found

        await self._relist.listing(forget)
        return True

    # -- refs --------------------------------------------------------------------------
    async def refs(self) -> dict[str, bytes]:
        return await self.branch_refs.branches()

    async def update_ref(self, branch: str, old: bytes | None, new: bytes) -> None:
        """Move ``branch`` from ``old`` to ``new`` if everything ``new`` reaches is stored,
        ``new`` descends from ``old``, and nobody moved the branch meanwhile."""
        check_branch_name(branch)
        moved = f"branch {branch} has moved on the server; pull, merge, then push again"
        if await self.branch_refs.get(branch) != old:
            raise RefConflict(moved)
        await self.verify_complete(new)
        if old is not None and not await self._descends(old, new):
            raise NonFastForward(
                f"push to {branch} is not a fast-forward: pull, merge, then push again"
            )
        if not await self.branch_refs.set_if_equals(branch, old, new):
            raise RefConflict(moved)

    async def _descends(self, old: bytes, new: bytes) -> bool:
        """Whether ``new`` descends from ``old``.  ``verify_complete`` does not read the
        branch's tip (it is known complete), so its commit may have been stored through
        another server after this cache last listed the packs: list then, at once."""
        try:
            return await is_ancestor(self.objects, old, new)
        except MissingObject:
            if not await self.refresh_after_miss(writer=True):
                raise IncompletePush("incomplete push: commits are missing") from None
        try:
            return await is_ancestor(self.objects, old, new)
        except MissingObject as e:
            raise IncompletePush(f"incomplete push: {e}") from None

    async def delete_ref(self, branch: str, old: bytes) -> None:
        check_branch_name(branch)
        if await self.branch_refs.get(branch) is None:
            raise NotFound(f"no branch {branch}")
        if not await self.branch_refs.remove_if_equals(branch, old):
            raise RefConflict(f"branch {branch} has moved on the server; fetch and try again")

    # -- completeness ------------------------------------------------------------------
    async def _commit(self, cid: bytes) -> CommitNode:
        node = await self.objects.read_node(cid)
        if not isinstance(node, CommitNode):
            raise InvalidInput(f"{cid.hex()} is not a commit")
        return node

    async def verify_complete(self, tip: bytes) -> None:
        """Every commit, node and chunk ``tip`` reaches is stored, or InvalidInput.

        Commits already known complete (current branch tips, earlier verified pushes) are
        not walked again; a new commit is checked by diffing its tree against its first
        parent's, so only changed subtrees are read.
        """
        try:
            await self._verify_complete(tip)
        except MissingObject:
            # the pack may have come through another server: list at once (a writer)
            if await self.refresh_after_miss(writer=True):
                try:
                    await self._verify_complete(tip)
                    return
                except MissingObject as e:
                    raise IncompletePush(f"incomplete push: {e}") from None
            raise IncompletePush("incomplete push: objects are missing") from None
        except CorruptObject as e:
            raise InvalidInput(f"rejected: {e}") from None

    async def _complete_commits(self) -> set[bytes]:
        """Commits known to reach nothing missing: branch tips and recently verified."""
        complete = set((await self.refs()).values())
        verified = await self.db.get_state("verified")
        complete.update(bytes.fromhex(h) for h in (verified or b"").decode().split() if h)
        return complete

    async def _verify_complete(self, tip: bytes) -> None:
        complete = await self._complete_commits()
        verified = await self.db.get_state("verified")
        order = await ancestors(self.objects, [tip], stop=complete)
        for cid in reversed(order):  # parents first
            commit = await self._commit(cid)
            parent_tree = (await self._commit(commit.parents[0])).tree if commit.parents else None
            changes = await self.trees.diff(parent_tree, commit.tree)
            await self.trees.dir_node(commit.tree)
            lists = chunklists.declared_sizes(
                (new.chunks, new.size) for _, new in changes.values() if new is not None
            )
            chunk_ids = {
                c for ids, _ in (await chunklists.expand(self.objects, lists)).values() for c in ids
            }
            chunk_ids.update(
                new.id for _, new in changes.values() if new is not None and not new.chunks
            )
            if await self.db.missing(chunk_ids):
                raise MissingObject("chunks are missing")
        if order:
            recent = [h for h in (verified or b"").decode().split() if h][-1000:]
            recent.extend(c.hex() for c in order)
            await self.db.set_state("verified", " ".join(recent[-2000:]).encode())

    # -- objects -----------------------------------------------------------------------
    async def missing(self, ids: Iterable[bytes]) -> set[bytes]:
        """Those of ``ids`` to send: not stored, or nodes stored without the server
        vouching for their whole subtree (see :mod:`oxen.serving.vouching`)."""
        wanted = set(ids)
        located = await self.db.locate(wanted)
        nodes = {oid for oid, loc in located.items() if loc.kind == Kind.NODE}
        unvouched = nodes - await self.db.complete(nodes)
        if unvouched:
            async with self._vouch_lock:  # a branch may reach them: vouch for what it does
                await vouch_for_tips(self.objects, self.db, await self._complete_commits())
            unvouched -= await self.db.complete(unvouched)
        return (wanted - located.keys()) | unvouched

    async def receive_pack(self, path: Path) -> int:
        graph = PackGraph()
        async with self._pack_slots.hold("receive"):
            pack = await self.objects.add_verified_pack(path, MAX_PACK_BYTES, on_node=graph.add)
        await vouch_for_pack(self.db, graph)
        return len(pack.entries)

    async def receive_stored_pack(self, path: Path, key: str) -> int | None:
        """As :meth:`receive_pack`, for a pack already in the store at ``key`` (and
        downloaded to ``path``): verified, then copied to its place inside the store."""
        graph = PackGraph()
        async with self._pack_slots.hold("receive"):
            pack = await self.objects.add_verified_stored_pack(
                path, key, MAX_PACK_BYTES, on_node=graph.add
            )
        if pack is None:
            return None
        await vouch_for_pack(self.db, graph)
        return len(pack.entries)

    async def pack_of(self, ids: list[bytes], path: Path) -> int:
        """The objects ``ids`` (each once, however often asked for) as one pack at ``path``;
        a request for more than MAX_PACK_BYTES of objects is refused."""
        ids = list(dict.fromkeys(ids))
        try:
            async with self._pack_slots.hold("fetch"):
                return await self._pack_of(ids, path)
        except MissingObject:
            # another server may hold them; the slot is not held while the listing waits
            if not await self.refresh_after_miss():
                raise
        async with self._pack_slots.hold("fetch"):
            return await self._pack_of(ids, path)

    async def locate_for_reading(self, ids: list[bytes]) -> dict[bytes, Location]:
        """Where the objects ``ids`` are stored, for a client that reads them from the
        store itself; refused like :meth:`pack_of` (missing, or above MAX_PACK_BYTES).
        Marked packs are not named: this server forgot them when it read the marks."""
        ids = list(dict.fromkeys(ids))
        locations = await self.db.locate(ids)
        if len(locations) < len(ids) and await self.refresh_after_miss():
            locations = await self.db.locate(ids)
        for oid in ids:
            if oid not in locations:
                raise MissingObject(f"object {oid.hex()} is not stored here")
        asked = sum(loc.length for loc in locations.values())
        if asked > MAX_PACK_BYTES:
            raise InvalidInput(
                f"a fetch of {asked} bytes of objects; at most {MAX_PACK_BYTES} per request"
            )
        return locations

    async def _pack_of(self, ids: list[bytes], path: Path) -> int:
        locations = await self.db.locate(ids)
        asked = sum(loc.length for loc in locations.values())
        if asked > MAX_PACK_BYTES:
            raise InvalidInput(
                f"a fetch of {asked} bytes of objects; at most {MAX_PACK_BYTES} per request"
            )
        return await self.objects.write_pack_of(ids, path, locations)
