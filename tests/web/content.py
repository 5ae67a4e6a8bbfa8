"""What the web tests' repository holds: a parquet file, a png image, a csv with markup in
a cell, a file whose name is markup, a commit message of markup, a folder of many files,
and a second commit that edits the csv (a row changed, one removed, one added)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

NS, NAME = "team", "data"
SCRIPT = "<script>alert('x')</script>"
SCRIPT_NAME = "<script>alert(1).txt"  # a name may not hold '/'
FIRST_MESSAGE = f"first {SCRIPT}\n\nwith a body line"
SECOND_MESSAGE = "relabel"
PARQUET_ROWS = 1000
MANY = 250  # files in many/
CSV_ONE = f'id,label\n1,cat\n2,"{SCRIPT}"\n3,eel\n'
CSV_TWO = f'id,label\n1,CAT\n2,"{SCRIPT}"\n4,fox\n'


def png(width: int = 32, height: int = 24) -> bytes:
    """A real RGB png (a gradient), made without an imaging library."""
    raw = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 8 % 256, y * 10 % 256, 128))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def parquet_table() -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(PARQUET_ROWS), pa.int64()),
            "label": [f"label-{i:04d}" for i in range(PARQUET_ROWS)],
            "score": [i / 8 for i in range(PARQUET_ROWS)],
        }
    )


def write_first(root: Path) -> None:
    """The files of the first commit, under ``root``."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(parquet_table(), root / "data" / "t.parquet", row_group_size=100)
    (root / "images").mkdir(exist_ok=True)
    (root / "images" / "cat.png").write_bytes(png())
    (root / "labels.csv").write_text(CSV_ONE)
    (root / SCRIPT_NAME).write_text(f"the name of this file is {SCRIPT}\n")
    (root / "notes.md").write_text("# Notes\n\nplain text, <b>not bold</b>\n")
    (root / "many").mkdir(exist_ok=True)
    for i in range(MANY):
        (root / "many" / f"f{i:04d}.txt").write_text(f"{i}\n")


def write_second(root: Path) -> None:
    (root / "labels.csv").write_text(CSV_TWO)
