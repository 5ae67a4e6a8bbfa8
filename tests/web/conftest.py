"""The web pages served in this process (fast, for pages, sessions and grants), over a
repository seeded through the sync protocol's own code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from oxen.config import UserConfig, save_user_config
from oxen.repo import AsyncRepo
from oxen.server.auth import Role
from oxen.server.state import REGISTRY
from oxen.sync.push import push
from tests.fuzz.live import LiveServer
from tests.test_serving import InProcessRemote
from tests.web.content import FIRST_MESSAGE, NAME, NS, SECOND_MESSAGE, write_first, write_second


@dataclass
class Site:
    server: LiveServer
    commits: list[str] = field(default_factory=list)  # hex, oldest first

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def token(self, name: str) -> str:
        return self.server.tokens[name]


async def _seed(server: LiveServer, root: Path) -> list[str]:
    repo = await AsyncRepo.init(root)
    try:
        write_first(root)
        await repo.add([str(root)])
        first = await repo.commit(FIRST_MESSAGE)
        write_second(root)
        await repo.add([str(root)])
        second = await repo.commit(SECOND_MESSAGE)
        registry = server.app[REGISTRY]
        await registry.create(NS, NAME)
        await registry.create("other", "thing")
        async with registry.use(NS, NAME) as served:
            await push(repo, InProcessRemote(served), "origin", "main")
        return [first.hex(), second.hex()]
    finally:
        await repo.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web-site")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OXEN_CONFIG_DIR", str(root / "config"))
        save_user_config(UserConfig(name="Ada", email="ada@example.com"))
        server = LiveServer(root / "server")
        server.start()
        try:
            server.issue("writer", Role.WRITER, ["*"])
            server.issue("reader", Role.READER, [NS])
            server.issue("outsider", Role.READER, ["other"])
            past = int(time.time()) - 3600
            server.issue("expired", Role.READER, ["*"], created=past, expires=past + 1)
            commits = server.call(_seed(server, root / "src"))
            yield Site(server, commits)
        finally:
            server.stop()


def run(coro):  # type: ignore[no-untyped-def]
    """``coro`` on a loop of its own (the tests are plain functions)."""
    return asyncio.run(coro)
