"""``Repository``: a working copy assembled from its parts, and nothing it does.

The parts: its config (``.oxen/config.toml``), its database (refs, index, staging area,
stat cache), its object store (packs of chunks and nodes) and the trees over them.  The
core resolves revisions, reads commits, moves HEAD and remembers stats; every verb
(add, commit, checkout, merge, push...) is a function over it in :mod:`oxen.verbs` or
:mod:`oxen.sync`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Self

from oxen.config import CONFIG_NAME, RepoConfig, load_repo_config, save_toml_model
from oxen.core.on_demand import OnDemand
from oxen.core.refs import Head, Refs, split_ancestry
from oxen.db.repo_db import RepoDB
from oxen.db.rows import StatRow
from oxen.errors import CorruptObject, PathError, RefConflict, RefError, RepositoryExists
from oxen.formats.ids import is_hex_prefix
from oxen.formats.nodes import CommitNode
from oxen.objects.object_store import ObjectStore
from oxen.objects.temp_files import sweep
from oxen.storage import Store, open_store
from oxen.trees import history
from oxen.trees.tree import Trees
from oxen.worktree import pending
from oxen.worktree.paths import OXEN_DIR, Written, find_root, fs_clock, to_repo_path
from oxen.worktree.scope import PARTIAL_KEY, Partial

if TYPE_CHECKING:
    from oxen.worktree.chunking import Chunker


@dataclass(frozen=True)
class CommitInfo:
    id: bytes
    tree: bytes
    parents: tuple[bytes, ...]
    author: str
    email: str
    timestamp: int
    tz_offset: int
    message: str

    @classmethod
    def of(cls, cid: bytes, node: CommitNode) -> CommitInfo:
        return cls(
            cid,
            node.tree,
            node.parents,
            node.author,
            node.email,
            node.timestamp,
            node.tz_offset,
            node.message,
        )


# Given a repository being opened, its source of absent objects (or None)
OnDemandFactory = Callable[["Repository"], OnDemand | None]


class Repository:
    # where a partial clone's absent objects come from: set once by the front end that
    # may go online (the CLI unless --offline, the Python API); None refuses them
    on_demand_factory: ClassVar[OnDemandFactory | None] = None

    def __init__(self, root: Path, config: RepoConfig, db: RepoDB, store: Store) -> None:
        self.root = root
        self.oxen_dir = root / OXEN_DIR
        self.config = config
        self.db = db
        self.store = store
        self.refs = Refs(db)
        self.objects = ObjectStore(store, db, self.oxen_dir / "tmp", config.storage.pack_size)
        self.trees = Trees(self.objects, config.core.vnode_size)
        self.on_demand: OnDemand | None = None

    # -- opening -------------------------------------------------------------------------
    @classmethod
    async def init(cls, path: str | Path = ".", storage_url: str | None = None) -> Self:
        config = RepoConfig()
        if storage_url:
            config.storage.url = storage_url
            if "://" in storage_url and not storage_url.startswith("file:"):
                await _probe(storage_url)  # a missing bucket fails here, not at the first add
        root = await asyncio.to_thread(_create_layout, Path(path), config)
        repo = await cls._assemble(root, config)
        async with repo.db.transaction():
            await repo.refs.set_head("main")
        return repo

    @classmethod
    async def open(cls, path: str | Path | None = None) -> Self:
        root = find_root(path)
        return await cls._assemble(root, load_repo_config(root / OXEN_DIR))

    @classmethod
    async def _assemble(cls, root: Path, config: RepoConfig) -> Self:
        url = config.storage.url
        if "://" not in url and not url.startswith("/"):
            url = str(root / OXEN_DIR / url)
        local = "://" not in url or url.startswith("file:")
        store = open_store(url, **({"fsync": config.storage.fsync} if local else {}))
        db = await RepoDB.open(root / OXEN_DIR)
        repo = cls(root, config, db, store)
        repo.go_online()
        await asyncio.to_thread(sweep, repo.objects.tmp_dir)  # what killed commands left
        await asyncio.to_thread(pending.sweep, root)  # ...in the working tree too
        return repo

    def go_online(self) -> None:
        """Fetch absent objects on demand from here on, if a front end allows it."""
        factory = type(self).on_demand_factory or Repository.on_demand_factory
        self.on_demand = factory(self) if factory is not None else None
        self.objects.fetch_missing = self.on_demand.objects if self.on_demand else None

    def go_offline(self) -> None:
        """Refuse absent objects from here on (what ``--offline`` does)."""
        self.on_demand = None
        self.objects.fetch_missing = None

    async def close(self) -> None:
        if self.on_demand is not None:
            await self.on_demand.close()
        await self.db.close()
        await self.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def chunker(self) -> Chunker:
        """The repository's chunker (imported on first use: it costs other commands ~10 ms)."""
        from oxen.worktree.chunking import Chunker

        return Chunker(self.config.chunking)

    async def save_config(self) -> None:
        await asyncio.to_thread(save_toml_model, self.oxen_dir / CONFIG_NAME, self.config)

    def repo_path(self, user_path: str, cwd: str | Path | None = None) -> str:
        return to_repo_path(self.root, user_path, cwd)

    # -- HEAD, revisions and commits -----------------------------------------------------
    async def head(self) -> Head:
        """(current branch or None when detached, commit id or None before the first commit)."""
        return await self.refs.head()

    async def move_head(self, branch: str | None, old: bytes | None, new: bytes) -> None:
        """Advance the current branch from ``old`` to ``new`` (or a detached HEAD to ``new``)."""
        if branch is None:
            await self.refs.set_head(None, new)
            return
        if not await self.refs.set_if_equals(branch, old, new):
            raise RefConflict(
                f"branch {branch} moved while committing; nothing was changed, try again"
            )

    async def read_commit(self, cid: bytes) -> CommitInfo:
        try:
            node = await history.read_commit(self.objects, cid)
        except CorruptObject:
            raise RefError(f"{cid.hex()} is not a commit") from None
        return CommitInfo.of(cid, node)

    async def tree_of(self, rev: str) -> bytes:
        """The root tree id of a revision."""
        return (await self.read_commit(await self.resolve(rev))).tree

    async def resolve(self, rev: str) -> bytes:
        """A commit id from a branch name, HEAD, a (prefix of a) commit id, with ~N / ^ suffixes."""
        base, steps = split_ancestry(rev.strip())
        cid = await self._resolve_base(base, rev)
        for _ in range(steps):
            commit = await self.read_commit(cid)
            if not commit.parents:
                raise RefError(f"unknown revision: {rev} (history is shorter)")
            cid = commit.parents[0]
        return cid

    async def _resolve_base(self, base: str, rev: str) -> bytes:
        if base == "HEAD":
            cid = (await self.head()).commit
            if cid is None:
                raise RefError("HEAD has no commits yet")
            return cid
        if base and not base.startswith("-"):
            cid = await self.refs.lookup(base)
            if cid is not None:
                return cid
        if is_hex_prefix(base):
            shallow = (await self.partial()).shallow  # not past a --depth clone's history
            stop = await history.parents_of(self.objects, shallow)
            known = await history.ancestors(self.objects, await self.refs.tips(), stop)
            matches = [c for c in known if c.hex().startswith(base)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise RefError(f"ambiguous commit id prefix: {base}")
        raise RefError(f"unknown revision: {rev}")

    # -- the working tree ----------------------------------------------------------------
    async def partial(self) -> Partial:
        """What this clone holds (a whole clone: every path, all history)."""
        return Partial.decode(await self.db.get_state(PARTIAL_KEY))

    async def set_partial(self, partial: Partial) -> None:
        await self.db.set_state(PARTIAL_KEY, partial.encode() if partial.is_partial else None)

    async def remember_stats(self, written: list[Written]) -> None:
        """Cache the stat of files just written with known ids, so status need not hash them."""
        clock = await asyncio.to_thread(fs_clock, self.oxen_dir)
        async with self.db.transaction():
            await self.db.put_stats(
                StatRow(
                    w.path,
                    w.stat.size,
                    w.stat.mtime_ns,
                    w.stat.ctime_ns,
                    w.stat.ino,
                    w.id,
                    int(w.stat.mtime_ns >= clock),
                )
                for w in written
            )


async def _probe(url: str) -> None:
    """Read one key of a remote store: raises StoreError if it cannot be used."""
    store = open_store(url)
    try:
        await store.get("config-probe")
    finally:
        await store.close()


def _create_layout(path: Path, config: RepoConfig) -> Path:
    root = path.absolute()
    oxen_dir = root / OXEN_DIR
    if (oxen_dir / "oxen.db").exists():
        raise RepositoryExists(f"already an oxen repository: {root}")
    if root.exists() and not root.is_dir():
        raise PathError(f"not a directory: {root}")
    oxen_dir.mkdir(parents=True, exist_ok=True)
    save_toml_model(oxen_dir / CONFIG_NAME, config)
    return root
