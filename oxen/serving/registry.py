"""Repositories by namespace in one store (``repos/<namespace>/<name>/``), each opened
once per process with its index cache on local disk."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from oxen.config import ChunkingConfig, to_dict
from oxen.db.repo_db import RepoDB
from oxen.errors import AlreadyExists, NotFound
from oxen.objects.temp_files import sweep
from oxen.serving.relisting import RELIST_SECONDS, RelistLimit
from oxen.serving.served_repo import PACKS_IN_FLIGHT, RepoInfo, ServedRepo, check_repo_name
from oxen.storage import Store
from oxen.storage.prefixed import PrefixedStore

# Seconds an opened repository is served before its repo.json is read again (to notice a
# delete and re-create by another server).
RECHECK_SECONDS = 5.0


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
        self._open: dict[tuple[str, str], ServedRepo] = {}
        self._checked: dict[tuple[str, str], float] = {}
        self._lock = asyncio.Lock()
        self._pack_slots = asyncio.Semaphore(PACKS_IN_FLIGHT)

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

    async def open(self, namespace: str, name: str) -> ServedRepo:
        """The repository, opened once per process; at most every ``recheck`` seconds its
        ``repo.json`` is read again, so one deleted and re-created (by any server on the
        store) is reopened from scratch rather than served from the old one's cache."""
        key = (namespace, name)
        async with self._lock:
            opened = self._open.get(key)
            now = self.clock()
            if opened is not None and now - self._checked[key] < self.recheck:
                return opened
            try:
                info = await self.info(namespace, name)
            except NotFound:
                await self._forget(key)
                raise
            info.check_format()
            if opened is not None and opened.info.incarnation == info.incarnation:
                self._checked[key] = now
                return opened
            await self._forget(key)
            home = self.cache_dir / namespace / name
            await asyncio.to_thread(_drop_other_incarnations, home, info.incarnation)
            cache = home / info.incarnation
            await asyncio.to_thread((cache / "tmp").mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(sweep, cache / "tmp")  # what a killed server left
            db = await RepoDB.open(cache)
            store = PrefixedStore(self.store, self._prefix(namespace, name))
            relist = RelistLimit(self.relist, self.clock, self.sleep)
            repo = ServedRepo(
                info, store, db, cache / "tmp", pack_slots=self._pack_slots, relist=relist
            )
            await repo.refresh_index()
            self._open[key] = repo
            self._checked[key] = now
            return repo

    async def _forget(self, key: tuple[str, str]) -> None:
        repo = self._open.pop(key, None)
        self._checked.pop(key, None)
        if repo is not None:
            await repo.db.close()

    async def delete(self, namespace: str, name: str) -> None:
        info = await self.info(namespace, name)
        prefix = self._prefix(namespace, name) + "/"
        async with self._lock:
            await self._forget((namespace, name))
        await self.store.delete(prefix + "repo.json")
        keys = [k async for k in self.store.list(prefix)]
        await asyncio.gather(*(self.store.delete(k) for k in keys))
        cache = self.cache_dir / namespace / name / info.incarnation
        await asyncio.to_thread(shutil.rmtree, cache, True)

    async def close(self) -> None:
        for repo in self._open.values():
            await repo.db.close()
        self._open.clear()
        self._checked.clear()


def _drop_other_incarnations(home: Path, current: str) -> None:
    """Remove the caches of earlier repositories of this name (blocking)."""
    if not home.is_dir():
        return
    for child in home.iterdir():
        if child.name != current and child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
