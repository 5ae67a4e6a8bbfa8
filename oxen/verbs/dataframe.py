"""df: rows of a tabular file at any revision, read as little of it as the question needs.

``--head 10`` of a parquet file reads its footer and first row group (through
:class:`StoredFile`, only those chunks: in a partial clone only those are fetched); a csv
is streamed batch by batch and read only as far as the rows asked for.  ``--filter`` and
``--sql`` stream the file through DuckDB.  pyarrow and DuckDB are imported only here.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oxen.core.repository import Repository
from oxen.errors import InvalidInput, OxenError, PathError
from oxen.formats.nodes import FileEntry
from oxen.verbs.schemas import read_schemas
from oxen.verbs.stored_file import StoredFile, SyncReader
from oxen.worktree.tabular import format_of

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    Connect = Callable[[], duckdb.DuckDBPyConnection]

DEFAULT_HEAD = 20  # rows shown when no slice is asked for (and nothing is written out)
BATCH_ROWS = 64 * 1024
PARQUET_BUFFER = 1 << 20  # a column chunk is read this much at a time, not whole
JSONL_WHOLE = (
    64 * 1024 * 1024
)  # a jsonl file up to this size is parsed whole, a larger one streamed
TABLE_NAME = "df"  # what --sql queries call the file


@dataclass(frozen=True)
class Rows:
    """Which rows: the first or last N, or rows A (inclusive) to B (exclusive); all if
    every field is None."""

    head: int | None = None
    tail: int | None = None
    start: int | None = None
    stop: int | None = None

    @classmethod
    def parse_slice(cls, text: str) -> Rows:
        a, sep, b = text.partition("..")
        try:
            start, stop = int(a or 0), int(b) if b else None
        except ValueError:
            raise InvalidInput(f"--slice takes A..B (row numbers), not {text!r}") from None
        if not sep or start < 0 or (stop is not None and stop < start):
            raise InvalidInput(f"--slice takes A..B with 0 <= A <= B, not {text!r}")
        return cls(start=start, stop=stop)

    @property
    def everything(self) -> bool:
        return self.head is None and self.tail is None and self.start is None

    def span(self, total: int) -> tuple[int, int]:
        """(first, stop) row numbers of a file of ``total`` rows."""
        if self.head is not None:
            return 0, min(total, self.head)
        if self.tail is not None:
            return max(0, total - self.tail), total
        if self.start is not None:
            return min(total, self.start), min(total, self.stop if self.stop is not None else total)
        return 0, total


@dataclass
class Frame:
    table: pa.Table
    total_rows: int | None  # rows of the whole file (None: not known without reading it)
    format: str
    bytes_read: int | None = None  # of a stored file: bytes of chunks read


async def df(
    repo: Repository,
    path: str,
    rev: str | None = None,
    rows: Rows = Rows(),
    columns: list[str] | None = None,
    where: str | None = None,
    sql: str | None = None,
) -> Frame:
    """The rows and columns asked for of the tabular file ``path`` (repository-relative):
    in the working tree, or at ``rev``."""
    local = repo.root / path if rev is None else None
    if local is not None and await asyncio.to_thread(local.is_file):
        fmt = format_of(path)
        if fmt is None:
            raise InvalidInput(f"{path} is not a tabular file (csv, tsv, parquet, arrow, jsonl)")
        return await asyncio.to_thread(read_frame, str(local), fmt, rows, columns, where, sql)
    tree = await repo.tree_of(rev or "HEAD")
    entry = await repo.trees.lookup(tree, path)
    if not isinstance(entry, FileEntry):
        raise PathError(f"no file {path} in {rev or 'HEAD'}")
    fmt = format_of(path)
    if entry.schema is not None:
        schema = (await read_schemas(repo, [entry.schema]))[entry.schema]
        if schema.error:
            raise InvalidInput(f"{path} is stored as a binary file: {schema.error}")
        fmt = schema.format
    if fmt is None:
        raise InvalidInput(f"{path} is not a tabular file (csv, tsv, parquet, arrow, jsonl)")
    from oxen.trees.tree import file_row

    stored = StoredFile(repo, file_row(path, entry))
    reader = SyncReader(stored, asyncio.get_running_loop())
    frame = await asyncio.to_thread(read_frame, reader, fmt, rows, columns, where, sql)
    frame.bytes_read = stored.bytes_read
    return frame


def read_frame(
    source: Any,
    fmt: str,
    rows: Rows,
    columns: list[str] | None,
    where: str | None,
    sql: str | None,
    connect: Connect | None = None,
) -> Frame:
    """The rows and columns asked for of a ``fmt`` file: ``source`` is a path or a seekable
    binary file (blocking: run it in a worker thread).  ``connect`` makes the DuckDB
    connection a filter or query runs on (a server's is sandboxed, and can be interrupted)."""
    import pyarrow as pa

    try:
        if where is not None or sql is not None:
            return _query(source, fmt, rows, columns, where, sql, connect)
        if fmt == "parquet":
            return _parquet(source, rows, columns)
        return _stream(read_batches(source, fmt, columns), fmt, rows)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as e:
        if isinstance(e, OxenError):
            raise
        raise InvalidInput(f"cannot read it as {fmt}: {str(e).splitlines()[0][:200]}") from None


def _parquet(source: Any, rows: Rows, columns: list[str] | None) -> Frame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # A buffered stream: pages are read as they are decoded, not whole column chunks.
    pf = pq.ParquetFile(source, pre_buffer=False, buffer_size=PARQUET_BUFFER)
    _check_columns(columns, pf.schema_arrow.names)
    total = pf.metadata.num_rows
    first, stop = rows.span(total)
    groups, offset, skip = [], 0, 0  # only the row groups holding the rows asked for
    for i in range(pf.num_row_groups):
        n = pf.metadata.row_group(i).num_rows
        if offset < stop and offset + n > first:
            if not groups:
                skip = first - offset
            groups.append(i)
        offset += n
    want = stop - first
    parts: list[pa.RecordBatch] = []
    if groups and want > 0:
        size = max(1, min(BATCH_ROWS, skip + want))  # a head of 10 decodes about 10 rows
        for batch in pf.iter_batches(size, row_groups=groups, columns=columns):
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            batch = batch.slice(skip, want)
            skip = 0
            parts.append(batch)
            want -= batch.num_rows
            if want <= 0:
                break
    schema = pf.schema_arrow
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    table = pa.Table.from_batches(parts, schema=schema) if parts else schema.empty_table()
    return Frame(table, total, "parquet")


def read_batches(source: Any, fmt: str, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    """The file's rows as record batches, read as they are consumed (a jsonl file whole)."""
    import pyarrow as pa

    if fmt in ("csv", "tsv"):
        import pyarrow.csv as pcsv

        reader = pcsv.open_csv(
            source,
            read_options=pcsv.ReadOptions(block_size=1 << 20),
            parse_options=pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
        )
        _check_columns(columns, reader.schema.names)
        for batch in reader:
            yield batch.select(columns) if columns else batch
    elif fmt == "arrow":
        import pyarrow.ipc as ipc

        opened = pa.memory_map(source) if isinstance(source, str) else source
        try:  # the file format (batches read one at a time, by its footer), else a stream
            file = ipc.open_file(opened)
            arrow: Iterator[pa.RecordBatch] = (
                file.get_batch(i) for i in range(file.num_record_batches)
            )
            names = file.schema.names
        except pa.ArrowInvalid:
            opened.seek(0)
            stream = ipc.open_stream(opened)
            arrow, names = iter(stream), stream.schema.names
        _check_columns(columns, names)
        for batch in arrow:
            yield batch.select(columns) if columns else batch
    else:  # jsonl
        import pyarrow.json as pjson

        if _size(source) <= JSONL_WHOLE:  # whole: later lines may add fields or widen types
            table = pjson.read_json(source)
            _check_columns(columns, table.column_names)
            yield from (table.select(columns) if columns else table).to_batches(BATCH_ROWS)
            return
        reader = pjson.open_json(  # a block at a time, its columns those of the first block
            source, read_options=pjson.ReadOptions(use_threads=False, block_size=1 << 20)
        )
        _check_columns(columns, reader.schema.names)
        for batch in reader:
            yield batch.select(columns) if columns else batch


def _size(source: Any) -> int:
    if isinstance(source, str):
        return os.path.getsize(source)
    size = source.seek(0, os.SEEK_END)
    source.seek(0)
    return size


def _stream(batches: Iterator[pa.RecordBatch], fmt: str, rows: Rows) -> Frame:
    """The rows asked for from a stream of batches: a head stops reading early; a tail
    keeps the last batches only."""
    import pyarrow as pa

    kept: deque[pa.RecordBatch] = deque()
    seen = dropped = 0  # rows read; of those, rows let go of (before the first asked for)
    schema = None
    want_stop = rows.head if rows.head is not None else rows.stop
    for batch in batches:
        kept.append(batch)
        schema = batch.schema
        seen += batch.num_rows
        if rows.tail is not None:
            while kept and seen - dropped - kept[0].num_rows >= rows.tail:
                dropped += kept.popleft().num_rows
        elif rows.start is not None:
            while kept and dropped + kept[0].num_rows <= rows.start:
                dropped += kept.popleft().num_rows
        if want_stop is not None and seen >= want_stop:
            break
    if schema is None:
        return Frame(pa.table({}), 0, fmt)
    table = pa.Table.from_batches(list(kept), schema)
    if rows.tail is not None:
        return Frame(table.slice(max(0, table.num_rows - rows.tail)), None, fmt)
    first, stop = rows.span(seen)
    total = seen if want_stop is None or seen < want_stop else None
    return Frame(table.slice(first - dropped, stop - first), total, fmt)


def _query(
    source: Any,
    fmt: str,
    rows: Rows,
    columns: list[str] | None,
    where: str | None,
    sql: str | None,
    connect: Connect | None = None,
) -> Frame:
    """``SELECT ... WHERE where`` or ``sql`` (which calls the file ``df``), streamed through
    DuckDB from pyarrow's batches."""
    import duckdb
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(source, buffer_size=PARQUET_BUFFER)
        _check_columns(columns, pf.schema_arrow.names)
        batches: Iterator[pa.RecordBatch] = pf.iter_batches(BATCH_ROWS)
        schema = pf.schema_arrow
    else:
        it = read_batches(source, fmt, None)
        first = next(it, None)
        if first is None:
            return Frame(pa.table({}), 0, fmt)
        schema = first.schema

        def again() -> Iterator[pa.RecordBatch]:
            yield first
            yield from it

        batches = again()
    reader = pa.RecordBatchReader.from_batches(schema, batches)
    picked = ", ".join(_quote(c) for c in columns) if columns else "*"
    query = sql if sql is not None else f"SELECT {picked} FROM {TABLE_NAME} WHERE {where}"
    con = connect() if connect is not None else duckdb.connect()
    try:
        con.register(TABLE_NAME, reader)
        from oxen.verbs.table_diff import arrow_reader

        result = arrow_reader(con, query, BATCH_ROWS)
        return _stream(iter(result), fmt, rows)
    except duckdb.Error as e:
        raise InvalidInput(f"query failed: {str(e).splitlines()[0][:300]}") from None
    finally:
        con.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_columns(columns: list[str] | None, names: list[str]) -> None:
    unknown = [c for c in columns or () if c not in names]
    if unknown:
        raise InvalidInput(f"no column {unknown[0]!r} (columns: {', '.join(names[:20])})")


def write_out(table: pa.Table, out: Path) -> None:
    """Write rows to a parquet (content-defined pages: the next version deduplicates),
    csv or jsonl file, by its extension; through a temporary file and a rename."""
    import pyarrow as pa

    from oxen.verbs.table_diff import write_stream

    write_stream(pa.RecordBatchReader.from_batches(table.schema, table.to_batches()), out)
