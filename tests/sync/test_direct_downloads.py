"""Direct downloads (`oxen-server start --direct-downloads`): a client reads the objects it
fetches straight from S3 (moto) by presigned URLs and verifies them as it verifies what the
server sends; when the store cannot be read, it fetches through the server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import msgpack
import pytest
from aiohttp import web

from oxen.formats.ids import hash_bytes
from oxen.formats.packs import Kind
from oxen.objects.pack_writer import PackWriter
from oxen.storage import open_store
from oxen.sync.direct_reads import RANGE_GAP, Placed, parse_locations, ranges
from oxen.sync.http import HttpRemote
from oxen.sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, RemoteURL
from tests.conftest import write
from tests.sync.conftest import Server, auth, free_port
from tests.sync.test_sync_e2e import new_repo, ok, run, tree_bytes


@pytest.fixture
def reading_server(make_s3_server: Callable[..., Server]) -> Server:
    return make_s3_server(["--direct-downloads"])


def _pushed(tmp_path: Path, server: Server) -> Path:
    a = new_repo(tmp_path, server, "ns/r")
    rng = random.Random(5)
    for i in range(4):
        write(a, f"d/f{i}.bin", rng.randbytes(3_000_000))  # several packs' worth of chunks
    for i in range(50):
        write(a, f"small/{i}.txt", f"row {i}\n" * (i + 1))
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    ok(a, "push", token=server.token)
    return a


def _log(server: Server) -> str:
    return (server.data_dir.parent / f"server-{server.port}.log").read_text()


@pytest.mark.s3
def test_a_clone_and_a_pull_read_straight_from_the_store(
    tmp_path: Path, reading_server: Server
) -> None:
    a = _pushed(tmp_path, reading_server)
    b = tmp_path / "b"
    ok(tmp_path, "clone", reading_server.url("ns/r"), str(b), token=reading_server.token)
    assert tree_bytes(b) == tree_bytes(a)
    write(a, "d/f1.bin", random.Random(6).randbytes(2_000_000))
    ok(a, "add", ".")
    ok(a, "commit", "-m", "two")
    ok(a, "push", token=reading_server.token)
    ok(b, "pull", token=reading_server.token)
    assert tree_bytes(b) == tree_bytes(a)
    log = _log(reading_server)
    assert "/objects/locate" in log and "/objects/fetch" not in log  # none went through it


@pytest.mark.s3
def test_bytes_changed_in_the_store_are_refused_by_the_client(
    tmp_path: Path, reading_server: Server
) -> None:
    _pushed(tmp_path, reading_server)

    async def tamper() -> None:
        store = open_store(
            f"{reading_server.storage}/repos/ns/r",
            endpoint_url=reading_server.env["AWS_ENDPOINT_URL"],
        )
        try:
            packs = [k async for k in store.list("packs/")]
            for key in packs:  # one byte of every pack's first blob, size kept
                data = bytearray(await store.get(key) or b"")
                data[10] ^= 0xFF
                await store.put(key, bytes(data))
        finally:
            await store.close()

    asyncio.run(tamper())
    b = tmp_path / "b"
    proc = run(tmp_path, "clone", reading_server.url("ns/r"), str(b), token=reading_server.token)
    assert proc.returncode != 0
    assert "corrupt" in proc.stderr.lower() or "does not match" in proc.stderr.lower()
    assert not (b / "d" / "f0.bin").exists()


@pytest.mark.s3
async def test_the_route_answers_readers_and_only_with_the_option(
    tmp_path: Path, reading_server: Server, server: Server
) -> None:
    await asyncio.to_thread(_pushed, tmp_path, reading_server)
    reader = await asyncio.to_thread(reading_server.add_user, "--role", "reader")
    base = f"http://{reading_server.host}/api/repos/ns/r"
    async with aiohttp.ClientSession(headers=auth(reader)) as api:
        refs = await (await api.get(f"{base}/refs")).json()
        assert refs["direct_downloads"] is True
        tip = bytes.fromhex(refs["branches"]["main"])
        body = msgpack.packb(tip, use_bin_type=True)
        r = await api.post(f"{base}/objects/locate", data=body)
        assert r.status == 200
        [(url, [placed])] = parse_locations(await r.read(), [tip])
        async with aiohttp.ClientSession() as s3:  # no token: the URL is the authority
            end = placed.offset + placed.length - 1
            got = await s3.get(url, headers={"Range": f"bytes={placed.offset}-{end}"})
            assert got.status == 206 and hash_bytes(await got.read()) == tip
        unknown = msgpack.packb(b"\x01" * 32, use_bin_type=True)
        assert (await api.post(f"{base}/objects/locate", data=unknown)).status == 400
        empty = msgpack.packb(b"", use_bin_type=True)
        assert (await api.post(f"{base}/objects/locate", data=empty)).status == 400
    plain = f"http://{server.host}/api/repos"
    async with aiohttp.ClientSession(headers=auth(server.token)) as api:
        assert (await api.post(plain, json={"namespace": "ns", "name": "r"})).status == 201
        refs = await (await api.get(f"{plain}/ns/r/refs")).json()
        assert "direct_downloads" not in refs
        r = await api.post(f"{plain}/ns/r/objects/locate", data=body)
        assert r.status == 404


def test_ranges_merge_near_objects_and_split_far_ones() -> None:
    kb = 1024

    def p(n: int, offset: int, length: int) -> Placed:
        return Placed(bytes([n]) * 32, Kind.CHUNK, offset, length)

    far = 10 * kb + RANGE_GAP + 1
    placed = [p(2, 4 * kb, kb), p(1, 0, kb), p(3, far, kb)]
    assert [(s, e, [x.id[0] for x in g]) for s, e, g in ranges(placed)] == [
        (0, 5 * kb, [1, 2]),
        (far, far + kb, [3]),
    ]


def test_a_malformed_or_partial_answer_is_refused() -> None:
    a, b = b"\x01" * 32, b"\x02" * 32
    good = msgpack.packb({"packs": [["http://s/p", [[a, 0, 0, 5]]]]}, use_bin_type=True)
    assert parse_locations(good, [a])[0][1] == [Placed(a, Kind.CHUNK, 0, 5)]
    for raw, asked in [
        (good, [a, b]),  # an object left out
        (msgpack.packb({"packs": [["file:///etc/passwd", [[a, 0, 0, 5]]]]}), [a]),
        (msgpack.packb({"packs": [["http://s/p", [[a, 0, -1, 5]]]]}), [a]),
        (msgpack.packb({"packs": [["http://s/p", [[a, 7, 0, 5]]]]}), [a]),  # no such kind
        (msgpack.packb({"packs": [["http://s/p", [[32, 0, 0, 5]]]]}), [a]),  # not an id
        (msgpack.packb({"packs": [["http://s/p", [[a, 0, "0", 5]]]]}), [a]),
        (b"\xc1", [a]),
    ]:
        with pytest.raises(Exception, match="malformed|do not match"):
            parse_locations(raw, asked)


@asynccontextmanager
async def _fake_server(store_url: str, pack: bytes) -> AsyncIterator[str]:
    """A server that offers direct downloads, names ``store_url`` (``{host}``: its own)
    for every object, 404s at ``/store/gone.pack``, and sends ``pack`` when asked
    through itself; it checks that it was."""
    fetched: list[int] = []
    port = free_port()
    host = f"127.0.0.1:{port}"

    async def refs(_: web.Request) -> web.Response:
        return web.json_response({"branches": {}, "direct_downloads": True})

    async def locate(request: web.Request) -> web.Response:
        ids = msgpack.unpackb(await request.read())
        entries = [[ids[i : i + 32], 0, 0, 1] for i in range(0, len(ids), 32)]
        url = store_url.format(host=host)
        return web.Response(body=msgpack.packb({"packs": [[url, entries]]}))

    async def fetch(_: web.Request) -> web.Response:
        fetched.append(1)
        return web.Response(body=pack)

    async def gone(_: web.Request) -> web.Response:
        return web.Response(status=404, text="NoSuchKey")

    @web.middleware
    async def stamp(request: web.Request, handler: Callable) -> web.StreamResponse:
        response = await handler(request)
        response.headers[PROTOCOL_HEADER] = str(PROTOCOL_VERSION)
        return response

    app = web.Application(middlewares=[stamp])
    app.router.add_get("/api/repos/ns/r/refs", refs)
    app.router.add_post("/api/repos/ns/r/objects/locate", locate)
    app.router.add_post("/api/repos/ns/r/objects/fetch", fetch)
    app.router.add_get("/store/gone.pack", gone)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield host
    finally:
        await runner.cleanup()
    assert fetched, "the client never fell back to the server"


@pytest.mark.parametrize(
    "store_url",
    ["http://{host}/store/gone.pack", f"http://127.0.0.1:{free_port()}/p"],
    ids=["swept", "unreachable"],
)
async def test_a_store_that_cannot_be_read_falls_back_to_the_server(
    tmp_path: Path, store_url: str
) -> None:
    blob = b"x"
    writer = PackWriter(tmp_path)
    writer.add_many([(hash_bytes(blob), Kind.CHUNK, blob)])
    pack = writer.finish().path.read_bytes()
    async with _fake_server(store_url, pack) as host:
        remote = HttpRemote(RemoteURL("http", host, "ns", "r"), token="t")
        try:
            await remote.refs()
            assert remote.direct_downloads
            dest = tmp_path / "got.pack"
            await remote.fetch_pack([hash_bytes(blob)], dest)
            assert dest.read_bytes() == pack
            # a store out of reach is not tried again; a pack swept is the pack's fault
            assert remote.direct_downloads == ("gone" in store_url)
        finally:
            await remote.close()
