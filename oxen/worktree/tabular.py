"""Tabular files at ``add``: their format, columns (name, type) and row count, read cheaply.

A parquet or arrow file gives both from its footer (pyarrow, imported only when such a
file is added); a csv, tsv or jsonl file from a sniff of its head for the columns and a
count of its lines for the rows.  Whatever cannot be read as its extension says gets a
Schema with ``error`` set: the file is still added, as a binary file, and ``info`` says
why.  Nothing here ever fails an ``add``, and nothing is imported until a tabular file is
read (an ``add`` of none pays nothing).
"""

from __future__ import annotations

import os

from oxen.formats.nodes import Schema

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
HEAD_BYTES = 64 * 1024  # what a text format's columns are sniffed from
SAMPLE_ROWS = 100
READ = 1 << 20


def format_of(path: str) -> str | None:
    """The tabular format a path's extension names, or None."""
    return FORMATS.get(os.path.splitext(path)[1].lower())


def sniff(path: str, fmt: str) -> tuple[Schema, int | None]:
    """(schema, rows) of the file at ``path``; a Schema with ``error`` if it is not one."""
    try:
        if fmt == "parquet":
            return _parquet(path)
        if fmt == "arrow":
            return _arrow(path)
        if fmt == "jsonl":
            return _jsonl(path)
        return _delimited(path, fmt, "\t" if fmt == "tsv" else ",")
    except Exception as e:  # any malformed input: still added, as a binary file
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        return Schema(fmt, (), f"not a readable {fmt} file: {reason}"), None


def _parquet(path: str) -> tuple[Schema, int]:
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    arrow = meta.schema.to_arrow_schema()
    return Schema("parquet", tuple((f.name, str(f.type)) for f in arrow)), meta.num_rows


def _arrow(path: str) -> tuple[Schema, int]:
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(path) as source:
        try:
            reader = ipc.open_file(source)
            rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
            schema = reader.schema
        except pa.ArrowInvalid:
            source.seek(0)
            stream = ipc.open_stream(source)
            schema, rows = stream.schema, sum(b.num_rows for b in stream)
    return Schema("arrow", tuple((f.name, str(f.type)) for f in schema)), rows


def _text_head(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if not head.strip():
        raise ValueError("it is empty")
    if b"\x00" in head:
        raise ValueError("it holds NUL bytes (binary data)")
    cut = head.rfind(b"\n") if len(head) == HEAD_BYTES else len(head)
    return head[: cut if cut > 0 else len(head)].decode("utf-8")


def _lines(path: str) -> int:
    """Lines of a file, a last one without its newline included."""
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(READ):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _delimited(path: str, fmt: str, delimiter: str) -> tuple[Schema, int]:
    import csv
    import io

    head = _text_head(path)
    sample = list(csv.reader(io.StringIO(head), delimiter=delimiter))
    if not sample or not any(sample[0]):
        raise ValueError("it has no header row")
    names = sample[0]
    if len(set(names)) != len(names):
        raise ValueError("its header names a column twice")
    body = [r for r in sample[1 : SAMPLE_ROWS + 1] if r]
    if any(len(r) != len(names) for r in body):
        raise ValueError(f"a row of its head does not have the header's {len(names)} fields")
    types = tuple(_column_type([r[i] for r in body]) for i in range(len(names)))
    if '"' in head:  # quoted fields may hold newlines: count records, not lines
        with open(path, encoding="utf-8", newline="") as f:
            rows = sum(1 for _ in csv.reader(f, delimiter=delimiter)) - 1
    else:
        rows = _lines(path) - 1
    return Schema(fmt, tuple(zip(names, types, strict=True))), rows


def _column_type(values: list[str]) -> str:
    seen = [v for v in values if v != ""]
    if not seen:
        return "null"
    for kind, parse in (("int64", int), ("double", float)):
        try:
            for v in seen:
                parse(v)
            return kind
        except ValueError:
            continue
    if all(v.lower() in ("true", "false") for v in seen):
        return "bool"
    return "string"


def _jsonl(path: str) -> tuple[Schema, int]:
    import json

    head = _text_head(path)
    columns: dict[str, str] = {}
    for line in head.splitlines()[:SAMPLE_ROWS]:
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ValueError("a line is not a JSON object")
        for key, value in record.items():
            kind = _json_type(value)
            if columns.get(key, "null") == "null":
                columns[key] = kind
            elif kind not in ("null", columns[key]):
                columns[key] = "string" if {kind, columns[key]} != {"int64", "double"} else "double"
    with open(path, "rb") as f:
        rows = sum(1 for line in f if line.strip())
    return Schema("jsonl", tuple(columns.items())), rows


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "struct"
