"""Repositories by namespace in one store (``repos/<namespace>/<name>/``), opened on
demand with their index cache on local disk.

Each open repository holds a SQLite connection (a thread and three files), so at most
``max_open`` stay open: the least recently used of those no request holds are closed.
A request holds its repository for as long as it runs (``async with registry.use(...)``),
so a push streaming packs is never closed under it; one closed and asked for again is
reopened from its cache on disk."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from oxen.config import ChunkingConfig, to_dict
from oxen.db.repo_db import RepoDB
from oxen.errors import AlreadyExists, NotFound
from oxen.objects.temp_files import sweep
from oxen.serving.relisting import RELIST_SECONDS, RelistLimit
from oxen.serving.served_repo import PackSlots, RepoInfo, ServedRepo, check_repo_name
from oxen.storage import Store
from oxen.storage.prefixed import PrefixedStore

# Seconds an opened repository is served before its repo.json is read again (to notice a
# delete and re-create by another server).
RECHECK_SECONDS = 5.0
# Repositories kept open at once, unless more are in use by requests at that moment.
MAX_OPEN_REPOS = 64

# Part of a cache directory's name: caches written by servers that kept other tables
# (before copies of objects were recorded) are dropped and rebuilt from the store.
CACHE_VERSION = ".2"

Key = tuple[str, str]


@dataclass
class _Opened:
    repo: ServedRepo
    checked: float  # monotonic time repo.json was last read
    users: int = 0  # requests holding it
    retired: bool = False  # deleted or replaced while in use: its last user closes it


class RepoRegistry:
    """Repositories by namespace in one store, with a local cache directory.

    ``relist``: seconds between two listings of a repository's packs made because a
    request needed an object its cache does not know; ``clock`` and ``sleep`` are what
    those intervals and ``recheck`` are measured and waited with."""

    def __init__(
        self,
        store: Store,
        cache_dir: Path,
        recheck: float = RECHECK_SECONDS,
        max_open: int = MAX_OPEN_REPOS,
        relist: float = RELIST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.cache_dir = cache_dir
        self.recheck = recheck
        self.relist = relist
        self.clock = clock
        self.sleep = sleep
        self.max_open = max(1, max_open)
        self._open: OrderedDict[Key, _Opened] = OrderedDict()  # least recently used first
        self._lock = asyncio.Lock()
        self.pack_slots = PackSlots()  # shared by every repository it opens

    @staticmethod
    def _prefix(namespace: str, name: str) -> str:
        return f"repos/{check_repo_name(namespace, 'namespace')}/{check_repo_name(name, 'repository name')}"

    async def create(self, namespace: str, name: str) -> RepoInfo:
        info = RepoInfo(namespace, name, int(time.time()), uuid.uuid4().hex)
        body = {
            **info.as_dict(),
            "incarnation": info.incarnation,
            "format": info.format,
            "chunking": to_dict(ChunkingConfig()),
        }
        key = self._prefix(namespace, name) + "/repo.json"
        if not await self.store.put_if_absent(key, json.dumps(body).encode()):
            raise AlreadyExists(f"repository {namespace}/{name} already exists")
        return info

    async def info(self, namespace: str, name: str) -> RepoInfo:
        raw = await self.store.get(self._prefix(namespace, name) + "/repo.json")
        if raw is None:
            raise NotFound(f"no repository {namespace}/{name}")
        data = json.loads(raw)
        incarnation = str(data.get("incarnation", "0"))
        fmt = data.get("format", 1)
        return RepoInfo(data["namespace"], data["name"], int(data["created"]), incarnation, fmt)

    async def list(self, namespace: str) -> list[RepoInfo]:
        check_repo_name(namespace, "namespace")
        out = []
        async for key in self.store.list(f"repos/{namespace}/"):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == "repo.json":
                out.append(await self.info(namespace, parts[2]))
        return sorted(out, key=lambda r: r.name)

    async def names(self, namespace: str | None = None) -> list[Key]:
        """(namespace, name) of every repository, or of one namespace's, sorted: one
        listing of the store and no repo.json read (a store lists every key under the
        prefix, packs included)."""
        prefix = (
            "repos/" if namespace is None else f"repos/{check_repo_name(namespace, 'namespace')}/"
        )
        out = []
        async for key in self.store.list(prefix):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == "repo.json":
                out.append((parts[1], parts[2]))
        return sorted(out)

    @property
    def open_count(self) -> int:
        """Repositories open now, those in use included."""
        return len(self._open)

    def is_open(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._open

    @asynccontextmanager
    async def use(self, namespace: str, name: str) -> AsyncIterator[ServedRepo]:
        """The repository, held open until the block ends. At most every ``recheck``
        seconds its ``repo.json`` is read again, so one deleted and re-created (by any
        server on the store) is reopened from scratch rather than served from the old
        one's cache."""
        opened = await self._acquire((namespace, name))
        try:
            yield opened.repo
        finally:
            await self._release(opened)

    async def _acquire(self, key: Key) -> _Opened:
        async with self._lock:
            opened = self._open.get(key)
            if opened is not None:
                opened.users += 1  # held from here on: never evicted while it is checked
                try:
                    current = await self._still_current(key, opened)
                except BaseException:
                    await self._release(opened)
                    raise
                if not current:
                    await self._release(opened)  # retired: closed unless others hold it
                    opened = None
            if opened is None:
                opened = await self._open_repo(key)
            self._open.move_to_end(key)
            idle = self._evict()
        await _close(idle)
        return opened

    async def _release(self, opened: _Opened) -> None:
        """Let go of a repository; no lock, so a request's answer never waits for
        another repository being opened."""
        opened.users -= 1
        if opened.users:
            return
        await _close([opened.repo] if opened.retired else self._evict())

    def _evict(self) -> list[ServedRepo]:
        """Take the least recently used idle repositories out while too many are open;
        the caller closes them (nothing can reach them any more). Synchronous, so no
        other task sees a repository half evicted."""
        over = len(self._open) - self.max_open
        if over <= 0:
            return []
        idle = [key for key, opened in self._open.items() if not opened.users]
        return [self._open.pop(key).repo for key in idle[:over]]

    async def _still_current(self, key: Key, opened: _Opened) -> bool:
        """Whether ``opened`` still serves ``key``: once ``recheck`` seconds old,
        ``repo.json`` is read again; gone (NotFound) or another incarnation retires it."""
        now = self.clock()
        if now - opened.checked < self.recheck:
            return True
        try:
            info = await self.info(*key)
        except NotFound:
            self._retire(key)
            raise
        if info.incarnation != opened.repo.info.incarnation:
            self._retire(key)
            return False
        await opened.repo.follow_gc()  # a gc's marks are followed as often
        opened.checked = now
        return True

    async def _open_repo(self, key: Key) -> _Opened:
        """Open ``key`` from its cache on disk (made if missing), held once."""
        namespace, name = key
        now = self.clock()
        info = await self.info(namespace, name)
        info.check_format()
        home = self.cache_dir / namespace / name
        cache = home / f"{info.incarnation}{CACHE_VERSION}"
        await asyncio.to_thread(_drop_other_incarnations, home, cache.name)
        await asyncio.to_thread((cache / "tmp").mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(sweep, cache / "tmp")  # what a killed server left
        db = await RepoDB.open(cache, track_copies=True)
        store = PrefixedStore(self.store, self._prefix(namespace, name))
        relist = RelistLimit(self.relist, self.clock, self.sleep)
        repo = ServedRepo(info, store, db, cache / "tmp", pack_slots=self.pack_slots, relist=relist)
        try:
            if not await repo.follow_gc():  # which lists the packs when the marks changed
                await repo.refresh_index()
        except BaseException:
            await repo.close()
            raise
        opened = _Opened(repo, now, users=1)
        self._open[key] = opened
        return opened

    def _retire(self, key: Key) -> list[ServedRepo]:
        """Forget ``key``'s open repository: the one to close now, or none if requests
        still hold it (the last of them closes it)."""
        opened = self._open.pop(key, None)
        if opened is None:
            return []
        if opened.users:
            opened.retired = True
            return []
        return [opened.repo]

    async def delete(self, namespace: str, name: str) -> None:
        info = await self.info(namespace, name)
        prefix = self._prefix(namespace, name) + "/"
        async with self._lock:
            idle = self._retire((namespace, name))
        await _close(idle)
        await self.store.delete(prefix + "repo.json")
        keys = [k async for k in self.store.list(prefix)]
        await asyncio.gather(*(self.store.delete(k) for k in keys))
        cache = self.cache_dir / namespace / name / f"{info.incarnation}{CACHE_VERSION}"
        await asyncio.to_thread(shutil.rmtree, cache, True)

    async def close(self) -> None:
        """Close every repository, held or not (the server is stopping)."""
        opened, self._open = list(self._open.values()), OrderedDict()
        await _close([o.repo for o in opened])


async def _close(repos: list[ServedRepo]) -> None:
    for repo in repos:
        await repo.close()


def _drop_other_incarnations(home: Path, current: str) -> None:
    """Remove the caches of earlier repositories of this name (blocking)."""
    if not home.is_dir():
        return
    for child in home.iterdir():
        if child.name != current and child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
