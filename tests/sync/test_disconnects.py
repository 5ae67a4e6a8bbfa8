"""A client that disconnects mid-request is one line of log (route, peer, reason), not a
traceback."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import msgpack
import pytest
from aiohttp import web

from oxen.formats.ids import hash_bytes
from oxen.formats.packs import Kind
from oxen.server.app import create_app
from oxen.server.auth import TokenGrant, TokenStore
from oxen.server.state import Settings
from oxen.storage.local import LocalStore
from oxen.sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from tests.sync.conftest import auth, serving
from tests.sync.test_server_input import pack_bytes

MiB = 1024 * 1024


def app_with_handler_done(tmp_path: Path) -> tuple[web.Application, asyncio.Event, LocalStore]:
    """The server's app, and an event set once a request's handler has ended (however)."""
    store = LocalStore(tmp_path / "bucket")
    app = create_app(Settings(str(tmp_path / "bucket"), tmp_path / "data"), store)
    done = asyncio.Event()

    @web.middleware
    async def note_done(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            if request.method == "POST" and request.path.endswith(("/packs", "/fetch")):
                done.set()

    app.middlewares.insert(0, note_done)
    return app, done, store


def raw_request(base: str, head: str, body: bytes, read: int, reset: bool) -> None:
    """Send a request, read ``read`` bytes of the answer, then drop the connection (a
    reset if ``reset``, else a plain close). Blocking: run it in a thread."""
    host, port = base.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # no room for it all
        s.connect((host, int(port)))
        s.sendall(head.encode() + body)
        got = b""
        while len(got) < read:
            piece = s.recv(read - len(got))
            assert piece, got
            got += piece
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def assert_one_line(caplog: pytest.LogCaptureFixture, path: str) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records
    ]
    lines = [r.getMessage() for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(lines) == 1, lines
    assert f"POST {path} from 127.0.0.1 (" in lines[0], lines[0]
    assert lines[0].endswith(")") and "\n" not in lines[0]


@pytest.mark.parametrize("cancel", [False, True], ids=["error", "cancelled"])
async def test_a_client_gone_mid_body_is_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cancel: bool
) -> None:
    """Reading the body fails (ConnectionResetError), or, when the server cancels the
    handlers of clients that have gone, the handler is cancelled (CancelledError)."""
    caplog.set_level(logging.INFO)
    app, done, store = app_with_handler_done(tmp_path)
    token = await TokenStore(store).issue(TokenGrant(email="a@b.c", name="A"))
    async with serving(app, handler_cancellation=cancel) as base:
        async with aiohttp.ClientSession(headers=auth(token)) as s:
            r = await s.post(base + "/api/repos", json={"namespace": "ns", "name": "r"})
            assert r.status == 201
        head = (
            "POST /api/repos/ns/r/packs HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\n{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\nContent-Length: {10 * MiB}\r\n\r\n"
        )
        caplog.clear()
        await asyncio.to_thread(raw_request, base, head, b"x" * 100_000, 0, False)
        await done.wait()
    assert_one_line(caplog, "/api/repos/ns/r/packs")


async def test_a_client_gone_mid_response_is_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app, done, store = app_with_handler_done(tmp_path)
    token = await TokenStore(store).issue(TokenGrant(email="a@b.c", name="A"))
    # far more than the socket buffers on both ends hold, so the server is still writing
    blobs = [os.urandom(MiB) for _ in range(32)]
    pack = pack_bytes(tmp_path, [(hash_bytes(b), Kind.CHUNK, b) for b in blobs])
    async with serving(app) as base:
        async with aiohttp.ClientSession(headers=auth(token)) as s:
            r = await s.post(base + "/api/repos", json={"namespace": "ns", "name": "r"})
            assert r.status == 201
            r = await s.post(base + "/api/repos/ns/r/packs", data=pack)
            assert r.status == 201
        done.clear()
        body = msgpack.packb(b"".join(hash_bytes(b) for b in blobs))
        head = (
            "POST /api/repos/ns/r/objects/fetch HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\n{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        caplog.clear()
        await asyncio.to_thread(raw_request, base, head, body, 1000, True)
        await done.wait()
    assert_one_line(caplog, "/api/repos/ns/r/objects/fetch")
