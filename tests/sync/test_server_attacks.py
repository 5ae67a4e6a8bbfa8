"""Holes found by attacking the server, each pinned by a test that fails without its fix."""

from __future__ import annotations

import http.client
import random
from pathlib import Path

import aiohttp
import msgpack
import pytest

from oxen.errors import CorruptObject, NotFound, PathError, RefConflict
from oxen.formats.ids import hash_bytes
from oxen.formats.limits import MAX_DEPTH
from oxen.formats.nodes import (
    ChunkIndex,
    ChunkList,
    CommitNode,
    DirEntry,
    DirNode,
    FileEntry,
    Schema,
    VNode,
    bucket_of,
    decode_node,
    encode_with_id,
)
from oxen.formats.packs import Kind
from oxen.repo import AsyncRepo
from oxen.sync import remotes
from oxen.sync.clone import clone
from oxen.sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from oxen.trees.walk import reachable
from tests.conftest import write
from tests.sync.conftest import Server, auth
from tests.sync.test_server_input import expect_error, pack_bytes, stored_packs


async def test_a_fetch_of_one_id_many_times_sends_it_once(api, tmp_path: Path) -> None:
    session, base = api
    blob = b"x" * 100_000
    oid = hash_bytes(blob)
    r = await session.post(base + "/packs", data=pack_bytes(tmp_path, [(oid, Kind.CHUNK, blob)]))
    assert r.status == 201
    r = await session.post(base + "/objects/fetch", data=msgpack.packb(oid * 40))
    assert r.status == 200
    assert len(await r.read()) < 2 * len(blob)  # one copy and an index, not 40 copies


@pytest.mark.parametrize("name", [".oxen", ".OXEN", ".Oxen"])
async def test_a_node_naming_oxen_at_any_depth_is_refused(api, tmp_path: Path, name: str) -> None:
    session, base = api
    data = msgpack.packb([3, [[0, name, bytes(32), 1, None, 0o644]]], use_bin_type=True)
    oid = hash_bytes(data)
    body = pack_bytes(tmp_path, [(oid, Kind.NODE, data)])
    err = await expect_error(await session.post(base + "/packs", data=body), 400)
    assert "unsafe path" in err["error"]
    assert await stored_packs(session, base, [oid]) == set()


async def test_add_never_takes_an_oxen_folder_below_the_top(repo: AsyncRepo, workdir: Path) -> None:
    write(workdir, "sub/.oxen/config.toml", "[remotes]\norigin = 'http://evil/x/y'\n")
    write(workdir, "sub/.OXEN/x", "y")
    write(workdir, "sub/data.txt", "ok")
    await repo.add(["."])
    assert set(await repo.db.staged()) == {"sub/data.txt"}
    assert (await repo.status()).untracked == []
    with pytest.raises(Exception, match=r"\.oxen"):
        await repo.add(["sub/.oxen/config.toml"])


def test_non_utf8_authorization_is_a_401(server: Server) -> None:
    conn = http.client.HTTPConnection(server.host, timeout=10)
    conn.putrequest("GET", "/api/repos/ns")
    conn.putheader("Authorization", b"Bearer \xff\xfe\xfd")
    conn.putheader(PROTOCOL_HEADER, str(PROTOCOL_VERSION))
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 401, response.read()


async def test_a_branch_cannot_be_a_folder_of_another(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``main/x`` beside ``main`` (or ``nest`` beside ``nest/x``) is refused with one line by
    the client, and with a 409 by the server (it was a 500: a file where a folder must be)."""
    monkeypatch.setenv("OXEN_AUTH_TOKEN", server.token)
    url = server.url("ns/nest")
    await remotes.create_remote(url)
    repo = await AsyncRepo.init(tmp_path / "w")
    try:
        write(repo.root, "a.txt", "a")
        await repo.add([str(repo.root / "a.txt")])
        tip = await repo.commit("one")
        await repo.set_remote("origin", url)
        await repo.push()
        with pytest.raises(RefConflict, match="'main' exists"):
            await repo.create_branch("main/x")
        await repo.create_branch("nest/x")
        await repo.push(branch="nest/x")
        with pytest.raises(RefConflict, match="'nest/x' exists"):
            await repo.create_branch("nest")
    finally:
        await repo.close()
    headers = auth(server.token)
    base = f"http://{server.host}/api/repos/ns/nest/refs/heads/"
    async with aiohttp.ClientSession(headers=headers) as session:
        for branch in ("main/x", "nest"):
            r = await session.put(base + branch, json={"old": None, "new": tip.hex()})
            err = await expect_error(r, 409)
            assert "cannot be a folder of another" in err["error"]


def _misfiled_tree() -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Encoded nodes of a directory of two VNodes where a name sits in the wrong one, and
    the commit of that tree."""
    names = [f"f{i}" for i in range(8)]
    home = {n: bucket_of(n, 2) for n in names}
    wrong = next(n for n in names if home[n] == 1)
    groups: list[list[FileEntry]] = [[], []]
    for n in names:
        groups[0 if n == wrong else home[n]].append(FileEntry(n, hash_bytes(n.encode()), 2))
    vnodes = [encode_with_id(VNode(tuple(sorted(g, key=lambda e: e.name)))) for g in groups]
    tree = encode_with_id(DirNode(tuple(v[0] for v in vnodes), 16, 8, 8))
    commit = encode_with_id(CommitNode(tree[0], (), "a", "a@b.c", 0, 0, "misfiled"))
    return [*vnodes, tree, commit], commit[0]


async def test_a_name_in_the_wrong_vnode_is_refused(api, tmp_path: Path) -> None:
    session, base = api
    nodes, commit = _misfiled_tree()
    chunks = [(hash_bytes(f"f{i}".encode()), Kind.CHUNK, f"f{i}".encode()) for i in range(8)]
    body = pack_bytes(tmp_path, [*chunks, *((oid, Kind.NODE, data) for oid, data in nodes)])
    assert (await session.post(base + "/packs", data=body)).status == 201
    r = await session.put(base + "/refs/heads/main", json={"old": None, "new": commit.hex()})
    err = await expect_error(r, 400)
    assert "wrong vnode" in err["error"]
    assert (await (await session.get(base + "/refs")).json())["branches"] == {}


async def test_the_client_refuses_a_misfiled_tree_too(repo: AsyncRepo) -> None:
    nodes, commit = _misfiled_tree()
    await repo.objects.write_nodes(nodes)
    tree = (await repo.read_commit(commit)).tree
    with pytest.raises(CorruptObject, match="wrong vnode"):
        await repo.trees.flatten(tree)


async def test_a_trailer_bomb_is_refused(api, tmp_path: Path) -> None:
    """A pack listing the empty blob 200,000 times (a few MB on the wire, ~300 MB of entries
    once decoded) is refused by the entry bound; one listing it twice by the duplicate check."""
    session, base = api
    empty = hash_bytes(b"")
    bomb = pack_bytes(tmp_path, [(empty, Kind.CHUNK, b"")] * 200_000)
    err = await expect_error(await session.post(base + "/packs", data=bomb), 400)
    assert "at most 100000 entries" in err["error"]
    twice = pack_bytes(tmp_path, [(empty, Kind.CHUNK, b"")] * 2)
    err = await expect_error(await session.post(base + "/packs", data=twice), 400)
    assert "listed twice" in err["error"]
    err = await expect_error(
        await session.post(base + "/packs", data=pack_bytes(tmp_path, [])), 400
    )
    assert "empty pack" in err["error"]
    assert await stored_packs(session, base, [empty]) == set()
    r = await session.get(base.split("/api/")[0] + "/api/health")
    assert r.status == 200


def _raw_request(server: Server, head: str) -> str:
    """Send a request's head and no body; the status line of the answer (or '' if none)."""
    import socket

    host, port = server.host.split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(head.encode())
        return s.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def test_a_body_that_never_comes_is_answered(make_server) -> None:
    server = make_server(env={"OXEN_SERVER_BODY_TIMEOUT": "1"})
    headers = {**auth(server.token), "Content-Type": "application/json"}
    conn = http.client.HTTPConnection(server.host, timeout=30)
    conn.request("POST", "/api/repos", body=b'{"namespace": "ns", "name": "r"}', headers=headers)
    assert conn.getresponse().status == 201
    auth_lines = "".join(f"{k}: {v}\r\n" for k, v in auth(server.token).items())
    auth_lines += f"Host: {server.host}\r\n"
    # announced far past the limit: refused at once
    head = f"POST /api/repos/ns/r/packs HTTP/1.1\r\n{auth_lines}Content-Length: 2147483648\r\n\r\n"
    assert " 413 " in _raw_request(server, head)
    # a small body announced and never sent: 408 once it stalls (1 s here), not held for ever
    head = (
        f"POST /api/repos/ns/r/objects/missing HTTP/1.1\r\n{auth_lines}Content-Length: 1000\r\n\r\n"
    )
    assert " 408 " in _raw_request(server, head)
    # a JSON body over the limit is a 413, not a 400
    big = b'{"namespace": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    conn = http.client.HTTPConnection(server.host, timeout=30)
    conn.request("POST", "/api/repos", body=big, headers=headers)
    assert conn.getresponse().status == 413


def _deep_tree(depth: int) -> tuple[list[tuple[bytes, bytes]], bytes, bytes]:
    """Nodes of a tree ``depth`` directories deep holding one file, its commit, the file's id."""
    data = b"deep"
    fid = hash_bytes(data)
    nodes: list[tuple[bytes, bytes]] = []
    vnode = encode_with_id(VNode((FileEntry("f", fid, len(data)),)))
    nodes.append(vnode)
    dir_node = encode_with_id(DirNode((vnode[0],), len(data), 1, 1))
    nodes.append(dir_node)
    for _ in range(depth):
        vnode = encode_with_id(VNode((DirEntry("d", dir_node[0], len(data), 1),)))
        dir_node = encode_with_id(DirNode((vnode[0],), len(data), 1, 1))
        nodes += [vnode, dir_node]
    commit = encode_with_id(CommitNode(dir_node[0], (), "a", "a@b.c", 0, 0, "deep"))
    return [*nodes, commit], commit[0], fid


async def test_a_tree_deeper_than_the_limit_is_refused(api, tmp_path: Path) -> None:
    session, base = api
    nodes, commit, fid = _deep_tree(1200)
    blobs = [(fid, Kind.CHUNK, b"deep"), *((oid, Kind.NODE, data) for oid, data in nodes)]
    assert (await session.post(base + "/packs", data=pack_bytes(tmp_path, blobs))).status == 201
    r = await session.put(base + "/refs/heads/main", json={"old": None, "new": commit.hex()})
    err = await expect_error(r, 400)
    assert f"deeper than {MAX_DEPTH}" in err["error"]


async def test_the_client_refuses_too_deep_trees_and_paths(repo: AsyncRepo, workdir: Path) -> None:
    nodes, commit, _ = _deep_tree(MAX_DEPTH + 5)
    await repo.objects.write_nodes(nodes)
    with pytest.raises(CorruptObject, match="deeper than"):
        await repo.trees.flatten((await repo.read_commit(commit)).tree)
    write(workdir, "/".join(["d"] * MAX_DEPTH) + "/f.txt", "too deep")
    with pytest.raises(PathError, match="deeper than"):
        await repo.add(["."])
    assert await repo.db.staged() == {}


async def test_a_branch_is_deleted_only_at_the_commit_the_client_names(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE names the commit the client expects: another one is a 409 and the branch
    stays; once deleted, the branch is gone for listing, clone and a second delete (404),
    and a push creates it again."""
    monkeypatch.setenv("OXEN_AUTH_TOKEN", server.token)
    url = server.url("ns/del")
    await remotes.create_remote(url)
    repo = await AsyncRepo.init(tmp_path / "w")
    try:
        write(repo.root, "a.txt", "a")
        await repo.add([str(repo.root / "a.txt")])
        first = await repo.commit("one")
        await repo.set_remote("origin", url)
        await repo.push()
        write(repo.root, "a.txt", "b")
        await repo.add([str(repo.root / "a.txt")])
        second = await repo.commit("two")
        await repo.push()
        headers = auth(server.token)
        base = f"http://{server.host}/api/repos/ns/del"
        async with aiohttp.ClientSession(headers=headers) as session:
            r = await session.delete(base + "/refs/heads/main", json={"old": first.hex()})
            err = await expect_error(r, 409)
            assert "moved" in err["error"]
            refs = await (await session.get(base + "/refs")).json()
            assert refs["branches"] == {"main": second.hex()}
            r = await session.delete(base + "/refs/heads/main", json={"old": second.hex()})
            assert r.status == 200, await r.text()
            assert (await (await session.get(base + "/refs")).json())["branches"] == {}
            assert (await (await session.get(base)).json())["branches"] == {}
            r = await session.delete(base + "/refs/heads/main", json={"old": second.hex()})
            await expect_error(r, 404)
        with pytest.raises(NotFound, match="no branches"):
            await AsyncRepo.clone(url, tmp_path / "copy")
        pushed = await repo.push()
        assert (pushed.old, pushed.new) == (None, second)
    finally:
        await repo.close()
    copy, _ = await AsyncRepo.clone(url, tmp_path / "copy")
    try:
        assert (copy.root / "a.txt").read_text() == "b"
    finally:
        await copy.close()


async def test_nodes_uploaded_without_their_chunks_do_not_poison_a_tree(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker builds a well-known folder (its node ids are the same on every machine)
    and uploads its nodes and no chunks, moving no branch.  The server must not answer
    "present" for them, or every honest push of that folder would skip its data and be
    refused as incomplete; the honest push succeeds and its clone has the right bytes."""
    monkeypatch.setenv("OXEN_AUTH_TOKEN", server.token)
    url = server.url("ns/poison")
    await remotes.create_remote(url)
    big = random.Random(1).randbytes(600_000)  # several chunks: a chunk list node too
    public = {"mnist/big.bin": big, "mnist/labels.csv": b"id,label\n1,7\n"}

    evil = await AsyncRepo.init(tmp_path / "evil")
    try:
        for rel, data in public.items():
            write(evil.root, rel, data)
        await evil.add([str(evil.root)])
        tree = (await evil.read_commit(await evil.commit("public data"))).tree
        reached = await reachable(evil.objects, [tree], history=False)
        assert reached.chunks and len(reached.nodes) >= 4
        blobs = await evil.objects.read_blobs(reached.nodes)
    finally:
        await evil.close()
    headers = auth(server.token)
    base = f"http://{server.host}/api/repos/ns/poison"
    async with aiohttp.ClientSession(headers=headers) as session:
        pack = pack_bytes(tmp_path, [(oid, Kind.NODE, data) for oid, data in blobs.items()])
        assert (await session.post(base + "/packs", data=pack)).status == 201
        # stored, yet the server does not vouch for what is below them (a csv's Schema
        # node has nothing below it: stored, it is whole)
        leaves = {o for o, d in blobs.items() if isinstance(decode_node(d), Schema)}
        assert leaves and await stored_packs(session, base, list(reached.nodes)) == leaves

    honest = await AsyncRepo.init(tmp_path / "honest")
    try:
        for rel, data in {**public, "notes.txt": b"mine"}.items():
            write(honest.root, rel, data)
        await honest.add([str(honest.root)])
        tip = await honest.commit("with the public data")
        await honest.set_remote("origin", url)
        pushed = await honest.push()
        assert pushed.new == tip and pushed.chunks >= len(reached.chunks)
    finally:
        await honest.close()
    copy, _ = await AsyncRepo.clone(url, tmp_path / "copy")
    try:
        assert (copy.root / "mnist" / "big.bin").read_bytes() == big
        assert (copy.root / "mnist" / "labels.csv").read_bytes() == public["mnist/labels.csv"]
        assert (copy.root / "notes.txt").read_bytes() == b"mine"
    finally:
        await copy.close()


def _repeating_tree(index: bool) -> tuple[list[tuple[bytes, bytes]], bytes, bytes, bytes]:
    """A one-file tree whose file claims 10 bytes and whose chunk list repeats one 5-byte
    chunk: 1,000 times in one list, or (``index``) a list of 1,000 named 2,000 times by a
    chunk index (2 million chunks from 50 KB of nodes).  (nodes, commit, chunk id, chunk)"""
    chunk = b"12345"
    cid = hash_bytes(chunk)
    leaf = encode_with_id(ChunkList((cid,) * 1000, (5,) * 1000))
    nodes, top = [leaf], leaf
    if index:
        top = encode_with_id(ChunkIndex((leaf[0],) * 2000, (5000,) * 2000, (1000,) * 2000))
        nodes.append(top)
    vnode = encode_with_id(VNode((FileEntry("f", hash_bytes(chunk * 2), 10, top[0]),)))
    tree = encode_with_id(DirNode((vnode[0],), 10, 1, 1))
    commit = encode_with_id(CommitNode(tree[0], (), "a", "a@b.c", 0, 0, "repeats"))
    return [*nodes, vnode, tree, commit], commit[0], cid, chunk


@pytest.mark.parametrize("index", [False, True], ids=["list", "index"])
async def test_a_chunk_list_longer_than_its_file_is_refused(
    api, tmp_path: Path, index: bool
) -> None:
    session, base = api
    nodes, commit, cid, chunk = _repeating_tree(index)
    blobs = [(cid, Kind.CHUNK, chunk), *((oid, Kind.NODE, data) for oid, data in nodes)]
    assert (await session.post(base + "/packs", data=pack_bytes(tmp_path, blobs))).status == 201
    r = await session.put(base + "/refs/heads/main", json={"old": None, "new": commit.hex()})
    err = await expect_error(r, 400)
    assert "covers" in err["error"]
    assert (await (await session.get(base + "/refs")).json())["branches"] == {}


@pytest.mark.parametrize("index", [False, True], ids=["list", "index"])
async def test_clone_refuses_a_chunk_list_longer_than_its_file(tmp_path: Path, index: bool) -> None:
    """Before fetching a byte of data or expanding the list further than the file claims."""
    nodes, commit, cid, chunk = _repeating_tree(index)
    blobs = {oid: (Kind.NODE, data) for oid, data in nodes}
    blobs[cid] = (Kind.CHUNK, chunk)
    asked: list[bytes] = []

    class EvilRemote:
        bytes_sent = 0
        bytes_received = 0

        async def refs(self) -> dict[str, bytes]:
            return {"main": commit}

        async def fetch_pack(self, ids: list[bytes], dest: Path) -> None:
            asked.extend(ids)
            dest.write_bytes(pack_bytes(tmp_path, [(i, *blobs[i]) for i in ids]))

    with pytest.raises(CorruptObject, match="covers"):
        await clone("http://evil/ns/r", tmp_path / "victim", EvilRemote())  # type: ignore[arg-type]
    assert cid not in asked
    assert not (tmp_path / "victim").exists()


def test_a_token_is_sent_to_its_own_host_and_port_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token saved for a bare host is for its default port; OXEN_AUTH_TOKEN goes only to
    the servers OXEN_AUTH_HOST names."""
    from oxen.config import save_auth_token
    from oxen.sync.http import token_for
    from oxen.sync.protocol import RemoteURL

    def url(host: str, scheme: str = "http") -> RemoteURL:
        return RemoteURL.parse(f"{scheme}://{host}/ns/r")

    monkeypatch.delenv("OXEN_AUTH_TOKEN", raising=False)
    save_auth_token("hub.example", "bare")
    save_auth_token("hub.example:3000", "port-3000")
    assert token_for(url("hub.example")) == "bare"
    assert token_for(url("hub.example:80")) == "bare"
    assert token_for(url("hub.example:3000")) == "port-3000"
    assert token_for(url("hub.example:4000")) is None  # another port: another server
    assert token_for(url("hub.example", "https")) == "bare"  # the default port of https
    assert token_for(url("hub.example:443", "http")) is None
    assert token_for(url("evil.example")) is None

    monkeypatch.setenv("OXEN_AUTH_TOKEN", "from-env")
    monkeypatch.setenv("OXEN_AUTH_HOST", "ci.example:3000, other.example")
    assert token_for(url("ci.example:3000")) == "from-env"
    assert token_for(url("other.example:80")) == "from-env"
    assert token_for(url("evil.example")) is None
    assert token_for(url("hub.example:3000")) == "port-3000"
    monkeypatch.delenv("OXEN_AUTH_HOST")
    assert token_for(url("ci.example:3000")) is None  # no host named: sent nowhere
