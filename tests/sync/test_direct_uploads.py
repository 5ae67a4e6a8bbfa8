"""Direct uploads (`oxen-server start --direct-uploads`): packs PUT straight to S3 (moto)
by presigned URLs, verified by the server before a branch may use them."""

from __future__ import annotations

import asyncio
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from oxen.serving.direct_uploads import STAGING, staging_key, sweep_staging
from oxen.storage import open_store
from tests.conftest import write
from tests.sync.conftest import SERVER, Server, auth, free_port
from tests.sync.test_sync_e2e import new_repo, ok, tree_bytes


@pytest.fixture
def direct_server(make_s3_server: Callable[..., Server]) -> Server:
    return make_s3_server(["--direct-uploads"])


async def _staged_keys(server: Server) -> list[str]:
    store = open_store(f"{server.storage}/repos/ns/r", endpoint_url=server.env["AWS_ENDPOINT_URL"])
    try:
        return [k async for k in store.list("")]
    finally:
        await store.close()


@pytest.mark.s3
def test_a_push_goes_straight_to_the_store_and_clones_back_equal(
    tmp_path: Path, direct_server: Server
) -> None:
    a = new_repo(tmp_path, direct_server, "ns/r")
    rng = random.Random(3)
    for i in range(5):
        write(a, f"d/f{i}.bin", rng.randbytes(3_000_000))  # several packs' worth of chunks
    write(a, "readme.txt", "hello\n")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    ok(a, "push", token=direct_server.token)
    b = tmp_path / "b"
    ok(tmp_path, "clone", direct_server.url("ns/r"), str(b), token=direct_server.token)
    assert tree_bytes(b) == tree_bytes(a)
    keys = asyncio.run(_staged_keys(direct_server))
    assert [k for k in keys if k.startswith(("incoming/", "received/"))] == []
    assert any(k.startswith("packs/") for k in keys)
    log = (direct_server.data_dir.parent / f"server-{direct_server.port}.log").read_text()
    assert "/uploads/complete" in log and "/ns/r/packs" not in log  # none went through it


@pytest.mark.s3
async def test_a_corrupt_pack_put_directly_is_refused_and_no_ref_moves(
    direct_server: Server,
) -> None:
    base = f"http://{direct_server.host}/api/repos"
    async with aiohttp.ClientSession(headers=auth(direct_server.token)) as api:
        r = await api.post(base, json={"namespace": "ns", "name": "r"})
        assert r.status == 201
        refs = await (await api.get(f"{base}/ns/r/refs")).json()
        assert refs == {"branches": {}, "direct_uploads": True}
        r = await api.post(f"{base}/ns/r/uploads", json={"count": 2})
        assert r.status == 200
        uploads = (await r.json())["uploads"]
        assert len(uploads) == 2 and all(u["key"].startswith(STAGING) for u in uploads)
        key, url = uploads[0]["key"], uploads[0]["url"]
        async with aiohttp.ClientSession() as s3:  # no token: the URL is the authority
            put = await s3.put(url, data=random.Random(1).randbytes(100_000))
            assert put.status == 200
        r = await api.post(f"{base}/ns/r/uploads/complete", json={"key": key})
        assert r.status == 400, await r.text()
        # the branch cannot be made to point at anything the garbage claimed to hold
        r = await api.put(f"{base}/ns/r/refs/heads/main", json={"old": None, "new": "ab" * 32})
        assert r.status == 400
        refs = await (await api.get(f"{base}/ns/r/refs")).json()
        assert refs["branches"] == {}
        # named again: gone (deleted once checked), never taken
        r = await api.post(f"{base}/ns/r/uploads/complete", json={"key": key})
        assert r.status == 404
        # only keys of the shape handed out may be named
        for bad in ["packs/aa.pack", "incoming/../refs/heads/main", None, 7]:
            r = await api.post(f"{base}/ns/r/uploads/complete", json={"key": bad})
            assert r.status == 400
    keys = await _staged_keys(direct_server)
    assert not any(k.startswith(("received/", "packs/")) for k in keys)


@pytest.mark.s3
async def test_a_reader_gets_no_upload_urls(direct_server: Server) -> None:
    reader = direct_server.add_user("--role", "reader")
    base = f"http://{direct_server.host}/api/repos"
    async with aiohttp.ClientSession(headers=auth(direct_server.token)) as api:
        assert (await api.post(base, json={"namespace": "ns", "name": "r"})).status == 201
    async with aiohttp.ClientSession(headers=auth(reader)) as api:
        assert (await api.post(f"{base}/ns/r/uploads", json={"count": 1})).status == 403


async def test_a_server_without_the_option_offers_nothing(server: Server) -> None:
    base = f"http://{server.host}/api/repos"
    async with aiohttp.ClientSession(headers=auth(server.token)) as api:
        assert (await api.post(base, json={"namespace": "ns", "name": "r"})).status == 201
        refs = await (await api.get(f"{base}/ns/r/refs")).json()
        assert "direct_uploads" not in refs
        assert (await api.post(f"{base}/ns/r/uploads", json={"count": 1})).status == 404


def test_a_local_store_refuses_the_option(tmp_path: Path) -> None:
    args = [*SERVER, "start", "--port", str(free_port()), "--data-dir", str(tmp_path / "d")]
    proc = subprocess.run([*args, "--direct-uploads"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "--direct-uploads needs an s3:// store" in proc.stderr


async def test_gc_sweeps_only_stale_staged_objects(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    old, new = staging_key(now=1_000), staging_key(now=10_000)
    for key in (old, new, "received/" + old[len(STAGING) :], "packs/keep.pack"):
        await store.put(key, b"x")
    assert await sweep_staging(store, older_than=3_600, now=10_000) == 2
    assert sorted([k async for k in store.list("")]) == sorted([new, "packs/keep.pack"])
