"""Repositories by namespace in one store (``repos/<namespace>/<name>/``), each opened
once per process with its index cache on local disk."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from oxen.config import ChunkingConfig, to_dict
from oxen.db.repo_db import RepoDB
from oxen.errors import AlreadyExists, NotFound
from oxen.objects.temp_files import sweep
from oxen.serving.served_repo import PACKS_IN_FLIGHT, RepoInfo, ServedRepo, check_repo_name
from oxen.storage import Store
from oxen.storage.prefixed import PrefixedStore


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
            await asyncio.to_thread(sweep, cache / "tmp")  # what a killed server left
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
