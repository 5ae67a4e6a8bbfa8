"""Row-level diff of two versions of a tabular file, by key columns, in bounded memory.

Each version is a file on disk (the working tree's, or a stored version written to a
temporary file from its chunks), so DuckDB reads both in parallel and joins them out of
core: its memory is capped (``MEMORY_LIMIT``) and what does not fit spills to a temporary
folder, so two 1 GiB files diff without both tables in RAM.  With keys, rows are matched
by them: added, removed, or modified (a compared column differs; ``compare`` defaults to
every other column both versions have).  Without keys, rows are compared whole, as Oxen
does: what one version has more of than the other is added or removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oxen.core.repository import Repository
from oxen.errors import InvalidInput, PathError
from oxen.formats.nodes import FileEntry
from oxen.objects.temp_files import temp_path
from oxen.trees.tree import file_row
from oxen.verbs.stored_file import StoredFile
from oxen.worktree.tabular import format_of

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

MEMORY_LIMIT = "512MB"
SHOWN = 10  # rows of each kind kept for display
COPY_WINDOW = 16 * 1024 * 1024
STATUS = "_oxen_status"


@dataclass
class TableDiff:
    keys: list[str]
    compared: list[str]
    added: int = 0
    removed: int = 0
    modified: int = 0
    changed_columns: dict[str, int] = field(default_factory=dict)  # column -> rows changed
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    first: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # kind -> rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "compared": self.compared,
            "added": self.added,
            "removed": self.removed,
            "modified": self.modified,
            "changed_columns": self.changed_columns,
            "columns_added": self.columns_added,
            "columns_removed": self.columns_removed,
            "first": self.first,
        }


async def diff_table(
    repo: Repository,
    path: str,
    a: str | None,
    b: str | None,
    keys: list[str],
    compare: list[str] | None = None,
    output: Path | None = None,
) -> TableDiff:
    """``path`` at revision ``a`` (default HEAD) against ``b`` (default: the working tree)."""
    fmt = format_of(path)
    if fmt is None:
        raise InvalidInput(f"{path} is not a tabular file (csv, tsv, parquet, arrow, jsonl)")
    async with _version(repo, path, a or "HEAD") as left, _version(repo, path, b) as right:
        return await asyncio.to_thread(
            diff_files, left, right, fmt, keys, compare, output, repo.objects.tmp_dir
        )


@contextlib.asynccontextmanager
async def _version(repo: Repository, path: str, rev: str | None) -> Any:
    """The file of ``rev`` (None: the working tree's) as a path on disk."""
    if rev is None:
        local = repo.root / path
        if not await asyncio.to_thread(local.is_file):
            raise PathError(f"no file {path} in the working tree")
        yield local
        return
    entry = await repo.trees.lookup(await repo.tree_of(rev), path)
    if not isinstance(entry, FileEntry):
        raise PathError(f"no file {path} in {rev}")
    stored = StoredFile(repo, file_row(path, entry))
    await asyncio.to_thread(repo.objects.tmp_dir.mkdir, parents=True, exist_ok=True)
    out = temp_path(repo.objects.tmp_dir, "version", Path(path).suffix)
    try:
        f = await asyncio.to_thread(open, out, "wb")
        try:
            for offset in range(0, stored.size, COPY_WINDOW):
                await asyncio.to_thread(f.write, await stored.read(offset, COPY_WINDOW))
        finally:
            f.close()
        yield out
    finally:
        await asyncio.to_thread(out.unlink, missing_ok=True)


def _reader(fmt: str, path: Path) -> str:
    quoted = "'" + str(path).replace("'", "''") + "'"
    if fmt == "parquet":
        return f"read_parquet({quoted})"
    if fmt in ("csv", "tsv"):
        sep = "\\t" if fmt == "tsv" else ","
        return f"read_csv({quoted}, delim='{sep}', header=true)"
    if fmt == "jsonl":
        return f"read_json({quoted}, format='newline_delimited')"
    raise InvalidInput(f"row diffs of {fmt} files are not supported (parquet, csv, tsv, jsonl)")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _connect(tmp: Path) -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute(f"SET temp_directory = '{tmp / 'duckdb'}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def diff_files(
    left: Path,
    right: Path,
    fmt: str,
    keys: list[str],
    compare: list[str] | None,
    output: Path | None,
    tmp: Path,
    shown: int = SHOWN,
    skip: int = 0,
    on_connect: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> TableDiff:
    """The row diff of two files of format ``fmt`` (blocking: run it in a worker thread).
    ``first`` holds ``shown`` rows of each kind after the first ``skip`` of them, in the
    order of the keys (of every column without keys); ``on_connect`` is handed the DuckDB
    connection first (a server interrupts one that runs too long)."""
    import duckdb

    con = _connect(tmp)
    try:
        if on_connect is not None:
            on_connect(con)
        con.execute(f"CREATE VIEW a AS SELECT * FROM {_reader(fmt, left)}")
        con.execute(f"CREATE VIEW b AS SELECT * FROM {_reader(fmt, right)}")
        cols_a = [r[0] for r in con.execute("DESCRIBE a").fetchall()]
        cols_b = [r[0] for r in con.execute("DESCRIBE b").fetchall()]
        missing = [k for k in keys if k not in cols_a or k not in cols_b]
        if missing:
            raise InvalidInput(f"key column {missing[0]!r} is not in both versions")
        shared = [c for c in cols_a if c in cols_b and c not in keys]
        compared = compare if compare is not None else shared
        unknown = [c for c in compared if c not in shared]
        if unknown:
            raise InvalidInput(f"column {unknown[0]!r} is not in both versions (or is a key)")
        result = TableDiff(
            keys,
            compared,
            columns_added=[c for c in cols_b if c not in cols_a],
            columns_removed=[c for c in cols_a if c not in cols_b],
        )
        if keys:
            _by_keys(con, result, output, shown, skip)
        else:
            _whole_rows(con, result, cols_a, cols_b, output, shown, skip)
        return result
    except duckdb.Error as e:
        raise InvalidInput(f"cannot diff these versions: {str(e).splitlines()[0][:300]}") from None
    finally:
        con.close()


def _by_keys(
    con: duckdb.DuckDBPyConnection,
    result: TableDiff,
    output: Path | None,
    shown: int = SHOWN,
    skip: int = 0,
) -> None:
    on = " AND ".join(f"a.{_q(k)} = b.{_q(k)}" for k in result.keys)
    absent_a = " AND ".join(f"a.{_q(k)} IS NULL" for k in result.keys)
    absent_b = " AND ".join(f"b.{_q(k)} IS NULL" for k in result.keys)
    differs = [f"a.{_q(c)} IS DISTINCT FROM b.{_q(c)}" for c in result.compared]
    changed = " OR ".join(differs) or "false"
    status = f"CASE WHEN {absent_a} THEN 'added' WHEN {absent_b} THEN 'removed' ELSE 'modified' END"
    keys_out = ", ".join(f"coalesce(b.{_q(k)}, a.{_q(k)}) AS {_q(k)}" for k in result.keys)
    values = ", ".join(
        f"a.{_q(c)} AS {_q(c + '.before')}, b.{_q(c)} AS {_q(c + '.after')}"
        for c in result.compared
    )
    a, b = _candidates(con, result)
    con.execute(
        f"CREATE TEMP TABLE changes AS SELECT {status} AS {STATUS}, {keys_out}"
        f"{', ' + values if values else ''}, "
        + ", ".join(
            [
                f"({d})::INT AS {_q('_changed_' + c)}"
                for d, c in zip(differs, result.compared, strict=True)
            ]
            or ["0 AS _none"]
        )
        + f" FROM {a} a FULL OUTER JOIN {b} b ON {on}"
        f" WHERE ({absent_a}) OR ({absent_b}) OR ({changed})"
    )
    _tally(con, result)
    for c in result.compared:
        n = con.execute(
            f"SELECT count(*) FROM changes WHERE {STATUS} = 'modified' AND {_q('_changed_' + c)} = 1"
        ).fetchall()[0][0]
        if n:
            result.changed_columns[c] = n
    hidden = [f"{_q('_changed_' + c)}" for c in result.compared] or ["_none"]
    select = f"SELECT * EXCLUDE ({', '.join(hidden)}) FROM changes"
    order = ", ".join(_q(k) for k in result.keys)
    _first_and_output(con, result, select, output, order, shown, skip)


def _candidates(con: duckdb.DuckDBPyConnection, result: TableDiff) -> tuple[str, str]:
    """The two sides cut to the keys whose rows may differ, found by a first pass that joins
    (keys, hash of the compared columns) only: the full join of the second pass then reads
    the few changed rows, not both tables (1.8x faster on W2, docs/benchmarks.md). A hash
    is only a filter: every candidate is compared value by value, so a changed type with
    equal values is not reported; two different rows with one 64-bit hash would be missed."""
    if not result.compared:
        return "a", "b"
    keys = ", ".join(_q(k) for k in result.keys)
    h = "hash(" + ", ".join(_q(c) for c in result.compared) + ")"
    on = " AND ".join(f"x.{_q(k)} = y.{_q(k)}" for k in result.keys)
    pick = ", ".join(f"coalesce(x.{_q(k)}, y.{_q(k)}) AS {_q(k)}" for k in result.keys)
    con.execute(
        f"CREATE TEMP TABLE candidates AS SELECT {pick} "
        f"FROM (SELECT {keys}, {h} AS _h FROM a) x "
        f"FULL OUTER JOIN (SELECT {keys}, {h} AS _h FROM b) y ON {on} "
        f"WHERE x._h IS DISTINCT FROM y._h"
    )
    # NOT DISTINCT: rows with a null key stay in the diff as the single pass had them.
    semi = " AND ".join(f"s.{_q(k)} IS NOT DISTINCT FROM c.{_q(k)}" for k in result.keys)
    a, b = (f"(SELECT s.* FROM {side} s SEMI JOIN candidates c ON {semi})" for side in "ab")
    return a, b


def _whole_rows(
    con: duckdb.DuckDBPyConnection,
    result: TableDiff,
    cols_a: list[str],
    cols_b: list[str],
    output: Path | None,
    shown: int = SHOWN,
    skip: int = 0,
) -> None:
    shared = ", ".join(_q(c) for c in cols_a if c in cols_b)
    con.execute(
        f"CREATE TEMP TABLE changes AS "
        f"(SELECT 'added' AS {STATUS}, * FROM (SELECT {shared} FROM b EXCEPT ALL SELECT {shared} FROM a)) "
        f"UNION ALL "
        f"(SELECT 'removed' AS {STATUS}, * FROM (SELECT {shared} FROM a EXCEPT ALL SELECT {shared} FROM b))"
    )
    _tally(con, result)
    _first_and_output(con, result, "SELECT * FROM changes", output, "ALL", shown, skip)


def _tally(con: duckdb.DuckDBPyConnection, result: TableDiff) -> None:
    for kind, n in con.execute(f"SELECT {STATUS}, count(*) FROM changes GROUP BY 1").fetchall():
        setattr(result, kind, n)


def _first_and_output(
    con: duckdb.DuckDBPyConnection,
    result: TableDiff,
    select: str,
    output: Path | None,
    order: str,
    shown: int,
    skip: int,
) -> None:
    for kind in ("added", "removed", "modified"):
        if not shown or getattr(result, kind) <= skip:
            continue
        rel = arrow_table(
            con,
            f"{select} WHERE {STATUS} = '{kind}' ORDER BY {order} "
            f"LIMIT {int(shown)} OFFSET {int(skip)}",
        )
        if rel.num_rows:
            result.first[kind] = rel.drop_columns([STATUS]).to_pylist()
    if output is not None:
        reader = arrow_reader(con, f"{select} ORDER BY {STATUS}", 64 * 1024)
        write_stream(reader, output)


def arrow_table(con: duckdb.DuckDBPyConnection, query: str) -> pa.Table:
    """A query's result as a pyarrow table (DuckDB 2 renamed the method)."""
    rel = con.sql(query)
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    return fetch()


def arrow_reader(con: duckdb.DuckDBPyConnection, query: str, rows: int) -> pa.RecordBatchReader:
    """A query's result streamed as record batches of ``rows`` rows."""
    rel = con.sql(query)
    fetch = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader
    return fetch(rows)


def write_stream(reader: pa.RecordBatchReader, out: Path) -> None:
    """Every changed row, with its status column, as parquet (content-defined pages),
    csv or jsonl, streamed through a temporary file."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    ext = out.suffix.lower()
    tmp = out.with_name(f".{out.name}.oxen-{os.getpid()}.tmp")
    batches: Iterator[pa.RecordBatch] = iter(reader)
    try:
        if ext == ".parquet":
            with pq.ParquetWriter(tmp, reader.schema, use_content_defined_chunking=True) as w:
                for batch in batches:
                    w.write_batch(batch)
        elif ext in (".csv", ".tsv"):
            opts = pcsv.WriteOptions(delimiter="\t" if ext == ".tsv" else ",")
            with pcsv.CSVWriter(tmp, reader.schema, write_options=opts) as w:
                for batch in batches:
                    w.write_batch(batch)
        elif ext in (".jsonl", ".ndjson"):
            import json

            with open(tmp, "w", encoding="utf-8") as f:
                for batch in batches:
                    for record in batch.to_pylist():
                        f.write(json.dumps(record, default=str) + "\n")
        else:
            raise InvalidInput(f"--output must end in .parquet, .csv, .tsv or .jsonl: {out}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
