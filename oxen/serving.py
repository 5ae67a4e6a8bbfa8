"""A repository as a server keeps it: everything in one object store, a cache on local disk.

Layout under the repository's prefix (``repos/<namespace>/<name>/`` in the bucket)::

    repo.json                       namespace, name, created, chunker parameters
    packs/ab/<pack id>.pack         chunks and nodes (the same packs as a local repo)
    refs/heads/<branch>             commit id (hex); moved only by compare-and-swap

The local SQLite file is only a cache of the packs' trailers (which object is in which
pack): a server with an empty disk rebuilds it from the bucket, so N servers can share
one bucket.  No HTTP here: ``server/`` maps requests onto these methods.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from oxen import chunklists
from oxen.config import ChunkingConfig, to_dict
from oxen.db import RepoDB
from oxen.errors import (
    AlreadyExists,
    CorruptObject,
    InvalidInput,
    MissingObject,
    NonFastForward,
    NotFound,
    RefConflict,
)
from oxen.nodes import CommitNode
from oxen.objects import ObjectStore
from oxen.packs import FOOTER_LEN, decode_footer, decode_trailer
from oxen.reachability import is_ancestor
from oxen.refs import check_branch_name
from oxen.storage import Store
from oxen.storage.prefixed import PrefixedStore
from oxen.tree import Trees

MAX_PACK_BYTES = 256 * 1024 * 1024
# Packs being verified and stored at once, across every repository: each may be held in
# memory while it goes to the store, so this bounds the server's memory, not its clients.
PACKS_IN_FLIGHT = 4
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def check_repo_name(part: str, what: str) -> str:
    if not part or len(part) > 100 or set(part) - _NAME_OK or part[0] in ".-":
        raise InvalidInput(f"invalid {what}: {part!r} (letters, digits, '-', '_', '.')")
    return part


@dataclass(frozen=True)
class RepoInfo:
    namespace: str
    name: str
    created: int

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
        pack_slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.info = info
        self._pack_slots = pack_slots or asyncio.Semaphore(PACKS_IN_FLIGHT)
        self.store = store
        self.db = db
        self.tmp_dir = tmp_dir
        self.objects = ObjectStore(store, db, tmp_dir, MAX_PACK_BYTES)
        self.trees = Trees(self.objects, vnode_size)
        self._refresh_lock = asyncio.Lock()

    # -- the index cache ---------------------------------------------------------------
    async def refresh_index(self) -> int:
        """Index packs written by other servers (or before this disk existed)."""
        async with self._refresh_lock:
            known = {p.hex() for p, _, _ in await self.db.packs()}
            added = 0
            async for key in self.store.list("packs/"):
                name = key.rsplit("/", 1)[-1]
                if not name.endswith(".pack") or name[:-5] in known:
                    continue
                size = await self.store.size(key)
                if size is None or size < FOOTER_LEN:
                    continue
                tail = await self.store.get_range(key, size - FOOTER_LEN, FOOTER_LEN)
                trailer_len = decode_footer(tail or b"")
                trailer = await self.store.get_range(
                    key, size - FOOTER_LEN - trailer_len, trailer_len
                )
                entries = decode_trailer(trailer or b"", size - FOOTER_LEN - trailer_len)
                await self.db.add_pack(bytes.fromhex(name[:-5]), size, entries)
                added += 1
            return added

    # -- refs --------------------------------------------------------------------------
    async def refs(self) -> dict[str, bytes]:
        keys = [k async for k in self.store.list("refs/heads/")]
        values = await asyncio.gather(*(self.store.get(k) for k in keys))
        return {
            k.removeprefix("refs/heads/"): bytes.fromhex(v.decode())
            for k, v in zip(keys, values, strict=True)
            if v is not None
        }

    async def update_ref(self, branch: str, old: bytes | None, new: bytes) -> None:
        """Move ``branch`` from ``old`` to ``new`` if everything ``new`` reaches is stored,
        ``new`` descends from ``old``, and nobody moved the branch meanwhile."""
        check_branch_name(branch)
        key = f"refs/heads/{branch}"
        current_raw = await self.store.get(key)
        current = bytes.fromhex(current_raw.decode()) if current_raw else None
        if current != old:
            raise RefConflict(
                f"branch {branch} has moved on the server; pull, merge, then push again"
            )
        await self.verify_complete(new)
        if old is not None and not await is_ancestor(self.objects, old, new):
            raise NonFastForward(
                f"push to {branch} is not a fast-forward: pull, merge, then push again"
            )
        if not await self.store.compare_and_swap(key, current_raw, new.hex().encode()):
            again = await self.store.get(key)
            if again != new.hex().encode():  # a lost reply to our own write is a success
                raise RefConflict(
                    f"branch {branch} has moved on the server; pull, merge, then push again"
                )

    async def delete_ref(self, branch: str, old: bytes) -> None:
        check_branch_name(branch)
        key = f"refs/heads/{branch}"
        current = await self.store.get(key)
        if current is None:
            raise NotFound(f"no branch {branch}")
        if current != old.hex().encode():
            raise RefConflict(f"branch {branch} has moved on the server; fetch and try again")
        await self.store.delete(key)

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
            if await self.refresh_index():  # another server may hold what we lack
                try:
                    await self._verify_complete(tip)
                    return
                except MissingObject as e:
                    raise InvalidInput(f"incomplete push: {e}") from None
            raise InvalidInput("incomplete push: objects are missing") from None
        except CorruptObject as e:
            raise InvalidInput(f"rejected: {e}") from None

    async def _verify_complete(self, tip: bytes) -> None:
        complete = set((await self.refs()).values())
        verified = await self.db.get_state("verified")
        complete.update(bytes.fromhex(h) for h in (verified or b"").decode().split() if h)
        order: list[bytes] = []
        seen: set[bytes] = set()
        todo = [tip]
        while todo:
            cid = todo.pop()
            if cid in seen or cid in complete:
                continue
            seen.add(cid)
            order.append(cid)
            todo.extend((await self._commit(cid)).parents)
        for cid in reversed(order):  # parents first
            commit = await self._commit(cid)
            parent_tree = (await self._commit(commit.parents[0])).tree if commit.parents else None
            changes = await self.trees.diff(parent_tree, commit.tree)
            await self.trees.dir_node(commit.tree)
            lists = [new.chunks for _, new in changes.values() if new is not None and new.chunks]
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
        return await self.db.missing(ids)

    async def receive_pack(self, path: Path) -> int:
        async with self._pack_slots:
            pack = await self.objects.add_verified_pack(path, MAX_PACK_BYTES)
        return len(pack.entries)

    async def pack_of(self, ids: list[bytes], path: Path) -> int:
        async with self._pack_slots:
            try:
                return await self.objects.write_pack_of(ids, path)
            except MissingObject:
                await self.refresh_index()
                return await self.objects.write_pack_of(ids, path)


class RepoRegistry:
    """Repositories by namespace in one store, with a local cache directory."""

    def __init__(self, store: Store, cache_dir: Path) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self._open: dict[tuple[str, str], ServedRepo] = {}
        self._lock = asyncio.Lock()
        self._pack_slots = asyncio.Semaphore(PACKS_IN_FLIGHT)

    @staticmethod
    def _prefix(namespace: str, name: str) -> str:
        return f"repos/{check_repo_name(namespace, 'namespace')}/{check_repo_name(name, 'repository name')}"

    async def create(self, namespace: str, name: str) -> RepoInfo:
        info = RepoInfo(namespace, name, int(time.time()))
        body = {**info.as_dict(), "chunking": to_dict(ChunkingConfig())}
        key = self._prefix(namespace, name) + "/repo.json"
        if not await self.store.put_if_absent(key, json.dumps(body).encode()):
            raise AlreadyExists(f"repository {namespace}/{name} already exists")
        return info

    async def info(self, namespace: str, name: str) -> RepoInfo:
        raw = await self.store.get(self._prefix(namespace, name) + "/repo.json")
        if raw is None:
            raise NotFound(f"no repository {namespace}/{name}")
        data = json.loads(raw)
        return RepoInfo(data["namespace"], data["name"], int(data["created"]))

    async def list(self, namespace: str) -> list[RepoInfo]:
        check_repo_name(namespace, "namespace")
        out = []
        async for key in self.store.list(f"repos/{namespace}/"):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == "repo.json":
                out.append(await self.info(namespace, parts[2]))
        return sorted(out, key=lambda r: r.name)

    async def open(self, namespace: str, name: str) -> ServedRepo:
        key = (namespace, name)
        async with self._lock:
            if key in self._open:
                return self._open[key]
            info = await self.info(namespace, name)
            cache = self.cache_dir / namespace / name
            await asyncio.to_thread((cache / "tmp").mkdir, parents=True, exist_ok=True)
            db = await RepoDB.open(cache)
            store = PrefixedStore(self.store, self._prefix(namespace, name))
            repo = ServedRepo(info, store, db, cache / "tmp", pack_slots=self._pack_slots)
            await repo.refresh_index()
            self._open[key] = repo
            return repo

    async def delete(self, namespace: str, name: str) -> None:
        await self.info(namespace, name)
        prefix = self._prefix(namespace, name) + "/"
        async with self._lock:
            repo = self._open.pop((namespace, name), None)
        if repo is not None:
            await repo.db.close()
        await self.store.delete(prefix + "repo.json")
        keys = [k async for k in self.store.list(prefix)]
        await asyncio.gather(*(self.store.delete(k) for k in keys))

    async def close(self) -> None:
        for repo in self._open.values():
            await repo.db.close()
        self._open.clear()
