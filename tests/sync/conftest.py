"""Real `oxen-server` processes on loopback, on local disk or on S3 (moto in server mode)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from oxen.sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from tests.storage.conftest import aws_env, make_bucket, moto_endpoint  # noqa: F401 - fixtures

SERVER = [sys.executable, "-m", "oxen.server.main"]


def auth(token: str) -> dict[str, str]:
    """The headers our client sends: its token and its protocol version."""
    return {"Authorization": f"Bearer {token}", PROTOCOL_HEADER: str(PROTOCOL_VERSION)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    host: str
    token: str
    data_dir: Path
    storage: str | None
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # more options of `oxen-server start`

    @property
    def port(self) -> int:
        return int(self.host.split(":")[1])

    def url(self, repo: str) -> str:
        return f"http://{self.host}/{repo}"

    def add_user(self, *extra: str) -> str:
        out = self.data_dir.parent / f"user-{uuid.uuid4().hex}.toml"
        args = [
            *SERVER,
            "add-user",
            "--email",
            "u@example.com",
            "--name",
            "U",
            "--output",
            str(out),
        ]
        args += [
            "--data-dir",
            str(self.data_dir),
            *(["--storage", self.storage] if self.storage else []),
            *extra,
        ]
        subprocess.run(args, check=True, env=self.env, capture_output=True)
        return out.read_text().split('token = "')[1].split('"')[0]

    def start(self) -> None:
        port = self.host.split(":")[1]
        args = [*SERVER, "start", "--port", port, "--data-dir", str(self.data_dir)]
        args += ["--storage", self.storage] if self.storage else []
        args += self.args
        log = open(self.data_dir.parent / f"server-{port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(300):  # readiness: poll the health route, up to ~30 s
            try:
                with urllib.request.urlopen(f"http://{self.host}/api/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("oxen-server exited at start") from None
                time.sleep(0.1)
        raise RuntimeError("oxen-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


@pytest.fixture
def make_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Server]]:
    """Servers for this test; each is named in OXEN_AUTH_HOST, so a client given
    OXEN_AUTH_TOKEN sends it there (and to no other server)."""
    servers: list[Server] = []

    def make(
        storage: str | None = None,
        env: dict[str, str] | None = None,
        data_dir: Path | None = None,
        args: Sequence[str] = (),
        token: str | None = None,
    ) -> Server:
        """``token``: one already issued into ``storage`` (else a user is added)."""
        data = data_dir or tmp_path / f"server-data-{len(servers)}"
        data.mkdir(parents=True, exist_ok=True)
        server = Server(
            f"127.0.0.1:{free_port()}", "", data, storage, {**os.environ, **(env or {})}
        )
        server.args = list(args)
        server.start()  # which makes the store the tokens go to
        server.token = token or server.add_user()
        servers.append(server)
        monkeypatch.setenv("OXEN_AUTH_HOST", ",".join(s.host for s in servers))
        return server

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    return make_server()


@pytest.fixture
def make_s3_server(
    make_server: Callable[..., Server],
    moto_endpoint: str,  # noqa: F811
    make_bucket: Callable[[str], str],  # noqa: F811
) -> Callable[..., Server]:
    """Servers on a fresh moto bucket each; ``args``: more options of `start`."""

    def make(args: Sequence[str] = ()) -> Server:
        bucket = make_bucket(f"oxen-{uuid.uuid4().hex[:12]}")
        env = {
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        return make_server(storage=f"s3://{bucket}/oxen", env=env, args=list(args))

    return make


@pytest.fixture
def s3_server(make_s3_server: Callable[..., Server]) -> Server:
    return make_s3_server()


@pytest.fixture
def servers_on_a_bucket(
    make_server: Callable[..., Server],
    moto_endpoint: str,  # noqa: F811
    make_bucket: Callable[[str], str],  # noqa: F811
) -> Callable[[int], list[Server]]:
    """``count`` servers, each with its own (empty) data directory, on one new bucket; one
    token, issued into the bucket, for all of them."""

    def make(count: int) -> list[Server]:
        bucket = make_bucket(f"oxen-multi-{uuid.uuid4().hex[:12]}")
        env = {
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        first = make_server(storage=f"s3://{bucket}/oxen", env=env)
        rest = [
            make_server(storage=first.storage, env=env, token=first.token) for _ in range(count - 1)
        ]
        return [first, *rest]

    return make


def store_is_whole(server: Server) -> None:
    """`oxen-server fsck` on the server's store, beside the running servers: nothing lost."""
    args = [*SERVER, "fsck", "--storage", str(server.storage), "--data-dir", str(server.data_dir)]
    proc = subprocess.run(args, env=server.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith(": ok"), proc.stdout


@pytest.fixture
async def api(server: Server) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    headers = auth(server.token)
    async with aiohttp.ClientSession(headers=headers) as session:
        r = await session.post(
            f"http://{server.host}/api/repos", json={"namespace": "ns", "name": "r"}
        )
        assert r.status == 201
        yield session, f"http://{server.host}/api/repos/ns/r"


@asynccontextmanager
async def serving(app: web.Application, **runner_options: object) -> AsyncIterator[str]:
    """An application served in this process on a free loopback port: its base URL."""
    runner = web.AppRunner(app, **runner_options)  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
