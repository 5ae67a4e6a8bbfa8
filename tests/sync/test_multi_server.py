"""Three real `oxen-server` processes on one S3 bucket (moto), behind a round-robin proxy
that sends each request to the next server: what one serves, the others serve at once;
racing pushes through different servers all land; no server answers a stale branch."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import oxen
from tests.conftest import OXEN, write
from tests.sync.conftest import Server, auth, store_is_whole
from tests.sync.roundrobin import RoundRobinProxy
from tests.sync.test_sync_e2e import ok, tree_bytes

pytestmark = pytest.mark.s3

SERVERS = 3


@pytest.fixture
def servers(servers_on_a_bucket: Callable[[int], list[Server]]) -> list[Server]:
    return servers_on_a_bucket(SERVERS)


@pytest.fixture
def proxy(servers: list[Server], monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundRobinProxy]:
    with RoundRobinProxy([s.host for s in servers]) as p:
        hosts = ",".join([p.host, *(s.host for s in servers)])
        monkeypatch.setenv("OXEN_AUTH_HOST", hosts)  # the token goes to the proxy too
        yield p


def branches(host: str, repo: str, token: str) -> dict[str, str]:
    """The branches one server answers, read over HTTP."""
    request = urllib.request.Request(f"http://{host}/api/repos/{repo}/refs", headers=auth(token))
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read())["branches"]


def commit(root: Path, files: dict[str, bytes | str], message: str) -> str:
    for rel, data in files.items():
        write(root, rel, data)
    ok(root, "add", ".")
    ok(root, "commit", "-m", message)
    return oxen.Repo(root).branches()["main"]


def test_a_repository_made_through_one_server_is_served_by_the_others_at_once(
    tmp_path: Path, servers: list[Server], proxy: RoundRobinProxy
) -> None:
    a_srv, b_srv, c_srv = servers
    token = a_srv.token  # issued once, into the bucket: every server knows it
    a = tmp_path / "a"
    a.mkdir()
    ok(a, "init")
    ok(a, "create-remote", "--name", "ns/shared", "--host", a_srv.host, token=token)
    # B has never seen the repository: it opens it from the bucket on the first request
    ok(a, "config", "--set-remote", "origin", b_srv.url("ns/shared"))
    tip = commit(a, {"x/data.bin": os.urandom(300_000), "readme.txt": "one"}, "one")
    ok(a, "push", token=token)
    assert all(branches(s.host, "ns/shared", token) == {"main": tip} for s in servers)

    c = tmp_path / "c"
    ok(tmp_path, "clone", c_srv.url("ns/shared"), str(c), token=token)
    assert tree_bytes(c) == tree_bytes(a)
    tip = commit(c, {"x/more.bin": os.urandom(200_000)}, "two")
    ok(c, "push", token=token)  # through C, onto what B stored
    ok(a, "pull", token=token)  # through B
    assert tree_bytes(a) == tree_bytes(c)

    # and behind the proxy, a clone's every request going to the next server
    d = tmp_path / "d"
    ok(tmp_path, "clone", proxy.url("ns/shared"), str(d), token=token)
    assert tree_bytes(d) == tree_bytes(a)
    assert oxen.Repo(d).branches()["main"] == tip
    assert set(proxy.served) == {s.host for s in servers}
    store_is_whole(a_srv)


def test_racing_pushes_through_different_servers_lose_no_commit(
    tmp_path: Path, servers: list[Server], proxy: RoundRobinProxy
) -> None:
    token = servers[0].token
    base = tmp_path / "base"
    base.mkdir()
    ok(base, "init")
    ok(base, "create-remote", "--name", "ns/race", "--host", proxy.host, token=token)
    ok(base, "config", "--set-remote", "origin", proxy.url("ns/race"))
    commit(base, {"base.txt": "base"}, "base")
    ok(base, "push", token=token)

    # three clones, each through another server, each changing its own paths
    copies = []
    for i, srv in enumerate(servers):
        d = tmp_path / f"w{i}"
        ok(tmp_path, "clone", srv.url("ns/race"), str(d), token=token)
        commit(
            d, {f"from-{i}/data.bin": os.urandom(150_000 + i), f"from-{i}.txt": str(i)}, f"from {i}"
        )
        copies.append(d)
    env = {**os.environ, "OXEN_AUTH_TOKEN": token}
    # each pushes through its own server, or through the proxy (every request elsewhere)
    remotes = [servers[1].url("ns/race"), proxy.url("ns/race"), servers[2].url("ns/race")]
    for d, url in zip(copies, remotes, strict=True):
        ok(d, "config", "--set-remote", "origin", url)
    procs = [
        subprocess.Popen(
            [*OXEN, "push"],
            cwd=d,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for d in copies
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * SERVERS, results

    tips = {branches(s.host, "ns/race", token)["main"] for s in servers}
    assert len(tips) == 1  # every server answers the one branch the bucket holds
    for srv in servers:  # and each holds every commit and file
        out = tmp_path / f"check-{srv.port}"
        ok(tmp_path, "clone", srv.url("ns/race"), str(out), token=token)
        assert oxen.Repo(out).branches()["main"] in tips
        messages = {c.message for c in oxen.Repo(out).log()}
        assert {"base", "from 0", "from 1", "from 2"} <= messages
        for i, d in enumerate(copies):
            assert (out / f"from-{i}.txt").read_text() == str(i)
            assert (out / f"from-{i}" / "data.bin").read_bytes() == (
                d / f"from-{i}" / "data.bin"
            ).read_bytes()
        assert "ok" in ok(out, "fsck")
    store_is_whole(servers[0])


def test_no_server_answers_a_stale_branch(
    tmp_path: Path, servers: list[Server], proxy: RoundRobinProxy
) -> None:
    """After each push through one server, every server answers the new tip at once, and
    a clone through any of them (or the proxy) gets that commit and its files."""
    token = servers[0].token
    a = tmp_path / "a"
    a.mkdir()
    ok(a, "init")
    ok(a, "create-remote", "--name", "ns/fresh", "--host", servers[0].host, token=token)
    for round_ in range(SERVERS):
        pusher = servers[round_]
        ok(a, "config", "--set-remote", "origin", pusher.url("ns/fresh"))
        tip = commit(a, {f"r{round_}.bin": os.urandom(100_000 + round_)}, f"round {round_}")
        ok(a, "push", token=token)
        for srv in servers:
            assert branches(srv.host, "ns/fresh", token) == {"main": tip}, srv.host
        for url in [*(s.url("ns/fresh") for s in servers), proxy.url("ns/fresh")]:
            out = tmp_path / f"clone-{round_}-{uuid.uuid4().hex[:6]}"
            ok(tmp_path, "clone", url, str(out), token=token)
            assert oxen.Repo(out).branches()["main"] == tip, url
            assert tree_bytes(out) == tree_bytes(a), url
