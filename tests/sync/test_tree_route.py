"""The tree route of a real `oxen-server` (a folder of any revision, a page at a time, no
clone) and `oxen ls` over it; bad input answered as JSON 4xx and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yarl

import oxen
from tests.conftest import write
from tests.sync.conftest import Server, auth
from tests.sync.test_sync_e2e import new_repo, ok, run

MANY = 150  # files in many/, spread over 16 VNodes (vnode_size 16)


@pytest.fixture
def pushed(tmp_path: Path, server: Server) -> dict[str, str]:
    """team/trees: "one" holds many/ (150 files and a folder), a parquet file and a text
    file; "two" adds extra.txt; feature/x removes many/. Returns commit ids by message."""
    a = new_repo(tmp_path, server, "team/trees")
    config = a / ".oxen" / "config.toml"
    text = config.read_text()
    assert "vnode_size = 10000" in text
    config.write_text(text.replace("vnode_size = 10000", "vnode_size = 16"))
    for i in range(MANY):
        write(a, f"many/f{i:03d}.bin", bytes([i]) * (i + 1))
    write(a, "many/sub/deep.txt", "deep")
    pq.write_table(pa.table({"id": list(range(5))}), a / "t.parquet")
    write(a, "top.txt", "top\n")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    write(a, "extra.txt", "extra\n")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "two")
    ok(a, "push", token=server.token)
    ok(a, "checkout", "-b", "feature/x")
    ok(a, "rm", "-r", "many")
    ok(a, "commit", "-m", "three")
    ok(a, "push", "origin", "feature/x", token=server.token)
    commits = {c.message: c.id.hex() for c in oxen.Repo(a).log("feature/x")}
    return commits


def tree_url(server: Server, path: str = "") -> str:
    base = f"http://{server.host}/api/repos/team/trees/tree"
    return base + (f"/{path}" if path else "")


async def get(s: aiohttp.ClientSession, url: str, **params: Any) -> tuple[int, dict[str, Any]]:
    r = await s.get(url, params={k: str(v) for k, v in params.items()})
    body = await r.json()
    if r.status == 200:
        assert r.headers["Oxen-Commit"] == body["commit"]
    return r.status, body


async def test_folders_listed_by_pages(server: Server, pushed: dict[str, str]) -> None:
    reader = server.add_user("--role", "reader")
    async with aiohttp.ClientSession(headers=auth(reader)) as s:
        status, top = await get(s, tree_url(server))
        assert status == 200, top
        assert (top["path"], top["commit"], top["total"]) == ("", pushed["two"], 4)
        assert (top["offset"], top["next_offset"]) == (0, None)
        assert [e["name"] for e in top["entries"]] == ["extra.txt", "many", "t.parquet", "top.txt"]
        many, table, text = top["entries"][1], top["entries"][2], top["entries"][3]
        assert many == {
            "name": "many",
            "type": "dir",
            "size": sum(range(1, MANY + 1)) + 4,
            "id": many["id"],
            "count": MANY + 1,
        }
        assert (table["type"], table["format"], table["rows"]) == ("file", "parquet", 5)
        assert text == {"name": "top.txt", "type": "file", "size": 4, "id": text["id"]}

        names: list[str] = []
        offset: int | None = 0
        while offset is not None:
            status, page = await get(s, tree_url(server, "many"), offset=offset, limit=40)
            assert status == 200 and page["total"] == MANY + 1 and len(page["entries"]) <= 40
            names += [e["name"] for e in page["entries"]]
            offset = page["next_offset"]
        assert names == sorted([f"f{i:03d}.bin" for i in range(MANY)] + ["sub"])
        status, default = await get(s, tree_url(server, "many"))
        assert len(default["entries"]) == 100 and default["next_offset"] == 100
        status, past = await get(s, tree_url(server, "many"), offset=10_000)
        assert (status, past["entries"], past["next_offset"]) == (200, [], None)
        status, deep = await get(s, tree_url(server, "many/sub"))
        assert [e["name"] for e in deep["entries"]] == ["deep.txt"]

        status, old = await get(s, tree_url(server), rev=pushed["one"])
        assert old["commit"] == pushed["one"] and len(old["entries"]) == 3
        status, feature = await get(s, tree_url(server), rev="feature/x")
        assert [e["name"] for e in feature["entries"]] == ["extra.txt", "t.parquet", "top.txt"]


async def test_bad_requests_are_json_4xx(server: Server, pushed: dict[str, str]) -> None:
    base = f"http://{server.host}/api/repos/team/trees/tree"
    async with aiohttp.ClientSession(headers=auth(server.token)) as s:
        for target, status, message in [
            ("/top.txt", 400, "top.txt is a file at main"),
            ("/nope", 404, "no folder nope at main"),
            ("/many/nope/deeper", 404, "no folder many/nope/deeper"),
            ("/many?rev=feature/x", 404, "no folder many at feature/x"),
            ("?rev=nope", 404, "no branch or commit nope"),
            ("?rev=a..b", 400, "not a branch name or commit id"),
            (f"?rev={'ab' * 32}", 404, "no commit"),
            ("/many/", 400, "unsafe path"),
            ("/a/%2e%2e/many", 400, "unsafe path"),
            ("/.oxen", 400, "unsafe path"),
            ("?limit=0", 400, "limit must be 1 to 1000"),
            ("?limit=1001", 400, "limit must be 1 to 1000"),
            ("?offset=-1", 400, "offset must be a whole number"),
            ("?limit=ten", 400, "limit must be a whole number"),
        ]:
            r = await s.get(yarl.URL(base + target, encoded=True))
            body = await r.json()
            assert (r.status, body["status"]) == (status, status), (target, body)
            assert message in body["error"], (target, body)
    async with aiohttp.ClientSession() as s:  # no token
        r = await s.get(base)
        assert r.status == 401


def test_oxen_ls(tmp_path: Path, server: Server, pushed: dict[str, str]) -> None:
    url = server.url("team/trees")
    t = server.token
    assert ok(tmp_path, "ls", url, token=t).split() == [
        "extra.txt",
        "many/",
        "t.parquet",
        "top.txt",
    ]
    listed = ok(tmp_path, "ls", url, "many", token=t).split()
    assert len(listed) == MANY + 1 and listed[0] == "f000.bin" and listed[-1] == "sub/"
    long = ok(tmp_path, "ls", url, "-l", "--rev", pushed["one"], token=t).splitlines()
    assert len(long) == 3
    assert long[0].startswith("dir ") and "151 files" in long[0] and long[0].endswith("many/")
    assert "parquet, 5 rows" in long[1] and long[1].endswith("t.parquet")
    found = json.loads(ok(tmp_path, "ls", url, "/many/", "--json", "--limit", "7", token=t))
    assert found["path"] == "many" and found["commit"] == pushed["two"]
    assert found["total"] == MANY + 1 and len(found["entries"]) == 7
    cut = run(tmp_path, "ls", url, "many", "--limit", "3", token=t)
    assert cut.returncode == 0 and len(cut.stdout.split()) == 3 and "148 more" in cut.stderr

    for args, message in [
        (["nope"], "no folder nope at main"),
        (["top.txt"], "top.txt is a file at main"),
        (["many", "--rev", "nope"], "no branch or commit nope"),
        (["a/../b"], "unsafe path"),
        (["many", "--limit", "0"], "--limit must be 1 or more"),
    ]:
        proc = run(tmp_path, "ls", url, *args, token=t)
        assert proc.returncode != 0 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and message in proc.stderr, (args, proc.stderr)
    proc = run(tmp_path, "ls", "oxen://nowhere", token=t)
    assert proc.returncode != 0 and "not a remote repository URL" in proc.stderr
    assert proc.stderr.count("\n") == 1
