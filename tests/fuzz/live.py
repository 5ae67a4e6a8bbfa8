"""The server's application in this process, its event loop on a thread of its own, so that
generated requests can be sent byte for byte from blocking code (the test's thread)."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from oxen.server.app import create_app
from oxen.server.auth import Role, TokenGrant, TokenStore
from oxen.server.state import REGISTRY, Settings
from oxen.storage.fs import LOCK_DIR, TMP_DIR
from oxen.storage.local import LocalStore
from tests.sync.conftest import serving

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LoopThread:
    """An event loop running on a thread of its own: blocking code (a hypothesis test) hands
    it coroutines and waits for their results."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.stack = AsyncExitStack()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run ``coro`` on the loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self._thread.start()

    def serve(self, app: web.Application) -> int:
        """Serve ``app`` on a loopback port (until stop): the port."""
        base = self.call(self.stack.enter_async_context(serving(app)))
        return int(base.rsplit(":", 1)[1])

    def stop(self) -> None:
        self.call(self.stack.aclose())
        self.call(_cancel_others())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


async def _cancel_others() -> None:
    """End what is left on the loop (handlers of connections the server has dropped)."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


class LiveServer(LoopThread):
    """``create_app`` over a LocalStore in ``root``, served on a loopback port."""

    def __init__(self, root: Path, body_idle_timeout: float = 0.5) -> None:
        super().__init__()
        self.root = root
        self.bucket = root / "bucket"
        self.store = LocalStore(self.bucket, fsync=False)
        self.settings = Settings(
            str(self.bucket), root / "data", body_idle_timeout=body_idle_timeout
        )
        self.port = 0
        self.tokens: dict[str, str] = {}

    def start(self) -> LiveServer:  # type: ignore[override]
        super().start()
        self.app = create_app(self.settings, store=self.store)
        self.port = self.serve(self.app)
        # a miss lists the packs again at once: no request waits for the 5 s interval
        self.app[REGISTRY].relist = 0.0
        return self

    def issue(self, name: str, role: Role, namespaces: list[str], **extra: Any) -> str:
        grant = TokenGrant(
            email=f"{name}@example.com", name=name, namespaces=namespaces, role=role, **extra
        )
        token = self.call(TokenStore(self.store).issue(grant))
        self.tokens[name] = token
        return token

    def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
        body: bytes = b"",
        timeout: float = 30,
    ) -> Answer | None:
        """Send exactly these bytes (no header added but Host and Connection) and read the
        answer; None when the server closed the connection without one."""
        head = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
        head += [name + b": " + value for name, value in headers]
        raw = b"\r\n".join(head) + b"\r\n\r\n" + body
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            try:
                sock.sendall(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered (and closed) before the whole body was read
            response = http.client.HTTPResponse(sock, method=method.decode("latin-1"))
            try:
                response.begin()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError):
                return None
            except http.client.IncompleteRead as e:
                data = e.partial
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def snapshot(self) -> dict[str, bytes]:
        """Every object of the store (the server's state): key -> bytes."""
        out = {}
        for path in self.bucket.rglob("*"):
            rel = path.relative_to(self.bucket)
            if rel.parts[0] in (TMP_DIR, LOCK_DIR) or not path.is_file():
                continue
            out[rel.as_posix()] = path.read_bytes()
        return out
