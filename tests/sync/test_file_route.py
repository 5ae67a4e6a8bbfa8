"""The file route of a real `oxen-server`: one file of a revision, whole or a byte range,
HEAD, plain HTTP clients, and bad input answered as JSON 4xx."""

from __future__ import annotations

import random
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import yarl

import oxen
from oxen.config import ChunkingConfig
from oxen.formats.ids import file_id, hash_bytes
from oxen.sync.protocol import PROTOCOL_HEADER
from oxen.worktree.chunking import Chunker
from tests.conftest import write
from tests.sync.conftest import Server, auth
from tests.sync.test_sync_e2e import new_repo, ok


def id_of(data: bytes) -> str:
    return file_id(c.id for c in Chunker(ChunkingConfig()).cut(data)).hex()


V1 = random.Random(21).randbytes(1_500_000)
V2 = V1[:700_000] + b"changed in the middle" + V1[700_000:]
FEATURE = b"only on feature/x\n"
TABLE = b"id,label\n1,cat\n"
BIG_ID = id_of(V2)


@pytest.fixture
def pushed(tmp_path: Path, server: Server) -> dict[str, str]:
    """team/files: main holds two commits (big.bin changed by the second), feature/x a
    third; returns the commit ids by message."""
    a = new_repo(tmp_path, server, "team/files")
    write(a, "big.bin", V1)
    write(a, "docs/readme.txt", "hello\n")
    write(a, "table.csv", TABLE)
    write(a, "empty.bin", b"")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    write(a, "big.bin", V2)
    ok(a, "add", ".")
    ok(a, "commit", "-m", "two")
    ok(a, "push", token=server.token)
    ok(a, "checkout", "-b", "feature/x")
    write(a, "big.bin", FEATURE)
    ok(a, "add", ".")
    ok(a, "commit", "-m", "three")
    ok(a, "push", "origin", "feature/x", token=server.token)
    return {c.message: c.id.hex() for c in oxen.Repo(a).log("main")}


def files_url(server: Server, path: str, route: str = "files") -> str:
    return f"http://{server.host}/api/repos/team/files/{route}/{quote(path)}"


async def test_ranges_read_the_right_bytes(server: Server, pushed: dict[str, str]) -> None:
    size = len(V2)
    async with aiohttp.ClientSession(headers=auth(server.token)) as s:
        layout = await (await s.get(files_url(server, "big.bin", "chunks"))).json()
        assert layout["size"] == size and sum(layout["lengths"]) == size
        assert layout["commit"] == pushed["two"] and layout["id"] == BIG_ID
        first, second = layout["lengths"][:2]
        assert len(layout["lengths"]) > 4
        url = files_url(server, "big.bin")
        across = (first - 10, first + second + 10)  # from chunk 0 through 1 into 2
        for header, (start, end) in [
            ("bytes=0-99", (0, 100)),
            (f"bytes={across[0]}-{across[1] - 1}", across),
            ("bytes=-1000", (size - 1000, size)),
            (f"bytes={size - 5}-", (size - 5, size)),
            (f"bytes={size - 5}-{size + 100}", (size - 5, size)),
        ]:
            r = await s.get(url, headers={"Range": header})
            assert r.status == 206, (header, await r.text())
            assert await r.read() == V2[start:end]
            assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
            assert r.headers["ETag"] == f'"{BIG_ID}"'
            assert r.headers["Accept-Ranges"] == "bytes"

        r = await s.get(url, headers={"Range": f"bytes={size}-"})
        assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{size}"
        assert (await r.json())["status"] == 416
        r = await s.get(url, headers={"Range": "bytes=0-1,5-6"})  # several: the whole file
        assert r.status == 200 and await r.read() == V2
        r = await s.get(url, headers={"Range": "bytes=0-1", "If-Range": '"' + "0" * 64 + '"'})
        assert r.status == 200 and await r.read() == V2  # another version: the whole file
        r = await s.get(url, headers={"Range": "bytes=0-1", "If-Range": r.headers["ETag"]})
        assert r.status == 206 and await r.read() == V2[:2]

        r = await s.head(url, headers={"Range": "bytes=10-19"})
        assert r.status == 206 and r.headers["Content-Length"] == "10"
        assert await r.read() == b""
        r = await s.get(files_url(server, "table.csv") + f"?rev={pushed['one']}")
        assert r.status == 200 and r.headers["Content-Type"] == "text/csv"
        assert r.headers["Oxen-Commit"] == pushed["one"]
        r = await s.get(files_url(server, "empty.bin"))
        assert r.status == 200 and await r.read() == b""


async def test_bad_requests_are_json_4xx(server: Server, pushed: dict[str, str]) -> None:
    base = f"http://{server.host}/api/repos/team/files/files/"
    async with aiohttp.ClientSession(headers=auth(server.token)) as s:
        for target, status, message in [
            ("docs", 400, "docs is a directory at main"),
            ("docs/", 400, "unsafe path"),
            ("a/%2e%2e/big.bin", 400, "unsafe path"),
            ("%2e%2e/%2e%2e/etc/passwd", 400, "unsafe path"),
            (".oxen/config.toml", 400, "unsafe path"),
            ("big.bin/more", 404, "no file big.bin/more"),
            ("big.bin?rev=nope", 404, "no branch or commit nope"),
            ("big.bin?rev=a..b", 400, "not a branch name or commit id"),
            (f"big.bin?rev={'ab' * 32}", 404, "no commit"),  # after one relisting of packs
            (f"big.bin?rev={hash_bytes(TABLE).hex()}", 404, "no commit"),  # a chunk's id
        ]:
            r = await s.get(yarl.URL(base + target, encoded=True))  # sent as written
            body = await r.json()
            assert (r.status, body["status"]) == (status, status), (target, body)
            assert message in body["error"], (target, body)
    async with aiohttp.ClientSession() as s:  # no token
        r = await s.get(base + "big.bin")
        assert r.status == 401 and "token" in (await r.json())["error"]


async def test_plain_http_clients_read_files_without_the_protocol_header(
    server: Server, pushed: dict[str, str]
) -> None:
    """curl and browsers send no Oxen-Protocol: the file route (plain bytes) takes them;
    a client naming another protocol version is still refused, and so is every other
    route without the header."""
    bearer = {"Authorization": f"Bearer {server.token}"}
    async with aiohttp.ClientSession(headers=bearer) as s:
        r = await s.get(files_url(server, "big.bin"), headers={"Range": "bytes=0-99"})
        assert r.status == 206 and await r.read() == V2[:100]
        r = await s.get(files_url(server, "big.bin"), headers={PROTOCOL_HEADER: "1"})
        assert r.status == 400 and "upgrade oxen" in (await r.json())["error"]
        r = await s.get(files_url(server, "big.bin", "chunks"))
        assert r.status == 400 and "upgrade oxen" in (await r.json())["error"]
