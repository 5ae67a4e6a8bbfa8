"""Hostile or broken requests get a 4xx with a JSON error; nothing is stored; the server lives on."""

from __future__ import annotations

import asyncio

import aiohttp
import msgpack
import pytest

from oxen.errors import InvalidInput
from oxen.formats.ids import hash_bytes, split_ids
from oxen.formats.nodes import CommitNode, DirNode, FileEntry, VNode, encode_node, encode_with_id
from oxen.formats.packs import Kind
from oxen.objects.pack_writer import PackWriter
from oxen.sync.clone import clone
from tests.sync.conftest import Server, auth


async def expect_error(response: aiohttp.ClientResponse, status: int) -> dict:
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["status"] == status and body["error"]
    return body


def pack_bytes(tmp_path, blobs: list[tuple[bytes, Kind, bytes]]) -> bytes:
    writer = PackWriter(tmp_path)
    for oid, kind, data in blobs:
        writer.add(oid, kind, data)
    sealed = writer.finish()
    return sealed.path.read_bytes()


async def stored_packs(session: aiohttp.ClientSession, base: str, ids: list[bytes]) -> set[bytes]:
    r = await session.post(base + "/objects/missing", data=msgpack.packb(b"".join(ids)))
    blob = msgpack.unpackb(await r.read())
    missing = set(split_ids(blob))
    return set(ids) - missing


async def test_chunk_that_does_not_match_its_id(api, tmp_path) -> None:
    session, base = api
    fake_id = hash_bytes(b"what the id claims")
    body = pack_bytes(tmp_path, [(fake_id, Kind.CHUNK, b"other bytes")])
    err = await expect_error(await session.post(base + "/packs", data=body), 400)
    assert "does not match" in err["error"]
    assert await stored_packs(session, base, [fake_id]) == set()


async def test_node_with_an_escaping_path(api, tmp_path) -> None:
    session, base = api
    for name in ("..", "/etc/passwd", "a/../../b"):
        data = msgpack.packb([3, [[0, name, bytes(32), 1, None, 0o644]]], use_bin_type=True)
        oid = hash_bytes(data)
        err = await expect_error(
            await session.post(
                base + "/packs", data=pack_bytes(tmp_path, [(oid, Kind.NODE, data)])
            ),
            400,
        )
        assert "unsafe path" in err["error"]
        assert await stored_packs(session, base, [oid]) == set()


async def test_malformed_bodies(api) -> None:
    session, base = api
    await expect_error(await session.post(base + "/objects/missing", data=b"\xc1\xc1"), 400)
    await expect_error(
        await session.post(base + "/objects/missing", data=msgpack.packb(b"123")), 400
    )
    await expect_error(await session.post(base + "/objects/fetch", data=msgpack.packb([1, 2])), 400)
    # was a 200 with a pack of no objects, which the client's check refuses as no pack
    await expect_error(await session.post(base + "/objects/fetch", data=msgpack.packb(b"")), 400)
    await expect_error(await session.post(base + "/packs", data=b"not a pack at all"), 400)
    await expect_error(await session.put(base + "/refs/heads/main", data=b"{nope"), 400)
    await expect_error(await session.put(base + "/refs/heads/main", json={"new": "xyz"}), 400)
    await expect_error(await session.put(base + "/refs/heads/main", json={"new": "ab" * 32}), 400)
    await expect_error(
        await session.put(base + "/refs/heads/bad..name", json={"new": "ab" * 32}), 400
    )
    await expect_error(
        await session.post(base.rsplit("/", 2)[0], json={"namespace": "../x", "name": "y"}), 400
    )
    await expect_error(await session.get(base.rsplit("/", 1)[0] + "/missing-repo"), 404)
    deep = b"[" * 100_000  # was a RecursionError in the JSON parser: a 500
    err = await expect_error(await session.put(base + "/refs/heads/main", data=deep), 400)
    assert "nested too deeply" in err["error"]
    await expect_error(await session.post(base.rsplit("/", 2)[0], data=deep), 400)
    # still healthy, and still serving
    r = await session.post(base.rsplit("/", 2)[0], json={"namespace": "ns", "name": "after"})
    assert r.status == 201


async def test_oversized_body(api) -> None:
    session, base = api
    r = await session.post(base + "/packs", data=b"x", headers={"Content-Length": str(1 << 40)})
    assert r.status == 413
    health = await session.get(base.split("/api/")[0] + "/api/health")
    assert health.status == 200


async def test_incomplete_push_does_not_move_the_branch(api, tmp_path) -> None:
    session, base = api
    entry = FileEntry("f", hash_bytes(b"never uploaded"), 14)
    vnode = encode_node(VNode((entry,)))
    body = pack_bytes(tmp_path, [(hash_bytes(vnode), Kind.NODE, vnode)])
    assert (await session.post(base + "/packs", data=body)).status == 201
    await expect_error(
        await session.put(
            base + "/refs/heads/main", json={"old": None, "new": hash_bytes(vnode).hex()}
        ),
        400,
    )
    refs = await (await session.get(base + "/refs")).json()
    assert refs["branches"] == {}


async def test_tokens_and_namespaces(server: Server) -> None:
    host = f"http://{server.host}"
    reader = server.add_user("--namespace", "ns", "--read-only")
    other = server.add_user("--namespace", "elsewhere")
    async with aiohttp.ClientSession() as anon:
        await expect_error(await anon.get(host + "/api/repos/ns"), 401)
        await expect_error(
            await anon.post(host + "/api/repos", json={"namespace": "ns", "name": "r"}), 401
        )
    async with aiohttp.ClientSession(headers=auth("oxn_bad")) as bad:
        await expect_error(await bad.get(host + "/api/repos/ns"), 401)
    async with aiohttp.ClientSession(headers=auth(server.token)) as owner:
        assert (
            await owner.post(host + "/api/repos", json={"namespace": "ns", "name": "r"})
        ).status == 201
    async with aiohttp.ClientSession(headers=auth(reader)) as ro:
        assert (await ro.get(host + "/api/repos/ns/r/refs")).status == 200
        await expect_error(
            await ro.post(host + "/api/repos", json={"namespace": "ns", "name": "r2"}), 403
        )
        await expect_error(
            await ro.put(host + "/api/repos/ns/r/refs/heads/main", json={"new": "ab" * 32}), 403
        )
        await expect_error(await ro.delete(host + "/api/repos/ns/r"), 403)
    async with aiohttp.ClientSession(headers=auth(other)) as outsider:
        await expect_error(await outsider.get(host + "/api/repos/ns/r/refs"), 403)
        await expect_error(
            await outsider.post(host + "/api/repos/ns/r/objects/missing", data=msgpack.packb(b"")),
            403,
        )
    async with aiohttp.ClientSession(headers=auth(server.token)) as owner:
        listing = await (await owner.get(host + "/api/repos/ns")).json()
        assert [r["name"] for r in listing["repositories"]] == ["r"]


def test_clone_refuses_paths_that_escape(tmp_path, server: Server) -> None:
    """A server cannot be made to hold escaping names, so fake one that serves them."""
    evil_vnode = msgpack.packb(
        [3, [[0, "..", hash_bytes(b"x"), 1, None, 0o644]]], use_bin_type=True
    )
    vid = hash_bytes(evil_vnode)
    tree_id, tree = encode_with_id(DirNode((vid,), 1, 1, 1))
    commit_id, commit = encode_with_id(CommitNode(tree_id, (), "e", "e@x", 0, 0, "evil"))
    blobs = {
        vid: (Kind.NODE, evil_vnode),
        tree_id: (Kind.NODE, tree),
        commit_id: (Kind.NODE, commit),
    }

    class EvilRemote:
        bytes_sent = 0
        bytes_received = 0

        async def refs(self):
            return {"main": commit_id}

        async def fetch_pack(self, ids, dest):
            dest.write_bytes(pack_bytes(tmp_path, [(i, *blobs[i]) for i in ids]))

    with pytest.raises(InvalidInput, match="unsafe path"):
        asyncio.run(clone("http://evil/ns/r", tmp_path / "victim", EvilRemote()))  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()
    assert not any(p.name == "x" for p in tmp_path.rglob("x"))
    assert not (tmp_path / "victim").exists()  # a failed clone leaves nothing behind
