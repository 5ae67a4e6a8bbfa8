"""Row edits of a tabular file in a workspace: rows appended, and rows updated or deleted
by key, written as the file's next version (parquet with content-defined pages, so the
new version shares most of its chunks with the old one) and staged.

The edit streams: the current version is copied out of the store, read a batch at a time,
each batch's rows deleted or updated by looking their keys up in the (small) edits, and
written out; the appended rows go last.  Memory holds one batch and the edits, whatever
the file's size.  An update or delete naming a key the file does not have is refused and
nothing is staged.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oxen.config import ChunkingConfig
from oxen.db.rows import FileRow
from oxen.errors import InvalidInput
from oxen.progress import null_progress
from oxen.serving import table_reads
from oxen.serving.file_reads import FileAt
from oxen.serving.served_repo import ServedRepo
from oxen.verbs.staging import describe_tabular
from oxen.verbs.table_diff import write_stream
from oxen.worktree.paths import FileStat

if TYPE_CHECKING:
    import pyarrow as pa

EDIT_FORMATS = ("parquet", "csv", "tsv", "jsonl")
MAX_EDIT_ROWS = 100_000  # rows one request may append, update or delete
KEY_SEPARATOR = "\x1f"  # joins the values of several key columns into one


@dataclass
class RowEdits:
    keys: list[str] = field(default_factory=list)
    append: list[dict[str, Any]] = field(default_factory=list)
    update: list[dict[str, Any]] = field(default_factory=list)  # keys + the columns to set
    delete: list[dict[str, Any]] = field(default_factory=list)  # keys only

    @classmethod
    def parse(cls, body: dict[str, Any]) -> RowEdits:
        keys = body.get("keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise InvalidInput("keys must be a list of column names")
        lists = {}
        for kind in ("append", "update", "delete"):
            rows = body.get(kind, [])
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise InvalidInput(f"{kind} must be a list of rows (objects)")
            lists[kind] = rows
        total = sum(len(r) for r in lists.values())
        if not total:
            raise InvalidInput("no rows to append, update or delete")
        if total > MAX_EDIT_ROWS:
            raise InvalidInput(f"at most {MAX_EDIT_ROWS} rows per request")
        if (lists["update"] or lists["delete"]) and not keys:
            raise InvalidInput("updates and deletes need keys: the columns that name a row")
        return cls(keys, lists["append"], lists["update"], lists["delete"])


@dataclass
class EditResult:
    appended: int
    updated: int  # rows of the file changed
    deleted: int  # rows of the file removed
    rows: int  # in the new version


async def edit_rows(
    repo: ServedRepo, file: FileAt, rev: str, edits: RowEdits
) -> tuple[FileRow, EditResult]:
    """The next version of ``file`` with ``edits`` applied, stored (chunks, chunk list,
    schema); its entry, to stage."""
    fmt, _ = await table_reads.tabular_of(repo, file, rev)
    if fmt not in EDIT_FORMATS:
        raise InvalidInput(
            f"row edits of {fmt} files are not supported ({', '.join(EDIT_FORMATS)})"
        )
    budget = table_reads.DiffBudget(table_reads.DIFF_SECONDS, "this edit")
    async with table_reads.table_slot():
        budget.start()
        async with table_reads.copy_out(repo, file, fmt, budget) as current:
            out_dir = current.with_suffix(".edit")
            await asyncio.to_thread(out_dir.mkdir)
            try:
                name = file.path.rsplit("/", 1)[-1]
                result = await budget.run(_edit, current, fmt, edits, out_dir / name)
                row = await _store(repo, out_dir, name, file)
            finally:
                await asyncio.to_thread(_remove_tree, out_dir)
    return row, result


def _remove_tree(folder: Path) -> None:
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()


async def _store(repo: ServedRepo, folder: Path, name: str, was: FileAt) -> FileRow:
    """The new version's chunks, chunk list and schema stored as ``add`` stores them."""
    from oxen.worktree.chunking import Chunker
    from oxen.worktree.ingest import Ingestor

    st = FileStat.of(await asyncio.to_thread(os.stat, folder / name))
    ingestor = Ingestor(repo.objects, Chunker(ChunkingConfig()), null_progress("", None, ""))
    (ingested,) = await ingestor.run(folder, [(name, st)])
    described = await describe_tabular(repo.objects, folder, [ingested])
    schema = described.get(name, ())
    return FileRow(was.path, ingested.id, ingested.size, ingested.chunks, was.entry.mode, *schema)


# -- the edit itself, in a worker thread --------------------------------------------------


def _edit(current: Path, fmt: str, edits: RowEdits, out: Path) -> EditResult:
    import pyarrow as pa

    from oxen.verbs.dataframe import read_batches

    batches: Iterator[pa.RecordBatch]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(current, buffer_size=1 << 20)
        schema = pf.schema_arrow
        batches = pf.iter_batches(64 * 1024)
    else:
        batches = read_batches(str(current), fmt, None)
        first = next(batches, None)
        if first is None:
            raise InvalidInput("the file has no rows to edit; append to it with `add`")
        schema = first.schema
        batches = _chain(first, batches)
    names = schema.names
    for k in edits.keys:
        if k not in names:
            raise InvalidInput(
                f"key column {k!r} is not in the file (it has {', '.join(names[:20])})"
            )
    updates = _table(edits.update, schema, "update", required=edits.keys)
    deletes = _table(edits.delete, schema, "delete", required=edits.keys, only=edits.keys)
    appends = _table(edits.append, schema, "append")
    set_columns = [c for c in updates.column_names if c not in edits.keys] if updates else []
    upd_keys = _key(updates, edits.keys) if updates else None
    del_keys = _key(deletes, edits.keys) if deletes else None
    seen_upd: set[Any] = set()
    seen_del: set[Any] = set()
    counts = {"updated": 0, "deleted": 0, "rows": 0}

    def edited() -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        for batch in batches:
            if del_keys is not None:
                key = _key(batch, edits.keys)
                hit = pc.is_in(key, value_set=del_keys)
                hit = pc.fill_null(hit, False)
                n = pc.sum(hit).as_py() or 0
                if n:
                    seen_del.update(pc.filter(key, hit).to_pylist())
                    counts["deleted"] += n
                    batch = batch.filter(pc.invert(hit))
            if upd_keys is not None and batch.num_rows:
                key = _key(batch, edits.keys)
                where = pc.index_in(key, value_set=upd_keys)
                hit = pc.is_valid(where)
                n = pc.sum(hit).as_py() or 0
                if n:
                    seen_upd.update(pc.filter(key, hit).to_pylist())
                    counts["updated"] += n
                    columns = list(batch.columns)
                    for c in set_columns:
                        i = names.index(c)
                        new = updates.column(c).combine_chunks().take(where)
                        columns[i] = pc.if_else(hit, new, columns[i])
                    batch = pa.RecordBatch.from_arrays(columns, schema=batch.schema)
            counts["rows"] += batch.num_rows
            yield batch
        if appends is not None:
            for batch in appends.to_batches():
                counts["rows"] += batch.num_rows
                yield batch

    reader = pa.RecordBatchReader.from_batches(schema, edited())
    try:
        write_stream(reader, out)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise InvalidInput(
            f"cannot write the edited rows: {str(e).splitlines()[0][:200]}"
        ) from None
    _refuse_unknown(upd_keys, seen_upd, "update")
    _refuse_unknown(del_keys, seen_del, "delete")
    return EditResult(len(edits.append), counts["updated"], counts["deleted"], counts["rows"])


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    for batch in rest:
        yield batch.cast(first.schema) if batch.schema != first.schema else batch


def _table(
    rows: list[dict[str, Any]],
    schema: pa.Schema,
    kind: str,
    required: list[str] | None = None,
    only: list[str] | None = None,
) -> pa.Table | None:
    """The rows as a table of the file's column types (of the columns they name; every
    column for appends), or InvalidInput naming what does not fit."""
    import pyarrow as pa

    if not rows:
        return None
    named: list[str] = []
    for row in rows:
        for c in row:
            if c not in schema.names:
                raise InvalidInput(f"{kind}: no column {c!r} in the file")
            if c not in named:
                named.append(c)
    for c in required or []:
        if any(c not in row for row in rows):
            raise InvalidInput(f"{kind}: every row needs its key column {c!r}")
    if only is not None and set(named) - set(only):
        raise InvalidInput(f"{kind}: rows name only their keys ({', '.join(only)})")
    if kind == "update" and len({tuple(sorted(r)) for r in rows}) > 1:
        raise InvalidInput("update: every row must set the same columns")
    columns = [c for c in schema.names if c in named]
    target = schema if kind == "append" else pa.schema([schema.field(c) for c in columns])
    try:
        return pa.Table.from_pylist(rows, schema=target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
        raise InvalidInput(
            f"{kind}: a value does not fit its column: {str(e).splitlines()[0][:200]}"
        ) from None


def _key(data: Any, keys: list[str]) -> pa.Array:
    """One array naming each row: its key column, or its key columns' values joined."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = [data.column(k) for k in keys]
    columns = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
    if len(columns) == 1:
        return columns[0]
    as_text = [pc.cast(c, pa.string()) for c in columns]
    return pc.binary_join_element_wise(*as_text, KEY_SEPARATOR)


def _refuse_unknown(wanted: pa.Array | None, seen: set[Any], kind: str) -> None:
    if wanted is None:
        return
    absent = [k for k in wanted.to_pylist() if k not in seen]
    if absent:
        shown = ", ".join(repr(k).replace(KEY_SEPARATOR, ",") for k in absent[:5])
        raise InvalidInput(f"{kind}: no row has the key {shown}; nothing was changed")
