"""Format and protocol versions: whatever cannot be read gets one clear line."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from oxen.errors import FormatError, RemoteError
from oxen.serving.registry import RepoRegistry
from oxen.storage.local import LocalStore
from oxen.sync.http import HttpRemote
from oxen.sync.protocol import PROTOCOL_HEADER, RemoteURL


def test_an_old_repository_is_refused_in_one_line(oxen: Callable, workdir: Path) -> None:
    oxen("init", check=True)
    config = workdir / ".oxen" / "config.toml"
    config.write_text(config.read_text().replace("format = 2", "format = 1"))
    for command in (["status"], ["log"], ["add", "."]):
        proc = oxen(*command)
        assert proc.returncode == 1, command
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "format 1" in lines[0] and "format 2" in lines[0], lines


async def test_the_server_refuses_a_repository_of_the_old_format(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    registry = RepoRegistry(store, tmp_path / "cache")
    await registry.create("ns", "new")
    old = {"namespace": "ns", "name": "old", "created": 1, "incarnation": "x"}  # no format
    await store.put("repos/ns/old/repo.json", json.dumps(old).encode())
    try:
        async with registry.use("ns", "new") as served:
            assert served.info.format == 2
        with pytest.raises(FormatError, match="format 1"):
            async with registry.use("ns", "old"):
                pass
    finally:
        await registry.close()
        await store.close()


@pytest.fixture
async def old_server() -> AsyncIterator[str]:
    """A server that answers like one of protocol 1: no version header."""

    async def refs(request: web.Request) -> web.Response:
        return web.json_response({"branches": {}})

    app = web.Application()
    app.router.add_get("/api/repos/{ns}/{name}/refs", refs)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"127.0.0.1:{port}"
    await runner.cleanup()


async def test_the_client_refuses_a_server_of_the_old_protocol(old_server: str) -> None:
    remote = HttpRemote(RemoteURL.parse(f"http://{old_server}/ns/r"), token="t")
    try:
        with pytest.raises(RemoteError, match="speaks oxen protocol 1.*upgrade the server"):
            await remote.refs()
    finally:
        await remote.close()


async def test_the_server_refuses_a_client_of_the_old_protocol(server, tmp_path: Path) -> None:
    import aiohttp

    headers = {"Authorization": f"Bearer {server.token}"}  # and no protocol header
    async with aiohttp.ClientSession(headers=headers) as session:
        r = await session.get(f"http://{server.host}/api/repos/ns")
        assert r.status == 400
        assert r.headers[PROTOCOL_HEADER] == "2"
        assert "upgrade oxen" in (await r.json())["error"]
