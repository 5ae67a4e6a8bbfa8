"""The table routes of a real `oxen-server`: a tabular file's schema, pages of its rows and
the row diff of two versions at any revision, without a clone; bad input answered as
JSON 4xx; a reader's token is enough, no token is refused."""

from __future__ import annotations

import base64
import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yarl

import oxen
from tests.conftest import write
from tests.sync.conftest import Server, auth
from tests.sync.test_sync_e2e import new_repo, ok

ROWS = 2000
GROUP = 250  # rows per row group of big.parquet: eight groups
CSV_ONE = "id,label,score\n1,cat,0.5\n2,dog,1.5\n3,eel,2.5\n4,fox,3.5\n5,gnu,4.5\n6,hen,5.5\n"
# id 2 relabelled, id 3 removed, ids 7 and 8 added
CSV_TWO = (
    "id,label,score\n1,cat,0.5\n2,DOG,1.5\n4,fox,3.5\n5,gnu,4.5\n6,hen,5.5\n7,ant,6.5\n8,bee,7.5\n"
)


def big_table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(ROWS), pa.int64()),
            "score": pa.array([float("nan") if i == 7 else i / 4 for i in range(ROWS)]),
            "name": [f"name-{i:05d}" for i in range(ROWS)],
            "day": pa.array(
                [datetime.date(2024, 1, 1) + datetime.timedelta(days=i) for i in range(ROWS)],
                pa.date32(),
            ),
            "price": pa.array([Decimal(i) / 100 for i in range(ROWS)], pa.decimal128(9, 2)),
            "raw": pa.array([bytes([i % 256, 255]) for i in range(ROWS)], pa.binary()),
        }
    )


@pytest.fixture
def tables(tmp_path: Path, server: Server) -> dict[str, str]:
    """team/tables: "one" holds a parquet file of eight row groups, a csv, a text file, a
    parquet that is not one (versioned as binary) and a folder; "two" edits the csv.
    Returns the commit ids by message."""
    a = new_repo(tmp_path, server, "team/tables")
    (a / "data").mkdir()
    pq.write_table(big_table(), a / "data" / "big.parquet", row_group_size=GROUP)
    write(a, "t.csv", CSV_ONE)
    write(a, "notes.txt", "not a table\n")
    write(a, "fake.parquet", b"PAR1 not really")
    write(a, "docs/readme.txt", "hello\n")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    write(a, "t.csv", CSV_TWO)
    ok(a, "add", ".")
    ok(a, "commit", "-m", "two")
    ok(a, "push", token=server.token)
    return {c.message: c.id.hex() for c in oxen.Repo(a).log("main")}


def url(server: Server, route: str, path: str) -> str:
    return f"http://{server.host}/api/repos/team/tables/{route}/{quote(path)}"


async def get(
    s: aiohttp.ClientSession, server: Server, route: str, path: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    r = await s.get(url(server, route, path), params={k: str(v) for k, v in params.items()})
    body = await r.json()
    if r.status == 200:
        assert r.headers["Oxen-Commit"] == body.get("commit", body.get("head"))
    return r.status, body


async def test_the_schema_of_a_file_at_a_revision(server: Server, tables: dict[str, str]) -> None:
    async with aiohttp.ClientSession(headers=auth(server.token)) as s:
        status, body = await get(s, server, "schema", "data/big.parquet")
        assert status == 200, body
        assert body["path"] == "data/big.parquet" and body["commit"] == tables["two"]
        assert (body["format"], body["rows"]) == ("parquet", ROWS)
        assert body["columns"][:3] == [
            {"name": "id", "type": "int64"},
            {"name": "score", "type": "double"},
            {"name": "name", "type": "string"},
        ]
        assert [c["name"] for c in body["columns"]] == [
            "id",
            "score",
            "name",
            "day",
            "price",
            "raw",
        ]
        assert "error" not in body

        status, old = await get(s, server, "schema", "t.csv", rev=tables["one"])
        assert (status, old["rows"], old["commit"]) == (200, 6, tables["one"])
        assert [c["name"] for c in old["columns"]] == ["id", "label", "score"]
        assert (await get(s, server, "schema", "t.csv"))[1]["rows"] == 7

        status, fake = await get(s, server, "schema", "fake.parquet")
        assert status == 200 and fake["format"] == "parquet" and fake["error"]
        status, text = await get(s, server, "schema", "notes.txt")
        assert status == 404 and "notes.txt has no schema at main" in text["error"]


async def test_pages_of_rows_read_at_any_offset(server: Server, tables: dict[str, str]) -> None:
    async with aiohttp.ClientSession(headers=auth(server.token)) as s:
        status, first = await get(s, server, "rows", "data/big.parquet")
        assert status == 200, first
        assert [r["id"] for r in first["rows"]] == list(range(100))
        assert (first["offset"], first["limit"], first["next_offset"]) == (0, 100, 100)
        assert (first["total_rows"], first["format"], first["commit"]) == (
            ROWS,
            "parquet",
            tables["two"],
        )
        assert [c["name"] for c in first["columns"]] == [
            "id",
            "score",
            "name",
            "day",
            "price",
            "raw",
        ]
        row = first["rows"][7]  # values as plain JSON
        assert row == {
            "id": 7,
            "score": "NaN",
            "name": "name-00007",
            "day": "2024-01-08",
            "price": "0.07",
            "raw": base64.b64encode(bytes([7, 255])).decode(),
        }

        # across the third and fourth row groups, two columns in the order asked for
        status, middle = await get(
            s,
            server,
            "rows",
            "data/big.parquet",
            offset=3 * GROUP - 10,
            limit=30,
            columns="name,id",
        )
        assert status == 200, middle
        assert [r["id"] for r in middle["rows"]] == list(range(3 * GROUP - 10, 3 * GROUP + 20))
        assert list(middle["rows"][0]) == ["name", "id"]
        assert middle["columns"] == [
            {"name": "name", "type": "string"},
            {"name": "id", "type": "int64"},
        ]
        assert middle["next_offset"] == 3 * GROUP + 20 and middle["total_rows"] == ROWS

        status, last = await get(s, server, "rows", "data/big.parquet", offset=ROWS - 5, limit=10)
        assert [r["id"] for r in last["rows"]] == list(range(ROWS - 5, ROWS))
        assert last["next_offset"] is None
        status, past = await get(s, server, "rows", "data/big.parquet", offset=ROWS + 5)
        assert (status, past["rows"], past["next_offset"]) == (200, [], None)

        # a filter pages through the rows it keeps
        where = f"id % {GROUP} = 0"
        status, kept = await get(s, server, "rows", "data/big.parquet", filter=where, limit=3)
        assert status == 200, kept
        assert [r["id"] for r in kept["rows"]] == [0, GROUP, 2 * GROUP]
        assert kept["next_offset"] == 3 and kept["matched_rows"] is None
        assert kept["total_rows"] == ROWS and kept["filter"] == where
        status, rest = await get(
            s, server, "rows", "data/big.parquet", filter=where, offset=6, limit=3, columns="id"
        )
        assert [r["id"] for r in rest["rows"]] == [6 * GROUP, 7 * GROUP]
        assert rest["next_offset"] is None and rest["matched_rows"] == 8

        # a csv, at the branch and at an older commit
        status, csv = await get(s, server, "rows", "t.csv", limit=3)
        assert status == 200 and csv["format"] == "csv" and csv["total_rows"] == 7
        assert csv["rows"] == [
            {"id": 1, "label": "cat", "score": 0.5},
            {"id": 2, "label": "DOG", "score": 1.5},
            {"id": 4, "label": "fox", "score": 3.5},
        ]
        assert csv["next_offset"] == 3
        status, old = await get(s, server, "rows", "t.csv", rev=tables["one"], offset=4)
        assert [r["label"] for r in old["rows"]] == ["gnu", "hen"] and old["next_offset"] is None
        assert old["commit"] == tables["one"] and old["total_rows"] == 6
        status, picked = await get(s, server, "rows", "t.csv", filter="label LIKE '%e%'")
        assert [r["label"] for r in picked["rows"]] == ["hen", "bee"] and picked[
            "matched_rows"
        ] == 2


async def test_a_row_diff_between_two_revisions(server: Server, tables: dict[str, str]) -> None:
    async with aiohttp.ClientSession(headers=auth(server.token)) as s:
        status, diff = await get(
            s, server, "diff", "t.csv", base=tables["one"], head="main", keys="id"
        )
        assert status == 200, diff
        assert (diff["base"], diff["head"], diff["format"]) == (tables["one"], tables["two"], "csv")
        assert (diff["added"], diff["removed"], diff["modified"]) == (2, 1, 1)
        assert diff["changed_columns"] == {"label": 1} and diff["keys"] == ["id"]
        assert [r["id"] for r in diff["first"]["added"]] == [7, 8]  # in the keys' order
        assert diff["first"]["modified"] == [
            {
                "id": 2,
                "label.before": "dog",
                "label.after": "DOG",
                "score.before": 1.5,
                "score.after": 1.5,
            }
        ]
        status, page = await get(
            s, server, "diff", "t.csv", base=tables["one"], keys="id", offset=1, limit=1
        )
        assert [r["id"] for r in page["first"]["added"]] == [8]
        assert "removed" not in page["first"] and (page["offset"], page["limit"]) == (1, 1)
        status, scores = await get(
            s, server, "diff", "t.csv", base=tables["one"], keys="id", compare="score"
        )
        assert (scores["added"], scores["removed"], scores["modified"]) == (2, 1, 0)
        status, whole = await get(s, server, "diff", "t.csv", base=tables["one"])
        assert (whole["added"], whole["removed"], whole["modified"]) == (3, 2, 0)
        status, same = await get(
            s, server, "diff", "data/big.parquet", base=tables["one"], keys="id"
        )
        assert (status, same["added"], same["removed"], same["modified"]) == (200, 0, 0, 0)


BAD = [
    # (route, path, params, status, message)
    ("rows", "t.csv", {"offset": "-1"}, 400, "offset must be a whole number"),
    ("rows", "t.csv", {"offset": "ten"}, 400, "offset must be a whole number"),
    ("rows", "t.csv", {"limit": "0"}, 400, "limit must be 1 to 1000"),
    ("rows", "t.csv", {"limit": "1001"}, 400, "limit must be 1 to 1000"),
    ("rows", "t.csv", {"limit": "1e3"}, 400, "limit must be a whole number"),
    ("rows", "t.csv", {"limit": "\u0663"}, 400, "limit must be a whole number"),
    ("rows", "t.csv", {"columns": "nope"}, 400, "no column 'nope'"),
    ("rows", "data/big.parquet", {"columns": "id,,name"}, 400, "names an empty column"),
    ("rows", "data/big.parquet", {"columns": "id,id"}, 400, "names column 'id' twice"),
    ("rows", "t.csv", {"filter": ""}, 400, "filter is empty"),
    ("rows", "t.csv", {"filter": "id >"}, 400, "not one SQL expression"),
    ("rows", "t.csv", {"filter": "1=1; DROP TABLE df"}, 400, "not one SQL expression"),
    ("rows", "t.csv", {"filter": "1=1 UNION SELECT 1"}, 400, "not one SQL expression"),
    ("rows", "t.csv", {"filter": "id IN (SELECT 1)"}, 400, "subquery"),
    ("rows", "t.csv", {"filter": "repeat(label, 9) = ''"}, 400, "may not call repeat"),
    ("rows", "t.csv", {"filter": "nope = 1"}, 400, "query failed"),
    ("rows", "t.csv", {"filter": "label + 1 = 2"}, 400, "query failed"),
    ("rows", "fake.parquet", {}, 400, "fake.parquet is stored as a binary file at main"),
    ("rows", "notes.txt", {}, 400, "notes.txt is not a tabular file"),
    ("rows", "docs", {}, 400, "docs is a directory"),
    ("rows", "nope.csv", {}, 404, "no file nope.csv at main"),
    ("rows", "t.csv", {"rev": "nope"}, 404, "no branch or commit nope"),
    ("rows", "t.csv", {"rev": "a..b"}, 400, "not a branch name or commit id"),
    ("rows", "t.csv", {"rev": "ab" * 32}, 404, "no commit"),
    ("schema", "nope.csv", {}, 404, "no file nope.csv at main"),
    ("schema", "t.csv", {"rev": "nope"}, 404, "no branch or commit nope"),
    ("schema", "docs", {}, 400, "docs is a directory"),
    ("diff", "t.csv", {"keys": "id"}, 400, "base is required"),
    ("diff", "t.csv", {"base": "nope", "keys": "id"}, 404, "no branch or commit nope"),
    ("diff", "t.csv", {"base": "main", "keys": "nope"}, 400, "key column 'nope'"),
    ("diff", "t.csv", {"base": "main", "keys": ""}, 400, "keys names an empty column"),
    ("diff", "t.csv", {"base": "main", "keys": "id", "compare": "nope"}, 400, "column 'nope'"),
    ("diff", "t.csv", {"base": "main", "limit": "5000"}, 400, "limit must be 1 to 1000"),
    ("diff", "fake.parquet", {"base": "main"}, 400, "stored as a binary file"),
    ("diff", "notes.txt", {"base": "main"}, 400, "not a tabular file"),
    ("diff", "nope.csv", {"base": "main"}, 404, "no file nope.csv at main"),
]


async def test_bad_requests_are_json_4xx(server: Server, tables: dict[str, str]) -> None:
    async with aiohttp.ClientSession(headers=auth(server.token)) as s:
        for route, path, params, status, message in BAD:
            r = await s.get(url(server, route, path), params=params)
            body = await r.json()
            assert (r.status, body["status"]) == (status, status), (route, path, params, body)
            assert message in body["error"], (route, path, params, body)
        base = f"http://{server.host}/api/repos/team/tables"
        for target in ["rows/a/%2e%2e/t.csv", "schema/.oxen/config.toml", "diff/docs/?base=main"]:
            r = await s.get(yarl.URL(f"{base}/{target}", encoded=True))
            body = await r.json()
            assert r.status == 400 and "unsafe path" in body["error"], (target, body)
        r = await s.get(f"{base}/rows/t.csv", headers={"Oxen-Protocol": "1"})
        assert r.status == 400 and "upgrade oxen" in (await r.json())["error"]


async def test_a_reader_may_read_tables_and_no_token_may_not(
    server: Server, tables: dict[str, str]
) -> None:
    reader = server.add_user("--role", "reader", "--namespace", "team")
    elsewhere = server.add_user("--role", "reader", "--namespace", "other")
    targets = [
        ("schema", "t.csv", {}),
        ("rows", "t.csv", {"limit": "2"}),
        ("diff", "t.csv", {"base": tables["one"], "keys": "id"}),
    ]
    async with aiohttp.ClientSession(headers=auth(reader)) as s:
        for route, path, params in targets:
            r = await s.get(url(server, route, path), params=params)
            assert r.status == 200, (route, await r.text())
    async with aiohttp.ClientSession(headers=auth(elsewhere)) as s:
        for route, path, params in targets:
            r = await s.get(url(server, route, path), params=params)
            assert r.status == 403 and "namespace team" in (await r.json())["error"]
    async with aiohttp.ClientSession() as s:
        for route, path, params in targets:
            r = await s.get(url(server, route, path), params=params)
            assert r.status == 401 and "token" in (await r.json())["error"]
