"""Tabular files of a revision as the server serves them, without a clone: a file's schema
(from the tree alone), a page of its rows, and the row diff of two versions.

A page reads only what it needs: of a parquet file its footer and the row groups that
hold the page (through :class:`ServedFile`, only the chunks those bytes are in), of a
csv, tsv, jsonl or arrow file its batches up to the page's last row.  The parsing is
:func:`oxen.verbs.dataframe.read_frame`, run in a pool of its own (``TABLE_THREADS``
threads): a parsing thread waits on the event loop for each read, so it must never
hold a thread of the loop's default pool, which the reads themselves use.

What one request may cost is bounded: at most ``MAX_LIMIT`` rows a page and
``MAX_ANSWER_BYTES`` of JSON; ``TABLE_THREADS`` reads or diffs at once (others wait);
each runs for at most ``READ_SECONDS`` (``DIFF_SECONDS``), after which its reads refuse
and its DuckDB query is interrupted (400: ask for less); a diff copies each version (at
most ``MAX_DIFF_BYTES``) to a temporary file that is always removed.

A filter is one SQL expression over the file's columns.  It is parsed as one (so it
cannot end the query and start another), may hold only comparisons, arithmetic and the
functions of ``FILTER_FUNCTIONS`` (no subquery, nothing that reads the server's settings
or makes a value much larger than its input), and runs on a DuckDB connection that may
touch no file, load no extension and change none of its settings.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import datetime
import functools
import json
import math
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from oxen.errors import CorruptObject, InvalidInput, NotFound
from oxen.formats.nodes import Schema
from oxen.objects.temp_files import temp_path
from oxen.serving.file_reads import FileAt, after_refresh, find_file, plan_read
from oxen.serving.served_repo import ServedRepo
from oxen.verbs.dataframe import Rows, read_frame
from oxen.verbs.stored_file import SyncReader
from oxen.verbs.table_diff import diff_files
from oxen.worktree.tabular import format_of

if TYPE_CHECKING:
    import duckdb

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000  # rows of a page, and of each kind of a diff's rows
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # of one answer's JSON
READ_SECONDS = 30.0
DIFF_SECONDS = 120.0
MAX_DIFF_BYTES = 1024 * 1024 * 1024  # of each version a diff copies
TABLE_THREADS = 2
DIFF_FORMATS = ("parquet", "csv", "tsv", "jsonl")  # what DuckDB reads from a file
FILTER_MEMORY = "256MB"
# What a filter may be made of: comparisons, AND/OR/NOT, IN, BETWEEN, IS NULL, CASE,
# CAST, arithmetic, pattern matches and the functions below, none of which returns more
# than a small multiple of what it is given (DuckDB's memory limit does not cover what
# expressions allocate, so `repeat(x, 1e9)` or `x || x || ...` could exhaust the server).
FILTER_NODES = {
    "BETWEEN",
    "CASE",
    "CAST",
    "COLLATE",
    "COLUMN_REF",
    "COMPARISON",
    "CONJUNCTION",
    "CONSTANT",
    "FUNCTION",
    "OPERATOR",
    "TYPE",
}
FILTER_OPERATORS = {
    "OPERATOR_NOT",
    "OPERATOR_IS_NULL",
    "OPERATOR_IS_NOT_NULL",
    "OPERATOR_COALESCE",
    "COMPARE_IN",
    "COMPARE_NOT_IN",
    "ARRAY_EXTRACT",
    "ARRAY_SLICE",
    "STRUCT_EXTRACT",
}
FILTER_FUNCTIONS = {
    *("+", "-", "*", "/", "//", "%"),
    *("~~", "!~~", "~~*", "!~~*", "~~~", "^@", "regexp_matches", "regexp_full_match"),
    *("lower", "upper", "lcase", "ucase", "length", "len", "strlen", "char_length"),
    *("contains", "starts_with", "ends_with", "prefix", "suffix", "strpos", "instr"),
    *("position", "trim", "ltrim", "rtrim", "substring", "substr", "left", "right"),
    *("abs", "round", "floor", "ceil", "ceiling", "sign", "least", "greatest"),
    *("nullif", "ifnull", "isnan", "isinf", "isfinite"),
    *("year", "month", "day", "hour", "minute", "second", "dayofweek", "dayofyear"),
    *("week", "quarter", "date_part", "datepart", "date_trunc", "datetrunc", "epoch"),
    *("list_contains", "array_contains", "list_has", "array_has", "array_length"),
    "list_value",
}
# Column references, calls and casts a filter may hold: each may hold a chunk's worth of
# values at once while the filter runs.
FILTER_MAX_TERMS = 100
TABULAR = "a tabular file (csv, tsv, parquet, arrow, jsonl)"
T = TypeVar("T")


class TooCostly(InvalidInput):
    """A read or diff that ran past its time: the client is told to ask for less."""


# -- running blocking work: its own threads, a deadline ----------------------------------


_pool: ThreadPoolExecutor | None = None
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(TABLE_THREADS, thread_name_prefix="oxen-tables")
    return _pool


def table_slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    if loop not in _slots:
        _slots[loop] = asyncio.Semaphore(TABLE_THREADS)
    return _slots[loop]


class Budget:
    """The time one read or diff may take, from ``start()``; once it has passed, reads
    refuse and the DuckDB connections it watches are interrupted."""

    GRACE = 10.0  # seconds waited for the work to stop, once the time has passed

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = seconds
        self.what = what
        self.deadline = math.inf
        self.expired = False
        self._connections: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()  # watch() runs in a table thread, expire() on the loop

    def start(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def error(self) -> TooCostly:
        return TooCostly(f"{self.what} ran for more than {self.seconds:g} s: {self._advice()}")

    def _advice(self) -> str:
        return "ask for fewer rows, an earlier page or a narrower filter"

    def check(self) -> None:
        if self.expired or time.monotonic() > self.deadline:
            raise self.error()

    def watch(self, con: duckdb.DuckDBPyConnection) -> None:
        """Interrupt ``con``'s query once the time has passed (from any thread)."""
        with self._lock:
            self.check()
            self._connections.append(con)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            for con in self._connections:
                with contextlib.suppress(Exception):  # closed already: nothing runs on it
                    con.interrupt()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a table thread, within the time left."""
        loop = asyncio.get_running_loop()
        task = loop.run_in_executor(_executor(), functools.partial(fn, *args))
        task.add_done_callback(_retrieved)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.remaining())
        except TimeoutError:
            self.expire()
            # it ends soon: its reads refuse, its query stops at its next chunk of rows
            await asyncio.wait([task], timeout=self.GRACE)
            raise self.error() from None
        except asyncio.CancelledError:
            self.expire()  # the client went away: stop the thread's work soon too
            raise
        except Exception:
            if self.expired or time.monotonic() > self.deadline:
                raise self.error() from None  # an interrupted query or a refused read
            raise


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a thread that failed after its request went is not logged


class DiffBudget(Budget):
    def _advice(self) -> str:
        return "diff smaller versions, or clone the repository and run `oxen diff`"


# -- a stored file read at any offset ----------------------------------------------------


class ServedFile:
    """A file of a commit read at any offset from the server's store: only the chunks
    holding the bytes asked for (of a large file's chunk index, only the lists the span
    touches), each checked against its id; the first and last chunks of a read are kept
    for the next (a reader's next read often starts where its last one ended)."""

    def __init__(self, repo: ServedRepo, file: FileAt, budget: Budget | None = None) -> None:
        self.repo = repo
        self.file = file
        self.size = file.size
        self.budget = budget
        self.bytes_read = 0  # of chunks read from the store
        self._held: dict[bytes, bytes] = {}

    async def read(self, offset: int, n: int) -> bytes:
        """Bytes ``offset`` to ``offset + n`` (fewer at the end of the file)."""
        if self.budget is not None:
            self.budget.check()
        end = min(self.size, offset + n)
        if offset >= end:
            return b""
        plan = await plan_read(self.repo, self.file, offset, end)
        ids = plan.run.ids
        wanted = {c for c in ids if c not in self._held}
        blobs = await self.repo.objects.read_blobs(wanted, plan.locations) if wanted else {}
        self.bytes_read += sum(len(b) for b in blobs.values())
        blobs.update((c, b) for c, b in self._held.items() if c in ids)
        self._held = {c: blobs[c] for c in (ids[0], ids[-1])}
        parts: list[bytes | memoryview] = []
        at = plan.run.offset
        for cid, length in zip(ids, plan.run.lengths, strict=True):
            a, b = max(offset - at, 0), min(end - at, length)
            blob = blobs[cid]
            parts.append(blob if (a, b) == (0, length) else memoryview(blob)[a:b])
            at += length
        return b"".join(parts)


class BlockingReader(SyncReader):
    """A seekable, read-only binary file over a :class:`ServedFile`, for a table thread:
    each read runs on ``loop`` and is waited for, never past the budget's time."""

    GRACE = 5.0  # seconds a read may take past the deadline before the thread stops waiting

    def __init__(self, file: ServedFile, loop: asyncio.AbstractEventLoop, budget: Budget) -> None:
        super().__init__(file, loop)  # type: ignore[arg-type]
        self.file = file
        self.budget = budget

    def read(self, n: int | None = -1) -> bytes:
        self.budget.check()
        return super().read(n)

    def _wait(self, future: concurrent.futures.Future[bytes]) -> bytes:
        try:
            return future.result(timeout=self.budget.remaining() + self.GRACE)
        except TimeoutError:
            future.cancel()
            raise self.budget.error() from None


# -- schema ---------------------------------------------------------------------------------


async def _schema_node(repo: ServedRepo, sid: bytes) -> Schema:
    node = await after_refresh(repo, lambda: repo.objects.read_node(sid))
    if not isinstance(node, Schema):
        raise CorruptObject(f"node {sid.hex()} is not a schema")
    return node


async def table_schema(repo: ServedRepo, rev: str, path: str) -> dict[str, Any]:
    """The columns and row count the tree gives the file at ``path`` in ``rev``;
    NotFound if it has none (not a tabular file)."""
    file = await find_file(repo, rev, path)
    if file.entry.schema is None:
        raise NotFound(f"{path} has no schema at {rev}: it is not {TABULAR}")
    schema = await _schema_node(repo, file.entry.schema)
    body: dict[str, Any] = {
        "path": path,
        "commit": file.commit.hex(),
        "format": schema.format,
        "rows": file.entry.rows,
        "columns": [{"name": n, "type": t} for n, t in schema.columns],
    }
    if schema.error:
        body["error"] = schema.error
    return body


async def tabular_of(repo: ServedRepo, file: FileAt, rev: str) -> tuple[str, Schema | None]:
    """The file's format (and schema, when the tree gives one), or InvalidInput if it is
    not a tabular file or was versioned as a binary one."""
    fmt, schema = format_of(file.path), None
    if file.entry.schema is not None:
        schema = await _schema_node(repo, file.entry.schema)
        if schema.error:
            raise InvalidInput(f"{file.path} is stored as a binary file at {rev}: {schema.error}")
        fmt = schema.format
    if fmt is None:
        raise InvalidInput(f"{file.path} is not {TABULAR}")
    return fmt, schema


# -- a page of rows ---------------------------------------------------------------------------


@dataclass
class Page:
    body: dict[str, Any]
    bytes_read: int  # of chunks read from the store


async def read_page(
    repo: ServedRepo,
    rev: str,
    path: str,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
    columns: list[str] | None = None,
    where: str | None = None,
) -> Page:
    """Rows ``offset`` to ``offset + limit`` of the file at ``path`` in ``rev`` (of those
    ``where`` keeps, with a filter), ``columns`` only if given."""
    check_page(offset, limit)
    file = await find_file(repo, rev, path)
    return await read_page_of(repo, file, rev, offset, limit, columns, where)


async def read_page_of(
    repo: ServedRepo,
    file: FileAt,
    rev: str,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
    columns: list[str] | None = None,
    where: str | None = None,
) -> Page:
    """:func:`read_page` of a file found already (a commit's, or a workspace's staged
    version); ``rev`` names where it is from, in errors."""
    check_page(offset, limit)
    path = file.path
    fmt, schema = await tabular_of(repo, file, rev)
    # a parquet file's footer says how many rows it has; otherwise one row more is read,
    # to know whether another page follows
    total = file.entry.rows if fmt == "parquet" and where is None else None
    rows = Rows(start=offset, stop=offset + limit + (total is None))
    budget = Budget(READ_SECONDS, "this read")
    stored = ServedFile(repo, file, budget)
    async with table_slot():
        budget.start()
        reader = BlockingReader(stored, asyncio.get_running_loop(), budget)
        read = await budget.run(_page, reader, fmt, rows, columns, where, budget, limit)
    records, types, found, seen = read
    more = found > limit if total is None else offset + limit < total
    if not types and schema is not None:  # not a row in the file: the tree's columns
        types = [{"name": n, "type": t} for n, t in schema.columns if not columns or n in columns]
    body: dict[str, Any] = {
        "path": path,
        "commit": file.commit.hex(),
        "format": fmt,
        "total_rows": seen if where is None and seen is not None else file.entry.rows,
        "offset": offset,
        "limit": limit,
        "columns": types,
        "rows": records,
        "next_offset": offset + limit if more else None,
    }
    if where is not None:
        body["filter"] = where
        body["matched_rows"] = seen  # None unless the page reached the last match
    return Page(body, stored.bytes_read)


def check_page(offset: int, limit: int) -> None:
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, not {offset}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}, not {limit}")


def _page(
    reader: BlockingReader,
    fmt: str,
    rows: Rows,
    columns: list[str] | None,
    where: str | None,
    budget: Budget,
    limit: int,
) -> tuple[list[dict[str, Any]], list[dict[str, str]], int, int | None]:
    """(the first ``limit`` rows read as JSON values, their columns, how many rows were
    read, and how many the file has, or its matches, if the read reached its end)."""
    connect = None
    if where is not None:
        where = checked_filter(where)
        connect = functools.partial(_watched, budget)
    frame = read_frame(reader, fmt, rows, columns, where, None, connect)
    table = frame.table
    types = [{"name": f.name, "type": str(f.type)} for f in table.schema]
    try:
        records = [json_safe(r) for r in table.slice(0, limit).to_pylist()]
    except (UnicodeDecodeError, ValueError, OverflowError) as e:  # bytes that are no text
        raise InvalidInput(f"cannot show these rows: {_first_line(e)}") from None
    return records, types, table.num_rows, frame.total_rows


def _watched(budget: Budget) -> duckdb.DuckDBPyConnection:
    con = sandboxed()
    try:
        budget.watch(con)
    except BaseException:
        con.close()
        raise
    return con


# -- filters ---------------------------------------------------------------------------------


def sandboxed() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that may not read or write files, load extensions or change
    its settings; one thread, ``FILTER_MEMORY`` of memory."""
    import duckdb

    return duckdb.connect(
        config={
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "threads": 1,
            "memory_limit": FILTER_MEMORY,
            "lock_configuration": True,
        }
    )


def checked_filter(where: str) -> str:
    """``where`` as one SQL expression DuckDB wrote back (in parentheses), or InvalidInput:
    not one expression (another statement, a set operation, ORDER BY ...), or one that
    holds what a filter may not (a subquery, a function not in FILTER_FUNCTIONS, more
    than FILTER_MAX_TERMS terms)."""
    import duckdb

    if not where.strip():
        raise InvalidInput("filter is empty")
    try:
        expression = str(duckdb.SQLExpression(where))
        con = sandboxed()
        try:
            query = f"SELECT * FROM df WHERE ({expression})"
            row = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [query]).fetchone()
        finally:
            con.close()
    except duckdb.Error as e:
        raise InvalidInput(f"filter is not one SQL expression: {_first_line(e)}") from None
    try:
        tree = json.loads(row[0]) if row else {"error": True}
        statements = tree.get("statements") or []
        if tree.get("error") or len(statements) != 1:
            message = tree.get("error_message", "")
            raise InvalidInput(f"filter is not one SQL expression: {message}")
        terms = _filter_terms(statements[0].get("node", {}).get("where_clause"))
    except RecursionError:
        raise InvalidInput("filter is nested too deeply") from None
    if terms > FILTER_MAX_TERMS:
        raise InvalidInput(f"a filter may hold at most {FILTER_MAX_TERMS} columns and calls")
    return f"({expression})"


def _filter_terms(node: Any) -> int:
    """Column references, calls and casts in a filter's parsed expression; InvalidInput
    for what a filter may not hold."""
    if isinstance(node, list):
        return sum(_filter_terms(n) for n in node)
    if not isinstance(node, dict):
        return 0
    kind = node.get("class")
    terms = 0
    if kind is not None:
        if kind not in FILTER_NODES:
            what = {"SUBQUERY": "a subquery", "WINDOW": "a window function"}.get(kind)
            raise InvalidInput(f"a filter may not hold {what or str(kind).lower()}")
        name = str(node.get("function_name", "")).lower()
        if kind == "FUNCTION" and name not in FILTER_FUNCTIONS:
            raise InvalidInput(
                f"a filter may not call {name[:60]}: it may compare, match (LIKE, "
                "regexp_matches), compute and call the string, number and date functions "
                "docs/sync-protocol.md lists"
            )
        if kind == "OPERATOR" and node.get("type") not in FILTER_OPERATORS:
            raise InvalidInput(f"a filter may not hold {str(node.get('type')).lower()}")
        terms = int(kind in ("COLUMN_REF", "FUNCTION", "CAST"))
    return terms + sum(_filter_terms(v) for v in node.values())


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0][:300] if str(e) else type(e).__name__


# -- diffs ------------------------------------------------------------------------------------


async def diff_versions(
    repo: ServedRepo,
    path: str,
    base: str,
    head: str,
    keys: list[str],
    compare: list[str] | None = None,
    offset: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """The row diff of ``path`` from revision ``base`` to ``head``, by ``keys`` (whole
    rows without): counts of each kind, and of each kind ``limit`` rows from ``offset``
    in the keys' order."""
    check_page(offset, limit)
    old = await find_file(repo, base, path)
    new = await find_file(repo, head, path)
    fmt, _ = await tabular_of(repo, old, base)
    fmt_new, _ = await tabular_of(repo, new, head)
    if fmt_new != fmt:
        raise InvalidInput(f"{path} is {fmt} at {base} and {fmt_new} at {head}: no row diff")
    if fmt not in DIFF_FORMATS:
        raise InvalidInput(f"row diffs of {fmt} files are not supported (parquet, csv, tsv, jsonl)")
    for file, rev in ((old, base), (new, head)):
        if file.size > MAX_DIFF_BYTES:
            raise InvalidInput(
                f"{path} at {rev} is {file.size:,} bytes; this server diffs versions of at "
                f"most {MAX_DIFF_BYTES:,}: clone the repository and run `oxen diff`"
            )
    budget = DiffBudget(DIFF_SECONDS, "this diff")
    async with table_slot():
        budget.start()
        async with (
            copy_out(repo, old, fmt, budget) as left,
            copy_out(repo, new, fmt, budget) as right,
        ):
            result = await budget.run(
                diff_files,
                left,
                right,
                fmt,
                keys,
                compare,
                None,
                repo.tmp_dir,
                limit,
                offset,
                budget.watch,
            )
    diff = await asyncio.to_thread(json_safe, result.as_dict())
    return {
        "path": path,
        "base": old.commit.hex(),
        "head": new.commit.hex(),
        "format": fmt,
        "offset": offset,
        "limit": limit,
        **diff,
    }


@contextlib.asynccontextmanager
async def copy_out(repo: ServedRepo, file: FileAt, fmt: str, budget: Budget) -> AsyncIterator[Path]:
    """The file written to a temporary file of the repository's (removed however this
    ends), a window of chunks at a time."""
    await asyncio.to_thread(repo.tmp_dir.mkdir, parents=True, exist_ok=True)
    out = temp_path(repo.tmp_dir, "table", f".{fmt}")
    try:
        plan = await plan_read(repo, file, 0, file.size)
        f = await asyncio.to_thread(open, out, "wb")
        try:
            async with contextlib.aclosing(plan.pieces()) as pieces:
                async for piece in pieces:
                    budget.check()
                    await asyncio.to_thread(f.write, piece)
        finally:
            await asyncio.to_thread(f.close)
        yield out
    finally:
        await asyncio.to_thread(out.unlink, missing_ok=True)


# -- JSON ---------------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON: dates, times and timestamps as ISO 8601 strings, decimals
    and durations as strings, bytes as base64, NaN and infinities as "NaN", "Infinity"
    and "-Infinity"."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def encode_answer(body: dict[str, Any]) -> bytes:
    """``body`` as JSON, refused if larger than MAX_ANSWER_BYTES."""
    data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    if len(data) > MAX_ANSWER_BYTES:
        raise InvalidInput(
            f"the answer would be {len(data):,} bytes (at most {MAX_ANSWER_BYTES:,}): "
            "ask for fewer rows or columns"
        )
    return data
