"""Tabular files read on the server side (no HTTP): a page reads only the chunks it needs,
a read or diff past its time stops and says so, a diff leaves no temporary file, and a
filter is one expression that cannot reach past the file."""

from __future__ import annotations

import asyncio
import datetime
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oxen.errors import InvalidInput, NotFound
from oxen.repo import AsyncRepo
from oxen.serving import table_reads
from oxen.serving.registry import RepoRegistry
from oxen.serving.served_repo import ServedRepo
from oxen.serving.table_reads import (
    ServedFile,
    TooCostly,
    checked_filter,
    diff_versions,
    json_safe,
    read_page,
)
from oxen.sync.push import push
from tests.conftest import write
from tests.test_serving import InProcessRemote, registry  # noqa: F401 - a fixture

N = 200_000
GROUP = N // 10


def table(n: int = N) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "score": pa.array([i * 0.5 for i in range(n)]),
            "name": [f"row-{i:07d}-{'x' * 24}" for i in range(n)],
        }
    )


@pytest.fixture
async def served(repo: AsyncRepo, workdir: Path, registry: RepoRegistry):  # noqa: F811
    pq.write_table(table(), workdir / "big.parquet", row_group_size=GROUP)
    write(workdir, "t.csv", "id,label\n" + "".join(f"{i},l{i}\n" for i in range(5000)))
    await repo.add(["."])
    await repo.commit("one")
    write(workdir, "t.csv", "id,label\n" + "".join(f"{i},l{i}\n" for i in range(1, 5001)))
    await repo.add(["."])
    await repo.commit("two")
    await registry.create("ns", "r")
    async with registry.use("ns", "r") as served:
        await push(repo, InProcessRemote(served), "origin", "main")
        yield served


async def test_a_page_in_the_middle_of_a_parquet_reads_its_footer_and_one_row_group(
    served: ServedRepo, workdir: Path
) -> None:
    page = await read_page(served, "main", "big.parquet", 5 * GROUP + 10, 25, ["name", "id"])
    body = page.body
    assert [r["id"] for r in body["rows"]] == list(range(5 * GROUP + 10, 5 * GROUP + 35))
    assert list(body["rows"][0]) == ["name", "id"]
    assert body["total_rows"] == N and body["next_offset"] == 5 * GROUP + 35
    size = (workdir / "big.parquet").stat().st_size
    assert 0 < page.bytes_read < 0.2 * size, (page.bytes_read, size)
    last = await read_page(served, "main", "big.parquet", N - 3, 10)
    assert [r["id"] for r in last.body["rows"]] == [N - 3, N - 2, N - 1]
    assert last.body["next_offset"] is None


async def test_a_csv_page_is_read_up_to_its_last_row(served: ServedRepo, workdir: Path) -> None:
    page = await read_page(served, "main", "t.csv", 0, 10)
    assert page.body["rows"][0] == {"id": 1, "label": "l1"} and page.body["next_offset"] == 10
    end = await read_page(served, "main", "t.csv", 4995, 10)
    assert [r["id"] for r in end.body["rows"]] == [4996, 4997, 4998, 4999, 5000]
    assert end.body["next_offset"] is None and end.body["total_rows"] == 5000
    past = await read_page(served, "main", "t.csv", 10_000, 10)
    assert past.body["rows"] == [] and past.body["next_offset"] is None
    assert [c["name"] for c in past.body["columns"]] == ["id", "label"]


async def test_a_read_past_its_time_stops_and_says_so(
    served: ServedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ServedFile.read

    async def slow(self: ServedFile, offset: int, n: int) -> bytes:
        await asyncio.sleep(0.3)
        return await real(self, offset, n)

    monkeypatch.setattr(ServedFile, "read", slow)
    monkeypatch.setattr(table_reads, "READ_SECONDS", 0.5)
    with pytest.raises(TooCostly, match="ran for more than 0.5 s"):
        await read_page(served, "main", "t.csv", 4000, 10, where="id % 7 = 0")
    # the threads are free again: the next read succeeds
    monkeypatch.setattr(table_reads, "READ_SECONDS", 30.0)
    page = await read_page(served, "main", "t.csv", 0, 2, where="id % 7 = 0")
    assert [r["id"] for r in page.body["rows"]] == [7, 14]


async def test_a_query_past_its_time_is_interrupted() -> None:
    budget = table_reads.Budget(0.5, "this read")

    def forever() -> None:
        con = table_reads.sandboxed()
        try:
            budget.watch(con)
            con.execute("SELECT sum(hash(i)) FROM range(100000000000) t(i)").fetchall()
        finally:
            con.close()

    budget.start()
    started = time.monotonic()
    with pytest.raises(TooCostly, match="ran for more than 0.5 s"):
        await budget.run(forever)
    assert time.monotonic() - started < 5


async def test_a_diff_counts_rows_and_leaves_no_temporary_file(
    served: ServedRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    tip = (await served.refs())["main"]
    commit = await served.objects.read_node(tip)
    parent = commit.parents[0].hex()  # type: ignore[union-attr]
    same = await diff_versions(served, "t.csv", "main", tip.hex(), ["id"])
    assert (same["added"], same["removed"], same["modified"]) == (0, 0, 0)
    body = await diff_versions(served, "t.csv", parent, "main", ["id"], limit=1)
    assert (body["added"], body["removed"], body["modified"]) == (1, 1, 0)
    assert body["first"] == {
        "added": [{"id": 5000, "label.before": None, "label.after": "l5000"}],
        "removed": [{"id": 0, "label.before": "l0", "label.after": None}],
    }
    assert body["base"] == parent and body["head"] == tip.hex()
    assert [p for p in served.tmp_dir.iterdir() if p.is_file()] == []
    monkeypatch.setattr(table_reads, "MAX_DIFF_BYTES", 1000)
    with pytest.raises(InvalidInput, match="clone the repository"):
        await diff_versions(served, "t.csv", parent, "main", ["id"])
    with pytest.raises(NotFound, match="no file nope.csv"):
        await diff_versions(served, "nope.csv", parent, "main", ["id"])


def test_values_become_plain_json() -> None:
    assert json_safe(
        {
            "d": datetime.date(2024, 1, 2),
            "t": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "x": Decimal("1.50"),
            "b": b"\x00\xff",
            "f": [float("nan"), float("inf"), -float("inf"), 1.5],
            "m": [("k", 1)],
            "dt": datetime.timedelta(seconds=90),
        }
    ) == {
        "d": "2024-01-02",
        "t": "2024-01-02T03:04:05+00:00",
        "x": "1.50",
        "b": "AP8=",
        "f": ["NaN", "Infinity", "-Infinity", 1.5],
        "m": [["k", 1]],
        "dt": "0:01:30",
    }


@pytest.mark.parametrize(
    "where, message",
    [
        ("", "filter is empty"),
        ("id > 1; SELECT 1", "not one SQL expression"),
        ("1=1 UNION SELECT 1", "not one SQL expression"),
        ("id > 1 ORDER BY 1", "not one SQL expression"),
        ("id IN (SELECT 1)", "subquery"),
        ("EXISTS (SELECT * FROM read_csv('/etc/passwd'))", "subquery"),
        ("id = ANY([1])", "subquery"),
        ("current_setting('secret_directory') = ''", "may not call current_setting"),
        ("length(repeat(label, 1000000000)) > 1", "may not call repeat"),
        ("label || label = ''", "may not call ||"),
        ("row_number() OVER () > 1", "window function"),
        ("list_transform([id], x -> x) = [1]", "may not call list_transform"),
        ("$1 = 1", "parameter"),
        (" OR ".join(["id = 1"] * 101), "at most 100"),
        ("(" * 3000 + "1" + ")" * 3000, "not one SQL expression|too deeply"),
        ("id >", "not one SQL expression"),
    ],
)
def test_a_filter_is_one_expression_and_nothing_more(where: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        checked_filter(where)


def test_a_filter_cannot_read_files() -> None:
    """Were a file read to pass the checks, the connection still could not make it."""
    import duckdb

    con = table_reads.sandboxed()
    try:
        for query in ["SELECT * FROM read_text('/etc/hostname')", "SET threads = 4"]:
            with pytest.raises(duckdb.Error):
                con.execute(query)
    finally:
        con.close()
    assert checked_filter("label = 'a''b' AND id > 2 -- comment") == "(label = 'a''b' AND id > 2)"
    for fine in [
        "id IN (1, 2) AND NOT label IS NULL",
        "lower(label) LIKE 'l1%' OR label ILIKE 'X' OR regexp_matches(label, '^l[0-9]+$')",
        "id BETWEEN 3 AND 9 AND CAST(id AS VARCHAR) = '4' AND year(DATE '2024-01-02') = 2024",
        "CASE WHEN id % 2 = 0 THEN abs(id) ELSE 0 END > 1 AND coalesce(label, '') <> ''",
    ]:
        assert checked_filter(fine).startswith("(")


async def test_a_served_file_reads_any_span(served: ServedRepo, workdir: Path) -> None:
    import random

    from oxen.serving.file_reads import find_file

    data = (workdir / "big.parquet").read_bytes()
    stored = ServedFile(served, await find_file(served, "main", "big.parquet"))
    rng = random.Random(3)
    spans = [(0, 10), (len(data) - 8, 8), (len(data) - 3, 100), (len(data), 5)]
    spans += [(rng.randrange(len(data)), rng.randrange(1, 300_000)) for _ in range(30)]
    for offset, n in spans:
        assert await stored.read(offset, n) == data[offset : offset + n], (offset, n)
